"""Which notices each move sends, to whom, and what their templates may say: plain data.

A notice goes to one address (one SMTP transaction each, so a refused copy never holds up or
repeats the main message); its key makes enqueueing it twice impossible.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .calendar import brussels_time
from .snapshots import ApplicationSnapshot, MobilitySnapshot, Snapshot
from .steps import next_step

if TYPE_CHECKING:
    from .cascade import Change

# (kind of case, trigger) -> the notices it sends and to whom.
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
    ("mobility", "interrupt"): (
        ("participant_report_request", "participant"),
        ("stay_interrupted", "coordinator"),
    ),
    ("mobility", "cancel"): (("mobility_cancelled", "coordinator"),),
}


@dataclass(frozen=True)
class Notice:
    """One message to enqueue: its template, its one envelope recipient and its headers."""

    key: str
    case_id: int | None
    kind: str
    recipient: str  # the one address this message is delivered to
    context: dict[str, Any]
    to: str | None = None  # the To header, when it is not the recipient (a copy)
    cc: str | None = None  # the Cc header


def context_of(project: ApplicationSnapshot, case: Snapshot, *, now: datetime) -> dict[str, Any]:
    """What a template may say about a case, as JSON values."""
    step = next_step(project, case)
    deadline = project.call.deadline
    common: dict[str, Any] = {
        "case_id": case.id,
        "case_kind": case.kind,
        "state": case.state,
        "coordinator_name": project.coordinator_name,
        "coordinator_email": project.coordinator_email,
        "applicant": project.applicant_name,
        "next_step": step.text,
        "next_step_due": step.due.isoformat() if step.due else None,
        "next_step_trigger": step.trigger,
        "application_id": project.id,
        "project_title": project.title,
        "call_deadline": brussels_time(deadline),
        "call_deadline_passed": now >= deadline,
    }
    if isinstance(case, ApplicationSnapshot):
        resubmit_by = case.facts.get("resubmit_by")
        return common | {
            "start_date": case.start_date.isoformat(),
            "end_date": case.end_date.isoformat(),
            "resubmit_by": resubmit_by.isoformat() if resubmit_by else None,
        }
    returned = case.facts.get("returned_on")
    return common | {
        "participant_name": case.participant_name,
        "host": case.host_name,
        "host_country": case.host_country,
        "start_date": case.start_date.isoformat(),
        "end_date": case.end_date.isoformat(),
        "returned_on": returned.isoformat() if returned else None,
        "interruption_reason": case.facts.get("interruption_reason"),
    }


def address_of(project: ApplicationSnapshot, case: Snapshot, role: str, *, staff_email: str) -> str:
    """The address of the person in a role on a case."""
    if role == "participant" and isinstance(case, MobilitySnapshot):
        return case.participant_email
    if role == "staff":
        return staff_email
    return project.coordinator_email


def on_move(
    project: ApplicationSnapshot, change: Change, *, staff_email: str, now: datetime
) -> list[Notice]:
    """The notices a move has just made due (the project is taken after the move)."""
    wanted = ON_MOVE.get((change.kind, change.trigger), ())
    case = project.case(change.case_id)
    if not wanted or case is None:
        return []
    context = context_of(project, case, now=now) | {
        "trigger": change.trigger,
        "note": change.note,
    }
    return [
        Notice(
            key=f"case-{case.id}:{kind}:v{change.version}",
            case_id=case.id,
            kind=kind,
            recipient=address_of(project, case, role, staff_email=staff_email),
            context=context,
        )
        for kind, role in wanted
    ]
