"""The outbox: the one way mail is enqueued, and how senders claim, renew and settle its rows.

A row is `pending` until the server accepts it (`sent`) or it cannot succeed (`undeliverable`,
shown to staff until they retry it). A sender claims due rows for a lease of real time, renews
the lease while it works, and settles a row only while it still holds it, so two senders never
send the same row; a claim held by a process that died on this host is released at the next run,
and any other claim simply expires. Every time here is real time, never a rehearsed day.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from ..errors import InvalidInput, NotFound
from ..states.addresses import address_problem, normalise
from ..states.calendar import start_of
from ..states.notices import Notice
from ..store.database import Tx

LEASE = timedelta(minutes=10)
MAX_BACKOFF = timedelta(hours=6)
STATUSES = ("pending", "sent", "undeliverable")
_LETTER = "id, key, case_id, kind, recipient, header_to, cc, context, attempts, created_at"
_ENQUEUE = (
    "INSERT INTO outbox (key, case_id, kind, recipient, header_to, cc, context, status, "
    "attempts, next_attempt_at, created_at) VALUES (:key, :case_id, :kind, :recipient, :to, "
    ":cc, :context, 'pending', 0, :now, :now) ON CONFLICT (key) DO NOTHING"
)
_DUE = (
    "status = 'pending' AND next_attempt_at <= :now "
    "AND (claimed_until IS NULL OR claimed_until <= :now)"
)


@dataclass(frozen=True)
class Letter:
    """One claimed outbox row, as the sender needs it."""

    id: int
    key: str
    case_id: int | None
    kind: str
    recipient: str
    header_to: str | None
    cc: str | None
    context: dict[str, Any]
    attempts: int
    created_at: datetime


def enqueue(tx: Tx, notices: Iterable[Notice], *, now: datetime) -> int:
    """Write notices to the outbox, skipping any whose key is there already; how many were new.

    `now` is real time: a row is due from the moment it is written.
    """
    rows = [
        {
            "key": n.key,
            "case_id": n.case_id,
            "kind": n.kind,
            "recipient": n.recipient,
            "to": n.to,
            "cc": n.cc,
            "context": n.context,
            "now": now,
        }
        for n in notices
    ]
    return tx.executemany(_ENQUEUE, rows)


def holder() -> str:
    """Who claims rows: this host, this process and a token for this run."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _alive(claim: str) -> bool:
    host, _, rest = claim.partition(":")
    if host != socket.gethostname():
        return True  # another machine's sender: its lease decides
    try:
        os.kill(int(rest.partition(":")[0]), 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):
        return True
    return True


def release_dead_claims(tx: Tx) -> int:
    """Free the rows claimed by senders of this host that are no longer running."""
    claims = tx.scalars(
        "SELECT DISTINCT claimed_by FROM outbox WHERE claimed_by IS NOT NULL AND status = 'pending'"
    )
    dead = [c for c in claims if not _alive(c)]
    if not dead:
        return 0
    return tx.execute(
        "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by IN (:dead)",
        {"dead": dead},
    )


def claim(tx: Tx, *, now: datetime, size: int, by: str, lease: timedelta = LEASE) -> list[Letter]:
    """Claim up to `size` due rows for one sender, oldest first, for a lease from now on."""
    rows = tx.rows(
        claim_statement(tx.dialect),
        {"by": by, "until": now + lease, "now": now, "size": size},
    )
    return sorted((Letter(**row) for row in rows), key=lambda letter: letter.id)


def claim_statement(dialect: str) -> str:
    """The one statement that claims a batch (parameters: by, until, now, size)."""
    picked = f"SELECT id FROM outbox WHERE {_DUE} ORDER BY next_attempt_at, id LIMIT :size"
    if dialect == "postgresql":
        # Skip the rows another sender is claiming at this moment instead of waiting for them
        # only to find them taken. The ids are picked once (an ARRAY is an init plan): as
        # `id IN (…)`, a planner that believed the table nearly empty (statistics from before a
        # burst of mail) ran the locking subquery again for every row, for minutes.
        which = f"id = ANY(ARRAY({picked} FOR UPDATE SKIP LOCKED))"
    else:  # SQLite writers already follow one another; IN reads the subquery once
        which = f"id IN ({picked})"
    return (
        f"UPDATE outbox SET claimed_by = :by, claimed_until = :until WHERE {which} "
        f"RETURNING {_LETTER}"
    )


def renew(tx: Tx, *, by: str, now: datetime, lease: timedelta = LEASE) -> int:
    """Extend the lease of every row a sender still holds; how many it holds."""
    return tx.execute(
        "UPDATE outbox SET claimed_until = :until WHERE claimed_by = :by AND status = 'pending'",
        {"until": now + lease, "by": by},
    )


def release(tx: Tx, *, by: str, ids: Iterable[int] | None = None) -> int:
    """Give back rows a sender holds without trying them (they stay due as they were)."""
    sql = "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = :by"
    params: dict[str, Any] = {"by": by}
    if ids is not None:
        sql += " AND id IN (:ids)"
        params["ids"] = list(ids)
    return tx.execute(sql, params)


def mark_sent(tx: Tx, letter: Letter, *, by: str, now: datetime, note: str | None) -> bool:
    """Record that the server accepted a letter; False if this sender no longer held it."""
    return (
        tx.execute(
            "UPDATE outbox SET status = 'sent', attempts = attempts + 1, sent_at = :now, "
            "last_error = :note, claimed_by = NULL, claimed_until = NULL "
            "WHERE id = :id AND claimed_by = :by",
            {"now": now, "note": note, "id": letter.id, "by": by},
        )
        == 1
    )


def mark_failed(
    tx: Tx,
    letter: Letter,
    *,
    by: str,
    now: datetime,
    error: str,
    permanent: bool,
    max_attempts: int,
    retry_after: timedelta,
) -> str:
    """Record a failed attempt: 'retrying' with back-off, or 'undeliverable' for staff ('lost'
    when this sender no longer held the row)."""
    attempts = letter.attempts + 1
    if not permanent and attempts >= max_attempts:
        permanent, error = True, f"gave up after {attempts} attempts: {error}"
    backoff = min(retry_after * 2 ** (attempts - 1), MAX_BACKOFF)
    settled = tx.execute(
        "UPDATE outbox SET status = :status, attempts = attempts + 1, last_error = :error, "
        "next_attempt_at = :next, claimed_by = NULL, claimed_until = NULL "
        "WHERE id = :id AND claimed_by = :by",
        {
            "status": "undeliverable" if permanent else "pending",
            "error": error[:1000],
            "next": now if permanent else now + backoff,
            "id": letter.id,
            "by": by,
        },
    )
    if not settled:
        return "lost"  # another sender holds the row now: its attempt decides
    return "undeliverable" if permanent else "retrying"


def waiting(tx: Tx, *, now: datetime) -> dict[str, Any]:
    """How many rows wait, how many of them are due now, and when the next one falls due."""
    row = tx.row(
        "SELECT count(*) AS pending, "
        "sum(CASE WHEN next_attempt_at <= :now THEN 1 ELSE 0 END) AS due, "
        "min(CASE WHEN next_attempt_at > :now THEN next_attempt_at END) AS next_at "
        "FROM outbox WHERE status = 'pending'",
        {"now": now},
    )
    assert row is not None
    next_at = row["next_at"]
    if isinstance(next_at, str):  # SQLite gives an aggregate's value as it stored it
        next_at = datetime.fromisoformat(next_at).replace(tzinfo=now.tzinfo)
    return {"pending": int(row["pending"]), "due": int(row["due"] or 0), "next_attempt_at": next_at}


def rows(
    tx: Tx,
    *,
    status: str | None = None,
    case_id: int | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Outbox rows, oldest first, by status and/or case."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"--status: {status!r} is not a status; use {', '.join(STATUSES)}")
    where, params = ["1 = 1"], {}
    if status is not None:
        where.append("status = :status")
        params["status"] = status
    if case_id is not None:
        where.append("case_id = :case_id")
        params["case_id"] = case_id
    sql = f"SELECT * FROM outbox WHERE {' AND '.join(where)} ORDER BY id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return tx.rows(sql, params)


def row_of(tx: Tx, row_id: int) -> dict[str, Any]:
    """One outbox row by id."""
    row = tx.row("SELECT * FROM outbox WHERE id = :id", {"id": row_id}) if row_id < 2**63 else None
    if row is None:
        raise NotFound(f"outbox row {row_id} does not exist; 'vetpro outbox list' shows them")
    return row


def retry(tx: Tx, row_id: int, *, now: datetime, to: str | None = None) -> dict[str, Any]:
    """Put an undeliverable row back in the queue, optionally to a corrected address."""
    row = row_of(tx, row_id)
    if row["status"] != "undeliverable":
        raise InvalidInput(
            f"outbox row {row_id} is {row['status']}; only undeliverable rows are retried"
        )
    recipient = row["recipient"]
    if to is not None:
        if problem := address_problem(normalise(to)):
            raise InvalidInput(f"--to: {problem}")
        recipient = normalise(to)
    tx.execute(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = :now, "
        "recipient = :to WHERE id = :id",
        {"now": now, "to": recipient, "id": row_id},
    )
    return row_of(tx, row_id)


def retry_many(tx: Tx, *, status: str, since: date | None, now: datetime) -> int:
    """Put back every undeliverable row (given up on or after `since`, a Brussels day)."""
    if status != "undeliverable":
        raise InvalidInput(f"--status: only undeliverable rows are retried, not {status!r}")
    sql = (
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = :now "
        "WHERE status = 'undeliverable'"
    )
    params: dict[str, Any] = {"now": now}
    if since is not None:
        sql += " AND next_attempt_at >= :since"
        params["since"] = start_of(since)
    return tx.execute(sql, params)
