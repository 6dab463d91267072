"""Connections to the store in plain SQL: sqlite3 for a SQLite file, psycopg for PostgreSQL.

The runtime does not go through SQLAlchemy: importing it costs about half a second, which every
command would pay, and its machinery was most of the time of a move. Statements are written once,
with `:name` parameters, and run as they are on SQLite and rewritten to `%(name)s` for psycopg.
A parameter bound to a list expands to one parameter per item (for `IN (:ids)`). Rows come back
as dicts with typed values on both databases (dates, aware UTC datetimes, JSON, booleans).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from ..errors import VetproError
from .drivers import connect_postgresql, connect_sqlite, shown_url, sqlite_path

Params = Mapping[str, Any]


class StoreUnavailable(VetproError):
    """The database cannot be opened or answers with an error that is not the user's doing."""


class Clash(VetproError):
    """A write was refused by a unique or foreign key constraint (usually: a race lost to
    someone writing the same thing at the same moment)."""

    exit_code = 3
    http_status = 409

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"someone else wrote the same thing at the same moment ({detail}); try again"
        )


class Contention(VetproError):
    """The database gave up waiting for a lock (SQLite busy, a PostgreSQL deadlock)."""

    exit_code = 3
    http_status = 409

    def __init__(self, detail: str) -> None:
        super().__init__(f"the database is busy with a concurrent change ({detail}); try again")


_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@lru_cache(maxsize=1024)
def _pyformat(sql: str) -> str:
    """A statement with `:name` parameters as psycopg writes them."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


_LISTS = {list, tuple, set, frozenset}


@lru_cache(maxsize=1024)
def _expanded(sql: str, lengths: tuple[tuple[str, int], ...]) -> str:
    """A statement with each list parameter written as one parameter per item."""
    for name, length in lengths:
        names = ", ".join(f":{name}__{i}" for i in range(max(length, 1)))
        sql = re.sub(rf":{name}\b", names, sql)
    return sql


def _expand(sql: str, params: Params) -> tuple[str, dict[str, Any]]:
    """Expand the list parameters of a statement into one parameter per item."""
    flat: dict[str, Any] = {}
    lengths = []
    for name, value in params.items():
        if isinstance(value, list | tuple | set | frozenset):
            items = list(value) or [None]  # IN (NULL) matches nothing
            lengths.append((name, len(items)))
            flat.update((f"{name}__{i}", item) for i, item in enumerate(items))
        else:
            flat[name] = value
    return _expanded(sql, tuple(lengths)), flat


class Tx:
    """One transaction on one connection: statements in, dict rows out.

    `memo` is the store's own dict for rows that never change once written under a version (a
    call's rules at a version), shared by the transactions of one Database.
    """

    def __init__(self, raw: Any, dialect: str, memo: dict[Any, Any] | None = None) -> None:
        self.raw = raw
        self.dialect = dialect
        self.memo: dict[Any, Any] = {} if memo is None else memo

    def _run(self, sql: str, params: Params | None) -> Any:
        params = params or {}
        for value in params.values():
            if type(value) in _LISTS:
                sql, params = _expand(sql, params)
                break
        try:
            return self.raw.execute(_pyformat(sql) if self.dialect == "postgresql" else sql, params)
        except Exception as exc:
            raise _classified(exc) from exc

    def execute(self, sql: str, params: Params | None = None) -> int:
        """Run one statement; the number of rows it changed."""
        return int(self._run(sql, params).rowcount)

    def executemany(self, sql: str, rows: Sequence[Params]) -> int:
        """Run one statement for each set of parameters; the rows changed in all."""
        if not rows:
            return 0
        if len(rows) == 1:
            return self.execute(sql, rows[0])
        statement = _pyformat(sql) if self.dialect == "postgresql" else sql
        try:
            if self.dialect == "postgresql":
                with self.raw.cursor() as cursor:
                    cursor.executemany(statement, rows)
                    return int(cursor.rowcount)
            return int(self.raw.executemany(statement, rows).rowcount)
        except Exception as exc:
            raise _classified(exc) from exc

    def rows(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        """Every row a query returns, as dicts."""
        cursor = self._run(sql, params)
        if self.dialect == "postgresql":
            return list(cursor.fetchall())
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]  # noqa: B905 (one row's width)

    def row(self, sql: str, params: Params | None = None) -> dict[str, Any] | None:
        """The first row a query returns, or None."""
        found = self.rows(sql, params)
        return found[0] if found else None

    def scalar(self, sql: str, params: Params | None = None) -> Any:
        """The first column of the first row, or None."""
        row = self._run(sql, params).fetchone()
        if row is None:
            return None
        return next(iter(row.values())) if isinstance(row, dict) else row[0]

    def scalars(self, sql: str, params: Params | None = None) -> list[Any]:
        """The first column of every row."""
        rows = self._run(sql, params).fetchall()
        return [next(iter(r.values())) if isinstance(r, dict) else r[0] for r in rows]


_BUSY_STATES = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock not available


def _classified(exc: Exception) -> Exception:
    """A driver's error as a Clash, a Contention, or itself."""
    if isinstance(exc, sqlite3.IntegrityError):
        return Clash(str(exc).splitlines()[0])
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
        return Contention(str(exc).splitlines()[0])
    state = getattr(exc, "sqlstate", None)
    if state is not None and state.startswith("23"):
        return Clash(str(exc).splitlines()[0])
    if state in _BUSY_STATES:
        return Contention(str(exc).splitlines()[0])
    return exc


class Database:
    """The store behind a URL, with a few idle connections kept for reuse."""

    def __init__(self, url: str, *, pool_size: int = 4) -> None:
        self.url = url
        parts = urlsplit(url)
        scheme = parts.scheme.split("+")[0]
        if scheme not in ("sqlite", "postgresql"):
            raise StoreUnavailable(
                f"{shown_url(url)}: use sqlite:///FILE or postgresql+psycopg://USER@HOST:PORT/DB"
            )
        self.dialect = scheme
        self._path = sqlite_path(url) if scheme == "sqlite" else ""
        if scheme == "sqlite" and not self._path:
            raise StoreUnavailable(f"{url}: name the SQLite file, e.g. sqlite:///vetpro.db")
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._memo: dict[Any, Any] = {}
        self._pool_size = pool_size

    @property
    def shown_url(self) -> str:
        return shown_url(self.url)

    def _connect(self) -> Any:
        try:
            if self.dialect == "sqlite":
                return connect_sqlite(self._path)
            return connect_postgresql(self.url)
        except StoreUnavailable:
            raise
        except Exception as exc:  # the driver's own error: say which store and why, in one line
            detail = " ".join(str(exc).split())[:300]
            raise StoreUnavailable(f"cannot open the database {self.shown_url}: {detail}") from None

    def _take(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def _give_back(self, raw: Any) -> None:
        with self._lock:
            if len(self._idle) < self._pool_size:
                self._idle.append(raw)
                return
        raw.close()

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Tx]:
        """One transaction, committed when the block ends and rolled back if it raises.

        A writer on SQLite takes the file's write lock at BEGIN (IMMEDIATE), so two writers never
        interleave their reads and writes; PostgreSQL writers lock the rows they decide on.
        """
        raw = self._take()
        healthy = True
        try:
            if self.dialect == "sqlite":
                raw.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            tx = Tx(raw, self.dialect, self._memo)
            yield tx
            self._finish(raw, commit=write)
        except BaseException:
            healthy = self._finish(raw, commit=False)
            self._memo.clear()  # it may hold what this transaction read of its own writes
            raise
        finally:
            if healthy:
                self._give_back(raw)
            else:
                raw.close()

    def _finish(self, raw: Any, *, commit: bool) -> bool:
        """End the transaction; whether the connection can be used again."""
        try:
            if self.dialect == "postgresql":
                raw.commit() if commit else raw.rollback()
            elif raw.in_transaction:
                raw.execute("COMMIT" if commit else "ROLLBACK")
            return True
        except Exception:
            if commit:
                raise
            return False

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for raw in idle:
            raw.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def chunks(items: Iterable[Any], size: int = 500) -> Iterator[list[Any]]:
    """Items in lists of at most `size` (for `IN (:ids)` on long lists)."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
