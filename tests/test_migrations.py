"""The schema is made and upgraded only through migrations, and they agree with the tables."""

from __future__ import annotations

import json

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from conftest import POSTGRES_URL, REQUIRE_POSTGRES
from factories import STORY, import_doc, snapshot, walk
from vetpro_workflow.cli.app import app
from vetpro_workflow.store import schema
from vetpro_workflow.store.database import Database
from vetpro_workflow.store.tables import SQLModel


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request, tmp_path):
    """The URL of an empty database (no tables at all)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"vetpro_migrations_{abs(hash(str(tmp_path))) % 10**8}"
    try:
        with Database(POSTGRES_URL) as db, db.transaction() as tx:
            tx.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
            tx.execute(f"CREATE SCHEMA {name}")
    except Exception as exc:  # no PostgreSQL here
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL not reachable ({exc})")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}")
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{name}"
    with Database(POSTGRES_URL) as db, db.transaction() as tx:
        tx.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def differences(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, SQLModel.metadata))
    finally:
        engine.dispose()


def test_the_migrations_make_exactly_the_tables_the_models_declare(empty_url):
    done = schema.upgrade(empty_url)
    assert [m["revision"] for m in done["applied"]] == ["0001", "0002", "0003", "0004"]
    assert differences(empty_url) == []


@pytest.mark.parametrize("previous", ["0003", "0002", "0001"])
def test_upgrading_a_store_filled_at_an_earlier_revision_keeps_every_row(empty_url, previous):
    command.upgrade(schema.alembic_config(empty_url), previous)
    with Database(empty_url) as db:
        done = import_doc(db)
        walk(db, done, len(STORY))  # a whole story: every kind of row is there
        before = snapshot_of(db)
    pending = [m["revision"] for m in schema.status(empty_url)["pending"]]
    assert pending == [r for r in ("0001", "0002", "0003", "0004") if r > previous]
    schema.upgrade(empty_url)
    with Database(empty_url) as db:
        after = snapshot_of(db)
    assert {t: rows for t, rows in after.items() if t in before} == before
    assert all(rows == [] for t, rows in after.items() if t not in before)
    assert sum(len(rows) for rows in after.values()) > 40


def snapshot_of(db: Database) -> dict[str, list[str]]:
    """Every row of every table the store has now."""
    with db.transaction(write=False) as tx:
        present = set(
            tx.scalars("SELECT name FROM sqlite_master WHERE type = 'table'")
            if db.dialect == "sqlite"
            else tx.scalars("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        )
    full = snapshot(db) if "lease" in present else None
    if full is not None:
        return full
    with db.transaction(write=False) as tx:
        return {
            t.name: sorted(repr(sorted(r.items())) for r in tx.rows(f'SELECT * FROM "{t.name}"'))
            for t in SQLModel.metadata.sorted_tables
            if t.name in present
        }


def test_vetpro_init_upgrades_and_db_status_says_where_the_store_stands(empty_url):
    runner, env = CliRunner(), {"VETPRO_DATABASE_URL": empty_url}
    before = json.loads(runner.invoke(app, ["db", "status", "--json"], env=env).stdout)
    assert before["current"] is None and before["head"] == "0004" and len(before["pending"]) == 4
    first = runner.invoke(app, ["init"], env=env)
    assert first.exit_code == 0 and "revision 0004; applied 0001, 0002, 0003, 0004" in first.stdout
    again = runner.invoke(app, ["init"], env=env)
    assert again.exit_code == 0 and again.stdout.strip().endswith("(revision 0004)")
    status = runner.invoke(app, ["db", "status"], env=env)
    assert status.stdout.strip().endswith("up to date (revision 0004)")


def test_a_store_made_without_migrations_is_refused_by_init(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    SQLModel.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO organisation (name, type, country, contact_name, contact_email) "
                "VALUES ('A', 'ngo', 'AT', 'a', 'a@b.example')"
            )
        )
    engine.dispose()
    refused = CliRunner().invoke(app, ["init"], env={"VETPRO_DATABASE_URL": url})
    assert refused.exit_code == 1
    assert (
        refused.stderr.startswith("error: the database sqlite:///")
        and "made without migrations" in refused.stderr
    )
