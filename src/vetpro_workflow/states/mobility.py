"""The mobility workflow: one participant's period abroad, from planning to dissemination."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from typing import Any

from .calendar import stay_days
from .machine import Definition
from .snapshots import Given, MobilitySnapshot


class State(StrEnum):
    DRAFTED = "drafted"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    PREPARATION = "preparation"
    ABROAD = "abroad"
    VALIDATION = "validation"
    DISSEMINATION = "dissemination"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


INITIAL = State.DRAFTED

# submit, request_changes and approve are carried along by the application's own triggers.
TRANSITIONS: list[dict[str, object]] = [
    {"trigger": "submit", "source": "drafted", "dest": "submitted", "who": ["system"]},
    {"trigger": "request_changes", "source": "submitted", "dest": "drafted", "who": ["system"]},
    {"trigger": "approve", "source": "submitted", "dest": "approved", "who": ["system"]},
    {
        "trigger": "start_preparation",
        "source": "approved",
        "dest": "preparation",
        "who": ["coordinator"],
        "facts": ["agreement_signed_on"],
        "conditions": ["application_under_way"],
    },
    {
        "trigger": "depart",
        "source": "preparation",
        "dest": "abroad",
        "who": ["coordinator"],
        "facts": ["departed_on", "preparation_done?"],
        "conditions": ["departure_agrees", "preparation_recorded"],
    },
    {
        "trigger": "return_home",
        "source": "abroad",
        "dest": "validation",
        "who": ["coordinator", "system"],
        "facts": ["returned_on"],
        "conditions": ["return_agrees", "stay_within_limits_or_noted"],
    },
    {
        "trigger": "interrupt",
        "source": "abroad",
        "dest": "validation",
        "who": ["coordinator", "staff"],
        "facts": ["returned_on", "reason"],
        "note": True,
        "conditions": ["return_agrees"],
    },
    # Facts that arrive on their own, before or after the step they belong to: recorded alone
    # (the state stays), so that the reminders waiting for them stop.
    {
        "trigger": "record_preparation",
        "source": ["approved", "preparation"],
        "dest": "=",
        "who": ["coordinator"],
        "facts": ["preparation_done"],
    },
    {
        "trigger": "record_report",
        "source": ["validation", "dissemination", "completed"],
        "dest": "=",
        "who": ["coordinator", "staff"],
        "facts": ["participant_report_on"],
        "conditions": ["report_after_departure"],
    },
    {
        "trigger": "validate",
        "source": "validation",
        "dest": "dissemination",
        "who": ["coordinator"],
        "facts": ["europass_ref", "participant_report_on?"],
        "conditions": ["report_after_departure"],
    },
    {
        "trigger": "complete",
        "source": "dissemination",
        "dest": "completed",
        "who": ["coordinator"],
        "facts": ["dissemination"],
    },
    {
        "trigger": "cancel",
        "source": ["drafted", "submitted", "approved", "preparation"],
        "dest": "cancelled",
        "who": ["coordinator", "staff", "system"],
        "note": True,
    },
]

_UNDER_WAY = ("preparation", "abroad", "validation", "dissemination", "closed")


def application_under_way(m: MobilitySnapshot, given: Given) -> str | None:
    """The application's grant agreement is signed (it is in preparation or later)."""
    project = given.project
    if project.state in _UNDER_WAY:
        return None
    return (
        f"needs application {project.id} in preparation or later "
        f"(it is '{project.state}': record its grant agreement first)"
    )


def departure_agrees(m: MobilitySnapshot, given: Given) -> str | None:
    """The departure is inside the project period and after the agreements and the approval."""
    departed: date | None = given.facts.get("departed_on")
    if departed is None:
        return None
    project = given.project
    earliest = [
        ("the project start", project.start_date),
        ("the approval", project.facts.get("approved_on")),
        ("the grant agreement", project.facts.get("grant_agreement_signed_on")),
        ("the training agreement", m.facts.get("agreement_signed_on")),
    ]
    problems = [
        f"departed_on not before {what} ({day})" for what, day in earliest if day and departed < day
    ]
    if departed > project.end_date:
        problems.append(f"departed_on not after the project end ({project.end_date})")
    return "needs " + " and ".join(problems) if problems else None


def preparation_recorded(m: MobilitySnapshot, given: Given) -> str | None:
    """Planned language or other preparation is recorded as done."""
    if m.language_preparation and given.facts.get("preparation_done") is not True:
        return "needs preparation_done=true (language preparation was planned)"
    return None


def return_agrees(m: MobilitySnapshot, given: Given) -> str | None:
    """The return is not before the departure nor after the project's end."""
    returned, departed = given.facts.get("returned_on"), m.facts.get("departed_on")
    if returned is None:
        return None
    problems = []
    if departed is not None and returned < departed:
        problems.append(f"returned_on on or after departed_on ({departed})")
    if returned > given.project.end_date:
        problems.append(f"returned_on not after the project end ({given.project.end_date})")
    return "needs " + " and ".join(problems) if problems else None


def actual_stay(m: MobilitySnapshot, facts: dict[str, date] | None = None) -> int | None:
    """Days actually spent abroad (both ends counted), once departure and return are known."""
    merged = {**m.facts, **(facts or {})}
    departed, returned = merged.get("departed_on"), merged.get("returned_on")
    return stay_days(departed, returned) if departed and returned else None


def stay_within_limits_or_noted(m: MobilitySnapshot, given: Given) -> str | None:
    """An actual stay outside the call's limits is recorded only with a note saying why."""
    days, call = actual_stay(m, dict(given.facts)), given.project.call
    if days is None or call.min_days <= days <= call.max_days or (given.note or "").strip():
        return None
    return (
        f"needs a note explaining the actual stay of {days} days, outside the call's "
        f"{call.min_days} to {call.max_days} days"
    )


def report_after_departure(m: MobilitySnapshot, given: Given) -> str | None:
    """A participant report is not dated before the participant left."""
    report, departed = given.facts.get("participant_report_on"), m.facts.get("departed_on")
    if report is not None and departed is not None and report < departed:
        return f"needs participant_report_on on or after the departure ({departed})"
    return None


def _returned(m: MobilitySnapshot, facts: Mapping[str, Any], given: Given) -> dict[str, Any]:
    sets: dict[str, Any] = {"returned_on": facts["returned_on"]}
    if "reason" in facts:
        sets["interruption_reason"] = facts["reason"]
    days, call = actual_stay(m, dict(facts)), given.project.call
    if days is not None and not call.min_days <= days <= call.max_days:
        # Recorded as it happened, and shown to staff: the stay is outside the call's limits.
        sets["stay_note"] = f"{days} days abroad: {given.note}"
    return sets


DEFINITION = Definition(
    kind="mobility",
    states=tuple(s.value for s in State),
    initial=INITIAL.value,
    transitions=TRANSITIONS,
    guards={
        guard.__name__: guard
        for guard in (
            application_under_way,
            departure_agrees,
            preparation_recorded,
            return_agrees,
            stay_within_limits_or_noted,
            report_after_departure,
        )
    },
    records={"return_home": _returned, "interrupt": _returned},
    waits=frozenset({"application_under_way"}),
)
