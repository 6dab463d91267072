"""Opening a connection to the store with its database's own driver: sqlite3 for a SQLite
file (WAL, foreign keys, typed values that read back as SQLAlchemy writes them), psycopg for
PostgreSQL (dict rows, JSON columns taking Python objects)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit


def shown_url(url: str) -> str:
    """A database URL as it may be printed: its password masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


@lru_cache(maxsize=256)
def _sqlite_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime: store timezone-aware UTC")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _register_sqlite_types() -> None:
    # The same text forms SQLAlchemy writes, so both read every row alike.
    sqlite3.register_adapter(datetime, _sqlite_datetime)
    sqlite3.register_adapter(date, date.isoformat)
    sqlite3.register_adapter(dict, json.dumps)
    sqlite3.register_adapter(list, json.dumps)
    sqlite3.register_converter("DATE", lambda b: date.fromisoformat(b.decode()))
    sqlite3.register_converter(
        "DATETIME", lambda b: datetime.fromisoformat(b.decode()).replace(tzinfo=UTC)
    )
    sqlite3.register_converter("JSON", json.loads)
    sqlite3.register_converter("BOOLEAN", lambda b: b not in (b"0", b""))


_register_sqlite_types()


def sqlite_path(url: str) -> str:
    """The file a sqlite:/// URL names."""
    return unquote(url.split(":///", 1)[1])


def connect_sqlite(path: str) -> sqlite3.Connection:
    """A connection to a SQLite file, set up for the store."""
    raw = sqlite3.connect(
        path,
        timeout=60,
        isolation_level=None,
        detect_types=sqlite3.PARSE_DECLTYPES,
        check_same_thread=False,
        cached_statements=512,
    )
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute("PRAGMA foreign_keys=ON")
    raw.execute("PRAGMA busy_timeout=60000")
    return raw


def connect_postgresql(url: str) -> Any:
    """A connection to PostgreSQL from a postgresql+psycopg:// URL (its query: libpq options)."""
    import psycopg
    from psycopg.rows import dict_row
    from psycopg.types.json import JsonDumper

    p = urlsplit(url)
    raw = psycopg.connect(
        host=p.hostname or None,
        port=p.port or None,
        user=unquote(p.username) if p.username else None,
        password=unquote(p.password) if p.password else None,
        dbname=p.path.lstrip("/") or None,
        row_factory=dict_row,
        connect_timeout=10,
        **dict(parse_qsl(p.query)),
    )
    for kind in (dict, list):  # JSON columns take Python objects, as on SQLite
        raw.adapters.register_dumper(kind, JsonDumper)
    return raw
