"""The next required step of a case: one sentence saying what must happen, by whom, by when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from .dossier import ApplicationFile, MobilityFile
from .eligibility import brussels_time

FINAL_REPORT_DAYS = 60  # the final report is due 60 days after the project ends (rule)
VALIDATION_DAYS = 45  # staff are alerted 45 days after a return without validation


@dataclass(frozen=True)
class NextStep:
    """What must happen next on a case, who does it and the date it is due (if any)."""

    text: str
    who: str | None = None
    due: date | None = None


def final_report_due(a: ApplicationFile) -> date:
    """The day the final report is due."""
    return a.end_date + timedelta(days=FINAL_REPORT_DAYS)


def for_application(a: ApplicationFile) -> NextStep:
    """The next step of a project."""
    pending = [m for m in a.active_mobilities() if m.state in ("approved", "preparation")]
    away = [m for m in a.active_mobilities() if m.state in ("approved", "preparation", "abroad")]
    deadline = a.application_deadline
    match a.state:
        case "drafted":
            return NextStep(
                f"The coordinator completes and submits the application before the call "
                f"deadline, {brussels_time(deadline)}.",
                "coordinator",
                deadline.date(),
            )
        case "submitted":
            return NextStep(
                "NA staff assess the application and approve it, reject it or request changes.",
                "staff",
            )
        case "approved":
            return NextStep(
                f"The coordinator signs the grant agreement and records it (start_preparation) "
                f"before the project starts on {a.start_date}.",
                "coordinator",
                a.start_date,
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
            returns = [
                m.facts.get("returned_on", m.end_date)
                for m in a.active_mobilities()
                if m.state == "validation"
            ]
            due = min(returns, default=a.end_date) + timedelta(days=VALIDATION_DAYS)
            return NextStep(
                f"The coordinator validates each participant's competences (Europass reference) "
                f"and collects the participant reports, the first by {due}.",
                "coordinator",
                due,
            )
        case "dissemination":
            due = final_report_due(a)
            return NextStep(
                f"The coordinator completes the dissemination and sends the final report by "
                f"{due}; NA staff then close the project.",
                "coordinator",
                due,
            )
    return NextStep(f"Nothing: the application is {a.state}.")


def for_mobility(m: MobilityFile) -> NextStep:
    """The next step of one participant's stay."""
    match m.state:
        case "drafted" | "submitted":
            return NextStep(
                f"It moves with application {m.application_id}, which is '{m.application_state}'.",
            )
        case "approved":
            before = (
                ""
                if m.application_state != "approved"
                else f" once the grant agreement of application {m.application_id} is recorded"
            )
            return NextStep(
                f"The coordinator records the signed training agreement (start_preparation)"
                f"{before}, before the departure on {m.start_date}.",
                "coordinator",
                m.start_date,
            )
        case "preparation":
            prep = " with the language preparation done" if m.language_preparation else ""
            return NextStep(
                f"The coordinator records the departure (depart){prep} on {m.start_date}.",
                "coordinator",
                m.start_date,
            )
        case "abroad":
            return NextStep(
                f"{m.participant_name} returns on {m.end_date}; the coordinator records the "
                f"return (return_home), or the daily sweep does on that date.",
                "coordinator",
                m.end_date,
            )
        case "validation":
            returned = m.facts.get("returned_on", m.end_date)
            due = returned + timedelta(days=VALIDATION_DAYS)
            report = (
                "the participant report (received on " + str(m.facts["participant_report_on"]) + ")"
                if m.facts.get("participant_report_on")
                else "the participant report"
            )
            return NextStep(
                f"The coordinator records the Europass reference and {report} (validate) by {due}.",
                "coordinator",
                due,
            )
        case "dissemination":
            return NextStep(
                "The coordinator records how the results were shared with colleagues (complete).",
                "coordinator",
            )
    return NextStep(f"Nothing: the mobility is {m.state}.")


def next_step(case: ApplicationFile | MobilityFile) -> NextStep:
    """The next step of any case."""
    return for_application(case) if isinstance(case, ApplicationFile) else for_mobility(case)
