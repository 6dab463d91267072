"""What every `vetpro` command shares: the app, its options, the store and the output.

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
from typing import Annotated, Any

import typer
from sqlalchemy import Engine, inspect
from sqlalchemy.exc import OperationalError
from sqlmodel import Session
from typer.core import TyperGroup

from ..clock import Clock
from ..config import Settings, get_settings
from ..errors import InvalidInput, VetproError

JsonOpt = Annotated[bool, typer.Option("--json", help="Print exactly one JSON document.")]


class _Group(TyperGroup):
    """Turns every refusal into one `error:` line and an exit code, never a traceback."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except VetproError as exc:
            fail(str(exc), exc.exit_code)
        except typer.TyperException as exc:  # usage errors: unknown option, missing argument…
            ctx = getattr(exc, "ctx", None)
            if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
                typer.echo(ctx.get_help())
                sys.exit(0)
            format_message = getattr(exc, "format_message", None)
            fail(format_message() if format_message else str(exc), getattr(exc, "exit_code", 2))
        except typer.Abort:
            fail("aborted", 1)
        except OperationalError as exc:
            fail(f"the database cannot be used: {exc.orig}", 1)
        sys.exit(code if isinstance(code, int) else 0)


def fail(message: str, code: int) -> None:
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
outbox_app = typer.Typer(cls=_Group, no_args_is_help=True, help="See and send the mail.")
app.add_typer(case_app, name="case")
app.add_typer(user_app, name="user")
app.add_typer(outbox_app, name="outbox")


@dataclass
class Env:
    """What every command needs: the settings and the clock."""

    settings: Settings
    clock: Clock


def parse_today(value: str | None) -> date | datetime | None:
    """A --today value: a day (YYYY-MM-DD) or an exact instant."""
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
    day = parse_today(today)
    if isinstance(day, datetime):
        clock = Clock.at(day if day.tzinfo else day.astimezone())
    else:
        clock = Clock.from_today(day or settings.today)
    ctx.obj = Env(settings=settings, clock=clock)


def env_of(ctx: typer.Context) -> Env:
    """The settings and clock of this run."""
    root = ctx.find_root()
    assert isinstance(root.obj, Env)
    return root.obj


def open_engine(env: Env, *, create: bool = False) -> Engine:
    """The store's engine; refuses a database that was never initialised (unless creating)."""
    from ..db import create_schema, make_engine

    engine = make_engine(env.settings.database_url)
    if create:
        create_schema(engine)
    elif not inspect(engine).has_table("case"):
        raise InvalidInput(
            f"the database {env.settings.database_url} has no tables yet; run 'vetpro init' first"
        )
    return engine


@contextmanager
def session_for(env: Env, *, write: bool) -> Iterator[Session]:
    """A session on the store for one command."""
    from ..db import reading, writing

    engine = open_engine(env)
    try:
        with (writing if write else reading)(engine) as session:
            yield session
    finally:
        engine.dispose()


def emit(as_json: bool, data: Any, human: Callable[[Any], str]) -> None:
    if as_json:
        typer.echo(json.dumps(data, default=str, ensure_ascii=False, indent=2))
    else:
        typer.echo(human(data))
