"""The outbox as staff see it and as the sender claims it: rows, their status and their fate.

A row is `pending` until the server accepts it (`sent`) or it cannot succeed (`undeliverable`,
shown to staff until they retry it). A sender claims due rows before sending them, so two
senders never send the same row; a claim held by a process that died on this host is released
at the next run, and any other claim expires after `LEASE`.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, func, or_, select, update
from sqlmodel import Session

from ..addresses import is_address
from ..db import write_connection
from ..errors import InvalidInput, NotFound
from ..models import Outbox

LEASE = timedelta(minutes=10)
MAX_BACKOFF = timedelta(hours=6)
_OUTBOX = Outbox.__table__  # type: ignore[attr-defined]
_SETTLE = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row_id"))
    .values(
        status=bindparam("new_status"),
        attempts=_OUTBOX.c.attempts + 1,
        last_error=bindparam("error"),
        next_attempt_at=bindparam("next_at"),
        sent_at=bindparam("sent"),
        claimed_by=None,
        claimed_until=None,
    )
)


@dataclass(frozen=True)
class Letter:
    """One claimed outbox row, as the sender needs it."""

    id: int
    key: str
    case_id: int | None
    kind: str
    recipient: str
    cc: str | None
    context: dict[str, Any]
    attempts: int
    created_at: datetime


def letter_of(row: Any) -> Letter:
    """The letter of an outbox row (a stored row, or a mapping of its columns)."""
    names = [f.name for f in fields(Letter)]
    if isinstance(row, Mapping):
        return Letter(**{name: row[name] for name in names})
    return Letter(**{name: getattr(row, name) for name in names})


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


def release_dead_claims(engine: Engine) -> int:
    """Free the rows claimed by senders of this host that are no longer running."""
    with write_connection(engine) as db:
        claims = db.execute(
            select(_OUTBOX.c.claimed_by).where(_OUTBOX.c.claimed_by.is_not(None)).distinct()
        ).scalars()
        dead = [c for c in claims if not _alive(c)]
        if not dead:
            return 0
        freed = db.execute(
            update(_OUTBOX)
            .where(_OUTBOX.c.claimed_by.in_(dead))
            .values(claimed_by=None, claimed_until=None)
        )
        return freed.rowcount


def _due(now: datetime) -> Any:
    return and_(
        _OUTBOX.c.status == "pending",
        _OUTBOX.c.next_attempt_at <= now,
        or_(_OUTBOX.c.claimed_until.is_(None), _OUTBOX.c.claimed_until <= now),
    )


def claim(
    engine: Engine, *, now: datetime, size: int, by: str, elapsed: timedelta = timedelta(0)
) -> list[Letter]:
    """Claim up to `size` due rows for one sender, oldest first, for `LEASE` from now on.

    `elapsed` is how long the sender has been running on a clock read when it started: the
    lease of a batch claimed late in a long run must still last `LEASE` from the claim.
    """
    with write_connection(engine) as db:
        # PostgreSQL locks the rows picked until the claim commits and skips the rows another
        # sender is claiming right now, rather than waiting for them only to find them taken.
        # (SQLite takes the whole file at BEGIN, so claims there follow one another.)
        picked = db.execute(
            select(_OUTBOX.c.id)
            .where(_due(now))
            .order_by(_OUTBOX.c.next_attempt_at, _OUTBOX.c.id)
            .limit(size)
            .with_for_update(skip_locked=True)
        ).scalars()
        db.execute(
            update(_OUTBOX)
            .where(_OUTBOX.c.id.in_(list(picked)), _due(now))
            .values(claimed_by=by, claimed_until=now + elapsed + LEASE)
        )
        rows = db.execute(
            select(_OUTBOX).where(_OUTBOX.c.claimed_by == by).order_by(_OUTBOX.c.id)
        ).mappings()
        return [letter_of(r) for r in rows]


def mark_sent(db: Connection, letter: Letter, *, now: datetime, note: str | None = None) -> None:
    """Record that the server accepted a letter, and commit: it is never sent again."""
    db.execute(
        _SETTLE,
        {"row_id": letter.id, "new_status": "sent", "error": note, "next_at": None, "sent": now},
    )
    db.commit()


def mark_failed(
    db: Connection,
    letter: Letter,
    *,
    now: datetime,
    error: str,
    permanent: bool,
    max_attempts: int,
    retry_after: timedelta,
) -> str:
    """Record a failed attempt; 'retrying' with back-off, or 'undeliverable' for staff to see."""
    attempts = letter.attempts + 1
    if not permanent and attempts >= max_attempts:
        permanent, error = True, f"gave up after {attempts} attempts: {error}"
    backoff = min(retry_after * 2 ** (attempts - 1), MAX_BACKOFF)
    status = "undeliverable" if permanent else "pending"
    db.execute(
        _SETTLE,
        {
            "row_id": letter.id,
            "new_status": status,
            "error": error[:1000],
            "next_at": None if permanent else now + backoff,
            "sent": None,
        },
    )
    db.commit()
    return "undeliverable" if permanent else "retrying"


def count_pending(session: Session) -> int:
    """How many rows still wait to be sent."""
    query = select(func.count()).select_from(_OUTBOX).where(_OUTBOX.c.status == "pending")
    return int(session.execute(query).scalar_one())


def row_of(session: Session, row_id: int) -> Outbox:
    """One outbox row by id."""
    row = session.get(Outbox, row_id)
    if row is None:
        raise NotFound(f"outbox row {row_id} does not exist; 'vetpro outbox list' shows them")
    return row


def retry(session: Session, row_id: int, *, now: datetime, to: str | None = None) -> Outbox:
    """Put an undeliverable row back in the queue, optionally to a corrected address; commits."""
    row = row_of(session, row_id)
    if row.status != "undeliverable":
        raise InvalidInput(
            f"outbox row {row_id} is {row.status}; only undeliverable rows are retried"
        )
    if to is not None:
        to = to.strip().lower()
        if not is_address(to):
            raise InvalidInput(f"--to: {to!r} is not a valid email address")
        row.recipient = to
    row.status, row.attempts, row.next_attempt_at = "pending", 0, now
    session.commit()
    return row


STATUSES = ("pending", "sent", "undeliverable")


def rows(
    session: Session, *, status: str | None = None, case_id: int | None = None
) -> list[Outbox]:
    """Outbox rows, oldest first, by status and/or case."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"--status: {status!r} is not a status; use {', '.join(STATUSES)}")
    query = select(Outbox).order_by(Outbox.id)
    if status is not None:
        query = query.where(Outbox.status == status)
    if case_id is not None:
        query = query.where(Outbox.case_id == case_id)
    return list(session.execute(query).scalars())
