"""The `vetpro` command line used by NA staff and coordinators.

Errors become one `error:` line on stderr and an exit code here and nowhere else:
1 refused (guard, role, unknown trigger, bad input), 2 usage, 3 conflict.
Commands that run no flow never import Prefect, so they answer at once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import Engine, inspect
from sqlalchemy.exc import OperationalError
from sqlmodel import Session
from typer.core import TyperGroup

from .clock import Clock
from .config import Settings, get_settings
from .errors import InvalidInput, VetproError

JsonOpt = Annotated[bool, typer.Option("--json", help="Print exactly one JSON document.")]


class _Group(TyperGroup):
    """Turns every refusal into one `error:` line and an exit code, never a traceback."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except VetproError as exc:
            _fail(str(exc), exc.exit_code)
        except typer.TyperException as exc:  # usage errors: unknown option, missing argument…
            ctx = getattr(exc, "ctx", None)
            if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
                typer.echo(ctx.get_help())
                sys.exit(0)
            format_message = getattr(exc, "format_message", None)
            _fail(format_message() if format_message else str(exc), getattr(exc, "exit_code", 2))
        except typer.Abort:
            _fail("aborted", 1)
        except OperationalError as exc:
            _fail(f"the database cannot be used: {exc.orig}", 1)
        sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    sys.exit(code)


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="VETPRO mobility case management.",
)
case_app = typer.Typer(cls=_Group, no_args_is_help=True, help="Read and advance cases.")
user_app = typer.Typer(cls=_Group, no_args_is_help=True, help="Register staff and coordinators.")
app.add_typer(case_app, name="case")
app.add_typer(user_app, name="user")


@dataclass
class Env:
    """What every command needs: the settings and the clock."""

    settings: Settings
    clock: Clock


def _parse_today(value: str | None) -> date | datetime | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"--today: {value!r} is not a date; use YYYY-MM-DD") from None


@app.callback()
def _options(
    ctx: typer.Context,
    today: Annotated[
        str | None,
        typer.Option(
            "--today", help="Act as if today were this day (YYYY-MM-DD); also VETPRO_TODAY."
        ),
    ] = None,
) -> None:
    settings = get_settings()
    day = _parse_today(today)
    if isinstance(day, datetime):
        clock = Clock.at(day if day.tzinfo else day.astimezone())
    else:
        clock = Clock.from_today(day or settings.today)
    ctx.obj = Env(settings=settings, clock=clock)


def _env(ctx: typer.Context) -> Env:
    root = ctx.find_root()
    assert isinstance(root.obj, Env)
    return root.obj


def _engine(env: Env, *, create: bool = False) -> Engine:
    from .db import create_schema, make_engine

    engine = make_engine(env.settings.database_url)
    if create:
        create_schema(engine)
    elif not inspect(engine).has_table("case"):
        raise InvalidInput(
            f"the database {env.settings.database_url} has no tables yet; run 'vetpro init' first"
        )
    return engine


@contextmanager
def _session(env: Env, *, write: bool) -> Iterator[Session]:
    from .db import reading, writing

    engine = _engine(env)
    try:
        with (writing if write else reading)(engine) as session:
            yield session
    finally:
        engine.dispose()


def _emit(as_json: bool, data: Any, human: Callable[[Any], str]) -> None:
    if as_json:
        typer.echo(json.dumps(data, default=str, ensure_ascii=False, indent=2))
    else:
        typer.echo(human(data))


@app.command()
def init(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Create the database and its tables (harmless when they exist)."""
    env = _env(ctx)
    _engine(env, create=True).dispose()
    _emit(
        as_json,
        {"database": env.settings.database_url, "ready": True},
        lambda d: f"database ready: {d['database']}",
    )


@app.command("import")
def import_(
    ctx: typer.Context,
    paths: Annotated[
        list[Path], typer.Argument(help="Application documents (JSON), or folders of them.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Import application documents as drafted applications, each in its own transaction."""
    from .imports import import_paths

    env = _env(ctx)
    engine = _engine(env)
    try:
        outcome = import_paths(engine, paths, clock=env.clock, progress=sys.stderr.isatty())
    finally:
        engine.dispose()
    if outcome.single is not None:
        _emit(
            as_json,
            outcome.single,
            lambda d: (
                f"imported application {d['application']} with "
                f"mobilities {', '.join(map(str, d['mobilities']))}"
            ),
        )
        return
    summary = outcome.summary()
    _emit(as_json, summary, lambda d: outcome.human())
    if outcome.refused:
        raise typer.Exit(1)


@user_app.command("add")
def user_add(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The person's email address.")],
    role: Annotated[str, typer.Option("--role", help="staff or coordinator.")],
    org: Annotated[str | None, typer.Option("--org", help="A coordinator's organisation.")] = None,
    name: Annotated[str, typer.Option("--name", help="The person's name.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Register NA staff, or a coordinator of an organisation."""
    from .users import add_user

    with _session(_env(ctx), write=True) as session:
        user = add_user(session, email=email, role=role, organisation=org, name=name)
        data = {
            "id": user.id,
            "email": user.email,
            "role": user.role,
            "organisation_id": user.organisation_id,
        }
    _emit(as_json, data, lambda d: f"registered {d['email']} as {d['role']}")


@case_app.command("list")
def case_list(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option("--kind", help="application or mobility.")] = None,
    state: Annotated[str | None, typer.Option("--state", help="Only cases in this state.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List cases, oldest first."""
    from .records import list_cases

    with _session(_env(ctx), write=False) as session:
        cases = list_cases(session, kind=kind, state=state)
    _emit(as_json, cases, _cases_table)


def _cases_table(cases: list[dict[str, Any]]) -> str:
    if not cases:
        return "no cases"
    lines = [f"{'id':>6}  {'kind':<11}  {'state':<13}  title"]
    lines += [f"{c['id']:>6}  {c['kind']:<11}  {c['state']:<13}  {c['title']}" for c in cases]
    return "\n".join(lines)


@case_app.command("show")
def case_show(
    ctx: typer.Context,
    case_id: Annotated[int, typer.Argument(metavar="ID")],
    as_json: JsonOpt = False,
) -> None:
    """Show a case: its state, the triggers allowed now and the next required step."""
    from .records import show

    with _session(_env(ctx), write=False) as session:
        data = show(session, case_id)
    _emit(as_json, data, _case_text)


def _case_text(c: dict[str, Any]) -> str:
    lines = [
        f"{c['kind'].capitalize()} {c['id']}: {c['title']}",
        f"  state      {c['state']} (version {c['version']})",
        f"  next step  {c['next_step']}",
        f"  allowed    {', '.join(c['allowed_triggers']) or '-'}",
    ]
    if c["facts"]:
        lines.append("  facts      " + ", ".join(f"{k}={v}" for k, v in c["facts"].items()))
    if c["kind"] == "application":
        lines += [
            f"  mobility {m['id']:>4}  {m['state']:<13} {m['participant']} at {m['host']} "
            f"({m['start_date']} to {m['end_date']})"
            for m in c["mobilities"]
        ]
    else:
        lines.append(f"  application {c['application_id']} ({c['application_state']})")
    return "\n".join(lines)


def _facts(pairs: list[str]) -> dict[str, str]:
    facts = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(
                f"--set: {pair!r} is not KEY=VALUE (e.g. --set departed_on=2027-09-06)"
            )
        facts[key.strip()] = value.strip()
    return facts


@case_app.command("advance")
def case_advance(
    ctx: typer.Context,
    case_id: Annotated[int, typer.Argument(metavar="ID")],
    trigger: Annotated[str, typer.Argument(metavar="TRIGGER")],
    actor: Annotated[str, typer.Option("--actor", help="Email of the person firing the trigger.")],
    note: Annotated[
        str | None, typer.Option("--note", help="Free text kept in the history.")
    ] = None,
    sets: Annotated[list[str] | None, typer.Option("--set", help="A fact, KEY=VALUE.")] = None,
    if_version: Annotated[
        int | None,
        typer.Option(
            "--if-version", help="Refuse (exit 3) unless the case is still at this version."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fire a trigger on a case (exit 0 moved, 1 refused, 3 conflict)."""
    from .cases import apply
    from .records import show

    env = _env(ctx)
    facts = _facts(sets or [])
    with _session(env, write=True) as session:
        apply(
            session=session,
            case_id=case_id,
            trigger=trigger,
            actor=actor,
            clock=env.clock,
            facts=facts,
            note=note,
            expected_version=if_version,
            staff_email=env.settings.staff_email,
        )
        data = show(session, case_id)
    _emit(as_json, data, _case_text)


@case_app.command("history")
def case_history(
    ctx: typer.Context,
    case_id: Annotated[int, typer.Argument(metavar="ID")],
    as_json: JsonOpt = False,
) -> None:
    """Every move of a case: who fired which trigger, when, with which note and facts."""
    from .records import history

    with _session(_env(ctx), write=False) as session:
        entries = history(session, case_id)
    _emit(
        as_json,
        entries,
        lambda es: "\n".join(
            f"{e['at'][:10]}  {e['trigger']:<20} {e['source'] or '-':>13} -> {e['dest']:<13} "
            f"{e['actor']}{'  ' + e['note'] if e['note'] else ''}"
            for e in es
        ),
    )


@app.command()
def diagram(
    kind: Annotated[str, typer.Argument(help="application or mobility")],
    as_json: JsonOpt = False,
) -> None:
    """Print the mermaid state diagram of a workflow, drawn from its definition."""
    from .states.workflows import DEFINITIONS, mermaid

    if kind not in DEFINITIONS:
        raise InvalidInput(f"KIND: {kind!r} is not a kind of case; use application or mobility")
    text = mermaid(DEFINITIONS[kind])
    _emit(as_json, {"kind": kind, "mermaid": text}, lambda d: d["mermaid"])


@app.command()
def demo(
    ctx: typer.Context,
    workdir: Annotated[
        Path, typer.Option("--dir", help="Where the demo keeps its database.")
    ] = Path(".demo"),
    as_json: JsonOpt = False,
) -> None:
    """Import the example application and walk it through every state, printing the timeline."""
    from .demo import run_demo

    story = run_demo(workdir)
    _emit(as_json, story.as_json(), lambda _: story.text())


def main() -> None:
    """The console script."""
    app()
