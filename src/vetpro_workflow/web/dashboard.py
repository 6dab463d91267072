"""The staff dashboard: cases per state of each kind, what is overdue, the mail that could not
be delivered, and what the last deadline sweep did."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..notifications.digest import content
from ..states.workflows import DEFINITIONS
from ..store.database import Tx
from .security import Staff
from .templating import render
from .workspace import Space

router = APIRouter(include_in_schema=False)


def counts(tx: Tx) -> dict[str, list[tuple[str, int]]]:
    """How many cases are in each state, per kind, in the order of the workflow."""
    found = {
        (row["kind"], row["state"]): row["n"]
        for row in tx.rows('SELECT kind, state, count(*) AS n FROM "case" GROUP BY kind, state')
    }
    return {
        kind: [(state, found.get((kind, state), 0)) for state in d.states]
        for kind, d in DEFINITIONS.items()
    }


def last_sweep(tx: Tx) -> dict[str, Any] | None:
    """The last deadline sweep recorded, or None."""
    return tx.row(
        "SELECT day, since, started_at, finished_at, reminders, transitions, by_rule "
        "FROM sweep_run ORDER BY finished_at DESC, id DESC LIMIT 1"
    )


@router.get("/dashboard")
def dashboard(request: Request, space: Space, account: Staff) -> Response:
    """What staff look at first."""
    clock = space.clock()
    with space.db.transaction(write=False) as tx:
        per_state = counts(tx)
        digest = content(tx, clock.today)
        sweep = last_sweep(tx)
    return render(
        request,
        "dashboard.html",
        title="Dashboard",
        today=clock.today,
        counts=per_state,
        digest=digest,
        sweep=sweep,
    )
