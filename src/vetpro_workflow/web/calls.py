"""The pages of the agency's calls (staff): the list, one call with its versions, and the form
that defines or changes a call (through `store.calls.define`, versioned, with a reason once
applications exist)."""

from __future__ import annotations

import json
from datetime import date, datetime, time
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse, Response

from ..errors import InvalidInput, VetproError
from ..intake.documents import parse_call
from ..states.calendar import BRUSSELS
from ..states.facts import CRITERIA
from ..store import calls
from .evaluation import evaluate_page, ranking_page
from .forms import Posted, text_of
from .security import Staff, csrf_protect, flash
from .templating import render
from .workspace import Space

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)
Code = Annotated[str, Path(min_length=1, max_length=100)]
DEFAULTS = {
    "deadline_time": "12:00",
    "max_project_months": "24",
    "min_days": "7",
    "max_days": "42",
    "scale": "10",
} | {f"weight_{c}": "1" for c in CRITERIA}


def form_of(call: dict[str, Any]) -> dict[str, str]:
    """A stored call as the values of its form."""
    deadline = datetime.fromisoformat(call["application_deadline"]).astimezone(BRUSSELS)
    values = {
        "code": call["code"],
        "title": call["title"],
        "deadline_day": deadline.date().isoformat(),
        "deadline_time": deadline.strftime("%H:%M"),
        "earliest_start": call["earliest_start"],
        "pass_mark": f"{call['pass_mark']:g}" if call["pass_mark"] is not None else "",
    }
    for name in ("max_project_months", "min_days", "max_days", "scale"):
        values[name] = str(call[name])
    values |= {f"weight_{c}": f"{w:g}" for c, w in call["weights"].items()}
    return values


def _number(form: dict[str, str], name: str, kind: type = int) -> Any:
    text = text_of(form, name)
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        raise InvalidInput(f"{name}: {text[:20]!r} is not a number") from None


def _deadline(form: dict[str, str]) -> str:
    try:
        day = date.fromisoformat(text_of(form, "deadline_day") or "")
        hour = time.fromisoformat(text_of(form, "deadline_time") or "12:00")
    except ValueError:
        raise InvalidInput(
            "application_deadline: give the day (YYYY-MM-DD) and time (HH:MM)"
        ) from None
    return datetime.combine(day, hour, tzinfo=BRUSSELS).isoformat()


def document_of(form: dict[str, str]) -> Any:
    """The call document a posted form describes, checked as `vetpro call add` checks it."""
    doc: dict[str, Any] = {
        "code": text_of(form, "code") or "",
        "title": text_of(form, "title") or "",
        "application_deadline": _deadline(form),
        "earliest_start": text_of(form, "earliest_start") or "",
        "max_project_months": _number(form, "max_project_months"),
        "min_days": _number(form, "min_days"),
        "max_days": _number(form, "max_days"),
        "evaluation": {
            "scale": _number(form, "scale"),
            "weights": {c: _number(form, f"weight_{c}", float) for c in CRITERIA},
            "pass_mark": _number(form, "pass_mark", float),
        },
    }
    for key in ("min_days", "max_days"):
        if doc[key] is None:
            del doc[key]
    evaluation = doc["evaluation"]
    evaluation["weights"] = {k: v for k, v in evaluation["weights"].items() if v is not None}
    if evaluation["scale"] is None:
        del evaluation["scale"]
    return parse_call(json.dumps(doc), source="the form")


@router.get("/calls")
def call_list(request: Request, space: Space, account: Staff) -> Response:
    """The agency's calls, the latest deadline first."""
    with space.db.transaction(write=False) as tx:
        found = calls.list_calls(tx)
    return render(request, "calls.html", title="Calls", calls=found)


def _form(
    request: Request,
    values: dict[str, str],
    *,
    editing: bool,
    error: str | None = None,
    status: int = 200,
) -> Response:
    title = f"Change call {values.get('code', '')}" if editing else "Define a call"
    return render(
        request,
        "call_form.html",
        status=status,
        title=title,
        values=DEFAULTS | values,
        editing=editing,
        criteria=CRITERIA,
        error=error,
    )


@router.get("/calls/new")
def new_call(request: Request, account: Staff) -> Response:
    """The form of a new call."""
    return _form(request, {}, editing=False)


def _define(
    request: Request, space: Space, account: Staff, form: dict[str, str], *, editing: bool
) -> Response:
    clock = space.clock()
    try:
        doc = document_of(form)
        with space.db.transaction() as tx:
            exists = tx.scalar('SELECT 1 FROM "call" WHERE code = :code', {"code": doc.code})
            if exists and not editing:
                raise InvalidInput(f"code: call {doc.code} exists already; change it instead")
            done = calls.define(
                tx,
                doc,
                actor=account.actor,
                now=clock.now,
                force=form.get("force") == "yes",
                note=text_of(form, "note"),
            )
    except VetproError as exc:
        return _form(request, form, editing=editing, error=str(exc), status=exc.http_status)
    flash(request, f"Call {done['code']} {done['action']} (version {done['version']}).")
    return RedirectResponse(f"/calls/{quote(done['code'], safe='')}", 303)


@router.post("/calls")
def call_posted(request: Request, space: Space, account: Staff, form: Posted) -> Response:
    """Define a new call."""
    return _define(request, space, account, form, editing=False)


@router.get("/calls/{code}")
def call_view(request: Request, space: Space, account: Staff, code: Code) -> Response:
    """A call, its versions and its applications per state."""
    with space.db.transaction(write=False) as tx:
        call = calls.show(tx, code)
    return render(request, "call.html", title=f"Call {code}", call=call, criteria=CRITERIA)


@router.get("/calls/{code}/edit")
def edit_call(request: Request, space: Space, account: Staff, code: Code) -> Response:
    """The form of a call, filled with what it says now."""
    with space.db.transaction(write=False) as tx:
        call = calls.show(tx, code)
    return _form(request, form_of(call), editing=True)


@router.post("/calls/{code}")
def call_changed(
    request: Request, space: Space, account: Staff, code: Code, form: Posted
) -> Response:
    """Change a call (a new version)."""
    return _define(request, space, account, form | {"code": code}, editing=True)


@router.get("/calls/{code}/ranking")
def ranking(request: Request, space: Space, account: Staff, code: Code) -> Response:
    """A call's submitted applications by score, with the pass mark drawn."""
    return ranking_page(request, space, code)


@router.get("/cases/{case_id}/evaluate")
def evaluate(
    request: Request,
    space: Space,
    account: Staff,
    case_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
) -> Response:
    """Score a submitted application beside its content."""
    return evaluate_page(request, space, case_id)
