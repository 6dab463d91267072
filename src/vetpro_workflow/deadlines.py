"""The reminder rules of DOMAIN.md as data, and what a reminder says: pure, no database.

Each rule names the kind of case it watches, the states in which the case still owes the step,
the date it counts from (its anchor), the days before (-) or after (+) that date on which it
reminds, whom it writes to, and the next required step it names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from .states.eligibility import brussels_time
from .states.steps import FINAL_REPORT_DAYS, VALIDATION_DAYS


@dataclass(frozen=True)
class Rule:
    """One reminder rule."""

    name: str
    kind: str  # application | mobility
    notice: str  # the template
    to: str  # coordinator | participant | staff
    anchor: str  # deadline | start | end | returned
    offsets: tuple[int, ...]  # days from the anchor on which it reminds
    states: tuple[str, ...]
    step: str  # the next required step; {due} is the date it is about
    due_after_anchor: int = 0  # the date the reminder is about, in days after the anchor
    cc_coordinator_at: tuple[int, ...] = field(default=())
    condition: str | None = None  # preparation_missing | report_missing


RULES: tuple[Rule, ...] = (
    Rule("call_deadline", "application", "call_deadline_reminder", "coordinator", "deadline",
         (-30, -7, -1), ("drafted",),
         "The coordinator completes and submits the application before the call deadline, {due}."),
    Rule("grant_agreement", "application", "grant_agreement_to_sign", "coordinator", "start",
         (-30, -7), ("approved",),
         "The coordinator signs the grant agreement and records it (start_preparation) before "
         "the project starts on {due}."),
    Rule("training_agreement", "mobility", "training_agreement_reminder", "coordinator", "start",
         (-30, -7), ("approved",),
         "The coordinator records the signed training agreement (start_preparation) before the "
         "departure on {due}."),
    Rule("preparation", "mobility", "preparation_reminder", "coordinator", "start",
         (-14,), ("approved", "preparation"),
         "The coordinator completes the planned language preparation and records it with the "
         "departure on {due}.", condition="preparation_missing"),
    Rule("participant_report", "mobility", "participant_report_reminder", "participant",
         "returned", (7, 14, 30), ("validation",),
         "The participant sends the participant report, requested on {due}, to the coordinator.",
         cc_coordinator_at=(30,), condition="report_missing"),
    Rule("validation_overdue", "mobility", "validation_overdue", "staff", "returned",
         (VALIDATION_DAYS,), ("validation",),
         "NA staff ask the coordinator to validate the mobility (Europass reference and "
         "participant report): it is overdue since {due}.", due_after_anchor=VALIDATION_DAYS),
    Rule("final_report", "application", "final_report_reminder", "coordinator", "end",
         (0, FINAL_REPORT_DAYS - 7), ("preparation", "abroad", "validation", "dissemination"),
         "The coordinator sends the final report by {due}.",
         due_after_anchor=FINAL_REPORT_DAYS),
)  # fmt: skip


def rule(name: str) -> Rule:
    """A rule by name."""
    return next(r for r in RULES if r.name == name)


def anchor_window(offset: int, since: date, today: date) -> tuple[date, date]:
    """The anchor dates whose reminder at `offset` fell due after `since`, up to `today`."""
    return since + timedelta(days=1 - offset), today - timedelta(days=offset)


def reminder_key(case_id: int, r: Rule, due: date, offset: int) -> str:
    """The outbox key: one reminder per case, rule, due date and day of reminding."""
    return f"case-{case_id}:{r.name}:{due.isoformat()}:{offset:+d}"


def reminder_context(
    r: Rule, facts: dict[str, Any], *, anchor: date, today: date
) -> dict[str, Any]:
    """What a reminder's template says, from the columns the sweep read for its case."""
    due = anchor + timedelta(days=r.due_after_anchor)
    shown = brussels_time(facts["deadline"]) if r.anchor == "deadline" else due.isoformat()
    context = {
        "case_id": facts["id"],
        "case_kind": r.kind,
        "state": facts["state"],
        "trigger": r.name,
        "note": None,
        "coordinator_name": facts["coordinator_name"],
        "coordinator_email": facts["coordinator_email"],
        "applicant": facts["applicant_name"],
        "next_step": r.step.format(due=shown),
        "next_step_due": due.isoformat(),
        "application_id": facts["application_id"],
        "project_title": facts["project_title"],
        "start_date": facts["start_date"].isoformat(),
        "end_date": facts["end_date"].isoformat(),
        "due_date": due.isoformat(),
        "days_left": (due - today).days,
    }
    if r.kind == "mobility":
        context |= {
            "participant_name": facts["participant_name"],
            "host": facts["host_name"],
            "host_country": facts["host_country"],
        }
    return context
