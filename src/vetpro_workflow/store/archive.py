"""Exporting a store as JSON lines, and restoring a complete export into an empty store.

One line per record, named by its "record" field: the calls with their versions, the
organisations, people and participants, then every case with its details, partners and
history, then the outbox and the sweeps. A case's line holds everything about it, so reporting
tools can read cases alone (`--kind`); only a complete export can be restored. Restoring writes
the same ids, states, versions, facts, history and outbox rows, so moving from the embedded
SQLite file to PostgreSQL is an export and a restore, and exporting again gives the same lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import Any

from ..errors import InvalidInput
from .database import Tx

FORMAT = 1
# Tables whose rows are lines of their own, in an order that respects every foreign key; the
# web sessions and sign-in failures are short-lived and stay behind.
PLAIN = ("call", "call_change", "organisation", "user", "credential", "api_token", "participant")
AFTER = ("outbox", "sweep_run")
_KEYS = {"call_change": "id", "credential": "user_id", "application_partner": "application_id"}


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def _line(kind: str, row: dict[str, Any]) -> str:
    return json.dumps({"record": kind, **{k: _json(v) for k, v in row.items()}}, ensure_ascii=False)


def _rows(tx: Tx, table: str) -> list[dict[str, Any]]:
    return tx.rows(f'SELECT * FROM "{table}" ORDER BY {_KEYS.get(table, "id")}')


def export(tx: Tx, *, kind: str | None = None) -> Iterator[str]:
    """The store as JSON lines (only the cases of one kind, when named: not restorable)."""
    yield json.dumps({"record": "export", "format": FORMAT, "complete": kind is None})
    if kind is None:
        for table in PLAIN:
            yield from (_line(table, row) for row in _rows(tx, table))
    yield from _cases(tx, kind)
    if kind is None:
        for table in AFTER:
            yield from (_line(table, row) for row in _rows(tx, table))


def _cases(tx: Tx, kind: str | None) -> Iterator[str]:
    where = "WHERE kind = :kind" if kind else ""
    ids = tx.scalars(f'SELECT id FROM "case" {where} ORDER BY id', {"kind": kind})
    for start in range(0, len(ids), 500):
        batch = ids[start : start + 500]
        cases = tx.rows('SELECT * FROM "case" WHERE id IN (:ids) ORDER BY id', {"ids": batch})
        details = {
            r["id"]: r
            for table in ("application", "mobility")
            for r in tx.rows(f"SELECT * FROM {table} WHERE id IN (:ids)", {"ids": batch})
        }
        partners: dict[int, list[int]] = {}
        for p in tx.rows(
            "SELECT * FROM application_partner WHERE application_id IN (:ids) "
            "ORDER BY application_id, organisation_id",
            {"ids": batch},
        ):
            partners.setdefault(p["application_id"], []).append(p["organisation_id"])
        history: dict[int, list[dict[str, Any]]] = {}
        for h in tx.rows(
            "SELECT * FROM history WHERE case_id IN (:ids) ORDER BY id", {"ids": batch}
        ):
            history.setdefault(h["case_id"], []).append({k: _json(v) for k, v in h.items()})
        for case in cases:
            record = {
                **case,
                "details": {k: _json(v) for k, v in details[case["id"]].items()},
                "history": history.get(case["id"], []),
            }
            if case["kind"] == "application":
                record["partners"] = partners.get(case["id"], [])
            yield _line("case", record)


def _typed(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """A row read from JSON with its dates and times as the store keeps them."""
    from sqlalchemy import Date, DateTime

    from .tables import SQLModel, UTCDateTime

    columns = SQLModel.metadata.tables[table].columns
    typed = {}
    for name, value in row.items():
        if name not in columns:
            raise InvalidInput(f"a line of {table}: {name!r} is not a column of {table}")
        kind = columns[name].type
        if isinstance(value, str) and isinstance(kind, DateTime | UTCDateTime):
            value = datetime.fromisoformat(value)
        elif isinstance(value, str) and isinstance(kind, Date):
            value = date.fromisoformat(value)
        typed[name] = value
    return typed


def _insert(tx: Tx, table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    names = list(rows[0])
    tx.executemany(
        f'INSERT INTO "{table}" ({", ".join(names)}) VALUES ({", ".join(":" + n for n in names)})',
        [_typed(table, r) for r in rows],
    )


def restore(tx: Tx, lines: Iterable[str]) -> dict[str, int]:
    """Load a complete export into an empty store; how many records of each type."""
    if tx.scalar('SELECT count(*) FROM "case"') or tx.scalar('SELECT count(*) FROM "call"'):
        raise InvalidInput("the store is not empty; restore loads an export into an empty store")
    records = _read(lines)
    counts: dict[str, int] = {}
    for table in PLAIN:
        _insert(tx, table, records.get(table, []))
        counts[table] = len(records.get(table, []))
    cases = records.get("case", [])
    _insert(
        tx,
        "case",
        [
            {k: v for k, v in c.items() if k not in ("details", "history", "partners")}
            for c in cases
        ],
    )
    for kind in ("application", "mobility"):
        _insert(tx, kind, [c["details"] for c in cases if c["kind"] == kind])
        if kind == "application":
            _insert(
                tx,
                "application_partner",
                [
                    {"application_id": c["id"], "organisation_id": org}
                    for c in cases
                    if c["kind"] == kind
                    for org in c["partners"]
                ],
            )
    _insert(tx, "history", [h for c in cases for h in c["history"]])
    counts["case"] = len(cases)
    for table in AFTER:
        _insert(tx, table, records.get(table, []))
        counts[table] = len(records.get(table, []))
    if tx.dialect == "postgresql":
        _continue_sequences(tx)
    return counts


def _read(lines: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    records: dict[str, list[dict[str, Any]]] = {}
    header: dict[str, Any] | None = None
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
            kind = record.pop("record")
        except (ValueError, KeyError, AttributeError, TypeError):
            raise InvalidInput(f"line {number}: not a line of a vetpro export") from None
        if header is None:
            if kind != "export" or record.get("format") != FORMAT:
                raise InvalidInput("line 1: not a vetpro export (format 1)")
            if not record.get("complete"):
                raise InvalidInput(
                    "this export holds one kind of case only; restore needs a complete export"
                )
            header = record
            continue
        if kind not in (*PLAIN, "case", *AFTER):
            raise InvalidInput(f"line {number}: {kind!r} is not a type of record of an export")
        records.setdefault(kind, []).append(record)
    if header is None:
        raise InvalidInput("the export is empty")
    return records


def _continue_sequences(tx: Tx) -> None:
    """Make PostgreSQL's ids go on after the restored ones."""
    for table in (
        "call",
        "call_change",
        "organisation",
        "user",
        "api_token",
        "participant",
        "case",
        "history",
        "outbox",
        "sweep_run",
    ):
        tx.execute(
            f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
            f'coalesce((SELECT max(id) FROM "{table}"), 0) + 1, false)'
        )
