"""The commands that bring documents in: import application documents, amend a draft with one,
print the examples."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..errors import InvalidInput
from .app import app, case, emit, env, json_option, today_option


@app.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--allow-duplicate", is_flag=True, help="File a document identical to one filed already."
)
@today_option
@json_option
def import_(
    paths: tuple[Path, ...], allow_duplicate: bool, today: str | None, as_json: bool
) -> None:
    """Import application documents (JSON, or folders of them) as drafts, one transaction each.

    Example: vetpro import application.json inbox/
    """
    from ..intake.filing import documents, import_many, import_one

    run = env()
    files = documents(list(paths))
    with run.database() as db:
        if len(files) == 1 and not files[0].is_dir() and len(paths) == 1 and not paths[0].is_dir():
            done = import_one(db, files[0], clock=run.clock, allow_duplicate=allow_duplicate)
            emit(
                as_json,
                done,
                lambda d: (
                    f"imported application {d['application']} with mobilities "
                    f"{', '.join(map(str, d['mobilities']))}"
                ),
            )
            return
        if not files:
            raise InvalidInput(f"no *.json documents in {', '.join(map(str, paths))}")
        with _progress(len(files)) as advance:
            outcome = import_many(
                db, files, clock=run.clock, allow_duplicate=allow_duplicate, advance=advance
            )
    emit(as_json, {"imported": outcome.imported, "refused": outcome.refused}, _import_text)
    if outcome.refused:
        sys.exit(1)


def _import_text(d: dict[str, Any]) -> str:
    lines = [f"imported {len(d['imported'])} document(s), refused {len(d['refused'])}"]
    lines += [f"  ok      {i['file']}: application {i['application']}" for i in d["imported"]]
    lines += [f"  refused {r['file']}: {r['error']}" for r in d["refused"]]
    return "\n".join(lines)


class _progress:
    """A progress bar on a terminal's stderr (stdout stays the summary); nothing otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar: Any = None

    def __enter__(self) -> Any:
        if not sys.stderr.isatty():
            return None
        self.bar = click.progressbar(length=self.total, label="importing", file=sys.stderr)
        self.bar.__enter__()
        return lambda: self.bar.update(1)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


@app.command()
@click.argument("name", type=click.Choice(["application", "call"]))
def example(name: str) -> None:
    """Print an example document: the example application, or its call.

    Example: vetpro example call > call.json
    """
    from importlib import resources

    text = resources.files("vetpro_workflow").joinpath(f"examples/{name}.json").read_text()
    click.echo(text, nl=False)


@case.command("amend")
@click.argument("case_id", metavar="ID", type=int)
@click.argument("path", metavar="FILE", type=click.Path(path_type=Path))
@click.option("--actor", required=True, metavar="EMAIL", help="The application's coordinator.")
@click.option(
    "--if-version",
    type=int,
    help="Refuse (exit 3) unless the application is still at this version.",
)
@today_option
@json_option
def case_amend(
    case_id: int, path: Path, actor: str, if_version: int | None, today: str | None, as_json: bool
) -> None:
    """Replace a drafted application's content with a document's (mobilities added, changed or
    removed); the history records what changed, field by field.

    Example: vetpro case amend 1 application-v2.json --actor anna.huber@bbz-steyr.example
    """
    from ..intake.amending import amend
    from ..intake.documents import read_file
    from ..store.users import resolve

    run = env()
    doc = read_file(path)
    with run.transaction(write=True) as tx:
        done = amend(
            tx,
            case_id,
            doc,
            actor=resolve(tx, actor),
            clock=run.clock,
            staff_email=run.settings.staff_email,
            expected_version=if_version,
        )
    emit(
        as_json,
        done,
        lambda d: (
            f"application {d['application']} amended (version {d['version']}):\n"
            + "\n".join(f"  {k}: {v[0]!r} -> {v[1]!r}" for k, v in d["changes"].items())
        ),
    )
