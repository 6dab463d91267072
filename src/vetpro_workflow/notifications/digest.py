"""The daily staff digest: what is overdue or needs a look, and the mail that could not go."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from ..clock import real_now
from ..states.deadlines import OVERDUE
from ..states.notices import Notice
from ..store import due
from ..store.database import Tx
from ..store.snapshots import load_projects
from .outbox import enqueue

LIMIT = 200  # per rule: a digest stays readable; the count says how many more there are


def content(tx: Tx, today: date) -> dict[str, Any]:
    """The digest of a day: cases overdue or to look at, and undeliverable mail."""
    found: list[tuple[Any, dict[str, Any]]] = []
    totals: dict[str, int] = {}
    for rule in OVERDUE:
        total, rows = due.overdue(tx, rule, today=today, limit=LIMIT)
        totals[rule.name] = total
        found += [(rule, row) for row in rows]
    projects = {p.id: p for p in load_projects(tx, {row["project"] for _, row in found})}
    overdue = []
    for rule, row in found:
        project = projects[row["project"]]
        case = project.case(row["id"])
        assert case is not None
        anchor = row["anchor"]
        what = rule.what
        if rule.condition == "stay_noted":
            what = f"{rule.what}: {case.facts.get('stay_note')}"
        overdue.append(
            {
                "case_id": case.id,
                "kind": case.kind,
                "title": project.title if case.kind == "application" else case.title,
                "state": case.state,
                "what": what,
                "due": (anchor + timedelta(days=rule.days_after)).isoformat() if anchor else None,
            }
        )
    failed = tx.rows(
        'SELECT id, case_id, kind, recipient AS "to", last_error FROM outbox '
        f"WHERE status = 'undeliverable' ORDER BY id LIMIT {LIMIT}"
    )
    return {"day": today.isoformat(), "overdue": overdue, "undeliverable": failed, "totals": totals}


def enqueue_digest(tx: Tx, *, today: date, staff_email: str) -> tuple[int | None, dict[str, Any]]:
    """Enqueue the day's digest for staff, once a day; its outbox id (None when there is
    nothing to say) and what it says."""
    key = f"digest:{today.isoformat()}"
    said = content(tx, today)
    if said["overdue"] or said["undeliverable"]:
        enqueue(tx, [Notice(key, None, "staff_digest", staff_email, said)], now=real_now())
    return tx.scalar("SELECT id FROM outbox WHERE key = :key", {"key": key}), said
