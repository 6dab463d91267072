"""Which notifications each move of a case enqueues in the outbox, to whom, with what context.

Pure: it reads a snapshot and returns rows to write; the service writes them in the same
transaction as the move, and the sender delivers them after commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..states.dossier import ApplicationFile, MobilityFile
from ..states.steps import next_step

# (kind of case, trigger) -> the notifications it sends and to whom.
ON_MOVE: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("application", "submit"): (("receipt", "coordinator"),),
    ("application", "request_changes"): (("changes_requested", "coordinator"),),
    ("application", "approve"): (("decision_approved", "coordinator"),),
    ("application", "reject"): (("decision_rejected", "coordinator"),),
    ("application", "withdraw"): (("withdrawal_confirmed", "coordinator"),),
    ("application", "start_preparation"): (("grant_agreement_recorded", "coordinator"),),
    ("application", "mobilities_validated"): (("final_report_due", "coordinator"),),
    ("application", "mobilities_cancelled"): (("final_report_due", "coordinator"),),
    ("application", "close"): (("closure", "coordinator"),),
    ("mobility", "depart"): (("departure_confirmation", "coordinator"),),
    ("mobility", "return_home"): (
        ("participant_report_request", "participant"),
        ("return_recorded", "coordinator"),
    ),
    ("mobility", "cancel"): (("mobility_cancelled", "coordinator"),),
}


@dataclass(frozen=True)
class Notice:
    """One notification to enqueue."""

    key: str
    case_id: int
    kind: str
    recipient: str
    context: dict[str, Any]
    cc: str | None = None


def context_of(
    case: ApplicationFile | MobilityFile, *, trigger: str, note: str | None
) -> dict[str, Any]:
    """What a template may say about a case, as JSON values."""
    step = next_step(case)
    common: dict[str, Any] = {
        "case_id": case.id,
        "case_kind": case.kind,
        "state": case.state,
        "trigger": trigger,
        "note": note,
        "coordinator_name": case.coordinator_name,
        "coordinator_email": case.coordinator_email,
        "applicant": case.applicant_name,
        "next_step": step.text,
        "next_step_due": step.due.isoformat() if step.due else None,
    }
    if isinstance(case, ApplicationFile):
        return common | {
            "application_id": case.id,
            "project_title": case.title,
            "start_date": case.start_date.isoformat(),
            "end_date": case.end_date.isoformat(),
        }
    return common | {
        "application_id": case.application_id,
        "project_title": case.project_title,
        "participant_name": case.participant_name,
        "host": case.host_name,
        "host_country": case.host_country,
        "start_date": case.start_date.isoformat(),
        "end_date": case.end_date.isoformat(),
    }


def recipient(case: ApplicationFile | MobilityFile, role: str, *, staff_email: str) -> str:
    """The address of the person in a role on a case."""
    if role == "participant" and isinstance(case, MobilityFile):
        return case.participant_email
    if role == "staff":
        return staff_email
    return case.coordinator_email


def on_move(
    case: ApplicationFile | MobilityFile, *, trigger: str, note: str | None, staff_email: str
) -> list[Notice]:
    """The notifications a move has just made due (the snapshot is taken after the move)."""
    wanted = ON_MOVE.get((case.kind, trigger), ())
    if not wanted:
        return []
    context = context_of(case, trigger=trigger, note=note)
    return [
        Notice(
            key=f"case-{case.id}:{kind}:v{case.version}",
            case_id=case.id,
            kind=kind,
            recipient=recipient(case, role, staff_email=staff_email),
            context=context,
        )
        for kind, role in wanted
    ]
