"""The agency's calls: defining and changing them (versioned), reading them, ranking their
applications. An application only names its call; the call is the National Agency's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidInput, NotAllowed, NotFound
from ..states.actors import Actor
from ..states.calendar import brussels_time
from ..states.cascade import checked_note
from ..states.snapshots import CallRules
from .database import Tx
from .snapshots import CALL_COLUMNS, call_rules

# The fields of a call that decide its applications' fate: changed only with a reason, once
# applications exist.
RULE_FIELDS = (
    "application_deadline",
    "earliest_start",
    "max_project_months",
    "min_days",
    "max_days",
    "scale",
    "weights",
    "pass_mark",
)
FIELDS = ("title", *RULE_FIELDS)


def _values(doc: Any) -> dict[str, Any]:
    return {
        "title": doc.title,
        "application_deadline": doc.application_deadline.astimezone(UTC),
        "earliest_start": doc.earliest_start,
        "max_project_months": doc.max_project_months,
        "min_days": doc.min_days,
        "max_days": doc.max_days,
        "scale": doc.evaluation.scale,
        "weights": doc.evaluation.all_weights(),
        "pass_mark": doc.evaluation.pass_mark,
    }


def _shown(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def define(
    tx: Tx, doc: Any, *, actor: Actor, now: datetime, force: bool = False, note: str | None = None
) -> dict[str, Any]:
    """Add a call, or change one (a new version); what was done."""
    if actor.role != "staff":
        raise NotAllowed(f"calls are defined by NA staff; {actor.email} is {actor.role}")
    note = checked_note(note)
    values = _values(doc)
    stored = tx.row('SELECT * FROM "call" WHERE code = :code', {"code": doc.code})
    if stored is None:
        call_id = tx.scalar(
            'INSERT INTO "call" (code, version, created_at, updated_at, '
            f"{', '.join(FIELDS)}) VALUES (:code, 1, :now, :now, "
            f"{', '.join(':' + f for f in FIELDS)}) RETURNING id",
            {"code": doc.code, "now": now, **values},
        )
        _record(tx, call_id, 1, actor, now, note, {k: [None, _shown(v)] for k, v in values.items()})
        return {"code": doc.code, "version": 1, "action": "added", "changes": list(values)}
    changes = {k: [_shown(stored[k]), _shown(v)] for k, v in values.items() if stored[k] != v}
    if not changes:
        return {
            "code": doc.code,
            "version": stored["version"],
            "action": "unchanged",
            "changes": [],
        }
    applications = tx.scalar(
        "SELECT count(*) FROM application WHERE call_id = :id", {"id": stored["id"]}
    )
    ruled = [k for k in changes if k in RULE_FIELDS]
    if applications and ruled and not (force and note and note.strip()):
        raise InvalidInput(
            f"call {doc.code} has {applications} application(s); changing "
            f"{', '.join(ruled)} needs --force and a --note saying why"
        )
    version = stored["version"] + 1
    tx.execute(
        f'UPDATE "call" SET {", ".join(f"{f} = :{f}" for f in FIELDS)}, version = :version, '
        "updated_at = :now WHERE id = :id",
        {**values, "version": version, "now": now, "id": stored["id"]},
    )
    _record(tx, stored["id"], version, actor, now, note, changes)
    return {"code": doc.code, "version": version, "action": "changed", "changes": list(changes)}


def _record(
    tx: Tx, call_id: int, version: int, actor: Actor, now: datetime, note: str | None, changes: Any
) -> None:
    tx.execute(
        "INSERT INTO call_change (call_id, version, actor, at, note, changes) "
        "VALUES (:call, :version, :actor, :at, :note, :changes)",
        {
            "call": call_id,
            "version": version,
            "actor": actor.email,
            "at": now,
            "note": note,
            "changes": changes,
        },
    )


def _described(row: dict[str, Any]) -> dict[str, Any]:
    rules: CallRules = call_rules(row)
    return {
        "code": rules.code,
        "title": rules.title,
        "application_deadline": rules.deadline.isoformat(),
        "deadline_brussels": brussels_time(rules.deadline),
        "earliest_start": rules.earliest_start.isoformat(),
        "max_project_months": rules.max_project_months,
        "min_days": rules.min_days,
        "max_days": rules.max_days,
        "scale": rules.scale,
        "weights": dict(rules.weights),
        "max_total": rules.max_total,
        "pass_mark": rules.mark,
        "version": row["version"],
    }


_CALL = f'SELECT k.id, k.version, {CALL_COLUMNS} FROM "call" k'


def list_calls(tx: Tx) -> list[dict[str, Any]]:
    """Every call, the latest deadline first."""
    return [_described(r) for r in tx.rows(_CALL + " ORDER BY k.application_deadline DESC, k.id")]


def show(tx: Tx, code: str) -> dict[str, Any]:
    """A call with its versions and how many of its applications are in each state."""
    row = tx.row(_CALL + " WHERE k.code = :code", {"code": code})
    if row is None:
        raise NotFound(f"no call {code!r}; 'vetpro call list' shows the calls")
    described = _described(row)
    described["versions"] = [
        {**v, "at": v["at"].isoformat()}
        for v in tx.rows(
            "SELECT version, actor, at, note, changes FROM call_change WHERE call_id = :id "
            "ORDER BY version",
            {"id": row["id"]},
        )
    ]
    described["applications"] = {
        r["state"]: r["n"]
        for r in tx.rows(
            'SELECT c.state, count(*) AS n FROM application a JOIN "case" c ON c.id = a.id '
            "WHERE a.call_id = :id GROUP BY c.state ORDER BY c.state",
            {"id": row["id"]},
        )
    }
    return described


def ranking(tx: Tx, code: str) -> dict[str, Any]:
    """A call's submitted applications by total score, the best first, with the pass mark."""
    call = show(tx, code)
    rows = tx.rows(
        "SELECT a.id, a.title, o.name AS applicant, o.country, a.score, a.scores, a.evaluated_on, "
        'c.version, (SELECT count(*) FROM mobility m JOIN "case" mc ON mc.id = m.id '
        "WHERE m.application_id = a.id AND mc.state <> 'cancelled') AS mobilities "
        'FROM application a JOIN "case" c ON c.id = a.id JOIN "call" k ON k.id = a.call_id '
        "JOIN organisation o ON o.id = a.applicant_id "
        "WHERE k.code = :code AND c.state = 'submitted' "
        "ORDER BY CASE WHEN a.score IS NULL THEN 1 ELSE 0 END, a.score DESC, a.id",
        {"code": code},
    )
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank if row["score"] is not None else None
        row["passes"] = row["score"] is not None and row["score"] >= call["pass_mark"]
        row["evaluated_on"] = _shown(row["evaluated_on"])
    return {
        "call": code,
        "pass_mark": call["pass_mark"],
        "max_total": call["max_total"],
        "applications": rows,
    }
