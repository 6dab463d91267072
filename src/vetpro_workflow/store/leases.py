"""Named leases in the store: only one process at a time runs a job such as the sweep, on any
number of machines. A lease expires, so a holder that died never blocks the job for good; on
the holder's own host, a dead process's lease is taken over at once."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from .database import Tx

_TAKE = (
    "INSERT INTO lease (name, holder, until) VALUES (:name, :holder, :until) "
    "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until "
    "WHERE lease.until <= :now OR lease.holder = :holder OR lease.holder IN (:dead)"
)


def me() -> str:
    """Who holds a lease: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _dead(holder: str) -> bool:
    host, _, pid = holder.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def take(tx: Tx, name: str, *, holder: str, now: datetime, length: timedelta) -> str | None:
    """Take a lease; None when taken, else who holds it (and until when)."""
    current = tx.row("SELECT holder, until FROM lease WHERE name = :name", {"name": name})
    dead = [current["holder"]] if current and _dead(current["holder"]) else []
    tx.execute(
        _TAKE, {"name": name, "holder": holder, "until": now + length, "now": now, "dead": dead}
    )
    held = tx.row("SELECT holder, until FROM lease WHERE name = :name", {"name": name})
    assert held is not None
    if held["holder"] == holder:
        return None
    return f"{held['holder']} until {held['until']:%Y-%m-%d %H:%M} UTC"


def give_back(tx: Tx, name: str, *, holder: str) -> None:
    """Release a lease this holder holds."""
    tx.execute(
        "DELETE FROM lease WHERE name = :name AND holder = :holder",
        {"name": name, "holder": holder},
    )
