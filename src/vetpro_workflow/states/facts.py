"""The named facts recorded with triggers: their types and how raw values become typed ones."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from ..errors import InvalidInput

FACT_TYPES: dict[str, str] = {
    "grant_agreement_signed_on": "date",
    "final_report_on": "date",
    "agreement_signed_on": "date",
    "departed_on": "date",
    "preparation_done": "bool",
    "returned_on": "date",
    "europass_ref": "text",
    "participant_report_on": "date",
    "dissemination": "text",
}

_MAX_TEXT = 5000
_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}


def parse_fact(name: str, raw: object) -> Any:
    """One fact's typed value; dates as YYYY-MM-DD, booleans as true/false."""
    kind = FACT_TYPES[name]
    if kind == "date":
        if isinstance(raw, date):
            return raw
        try:
            return date.fromisoformat(str(raw).strip())
        except ValueError:
            raise InvalidInput(f"{name}: {raw!r} is not a date; use YYYY-MM-DD") from None
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise InvalidInput(f"{name}: {raw!r} is not a boolean; use true or false")
    text = str(raw).strip()
    if not text:
        raise InvalidInput(f"{name}: must not be empty")
    if len(text) > _MAX_TEXT:
        raise InvalidInput(f"{name}: at most {_MAX_TEXT} characters")
    return text


def parse_facts(
    trigger: str, accepted: tuple[str, ...], raw: Mapping[str, object]
) -> dict[str, Any]:
    """The typed facts given with a trigger; a fact the trigger does not take is refused."""
    typed: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in accepted:
            takes = ", ".join(accepted) if accepted else "no facts (only --note)"
            raise InvalidInput(f"'{name}' is not a fact of '{trigger}'; it takes {takes}")
        typed[name] = parse_fact(name, value)
    return typed


def to_json(facts: Mapping[str, Any]) -> dict[str, Any]:
    """Facts as JSON values (dates as ISO strings)."""
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in facts.items()}
