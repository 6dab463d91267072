"""Shared fixtures: a real SQLite file per test, and the same tests on real PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from vetpro_workflow.db import create_schema, make_engine
from vetpro_workflow.models import SQLModel

POSTGRES_URL = os.environ.get(
    "VETPRO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("VETPRO_REQUIRE_POSTGRES") == "1"
# Each test run works in a schema of its own, so two runs on one server never meet.
SCHEMA = f"vetpro_test_{os.getpid()}"
_postgres_error: list[str] = []


def _postgres_reachable() -> str | None:
    """None when PostgreSQL answers, else why not (checked once per session)."""
    if not _postgres_error:
        engine = make_engine(POSTGRES_URL)
        try:
            with engine.begin() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
                conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
            _postgres_error.append("")
        except Exception as exc:  # any failure to connect means: no PostgreSQL here
            _postgres_error.append(" ".join(str(exc).split())[:200])
        finally:
            engine.dispose()
    return _postgres_error[0] or None


def postgres_engine() -> Engine:
    """An engine on the test PostgreSQL with an empty schema; skips (or fails in CI) without it."""
    problem = _postgres_reachable()
    if problem:
        message = f"PostgreSQL not reachable at {POSTGRES_URL} ({problem})"
        if REQUIRE_POSTGRES:
            pytest.fail(message + "; VETPRO_REQUIRE_POSTGRES=1 requires it")
        pytest.skip(message + "; set VETPRO_TEST_POSTGRES_URL to run these tests")
    separator = "&" if "?" in POSTGRES_URL else "?"
    engine = make_engine(f"{POSTGRES_URL}{separator}options=-csearch_path%3D{SCHEMA}")
    create_schema(engine)
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return engine


@pytest.fixture(scope="session", autouse=True)
def _drop_postgres_schema() -> Iterator[None]:
    yield
    if _postgres_error and not _postgres_error[0]:
        engine = make_engine(POSTGRES_URL)
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'vetpro.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request, sqlite_url) -> Iterator[Engine]:
    """A fresh store: a real SQLite file, then the same test on real PostgreSQL."""
    if request.param == "sqlite":
        eng = make_engine(sqlite_url)
        create_schema(eng)
    else:
        eng = postgres_engine()
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url) -> Iterator[Engine]:
    """A fresh store on a SQLite file only (for tests about the file database itself)."""
    eng = make_engine(sqlite_url)
    create_schema(eng)
    yield eng
    eng.dispose()
