"""The mobility workflow: one participant's period abroad, from planning to dissemination."""

from __future__ import annotations

from enum import StrEnum

from .dossier import Given, MobilityFile
from .machine import Definition


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
FINAL = (State.COMPLETED, State.CANCELLED)

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
        "conditions": ["departed_within_project", "preparation_recorded"],
    },
    {
        "trigger": "return_home",
        "source": "abroad",
        "dest": "validation",
        "who": ["coordinator", "system"],
        "facts": ["returned_on"],
        "conditions": ["returned_after_departure"],
    },
    # Facts that arrive before the step they belong to: recorded on their own, so that the
    # reminders waiting for them stop (a self-loop: the state does not change).
    {
        "trigger": "record_preparation",
        "source": ["approved", "preparation"],
        "dest": "=",
        "who": ["coordinator"],
        "facts": ["preparation_done"],
    },
    {
        "trigger": "record_report",
        "source": "validation",
        "dest": "=",
        "who": ["coordinator"],
        "facts": ["participant_report_on"],
    },
    {
        "trigger": "validate",
        "source": "validation",
        "dest": "dissemination",
        "who": ["coordinator"],
        "facts": ["europass_ref", "participant_report_on"],
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


def application_under_way(m: MobilityFile, given: Given) -> str | None:
    """The application's grant agreement is signed (it is in preparation or later)."""
    if m.application_state in _UNDER_WAY:
        return None
    return (
        f"needs application {m.application_id} in preparation or later "
        f"(it is '{m.application_state}': record its grant agreement first)"
    )


def departed_within_project(m: MobilityFile, given: Given) -> str | None:
    """The departure is not before the project starts."""
    departed = given.facts.get("departed_on")
    if departed is not None and departed < m.project_start:
        return f"needs departed_on not before the project start ({m.project_start})"
    return None


def preparation_recorded(m: MobilityFile, given: Given) -> str | None:
    """Planned language or other preparation is recorded as done."""
    if m.language_preparation and given.facts.get("preparation_done") is not True:
        return "needs preparation_done=true (language preparation was planned)"
    return None


def returned_after_departure(m: MobilityFile, given: Given) -> str | None:
    """The return is not before the departure."""
    returned, departed = given.facts.get("returned_on"), m.facts.get("departed_on")
    if returned is not None and departed is not None and returned < departed:
        return f"needs returned_on on or after departed_on ({departed})"
    return None


DEFINITION = Definition(
    kind="mobility",
    states=tuple(s.value for s in State),
    initial=INITIAL.value,
    transitions=TRANSITIONS,
    guards={
        "application_under_way": application_under_way,
        "departed_within_project": departed_within_project,
        "preparation_recorded": preparation_recorded,
        "returned_after_departure": returned_after_departure,
    },
)
