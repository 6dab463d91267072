"""The rules of time, as data: reminders the daily sweep sends, and what the staff digest shows
as overdue. Both name the date they count from (their anchor) in the same words; the store turns
these words into queries, and `reminders` turns a due case into its notices. Pure: no database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from .calendar import brussels_time
from .notices import Notice, address_of, context_of
from .snapshots import ApplicationSnapshot, Snapshot
from .steps import FINAL_REPORT_DAYS, VALIDATION_DAYS

# The dates a rule can count from: the call's deadline (its day in Brussels), the day staff set
# for a resubmission, a project's or mobility's planned start or end, and a mobility's return.
ANCHORS = ("deadline", "resubmit_by", "start", "end", "returned")
# Extra conditions a rule can put on a case, beyond its state.
CONDITIONS = ("preparation_missing", "report_missing", "stay_noted")


@dataclass(frozen=True)
class Rule:
    """One reminder rule: on `offsets` days from the anchor, while the case is in `states`."""

    name: str
    kind: str  # application | mobility
    notice: str  # the template
    to: str  # coordinator | participant | staff
    anchor: str
    offsets: tuple[int, ...]
    states: tuple[str, ...]
    step: str  # the next required step; {due} is the date it is about
    due_after_anchor: int = 0  # the date the reminder is about, in days after the anchor
    cc_coordinator_at: tuple[int, ...] = ()
    condition: str | None = None


@dataclass(frozen=True)
class Overdue:
    """One thing the staff digest shows: a step past its date (or, without an anchor, a case
    staff should look at)."""

    name: str
    kind: str
    states: tuple[str, ...]
    what: str
    anchor: str | None = None
    days_after: int = 0  # overdue once this many days after the anchor have passed
    condition: str | None = None


RULES: tuple[Rule, ...] = (
    Rule("call_deadline", "application", "call_deadline_reminder", "coordinator", "deadline",
         (-30, -7, -1), ("drafted",),
         "The coordinator completes and submits the application before the call deadline, {due}."),
    Rule("resubmission", "application", "resubmission_reminder", "coordinator", "resubmit_by",
         (-7, -1), ("drafted",),
         "The coordinator makes the changes NA staff asked for and submits the application again "
         "by {due}."),
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
         "The coordinator completes the planned language preparation and records it "
         "(record_preparation, or with the departure) by {due}.",
         condition="preparation_missing"),
    Rule("participant_report", "mobility", "participant_report_reminder", "participant",
         "returned", (7, 14, 30), ("validation", "dissemination", "completed"),
         "The participant sends the participant report, requested on {due}, to the coordinator.",
         cc_coordinator_at=(30,), condition="report_missing"),
    Rule("validation_overdue", "mobility", "validation_overdue", "staff", "returned",
         (VALIDATION_DAYS,), ("validation",),
         "NA staff ask the coordinator to validate the mobility (Europass reference): it is "
         "overdue since {due}.", due_after_anchor=VALIDATION_DAYS),
    Rule("final_report", "application", "final_report_reminder", "coordinator", "end",
         (0, FINAL_REPORT_DAYS - 7), ("preparation", "abroad", "validation", "dissemination"),
         "The coordinator sends the final report by {due}.",
         due_after_anchor=FINAL_REPORT_DAYS),
)  # fmt: skip

OVERDUE: tuple[Overdue, ...] = (
    Overdue("grant_agreement", "application", ("approved",),
            "grant agreement not recorded; the project has started", "start"),
    Overdue("final_report", "application", ("dissemination",), "final report overdue", "end",
            FINAL_REPORT_DAYS),
    Overdue("departure", "mobility", ("approved", "preparation"), "departure not recorded",
            "start"),
    Overdue("return", "mobility", ("abroad",), "return not recorded", "end"),
    Overdue("validation", "mobility", ("validation",), "validation overdue", "returned",
            VALIDATION_DAYS),
    Overdue("stay_outside_limits", "mobility",
            ("validation", "dissemination", "completed"),
            "actual stay outside the call's limits", condition="stay_noted"),
)  # fmt: skip


def rule(name: str) -> Rule:
    """A reminder rule by name."""
    return next(r for r in RULES if r.name == name)


def anchor_window(offset: int, since: date, today: date) -> tuple[date, date]:
    """The anchor dates whose reminder at `offset` fell due after `since`, up to `today`."""
    return since + timedelta(days=1 - offset), today - timedelta(days=offset)


def reminders(
    r: Rule,
    project: ApplicationSnapshot,
    case: Snapshot,
    anchor: date,
    *,
    since: date,
    today: date,
    now: datetime,
    staff_email: str,
) -> list[Notice]:
    """The notices of one rule for one case: one per reminder day that fell due in the window,
    and one more for the coordinator's copy on the days it is copied."""
    due = anchor + timedelta(days=r.due_after_anchor)
    shown = brussels_time(project.call.deadline) if r.anchor == "deadline" else due.isoformat()
    context = context_of(project, case, now=now) | {
        "trigger": r.name,
        "note": None,
        "next_step": r.step.format(due=shown),
        "next_step_due": due.isoformat(),
        "due_date": due.isoformat(),
        "days_left": (due - today).days,
    }
    to = address_of(project, case, r.to, staff_email=staff_email)
    notices = []
    for offset in r.offsets:
        lo, hi = anchor_window(offset, since, today)
        if not lo <= anchor <= hi:
            continue
        key = f"case-{case.id}:{r.name}:{due.isoformat()}:{offset:+d}"
        copy = project.coordinator_email if offset in r.cc_coordinator_at else None
        notices.append(Notice(key, case.id, r.notice, to, context, cc=copy))
        if copy is not None and copy != to:
            notices.append(Notice(f"{key}:cc", case.id, r.notice, copy, context, to=to, cc=copy))
    return notices
