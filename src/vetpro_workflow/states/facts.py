"""The named facts recorded with triggers, per kind of case: their types and how to read them.

A fact's name means one thing per kind: `dissemination` is what a participant shared (text) on a
mobility, and a quality score (a number) in an application's evaluation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from ..errors import InvalidInput
from .calendar import out_of_range

# The seed's six quality criteria, scored by NA staff when they evaluate an application.
CRITERIA: dict[str, str] = {
    "objectives": "clear objectives, content and duration of the period abroad",
    "match": "match of the participants' training needs, background and the content",
    "preparation": "preparation",
    "validation": "validation of competences and evaluation of the outcome",
    "organisation": "organisational aspects: travel, insurance, accommodation",
    "dissemination": "dissemination",
}
REASONS = ("force_majeure", "other")

FACT_TYPES: dict[str, dict[str, str]] = {
    "application": {
        "grant_agreement_signed_on": "date",
        "final_report_on": "date",
        "resubmit_by": "due",
        **{criterion: "score" for criterion in CRITERIA},
    },
    "mobility": {
        "agreement_signed_on": "date",
        "departed_on": "date",
        "preparation_done": "bool",
        "returned_on": "date",
        "reason": "reason",
        "europass_ref": "text",
        "participant_report_on": "date",
        "dissemination": "text",
    },
}
# "date" is the day something happened (never in the future); "due" a day by which something
# must happen. How each type is written on the command line, for help texts and refusals.
SHAPES = {
    "date": "YYYY-MM-DD",
    "due": "YYYY-MM-DD",
    "bool": "true or false",
    "text": "text",
    "score": "a number",
    "reason": " or ".join(REASONS),
}
MAX_TEXT = 5000
_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}


def shape(kind: str, name: str) -> str:
    """How a fact of a kind is written: 'YYYY-MM-DD', 'true or false'…"""
    return SHAPES[FACT_TYPES[kind][name]]


def _date(name: str, raw: object) -> date:
    if isinstance(raw, date):
        day = raw
    else:
        try:
            day = date.fromisoformat(str(raw).strip())
        except ValueError:
            raise InvalidInput(f"{name}: {str(raw)[:40]!r} is not a date; use YYYY-MM-DD") from None
    if problem := out_of_range(day):
        raise InvalidInput(f"{name}: {problem}")
    return day


def _bool(name: str, raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise InvalidInput(f"{name}: {str(raw)[:40]!r} is not a boolean; use true or false")


def _score(name: str, raw: object) -> float:
    try:
        value = float(str(raw).strip()) if not isinstance(raw, int | float) else float(raw)
    except ValueError:
        raise InvalidInput(f"{name}: {str(raw)[:40]!r} is not a number (a score)") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidInput(f"{name}: {raw!r} is not a number (a score)")
    return int(value) if value.is_integer() else value


def _text(name: str, raw: object) -> str:
    text = str(raw).strip()
    if not text:
        raise InvalidInput(f"{name}: must not be empty")
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"{name}: is {len(text)} characters long; at most {MAX_TEXT}")
    return clean_text(name, text)


def _reason(name: str, raw: object) -> str:
    text = str(raw).strip()
    if text not in REASONS:
        raise InvalidInput(f"{name}: {text[:40]!r} is not a reason; use {' or '.join(REASONS)}")
    return text


_READERS = {
    "date": _date,
    "due": _date,
    "bool": _bool,
    "score": _score,
    "text": _text,
    "reason": _reason,
}


def clean_text(name: str, text: str) -> str:
    """Free text as it may be stored: no control characters other than line breaks and tabs,
    no bidirectional-formatting characters (they make a text read differently than it is)."""
    bad = _FORBIDDEN.search(text)
    if bad is not None:
        raise InvalidInput(
            f"{name}: contains the control or formatting character U+{ord(bad.group()):04X}; "
            "use plain text"
        )
    return text


# C0 controls but tab, line feed and carriage return; DEL and the C1 controls; the bidirectional
# embeddings, overrides, isolates and marks; the line and paragraph separators; lone surrogates.
_FORBIDDEN = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
    "\u200e\u200f\u061c\u2028\u2029\ud800-\udfff]"
)


def parse_fact(kind: str, name: str, raw: object) -> Any:
    """One fact's typed value."""
    return _READERS[FACT_TYPES[kind][name]](name, raw)


def parse_facts(
    kind: str, trigger: str, accepted: tuple[str, ...], raw: Mapping[str, object]
) -> dict[str, Any]:
    """The typed facts given with a trigger; a fact the trigger does not take is refused."""
    typed: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in accepted:
            takes = ", ".join(accepted) if accepted else "no facts (only a note)"
            raise InvalidInput(f"'{name}' is not a fact of '{trigger}'; it takes {takes}")
        typed[name] = parse_fact(kind, name, value)
    return typed


def to_json(facts: Mapping[str, Any]) -> dict[str, Any]:
    """Facts as JSON values (dates as ISO strings)."""
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in facts.items()}
