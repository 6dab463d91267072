"""Lists of cases for the command line, the pages and the API: filtered, one page at a time,
by keyset.

A page is read from a case id onwards (`after`) or backwards (`before`), never by skipping
rows, so the thousandth page costs what the first does: with kind and state the query walks
the index on ("case".kind, state, id) from where the page starts. Coordinators see their own
organisation's cases only; a case that is not theirs reads exactly like one that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ..errors import InvalidInput, NotFound
from ..states.actors import Actor
from ..states.deadlines import OVERDUE
from ..states.workflows import DEFINITIONS
from . import due
from .database import Tx, chunks

PAGE_SIZE = 50
OVERDUE_LIMIT = 200  # per rule, as the staff digest shows them
HIDDEN = "this case does not exist or is not one of your organisation's"
MAX_ID = 2**63 - 1

_LIST = """
SELECT c.id, c.kind, c.state, c.version, a.id AS application_id, a.title AS project_title,
       k.code AS call, o.name AS applicant, o.country, pt.name AS participant, h.name AS host
FROM "case" c
JOIN application a ON a.id = coalesce(c.application_id, c.id)
JOIN "call" k ON k.id = a.call_id
JOIN organisation o ON o.id = a.applicant_id
LEFT JOIN mobility m ON m.id = c.id
LEFT JOIN participant pt ON pt.id = m.participant_id
LEFT JOIN organisation h ON h.id = m.host_id
"""


@dataclass(frozen=True)
class Filters:
    """What a list of cases is narrowed to."""

    kind: str | None = None
    state: str | None = None
    call: str | None = None
    country: str | None = None
    overdue: bool = False

    def checked(self) -> Filters:
        """These filters, refused when a kind or state does not exist."""
        check_filters(self.kind, self.state)
        return self

    def query(self) -> dict[str, str]:
        """The filters as the query string of a link."""
        shown = {
            "kind": self.kind,
            "state": self.state,
            "call": self.call,
            "country": self.country,
            "overdue": "1" if self.overdue else None,
        }
        return {k: v for k, v in shown.items() if v}


@dataclass
class Page:
    """One page of a list of cases, and where the pages beside it start."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    after: int | None = None  # the next page starts after this id
    before: int | None = None  # the previous page ends before this id


def check_filters(kind: str | None, state: str | None) -> None:
    """Refuse a kind or state that does not exist, naming the ones that do."""
    if kind is not None and kind not in DEFINITIONS:
        raise InvalidInput(f"--kind: {kind!r} is not a kind of case; use application or mobility")
    if state is not None:
        known = {s for d in DEFINITIONS.values() for s in d.states if kind in (None, d.kind)}
        if state not in known:
            raise InvalidInput(
                f"--state: {state!r} is not a state; use one of {', '.join(sorted(known))}"
            )


def visible(tx: Tx, case_id: int, actor: Actor | None) -> None:
    """Refuse a case that does not exist or that a coordinator may not see, alike."""
    org = (
        tx.scalar('SELECT organisation_id FROM "case" WHERE id = :id', {"id": case_id})
        if 0 < case_id <= MAX_ID
        else None
    )
    if actor is not None and actor.role == "coordinator" and org != actor.organisation_id:
        raise NotFound(HIDDEN)
    if org is None:
        raise NotFound(f"case {case_id} does not exist; the case list shows the cases")


def overdue_ids(tx: Tx, today: date) -> list[int]:
    """The cases an overdue rule names today (at most a digest's worth per rule), by id."""
    ids: set[int] = set()
    for rule in OVERDUE:
        _, rows = due.overdue(tx, rule, today=today, limit=OVERDUE_LIMIT)
        ids |= {row["id"] for row in rows}
    return sorted(ids)


def _where(filters: Filters, actor: Actor | None, dialect: str) -> tuple[list[str], dict[str, Any]]:
    where: list[str] = []
    params: dict[str, Any] = {}
    # Without statistics SQLite takes the index on (kind, state, id) for a kind alone, then
    # sorts every case of that kind; walking the cases by id instead finds a page at once.
    kind = "+c.kind" if dialect == "sqlite" and filters.state is None else "c.kind"
    for column, name, value in (
        (kind, "kind", filters.kind),
        ("c.state", "state", filters.state),
        ("k.code", "call", filters.call),
        ("o.country", "country", filters.country and filters.country.upper()),
    ):
        if value is not None:
            where.append(f"{column} = :{name}")
            params[name] = value
    if actor is not None and actor.role == "coordinator":
        where.append("c.organisation_id = :org")
        params["org"] = actor.organisation_id
    return where, params


def _titled(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        row["title"] = (
            row["project_title"]
            if row["kind"] == "application"
            else f"{row['participant']} at {row['host']}"
        )
    return rows


def _read(
    tx: Tx, where: list[str], params: dict[str, Any], *, backwards: bool, size: int
) -> list[dict[str, Any]]:
    order = "DESC" if backwards else "ASC"
    sql = _LIST + (" WHERE " + " AND ".join(where) if where else "")
    return tx.rows(f"{sql} ORDER BY c.id {order} LIMIT :size", {**params, "size": size})


def cases_page(
    tx: Tx,
    filters: Filters,
    actor: Actor | None,
    *,
    today: date,
    after: int | None = None,
    before: int | None = None,
    size: int = PAGE_SIZE,
) -> Page:
    """One page of cases, oldest first: the first, the one after an id, or the one before.
    A coordinator sees only their organisation's cases; no actor (the operator) sees all."""
    where, params = _where(filters.checked(), actor, tx.dialect)
    backwards = before is not None and after is None
    if backwards:
        where.append("c.id < :before")
        params["before"] = before
    elif after is not None:
        where.append("c.id > :after")
        params["after"] = after
    if filters.overdue:
        rows = _overdue_rows(tx, where, params, today, backwards=backwards, size=size + 1)
    else:
        rows = _read(tx, where, params, backwards=backwards, size=size + 1)
    more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    page = Page(rows=_titled(rows))
    if rows and backwards:
        page.after = rows[-1]["id"]
        page.before = rows[0]["id"] if more else None
    elif rows:
        page.after = rows[-1]["id"] if more else None
        page.before = rows[0]["id"] if after is not None else None
    return page


def _overdue_rows(
    tx: Tx,
    where: list[str],
    params: dict[str, Any],
    today: date,
    *,
    backwards: bool,
    size: int,
) -> list[dict[str, Any]]:
    """The rows among the overdue cases, read a chunk of ids at a time until a page is full."""
    ids = overdue_ids(tx, today)
    if backwards:
        ids.reverse()
    found: list[dict[str, Any]] = []
    for batch in chunks(ids, 500):
        if len(found) >= size:
            break
        found += _read(
            tx,
            [*where, "c.id IN (:ids)"],
            {**params, "ids": batch},
            backwards=backwards,
            size=size - len(found),
        )
    return found
