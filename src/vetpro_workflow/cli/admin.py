"""The commands that look after the store as a whole: export, restore and report."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import InvalidInput
from .app import Group, app, emit, env, json_option


@app.group(cls=Group)
def db() -> None:
    """The database's schema and its migrations."""


@db.command("status")
@json_option
def db_status(as_json: bool) -> None:
    """Say where the database's schema stands: its revision, the latest, and what is pending.

    Example: vetpro db status
    """
    from ..store.schema import status

    found = status(env().settings.database_url)
    emit(as_json, found, _status_text)


def _status_text(d: dict[str, Any]) -> str:
    if d["made_without_migrations"]:
        return f"{d['database']}: tables made without migrations; restore an export into a new one"
    if not d["pending"]:
        return f"{d['database']}: up to date (revision {d['current']})"
    pending = "\n".join(f"  {m['revision']}  {m['title']}" for m in d["pending"])
    return (
        f"{d['database']}: at revision {d['current'] or '(empty)'}; {len(d['pending'])} "
        f"migration(s) to apply with 'vetpro init':\n{pending}"
    )


@app.command()
@json_option
def init(as_json: bool) -> None:
    """Create the database's tables, or upgrade them to the latest revision (harmless when
    they are up to date).

    Example: VETPRO_DATABASE_URL=sqlite:///agency.db vetpro init
    """
    from ..store.schema import upgrade

    done = upgrade(env().settings.database_url)
    emit(
        as_json,
        done | {"ready": True},
        lambda d: (
            f"database ready: {d['database']} (revision {d['to']}"
            + (
                f"; applied {', '.join(m['revision'] for m in d['applied'])})"
                if d["applied"]
                else ")"
            )
        ),
    )


@app.command()
@click.option(
    "--kind",
    type=click.Choice(["application", "mobility"]),
    help="Only the cases of this kind (for reporting; not restorable).",
)
@click.option(
    "--out", type=click.Path(path_type=Path), help="Write to this file instead of standard output."
)
def export(kind: str | None, out: Path | None) -> None:
    """Write every case with its facts and history (and everything else the store holds) as
    JSON lines, for archives, reporting tools, and `vetpro restore`.

    Example: vetpro export --out vetpro-2027-06-30.jsonl
    """
    from ..store.archive import export as lines

    with env().transaction(write=False) as tx:
        if out is None:
            for line in lines(tx, kind=kind):
                sys.stdout.write(line + "\n")
            return
        try:
            with out.open("w", encoding="utf-8") as file:
                count = sum(1 for line in lines(tx, kind=kind) if file.write(line + "\n"))
        except OSError as exc:
            raise InvalidInput(f"--out: {out} cannot be written ({exc.strerror})") from None
    click.echo(f"exported {count - 1} record(s) to {out}", err=True)


@app.command()
@click.argument("path", metavar="FILE", type=click.Path(path_type=Path))
@json_option
def restore(path: Path, as_json: bool) -> None:
    """Load a complete export into an empty store (made with `vetpro init`), in one transaction.

    Example: VETPRO_DATABASE_URL=postgresql+psycopg://vetpro@db/vetpro vetpro restore all.jsonl
    """
    from ..store.archive import restore as load

    try:
        with path.open(encoding="utf-8") as file, env().transaction(write=True) as tx:
            counts = load(tx, file)
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: is not UTF-8 text; name a vetpro export") from None
    emit(as_json, counts, lambda d: "restored " + ", ".join(f"{n} {k}" for k, n in d.items() if n))


def _table(title: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return f"{title}: none"
    names = list(rows[0])
    width = {n: max(len(n), *(len(str(r[n])) for r in rows)) for n in names}
    lines = [title, "  " + "  ".join(f"{n:<{width[n]}}" for n in names)]
    lines += ["  " + "  ".join(f"{r[n]!s:<{width[n]}}" for n in names) for r in rows]
    return "\n".join(lines)


def _csv(tables: dict[str, list[dict[str, Any]]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["table", "key", "value", "count"])
    for title, rows in tables.items():
        for r in rows:
            values = list(r.values())
            writer.writerow([title, values[0], values[1], values[2]])
    return out.getvalue().rstrip("\n")


@app.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@json_option
def report(fmt: str, as_json: bool) -> None:
    """Cases per state, per call and per country, and the mail delivery figures.

    Example: vetpro report --format csv > figures.csv
    """
    from ..store.report import figures

    with env().transaction(write=False) as tx:
        tables = figures(tx)
    if as_json or fmt == "json":
        emit(True, tables, str)
    elif fmt == "csv":
        click.echo(_csv(tables))
    else:
        click.echo("\n\n".join(_table(title, rows) for title, rows in tables.items()))
