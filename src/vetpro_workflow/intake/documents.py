"""Reading application and call documents (JSON): their shape, types and values.

Malformed or mistyped documents are refused with the field's path and nothing is written.
A well-formed application that is ineligible or incomplete is filed as a draft: `submit` names
the rule it breaks. An application names the agency's call by its code; the call itself is a
document of its own, that NA staff add.
"""

from __future__ import annotations

import hashlib
import json
import re
import stat
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

from ..errors import InvalidInput
from ..states.facts import CRITERIA
from .fields import (
    Code,
    Country,
    Days,
    Email,
    Instant,
    IsoDate,
    Months,
    Name,
    OrgType,
    Profession,
    Text,
    Weight,
    shown,
)

MAX_BYTES = 2_000_000


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EvaluationDoc(_Doc):
    scale: Annotated[StrictInt, Field(ge=1, le=100)] = 10
    weights: dict[str, Weight] = Field(default_factory=dict)
    pass_mark: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None

    def all_weights(self) -> dict[str, float]:
        """Every criterion's weight (1 unless the document says otherwise)."""
        return dict.fromkeys(CRITERIA, 1.0) | self.weights

    @model_validator(mode="after")
    def _criteria(self) -> EvaluationDoc:
        unknown = sorted(set(self.weights) - set(CRITERIA))
        if unknown:
            raise ValueError(
                f"weights: {unknown[0]!r} is not a quality criterion; use {', '.join(CRITERIA)}"
            )
        top = self.scale * sum(self.all_weights().values())
        if top <= 0:
            raise ValueError("weights: at least one criterion must weigh more than 0")
        if self.pass_mark is not None and self.pass_mark > top:
            raise ValueError(f"pass_mark: {self.pass_mark:g} is above the maximum total {top:g}")
        return self


class CallDoc(_Doc):
    """A call for proposals, as NA staff define it."""

    code: Code
    title: Name
    application_deadline: Instant
    earliest_start: IsoDate
    max_project_months: Months
    min_days: Days = 7
    max_days: Days = 42
    evaluation: EvaluationDoc = Field(default_factory=EvaluationDoc)

    @model_validator(mode="after")
    def _range(self) -> CallDoc:
        if self.max_days < self.min_days:
            raise ValueError(f"max_days: {self.max_days} is below min_days ({self.min_days})")
        return self


class CallRef(_Doc):
    """An application's call: its code, and whatever else it says, which must agree."""

    code: Code
    title: Name | None = None
    application_deadline: Instant | None = None
    earliest_start: IsoDate | None = None
    max_project_months: Months | None = None
    min_days: Days | None = None
    max_days: Days | None = None


def _call_ref(value: object) -> object:
    if isinstance(value, str):
        return {"code": value}
    if not isinstance(value, dict):
        raise ValueError(f"must be a call code or an object with its code, not {shown(value)}")
    return value


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
    call: Annotated[CallRef, BeforeValidator(_call_ref)]
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
    "finite_number": "must be a finite number, not {input}",
    "float_type": "must be a number, not {input}",
    "float_parsing": "must be a number, not {input}",
}


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _fields(loc: tuple[int | str, ...], root: Any) -> str:
    """The fields of the object holding the last step of `loc`."""
    model: Any = root
    for part in loc[:-1]:
        if isinstance(part, str):
            annotation = model.model_fields[part].annotation
            model = get_args(annotation)[0] if get_origin(annotation) is list else annotation
    return ", ".join(model.model_fields)


def _message(error: Any, root: Any) -> str:
    kind, msg = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return f"is not a field here; the fields are {_fields(tuple(error['loc']), root)}"
    if kind in _MESSAGES:
        return _MESSAGES[kind].format(**error.get("ctx", {}), input=shown(error["input"]))
    return str(msg).removeprefix("Value error, ")


def parse(text: str | bytes, *, source: str = "document") -> ApplicationDoc:
    """A validated application document, or InvalidInput naming the field at fault."""
    return _parse(text, source, ApplicationDoc, "an application document")


def parse_call(text: str | bytes, *, source: str = "document") -> CallDoc:
    """A validated call document, or InvalidInput naming the field at fault."""
    return _parse(text, source, CallDoc, "a call document")


def _parse(text: str | bytes, source: str, model: Any, what: str) -> Any:
    if len(text) > MAX_BYTES:
        raise InvalidInput(f"{source}: more than {MAX_BYTES} bytes; {what} has at most that")
    if not text.strip():
        raise InvalidInput(f"{source}: is empty; {what} is a JSON object")
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
        raise InvalidInput(f"{source}: {what} is a JSON object, not {shown(data)}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where, message = _path(tuple(first["loc"])), _message(first, model)
        field, sep, rest = message.partition(": ")
        if sep and _FIELD.fullmatch(field):  # a check across fields names the field at fault
            where, message = f"{where}.{field}" if where else field, rest
        raise InvalidInput(
            f"{source}: {where}: {message}" if where else f"{source}: {message}"
        ) from None


def read_bytes(path: Path) -> bytes:
    """The bytes of a document file; anything but a regular file is refused (a named pipe
    would wait for a writer forever)."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise InvalidInput(f"{path}: is not a regular file; name a JSON document")
        with path.open("rb") as file:
            return file.read(MAX_BYTES + 1)  # enough to refuse a larger file, not all of it
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot be read ({exc.strerror})") from None


def read_file(path: Path) -> ApplicationDoc:
    """Read and validate one application document file."""
    return parse(read_bytes(path), source=str(path))


def digest(doc: ApplicationDoc) -> str:
    """A fingerprint of a document's content, the same however its JSON was laid out."""
    canonical = json.dumps(doc.model_dump(mode="json", exclude={"call"}), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()
