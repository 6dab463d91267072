"""The pages of cases: the list, the case page (details, facts, history, mail, the allowed
actions as forms) and the workflow diagrams. Every action goes through `cases.advance_in`; a
refusal is shown on the page with the rule that refused it, and nothing changes."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from ..cases import advance_in
from ..errors import NotFound, VetproError
from ..notifications import outbox
from ..states.cascade import OutOfScope
from ..states.workflows import DEFINITIONS, definition
from ..store import calls
from ..store.auth import Account
from ..store.listing import MAX_ID, Filters, cases_page, visible
from ..store.views import history, show
from . import diagram
from .evaluation import evaluate_page, ranking_page
from .forms import Posted, actions, facts_from, number_of, text_of, trigger_label
from .security import Person, csrf_protect, flash
from .templating import render
from .workspace import Space, Workspace

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)
CaseId = Annotated[int, Path(ge=1, le=MAX_ID)]


def _blank(value: str | None) -> str | None:
    return value.strip() or None if value else None


@router.get("/cases")
def case_list(
    request: Request,
    space: Space,
    account: Person,
    kind: Annotated[str | None, Query(max_length=20)] = None,
    state: Annotated[str | None, Query(max_length=30)] = None,
    call: Annotated[str | None, Query(max_length=100)] = None,
    country: Annotated[str | None, Query(max_length=2)] = None,
    overdue: Annotated[bool, Query()] = False,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    """A page of cases, filtered."""
    filters = Filters(_blank(kind), _blank(state), _blank(call), _blank(country), overdue)
    error, status, page = None, 200, None
    with space.db.transaction(write=False) as tx:
        codes = [c["code"] for c in calls.list_calls(tx)]
        try:
            page = cases_page(
                tx, filters, account.actor, today=space.clock().today, after=after, before=before
            )
        except VetproError as exc:
            error, status = str(exc), exc.http_status
    query = filters.query()
    return render(
        request,
        "cases.html",
        status=status,
        title="Cases",
        filters=filters,
        kinds=list(DEFINITIONS),
        states=sorted({s for d in DEFINITIONS.values() for s in d.states}),
        codes=codes,
        page=page,
        error=error,
        next_link="?" + urlencode(query | {"after": page.after}) if page and page.after else None,
        previous_link=(
            "?" + urlencode(query | {"before": page.before}) if page and page.before else None
        ),
        first_link="?" + urlencode(query) if after or before else None,
    )


def case_page(
    request: Request,
    space: Workspace,
    account: Account,
    case_id: int,
    *,
    error: str | None = None,
    posted: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    """The page of one case, with a refusal to show when an action was refused."""
    with space.db.transaction(write=False) as tx:
        visible(tx, case_id, account.actor)
        case = show(tx, case_id, actor=account.actor)
        moves = history(tx, case_id)
        mail = outbox.rows(tx, case_id=case_id, limit=200)
    flow = definition(case["kind"])
    return render(
        request,
        "case.html",
        status=status,
        title=f"{case['kind'].capitalize()} {case['id']}: {case['title']}",
        case=case,
        history=moves,
        mail=mail,
        actions=actions(case["kind"], case["allowed"], posted),
        diagram=diagram.svg(flow, current=case["state"]),
        error=error,
        posted_trigger=(posted or {}).get("trigger"),
    )


@router.get("/cases/{case_id}")
def case_view(request: Request, space: Space, account: Person, case_id: CaseId) -> Response:
    """The case page: where every mail's next step links to."""
    return case_page(request, space, account, case_id)


def _refused_page(
    request: Request,
    space: Workspace,
    account: Account,
    case_id: int,
    form: dict[str, str],
    exc: VetproError,
) -> Response:
    """The page the refused form came from, showing why, with what was typed."""
    said, status = " ".join(str(exc).split()), exc.http_status
    back = form.get("back") if account.role == "staff" else None
    if back == "ranking" and form.get("call"):
        return ranking_page(request, space, form["call"], error=said, status=status)
    if back == "evaluate":
        return evaluate_page(request, space, case_id, error=said, posted=form, status=status)
    return case_page(request, space, account, case_id, error=said, posted=form, status=status)


@router.post("/cases/{case_id}/advance")
def advance_posted(
    request: Request, space: Space, account: Person, case_id: CaseId, form: Posted
) -> Response:
    """Fire the trigger of an action's form on the case, as the signed-in person."""
    trigger = text_of(form, "trigger") or ""
    try:
        with space.db.transaction() as tx:
            visible(tx, case_id, account.actor)
            advance_in(
                tx,
                case_id=case_id,
                trigger=trigger,
                actor=account.actor,
                clock=space.clock(),
                staff_email=space.settings.staff_email,
                facts=facts_from(form),
                note=text_of(form, "note"),
                expected_version=number_of(form, "if_version"),
            )
    except (NotFound, OutOfScope):
        raise
    except VetproError as exc:
        return _refused_page(request, space, account, case_id, form, exc)
    flash(request, f"{trigger_label(trigger)}: done on case {case_id}.")
    if account.role == "staff" and form.get("back") == "ranking" and form.get("call"):
        return RedirectResponse(f"/calls/{quote(form['call'], safe='')}/ranking", 303)
    return RedirectResponse(f"/cases/{case_id}", 303)


@router.get("/diagrams/{kind}")
def diagram_page(request: Request, account: Person, kind: str) -> Response:
    """The state diagram of a kind of case, with every transition listed."""
    if kind not in DEFINITIONS:
        raise NotFound(f"there is no {kind[:30]!r} workflow; use application or mobility")
    flow = definition(kind)
    return render(
        request,
        "diagram.html",
        title=f"The {kind} workflow",
        kind=kind,
        diagram=diagram.svg(flow),
        transitions=diagram.transitions(flow),
    )
