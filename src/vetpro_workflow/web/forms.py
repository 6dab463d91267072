"""The forms of the actions on a case: each asks for exactly the facts its trigger needs, with
labels people understand, and reads what was posted back into the trigger's facts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from ..states.facts import CRITERIA, FACT_TYPES, REASONS

TRIGGERS = {
    "submit": "Submit the application",
    "request_changes": "Request changes",
    "evaluate": "Record the evaluation",
    "approve": "Approve",
    "reject": "Reject",
    "withdraw": "Withdraw",
    "start_preparation": "Record the signed agreement",
    "close": "Close the project",
    "depart": "Record the departure",
    "return_home": "Record the return",
    "interrupt": "Record an interruption",
    "record_preparation": "Record the preparation",
    "record_report": "Record the participant report",
    "validate": "Record the validation",
    "complete": "Record the dissemination",
    "cancel": "Cancel the mobility",
    "amend": "Amended",
    "import": "Filed",
}
FACTS = {
    "grant_agreement_signed_on": "Grant agreement signed on",
    "final_report_on": "Final report received on",
    "resubmit_by": "May be resubmitted until",
    "agreement_signed_on": "Training agreement signed on",
    "departed_on": "Departure date",
    "preparation_done": "Preparation done",
    "returned_on": "Return date",
    "reason": "Reason",
    "europass_ref": "Europass or certificate reference",
    "participant_report_on": "Participant report received on",
    "dissemination": "What was shared, with whom, when",
    "approved_on": "Approved on",
    "scores": "Scores",
    "score": "Total score",
    "evaluated_on": "Evaluated on",
    "interruption_reason": "Reason the stay ended early",
    "stay_note": "Actual stay outside the call's limits",
}
NOTES = {
    "request_changes": "What to change",
    "evaluate": "The assessment",
    "approve": "The quality assessment",
    "reject": "The reason",
    "withdraw": "Why the application is withdrawn",
    "cancel": "Why the mobility does not take place",
    "interrupt": "Why the stay ended early",
}


def trigger_label(trigger: str) -> str:
    """What a trigger does, in words."""
    return TRIGGERS.get(trigger, trigger.replace("_", " ").capitalize())


def fact_label(name: str, kind: str = "mobility") -> str:
    """A fact's name, in words (a quality criterion on an application)."""
    if kind == "application" and name in CRITERIA:
        return CRITERIA[name].capitalize()
    return FACTS.get(name, name.replace("_", " ").capitalize())


@dataclass(frozen=True)
class Input:
    """One field of an action's form."""

    name: str  # the fact's name
    label: str
    control: str  # date | number | select | textarea | text
    required: bool
    options: tuple[tuple[str, str], ...] = ()
    value: str = ""

    @property
    def field(self) -> str:
        """The name of the form field (facts are prefixed, apart from the form's own fields)."""
        return f"fact_{self.name}"


def _input(kind: str, name: str, required: bool, value: str) -> Input:
    label = fact_label(name, kind)
    match FACT_TYPES[kind][name]:
        case "date" | "due":
            return Input(name, label, "date", required, value=value)
        case "score":
            return Input(name, label, "number", required, value=value)
        case "bool":
            options = (("true", "yes"), ("false", "no"))
            return Input(name, label, "select", required, options, value)
        case "reason":
            options = tuple((r, r.replace("_", " ")) for r in REASONS)
            return Input(name, label, "select", required, options, value)
    control = "text" if name == "europass_ref" else "textarea"
    return Input(name, label, control, required, value=value)


@dataclass(frozen=True)
class Action:
    """The form of one trigger a person may fire on a case now."""

    trigger: str
    label: str
    who: tuple[str, ...]
    inputs: tuple[Input, ...]
    note: bool  # a note is required
    note_label: str
    note_value: str = ""


def actions(
    kind: str, allowed: Iterable[Mapping[str, Any]], posted: Mapping[str, str] | None = None
) -> list[Action]:
    """The forms of the triggers allowed now; the one just posted keeps what was typed."""
    posted = posted or {}
    forms = []
    for a in allowed:
        mine = posted.get("trigger") == a["trigger"]
        inputs = tuple(
            _input(
                kind, f["name"], f["required"], posted.get(f"fact_{f['name']}", "") if mine else ""
            )
            for f in a["facts"]
        )
        forms.append(
            Action(
                trigger=a["trigger"],
                label=trigger_label(a["trigger"]),
                who=tuple(w for w in a["who"] if w != "system"),
                inputs=inputs,
                note=bool(a["note"]),
                note_label=NOTES.get(a["trigger"], "Note"),
                note_value=posted.get("note", "") if mine else "",
            )
        )
    return forms


def facts_from(form: Mapping[str, Any]) -> dict[str, str]:
    """The facts typed into an action's form (fields left empty are not given)."""
    facts = {}
    for key, value in form.items():
        if key.startswith("fact_") and isinstance(value, str) and value.strip():
            facts[key.removeprefix("fact_")] = value.strip()
    return facts


def text_of(form: Mapping[str, Any], name: str) -> str | None:
    """A text field of a posted form, or None when it was left empty (or is not text)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def number_of(form: Mapping[str, Any], name: str) -> int | None:
    """A whole number field of a posted form, or None."""
    text = text_of(form, name)
    return int(text) if text is not None and text.isdigit() and len(text) < 10 else None


async def posted(request: Request) -> dict[str, str]:
    """The text fields of a posted form (parsed once; the CSRF check read it already)."""
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


Posted = Annotated[dict[str, str], Depends(posted)]
