"""The next required step of a case: one sentence saying what must happen, by whom, by when.

The same sentence heads the case page and every email about the case.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from .calendar import brussels_time
from .snapshots import ApplicationSnapshot, MobilitySnapshot, Snapshot

FINAL_REPORT_DAYS = 60  # the final report is due 60 days after the project ends (rule)
VALIDATION_DAYS = 45  # staff are alerted 45 days after a return without validation


@dataclass(frozen=True)
class NextStep:
    """What must happen next on a case, who does it and the date it is due (if any)."""

    text: str
    who: str | None = None
    due: date | None = None
    trigger: str | None = None  # the trigger that takes the step, when one does


def final_report_due(a: ApplicationSnapshot) -> date:
    """The day the final report is due."""
    return a.end_date + timedelta(days=FINAL_REPORT_DAYS)


def _drafted(a: ApplicationSnapshot) -> NextStep:
    resubmit_by = a.facts.get("resubmit_by")
    if resubmit_by is not None:
        return NextStep(
            f"The coordinator makes the changes NA staff asked for and submits the application "
            f"again by {resubmit_by}.",
            "coordinator",
            resubmit_by,
            "submit",
        )
    deadline = a.call.deadline
    return NextStep(
        f"The coordinator completes and submits the application before the call deadline, "
        f"{brussels_time(deadline)}.",
        "coordinator",
        deadline.date(),
        "submit",
    )


def _submitted(a: ApplicationSnapshot) -> NextStep:
    if a.facts.get("score") is None:
        return NextStep(
            "NA staff evaluate the application on the six quality criteria, then approve it, "
            "reject it or request changes.",
            "staff",
            trigger="evaluate",
        )
    return NextStep(
        f"NA staff decide: the evaluation totals {a.facts['score']:g} of {a.call.max_total:g} "
        f"(pass mark {a.call.mark:g}); approve, reject or request changes.",
        "staff",
        trigger="approve",
    )


def _validation(a: ApplicationSnapshot) -> NextStep:
    returns = [
        m.facts.get("returned_on", m.end_date)
        for m in a.live_mobilities()
        if m.state == "validation"
    ]
    due = min(returns, default=a.end_date) + timedelta(days=VALIDATION_DAYS)
    return NextStep(
        f"The coordinator validates each participant's competences (Europass reference), "
        f"the first by {due}, and collects the participant reports.",
        "coordinator",
        due,
    )


def for_application(a: ApplicationSnapshot) -> NextStep:
    """The next step of a project."""
    live = a.live_mobilities()
    pending = [m for m in live if m.state in ("approved", "preparation")]
    away = [m for m in live if m.state in ("approved", "preparation", "abroad")]
    match a.state:
        case "drafted":
            return _drafted(a)
        case "submitted":
            return _submitted(a)
        case "approved":
            return NextStep(
                f"The coordinator signs the grant agreement and records it (start_preparation) "
                f"before the project starts on {a.start_date}.",
                "coordinator",
                a.start_date,
                "start_preparation",
            )
        case "preparation" if pending:
            first = min(m.start_date for m in pending)
            return NextStep(
                f"The coordinator signs the training agreements and prepares the participants; "
                f"the first departure is planned on {first}.",
                "coordinator",
                first,
            )
        case "preparation" | "abroad":
            last = max((m.end_date for m in away), default=a.end_date)
            return NextStep(
                f"The coordinator records each departure and return; the last return is "
                f"planned on {last}.",
                "coordinator",
                last,
            )
        case "validation":
            return _validation(a)
        case "dissemination":
            due = final_report_due(a)
            return NextStep(
                f"The coordinator completes the dissemination and sends the final report by "
                f"{due}; NA staff then close the project.",
                "coordinator",
                due,
            )
    return NextStep(f"Nothing: the application is {a.state}.")


def for_mobility(a: ApplicationSnapshot, m: MobilitySnapshot) -> NextStep:
    """The next step of one participant's stay."""
    match m.state:
        case "drafted" | "submitted":
            return NextStep(f"It moves with application {a.id}, which is '{a.state}'.")
        case "approved":
            before = (
                ""
                if a.state != "approved"
                else f" once the grant agreement of application {a.id} is recorded"
            )
            return NextStep(
                f"The coordinator records the signed training agreement (start_preparation)"
                f"{before}, before the departure on {m.start_date}.",
                "coordinator",
                m.start_date,
                "start_preparation",
            )
        case "preparation":
            prep = " with the language preparation done" if m.language_preparation else ""
            return NextStep(
                f"The coordinator records the departure (depart){prep} on {m.start_date}.",
                "coordinator",
                m.start_date,
                "depart",
            )
        case "abroad":
            return NextStep(
                f"{m.participant_name} returns on {m.end_date}; the coordinator records the "
                f"return (return_home), or the daily sweep does on that date.",
                "coordinator",
                m.end_date,
                "return_home",
            )
        case "validation":
            due = m.facts.get("returned_on", m.end_date) + timedelta(days=VALIDATION_DAYS)
            return NextStep(
                f"The coordinator records the Europass reference (validate) by {due}{_report(m)}.",
                "coordinator",
                due,
                "validate",
            )
        case "dissemination":
            return NextStep(
                "The coordinator records how the results were shared with colleagues (complete)"
                f"{_report(m)}.",
                "coordinator",
                trigger="complete",
            )
    return NextStep(f"Nothing: the mobility is {m.state}{_report(m)}.")


def _report(m: MobilitySnapshot) -> str:
    if m.state in ("validation", "dissemination", "completed") and not m.facts.get(
        "participant_report_on"
    ):
        return "; the participant report is still awaited (record_report)"
    return ""


def next_step(project: ApplicationSnapshot, case: Snapshot) -> NextStep:
    """The next step of any case of a project."""
    if isinstance(case, ApplicationSnapshot):
        return for_application(case)
    return for_mobility(project, case)
