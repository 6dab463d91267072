"""Shared fixtures: a real SQLite file per test, and the same tests on real PostgreSQL."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from vetpro_workflow.store import schema
from vetpro_workflow.store.database import Database, Tx

POSTGRES_URL = os.environ.get(
    "VETPRO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("VETPRO_REQUIRE_POSTGRES") == "1"
# Each test run works in a schema of its own, so two runs on one server never meet.
SCHEMA = f"vetpro_test_{os.getpid()}"
_postgres_error: list[str] = []
_migrated: dict[str, Path | str] = {}
_resetter: list[Database] = []


def _empty(db: Database) -> None:
    """Empty every table and start the ids at 1 again (cheaper than TRUNCATE's locks)."""
    from vetpro_workflow.store.tables import SQLModel

    with db.transaction() as tx:
        for table in reversed(SQLModel.metadata.sorted_tables):  # children before parents
            tx.execute(f'DELETE FROM "{table.name}"')
        for sequence in tx.scalars(
            "SELECT sequence_name FROM information_schema.sequences "
            "WHERE sequence_schema = current_schema()"
        ):
            tx.execute(f'ALTER SEQUENCE "{sequence}" RESTART')


def _left_behind(tx: Tx) -> list[str]:
    """The schemas of test runs on this machine whose process no longer runs (none when the
    server is on another machine, whose runs this one cannot see)."""
    if urlsplit(POSTGRES_URL).hostname not in ("127.0.0.1", "localhost", "::1", None):
        return []
    left = []
    for name in tx.scalars(
        "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE :p",
        {"p": "vetpro\\_test\\_%"},
    ):
        pid = name.removeprefix("vetpro_test_").split("_")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            left.append(name)
    return left


def _postgres_reachable() -> str | None:
    """None when PostgreSQL answers, else why not (checked once per session)."""
    if not _postgres_error:
        try:
            with Database(POSTGRES_URL) as db, db.transaction() as tx:
                tx.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
                for left in _left_behind(tx):  # by test runs of this machine that were killed
                    tx.execute(f"DROP SCHEMA IF EXISTS {left} CASCADE")
                tx.execute(f"CREATE SCHEMA {SCHEMA}")
            _postgres_error.append("")
        except Exception as exc:  # any failure to connect means: no PostgreSQL here
            _postgres_error.append(" ".join(str(exc).split())[:200])
    return _postgres_error[0] or None


def postgres_url() -> str:
    """The URL of an empty store in this run's schema; skips (or fails in CI) without one."""
    problem = _postgres_reachable()
    if problem:
        message = f"PostgreSQL not reachable at {POSTGRES_URL} ({problem})"
        if REQUIRE_POSTGRES:
            pytest.fail(message + "; VETPRO_REQUIRE_POSTGRES=1 requires it")
        pytest.skip(message + "; set VETPRO_TEST_POSTGRES_URL to run these tests")
    separator = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{separator}options=-csearch_path%3D{SCHEMA}"
    if "postgresql" not in _migrated:  # the migrations run once a session; tests empty it
        schema.create(url)
        _migrated["postgresql"] = url
        _resetter.append(Database(url, pool_size=1))
    _empty(_resetter[0])
    return url


@pytest.fixture(scope="session", autouse=True)
def _drop_postgres_schema() -> Iterator[None]:
    yield
    for db in _resetter:
        db.close()
    template = _migrated.get("sqlite")
    if isinstance(template, Path):
        template.unlink(missing_ok=True)
    if _postgres_error and not _postgres_error[0]:
        with Database(POSTGRES_URL) as db, db.transaction() as tx:
            tx.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def fresh_sqlite(folder: Path) -> str:
    """The URL of a new, migrated SQLite store in a folder (a copy of one migrated once)."""
    if "sqlite" not in _migrated:
        template = Path(os.environ.get("TMPDIR", "/tmp")) / f"vetpro-template-{os.getpid()}.db"
        template.unlink(missing_ok=True)
        schema.create(f"sqlite:///{template}")
        _migrated["sqlite"] = template
    path = folder / "vetpro.db"
    shutil.copy(_migrated["sqlite"], path)
    return f"sqlite:///{path}"


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return fresh_sqlite(tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> str:
    """The URL of a fresh store: a real SQLite file, then the same test on real PostgreSQL."""
    if request.param == "sqlite":
        return fresh_sqlite(tmp_path)
    return postgres_url()


@pytest.fixture
def db(store_url) -> Iterator[Database]:
    """A fresh store: a real SQLite file, then the same test on real PostgreSQL."""
    with Database(store_url) as database:
        yield database


@pytest.fixture
def sqlite_db(sqlite_url) -> Iterator[Database]:
    """A fresh store on a SQLite file only (for tests about the file database itself)."""
    with Database(sqlite_url) as database:
        yield database
