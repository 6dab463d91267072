"""Engines, sessions and the schema, for SQLite (the default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, SQLModel

from . import models  # noqa: F401  (registers the tables)

_WRITE = "vetpro_write"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for a database URL; SQLite gets WAL, foreign keys and immediate write locks."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, echo=echo, pool_pre_ping=True)
    kw: dict[str, Any] = {"connect_args": {"timeout": 60, "check_same_thread": False}}
    if parsed.database in (None, "", ":memory:"):
        kw["poolclass"] = StaticPool
    engine = create_engine(url, echo=echo, **kw)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN, so writers can take the lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A writer locks the file at BEGIN: two writers never interleave read and write.
        immediate = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def create_schema(engine: Engine) -> None:
    """Create every table that is missing."""
    SQLModel.metadata.create_all(engine)


@contextmanager
def writing(engine: Engine) -> Iterator[Session]:
    """A session for one unit of work that writes: committed by the caller, rolled back on error."""
    with Session(engine.execution_options(**{_WRITE: True}), expire_on_commit=False) as session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in one short writing transaction (commits on success)."""
    with engine.execution_options(**{_WRITE: True}).begin() as connection:
        yield connection


def writer(engine: Engine) -> Connection:
    """A connection for a run of short writes, each committed on its own (the caller closes it)."""
    return engine.execution_options(**{_WRITE: True}).connect()


@contextmanager
def reading(engine: Engine) -> Iterator[Session]:
    """A session that only reads."""
    with Session(engine) as session:
        yield session
