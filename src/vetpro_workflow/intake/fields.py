"""The values an application or call document may hold: each field type with the check that
refuses a wrong value in words that name what is allowed."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StrictInt

from ..errors import InvalidInput
from ..states.addresses import address_problem, normalise
from ..states.calendar import EARLIEST, LATEST, out_of_range
from ..states.eligibility import ORGANISATION_TYPES, PROFESSIONS, normalise_country
from ..states.facts import clean_text

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_date(value: object) -> date:
    if not isinstance(value, str) or not _DATE.match(value):
        raise ValueError(f"{shown(value)} is not a date; use YYYY-MM-DD")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid date") from None
    if problem := out_of_range(day):
        raise ValueError(problem)
    return day


def _iso_instant(value: object) -> datetime:
    try:
        instant = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise ValueError(
            f"{shown(value)} is not a date and time with its offset, e.g. 2027-02-01T12:00:00+01:00"
        )
    try:
        utc = instant.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or out_of_range(utc.date()):
        raise ValueError(f"{value!r} is out of range; use a date from {EARLIEST} to {LATEST}")
    return instant


def shown(value: object) -> str:
    """A value as the document wrote it, cut short."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:39] + "…"


def _storable(value: str) -> str:
    # json.loads lets "\u0000", lone surrogates and bidirectional controls through.
    try:
        return clean_text("text", value)
    except InvalidInput as exc:
        raise ValueError(str(exc).removeprefix("text: ")) from None


def _text(limit: int, *, required: bool) -> Any:
    def check(value: object) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be text, not {shown(value)}")
        value = _storable(value.strip())
        if required and not value:
            raise ValueError("must not be empty")
        if len(value) > limit:
            raise ValueError(f"is {len(value)} characters long; at most {limit} are allowed")
        return value

    return BeforeValidator(check)


def _one_of(allowed: tuple[str, ...], what: str) -> Any:
    def check(value: object) -> str:
        if value not in allowed:
            raise ValueError(f"{value!r} is not {what}; allowed: {', '.join(allowed)}")
        return str(value)

    return BeforeValidator(check)


def _country(value: object) -> str:
    code = normalise_country(value) if isinstance(value, str) else None
    if code is None:
        raise ValueError(
            f"{value!r} is not a participating country "
            "(ISO 3166 alpha-2 code of the EU, IS, LI, NO, CH, HR or TR; EL and UK accepted)"
        )
    return code


def _email(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be an email address, not {shown(value)}")
    if problem := address_problem(normalise(value)):
        raise ValueError(problem)
    return normalise(value)


Name = Annotated[str, _text(200, required=True)]
Text = Annotated[str, _text(5000, required=False)]
Email = Annotated[str, BeforeValidator(_email)]
Country = Annotated[str, BeforeValidator(_country)]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
OrgType = Annotated[str, _one_of(ORGANISATION_TYPES, "an eligible organisation type")]
Profession = Annotated[str, _one_of(PROFESSIONS, "a VETPRO profession")]


Code = Annotated[str, _text(100, required=True)]
Instant = Annotated[datetime, BeforeValidator(_iso_instant)]
Months = Annotated[StrictInt, Field(ge=1, le=60)]
Days = Annotated[StrictInt, Field(ge=1, le=366)]
Weight = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
