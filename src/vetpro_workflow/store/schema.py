"""Creating the schema from the table declarations, and telling whether a store has one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from .database import Database, StoreUnavailable
from .drivers import shown_url


def sqlalchemy_engine(url: str) -> Any:
    """A SQLAlchemy engine on the store (for creating the schema, migrations and tests)."""
    from sqlalchemy import create_engine

    return create_engine(url)


MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str, connection: Any = None) -> Any:
    """Alembic's configuration for the store at a URL (and a connection to run on)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def _tables_and_revision(connection: Any) -> tuple[set[str], str | None]:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import inspect

    names = set(inspect(connection).get_table_names())
    return names, MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str) -> dict[str, Any]:
    """Bring the store's schema to the latest revision (creating it in an empty database)."""
    from alembic import command
    from sqlalchemy.exc import SQLAlchemyError

    before = status(url)
    engine = sqlalchemy_engine(url)
    try:
        with engine.begin() as connection:
            tables, current = _tables_and_revision(connection)
            if current is None and "case" in tables:
                raise InvalidInput(
                    f"the database {shown_url(url)} holds tables made without migrations; "
                    "restore an export into a new database instead"
                )
            command.upgrade(alembic_config(url, connection), "head")
    except SQLAlchemyError as exc:
        detail = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
        raise StoreUnavailable(f"cannot set up the database {shown_url(url)}: {detail}") from None
    finally:
        engine.dispose()
    return {
        "database": shown_url(url),
        "from": before["current"],
        "to": before["head"],
        "applied": before["pending"],
    }


def status(url: str) -> dict[str, Any]:
    """Where the store's schema stands: its revision, the latest, and what is still to apply."""
    from alembic.script import ScriptDirectory
    from sqlalchemy.exc import SQLAlchemyError

    scripts = ScriptDirectory.from_config(alembic_config(url))
    engine = sqlalchemy_engine(url)
    try:
        with engine.connect() as connection:
            tables, current = _tables_and_revision(connection)
    except SQLAlchemyError as exc:
        detail = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
        raise StoreUnavailable(f"cannot open the database {shown_url(url)}: {detail}") from None
    finally:
        engine.dispose()
    pending = [
        {"revision": s.revision, "title": (s.doc or "").strip()}
        for s in reversed(list(scripts.iterate_revisions("head", current)))
    ]
    return {
        "database": shown_url(url),
        "current": current,
        "head": scripts.get_current_head(),
        "pending": pending,
        "made_without_migrations": current is None and "case" in tables,
    }


def create(url: str) -> None:
    """Create the schema of an empty store, through the migrations."""
    upgrade(url)


def has_schema(db: Database) -> bool:
    """Whether the store's tables exist."""
    with db.transaction(write=False) as tx:
        if db.dialect == "sqlite":
            found = tx.scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'case'")
        else:
            found = tx.scalar("SELECT to_regclass('\"case\"')")
    return found is not None


def require_schema(db: Database) -> None:
    """Refuse a store that was never initialised, saying what to run."""
    if not has_schema(db):
        raise InvalidInput(
            f"the database {shown_url(db.url)} has no tables yet; run 'vetpro init' first"
        )


def optimize(db: Database) -> None:
    """Keep the query planner's statistics fresh after bulk work (SQLite; PostgreSQL's
    autovacuum does it by itself). Cheap: SQLite analyses only what changed enough."""
    if db.dialect == "sqlite":
        with db.transaction() as tx:
            # Statistics from a sample of each index: enough for the planner, quick on any store.
            tx.execute("PRAGMA analysis_limit = 1000")
            tx.execute("PRAGMA optimize")
