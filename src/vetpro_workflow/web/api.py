"""The JSON API under /api, described at /openapi.json, for other systems.

Requests carry a personal token (`Authorization: Bearer TOKEN`, from `vetpro user token`); the
token's owner acts with their own role and organisation, exactly as on the pages. Refusals are
problem JSON with the status of the error (400, 401, 403, 404, 409, 422), and their `detail`
is the line the command line prints.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from ..cases import advance_in
from ..errors import InvalidInput
from ..intake.documents import MAX_BYTES
from ..store.listing import MAX_ID, PAGE_SIZE, Filters, cases_page, visible
from ..store.views import history, show
from .applications import upload
from .security import Client
from .workspace import Space


class Problem(BaseModel):
    """A refusal, as RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    said = {
        401: "no valid personal token",
        403: "the token's owner may not do this",
        404: "no such case, or not one of the token owner's organisation",
        409: "refused by a rule of the workflow, or changed meanwhile",
        422: "a field or value is not valid",
    }
    return {
        status: {
            "model": Problem,
            "description": said[status],
            "content": {"application/problem+json": {}},
        }
        for status in (401, 422, *statuses)
    }


router = APIRouter(prefix="/api", tags=["cases"])
CaseId = Annotated[int, Path(ge=1, le=MAX_ID, description="The id of an application or mobility")]


class Advance(BaseModel):
    """A trigger to fire on a case, with its facts and note (as `vetpro case advance`)."""

    model_config = ConfigDict(extra="forbid")

    trigger: str = Field(min_length=1, max_length=64, examples=["depart"])
    facts: dict[str, str | bool | float] = Field(
        default_factory=dict, max_length=20, examples=[{"departed_on": "2027-09-06"}]
    )
    note: str | None = Field(default=None, max_length=5000)
    if_version: int | None = Field(default=None, ge=1, le=2**31 - 1)


def _row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "project_title"}


@router.get("/cases", responses=_problems())
def list_cases(
    space: Space,
    client: Client,
    kind: Literal["application", "mobility"] | None = None,
    state: Annotated[str | None, Query(pattern=r"^[a-z_]{1,30}$")] = None,
    call: Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")] = None,
    country: Annotated[str | None, Query(pattern=r"^[A-Za-z]{2}$")] = None,
    overdue: bool = False,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = PAGE_SIZE,
) -> dict[str, Any]:
    """A page of cases, oldest first; `next_after` (or `previous_before`) names the next page."""
    filters = Filters(kind, state, call, country, overdue)
    with space.db.transaction(write=False) as tx:
        page = cases_page(
            tx,
            filters,
            client.actor,
            today=space.clock().today,
            after=after,
            before=before,
            size=limit,
        )
    return {
        "cases": [_row(r) for r in page.rows],
        "next_after": page.after,
        "previous_before": page.before,
    }


@router.get("/cases/{case_id}", responses=_problems(404))
def get_case(space: Space, client: Client, case_id: CaseId) -> dict[str, Any]:
    """A case, with the keys of `vetpro case show --json`."""
    with space.db.transaction(write=False) as tx:
        visible(tx, case_id, client.actor)
        return show(tx, case_id, actor=client.actor)


@router.get("/cases/{case_id}/history", responses=_problems(404))
def get_history(space: Space, client: Client, case_id: CaseId) -> list[dict[str, Any]]:
    """Every move of a case, oldest first."""
    with space.db.transaction(write=False) as tx:
        visible(tx, case_id, client.actor)
        return history(tx, case_id)


@router.post("/cases/{case_id}/advance", responses=_problems(403, 404, 409))
def advance(space: Space, client: Client, case_id: CaseId, move: Advance) -> dict[str, Any]:
    """Fire a trigger on a case as the token's owner; the case as it is afterwards."""
    with space.db.transaction() as tx:
        visible(tx, case_id, client.actor)
        advance_in(
            tx,
            case_id=case_id,
            trigger=move.trigger,
            actor=client.actor,
            clock=space.clock(),
            staff_email=space.settings.staff_email,
            facts=move.facts,
            note=move.note,
            expected_version=move.if_version,
        )
        return show(tx, case_id, actor=client.actor)


_DOCUMENT = {
    "required": True,
    "content": {
        "application/json": {"schema": {"type": "object", "description": "An application document"}}
    },
}


@router.post(
    "/applications",
    status_code=201,
    responses=_problems(403, 409),
    openapi_extra={"requestBody": _DOCUMENT},
)
async def post_application(request: Request, space: Space, client: Client) -> dict[str, Any]:
    """File an application document (the JSON `vetpro import` reads) as a drafted application."""
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BYTES:
            raise InvalidInput(f"the document is larger than {MAX_BYTES} bytes")
    done = await run_in_threadpool(upload, space, client, data, "the document")
    return {"application": done.application, "mobilities": done.mobilities}
