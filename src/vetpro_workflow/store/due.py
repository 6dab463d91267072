"""The rules of time as queries: which cases a reminder or overdue rule names on a day.

The rules are data (`states.deadlines`); here each anchor and condition they name becomes a
column or a predicate, so the sweep and the staff digest read the same words the same way. Each
query is one indexed range scan per reminder day, so its cost follows what is due, not the size
of the store.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from ..states.calendar import business_day, start_of
from ..states.deadlines import Overdue, Rule, anchor_window
from .database import Tx

# anchor -> (kind, the column it reads)
_ANCHORS = {
    ("application", "deadline"): "k.application_deadline",
    ("application", "resubmit_by"): "a.resubmit_by",
    ("application", "start"): "a.start_date",
    ("application", "end"): "a.end_date",
    ("mobility", "start"): "m.start_date",
    ("mobility", "end"): "m.end_date",
    ("mobility", "returned"): "m.returned_on",
}
_CONDITIONS = {
    "preparation_missing": (
        "m.language_preparation = :yes AND coalesce(m.preparation_done, :no) = :no"
    ),
    "report_missing": "m.participant_report_on IS NULL",
    "stay_noted": "m.stay_note IS NOT NULL",
}
# Which table a query walks first. A reminder's days are narrow windows of its anchor date, so
# the date's index finds its few cases among any number of old ones; an overdue rule (any date
# before a day) or a deadline (every application of a call) is found from the case's state
# instead. SQLite takes the tables of a CROSS JOIN in the order written; PostgreSQL plans freely.
_FIRST = {
    ("application", "date"): (
        'FROM application a CROSS JOIN "case" c JOIN "call" k ON k.id = a.call_id '
        "WHERE c.id = a.id AND c.kind = 'application'"
    ),
    ("application", "state"): (
        'FROM "case" c CROSS JOIN application a JOIN "call" k ON k.id = a.call_id '
        "WHERE a.id = c.id AND c.kind = 'application'"
    ),
    ("mobility", "date"): 'FROM mobility m CROSS JOIN "case" c WHERE c.id = m.id',
    ("mobility", "state"): (
        "FROM \"case\" c CROSS JOIN mobility m WHERE m.id = c.id AND c.kind = 'mobility'"
    ),
}
_PROJECT = {"application": "c.id", "mobility": "m.application_id"}


def _select(
    kind: str, anchor: str | None, states: tuple[str, ...], condition: str | None, first: str
) -> str:
    column = _ANCHORS[(kind, anchor)] if anchor else "NULL"
    sql = (
        f"SELECT c.id, {_PROJECT[kind]} AS project, {column} AS anchor "
        f"{_FIRST[(kind, first)]} AND c.state IN (:states)"
    )
    if condition:
        sql += f" AND {_CONDITIONS[condition]}"
    return sql


def _ranges(column: str, windows: list[tuple[date, date]], params: dict[str, Any]) -> str:
    spans = []
    for i, (lo, hi) in enumerate(windows):
        if column == "k.application_deadline":  # a deadline's day is its day in Brussels
            params[f"lo{i}"], params[f"hi{i}"] = start_of(lo), start_of(hi + timedelta(days=1))
            spans.append(f"({column} >= :lo{i} AND {column} < :hi{i})")
        else:
            params[f"lo{i}"], params[f"hi{i}"] = lo, hi
            spans.append(f"{column} BETWEEN :lo{i} AND :hi{i}")
    return "(" + " OR ".join(spans) + ")"


def _anchor_day(value: date | datetime) -> date:
    return business_day(value) if isinstance(value, datetime) else value


def reminders_due(tx: Tx, r: Rule, *, since: date, today: date) -> list[dict[str, Any]]:
    """The cases a rule reminds of on any of its days after `since` up to `today`, each with
    its project and the date its reminder counts from."""
    params: dict[str, Any] = {"states": list(r.states), "yes": True, "no": False}
    windows = [anchor_window(offset, since, today) for offset in r.offsets]
    first = "state" if r.anchor == "deadline" else "date"
    sql = _select(r.kind, r.anchor, r.states, r.condition, first)
    sql += " AND " + _ranges(_ANCHORS[(r.kind, r.anchor)], windows, params)
    rows = tx.rows(sql + " ORDER BY c.id", params)
    return [{**row, "anchor": _anchor_day(row["anchor"])} for row in rows]


def overdue(tx: Tx, o: Overdue, *, today: date, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """How many cases an overdue rule names today, and the first `limit` of them."""
    params: dict[str, Any] = {"states": list(o.states), "yes": True, "no": False}
    sql = _select(o.kind, o.anchor, o.states, o.condition, "state")
    if o.anchor:
        sql += f" AND {_ANCHORS[(o.kind, o.anchor)]} < :before"
        params["before"] = today - timedelta(days=o.days_after)
    total = tx.scalar(f"SELECT count(*) FROM ({sql}) AS due", params)
    rows = tx.rows(sql + f" ORDER BY c.id LIMIT {int(limit)}", params)
    return int(total or 0), rows


def returns_due(tx: Tx, today: date) -> list[tuple[int, date]]:
    """Mobilities abroad whose planned end date has come, oldest first."""
    rows = tx.rows(
        f"SELECT c.id, m.end_date {_FIRST[('mobility', 'state')]} AND c.state = 'abroad' "
        "AND m.end_date <= :today ORDER BY m.end_date, c.id",
        {"today": today},
    )
    return [(row["id"], row["end_date"]) for row in rows]


def queued(tx: Tx, keys: list[str]) -> set[str]:
    """Which of these outbox keys are queued already."""
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        batch = keys[start : start + 500]
        found |= set(tx.scalars("SELECT key FROM outbox WHERE key IN (:keys)", {"keys": batch}))
    return found
