"""Reading an application document (JSON) and filing it as a drafted application.

Malformed or mistyped documents are refused with the field's path and nothing is written.
A well-formed document that is ineligible or incomplete is filed as a draft: `submit` names
the rule it breaks.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)

from .addresses import is_address
from .errors import InvalidInput
from .states.eligibility import ORGANISATION_TYPES, PROFESSIONS, normalise_country

MAX_BYTES = 2_000_000
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_date(value: object) -> date:
    if not isinstance(value, str) or not _DATE.match(value):
        raise ValueError(f"{value!r} is not a date; use YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid date") from None


def _iso_instant(value: object) -> datetime:
    try:
        instant = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise ValueError(
            f"{value!r} is not a date and time with its offset, e.g. 2027-02-01T12:00:00+01:00"
        )
    return instant


def _shown(value: object) -> str:
    """A value as the document wrote it, cut short."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:39] + "…"


def _storable(value: str) -> str:
    # json.loads lets "\u0000" and lone surrogates ("\ud800") through; databases refuse both.
    if "\x00" in value or value.encode(errors="ignore").decode() != value:
        raise ValueError(
            "contains a NUL character or an unpaired surrogate; use plain Unicode text"
        )
    return value


def _text(limit: int, *, required: bool) -> Any:
    def check(value: object) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be text, not {_shown(value)}")
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
    if not isinstance(value, str) or not is_address(value.strip()):
        raise ValueError(f"{value!r} is not a valid email address")
    return _storable(value.strip().lower())


Name = Annotated[str, _text(200, required=True)]
Text = Annotated[str, _text(5000, required=False)]
Email = Annotated[str, BeforeValidator(_email)]
Country = Annotated[str, BeforeValidator(_country)]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
OrgType = Annotated[str, _one_of(ORGANISATION_TYPES, "an eligible organisation type")]
Profession = Annotated[str, _one_of(PROFESSIONS, "a VETPRO profession")]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CallDoc(_Doc):
    code: Annotated[str, _text(100, required=True)]
    title: Name
    application_deadline: Annotated[datetime, BeforeValidator(_iso_instant)]
    earliest_start: IsoDate
    max_project_months: Annotated[StrictInt, Field(ge=1, le=60)]
    min_days: Annotated[StrictInt, Field(ge=1, le=366)] = 7
    max_days: Annotated[StrictInt, Field(ge=1, le=366)] = 42

    @model_validator(mode="after")
    def _range(self) -> CallDoc:
        if self.max_days < self.min_days:
            raise ValueError(f"max_days: {self.max_days} is below min_days ({self.min_days})")
        return self


class OrganisationDoc(_Doc):
    name: Name
    type: OrgType
    country: Country
    contact_name: Name
    contact_email: Email


class ProjectDoc(_Doc):
    title: Name
    objectives: Text
    start_date: IsoDate
    end_date: IsoDate
    dissemination_plan: Text

    @model_validator(mode="after")
    def _order(self) -> ProjectDoc:
        if self.end_date < self.start_date:
            raise ValueError(f"end_date: {self.end_date} is before start_date {self.start_date}")
        return self


class ParticipantDoc(_Doc):
    name: Name
    email: Email
    profession: Profession
    professional_background: Text
    training_needs: Text


class MobilityDoc(_Doc):
    participant: ParticipantDoc
    host: Name
    start_date: IsoDate
    end_date: IsoDate
    objectives: Text
    content: Text
    language_preparation: StrictBool

    @model_validator(mode="after")
    def _order(self) -> MobilityDoc:
        if self.end_date < self.start_date:
            raise ValueError(f"end_date: {self.end_date} is before start_date {self.start_date}")
        return self


class ApplicationDoc(_Doc):
    call: CallDoc
    applicant: OrganisationDoc
    partners: Annotated[list[OrganisationDoc], Field(min_length=1, max_length=50)]
    project: ProjectDoc
    mobilities: Annotated[list[MobilityDoc], Field(min_length=1, max_length=500)]

    @model_validator(mode="after")
    def _consistent(self) -> ApplicationDoc:
        names = [p.name for p in self.partners]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"partners[{i}].name: '{name}' is listed twice")
            if name == self.applicant.name:
                raise ValueError(f"partners[{i}].name: the applicant cannot be its own partner")
        for i, m in enumerate(self.mobilities):
            if m.host not in names:
                raise ValueError(
                    f"mobilities[{i}].host: '{m.host}' is not one of the partners "
                    f"({', '.join(names)})"
                )
        return self


_FIELD = re.compile(r"[a-z_]+(\[\d+\])?(\.[a-z_]+(\[\d+\])?)*")
_MESSAGES = {
    "missing": "is missing",
    "bool_type": "must be true or false, not {input}",
    "int_type": "must be a whole number, not {input}",
    "model_type": "must be an object, not {input}",
    "list_type": "must be a list, not {input}",
    "too_short": "has {actual_length} entries; at least {min_length} needed",
    "too_long": "has {actual_length} entries; at most {max_length} are allowed",
    "greater_than_equal": "is {input}; the least allowed is {ge}",
    "less_than_equal": "is {input}; the most allowed is {le}",
}


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _fields(loc: tuple[int | str, ...]) -> str:
    """The fields of the object holding the last step of `loc`."""
    model: Any = ApplicationDoc
    for part in loc[:-1]:
        if isinstance(part, str):
            annotation = model.model_fields[part].annotation
            model = get_args(annotation)[0] if get_origin(annotation) is list else annotation
    return ", ".join(model.model_fields)


def _message(error: Any) -> str:
    kind, msg = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return f"is not a field here; the fields are {_fields(tuple(error['loc']))}"
    if kind in _MESSAGES:
        return _MESSAGES[kind].format(**error.get("ctx", {}), input=_shown(error["input"]))
    return str(msg).removeprefix("Value error, ")


def parse(text: str | bytes, *, source: str = "document") -> ApplicationDoc:
    """A validated application document, or InvalidInput naming the field at fault."""
    if len(text) > MAX_BYTES:
        raise InvalidInput(
            f"{source}: more than {MAX_BYTES} bytes; an application document has at most that"
        )
    if not text.strip():
        raise InvalidInput(f"{source}: is empty; an application document is a JSON object")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{source}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{source}: malformed JSON: not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from None
    except ValueError:  # json.loads refuses integers of thousands of digits
        raise InvalidInput(f"{source}: malformed JSON: a number is too long") from None
    except RecursionError:
        raise InvalidInput(f"{source}: malformed JSON: lists or objects nested too deep") from None
    if not isinstance(data, dict):
        raise InvalidInput(
            f"{source}: an application document is a JSON object, not {_shown(data)}"
        )
    try:
        return ApplicationDoc.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where, message = _path(tuple(first["loc"])), _message(first)
        field, sep, rest = message.partition(": ")
        if sep and _FIELD.fullmatch(field):  # a check across fields names the field at fault
            where, message = f"{where}.{field}" if where else field, rest
        raise InvalidInput(
            f"{source}: {where}: {message}" if where else f"{source}: {message}"
        ) from None


def read_file(path: Path) -> ApplicationDoc:
    """Read and validate one document file."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_BYTES + 1)  # enough to refuse a larger file without reading it all
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot be read ({exc.strerror})") from None
    return parse(raw, source=str(path))
