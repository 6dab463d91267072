"""What every `vetpro` command shares: the group, its options, the store and the output.

Built on click directly: typer added a third of a second to every command. Errors become one
`error:` line on stderr and an exit code here and nowhere else: 1 refused (guard, role, unknown
trigger, bad input), 2 usage, 3 conflict. Only the commands that need a library import it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import click

from ..clock import Clock
from ..config import Settings, get_settings
from ..errors import VetproError

if TYPE_CHECKING:
    from ..store.database import Database, Tx

EXAMPLES_EPILOG = (
    "Every command but mail-sink, serve, web and example takes --json; "
    "'vetpro COMMAND --help' shows an example."
)


def fail(message: str, code: int) -> None:
    """Print one `error:` line and exit."""
    click.echo(f"error: {' '.join(str(message).split())}", err=True)
    sys.exit(code)


class Group(click.Group):
    """Turns every refusal into one `error:` line and an exit code, never a traceback."""

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except VetproError as exc:
            fail(str(exc), exc.exit_code)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help())
            sys.exit(0)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            fail("aborted", 1)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except BrokenPipeError:
            sys.exit(0)
        except Exception as exc:
            if os.environ.get("VETPRO_DEBUG"):
                raise
            fail(f"internal error ({type(exc).__name__}: {exc}); VETPRO_DEBUG=1 shows where", 70)
        sys.exit(code if isinstance(code, int) else 0)


@dataclass
class Env:
    """What every command needs: the settings, the clock, and the store when it is opened."""

    today: str | None

    @cached_property
    def settings(self) -> Settings:
        return get_settings()

    @cached_property
    def clock(self) -> Clock:
        if self.today is not None:
            return Clock.parse(self.today)
        return Clock.on(self.settings.today) if self.settings.today else Clock.real()

    @contextmanager
    def database(self, *, require: bool = True) -> Iterator[Database]:
        """The store of VETPRO_DATABASE_URL, refused if it was never initialised."""
        from ..store.database import Database
        from ..store.schema import require_schema

        with Database(self.settings.database_url) as db:
            if require:
                require_schema(db)
            yield db

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Tx]:
        """One transaction on the store."""
        with self.database() as db, db.transaction(write=write) as tx:
            yield tx


def env() -> Env:
    """The settings and clock of this run (a command's own --today wins over the global one)."""
    ctx = click.get_current_context()
    root = ctx.find_root()
    if root.obj is None:
        root.obj = Env(today=None)
    own = ctx.params.get("today")
    if own is None:
        return root.obj
    Clock.parse(own)
    return Env(today=own)


def emit(as_json: bool, data: Any, human: Callable[[Any], str]) -> None:
    """Print the result: one JSON document with --json, else the human text."""
    if as_json:
        click.echo(json.dumps(data, default=str, ensure_ascii=False, indent=2))
    else:
        click.echo(human(data))


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print exactly one JSON document."
)
today_option = click.option(
    "--today",
    metavar="DAY",
    help="Act as if today were this day (YYYY-MM-DD, Brussels), or this instant with its zone.",
)


@click.group(
    cls=Group, epilog=EXAMPLES_EPILOG, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.option(
    "--today",
    metavar="DAY",
    help="Act as if today were this day (YYYY-MM-DD, Brussels time) or instant "
    "(2027-02-01T12:30+01:00); also VETPRO_TODAY.",
)
@click.version_option(package_name="vetpro-workflow", prog_name="vetpro")
@click.pass_context
def app(ctx: click.Context, today: str | None) -> None:
    """VETPRO mobility case management: applications and mobilities, their mail and deadlines."""
    if today is not None:
        Clock.parse(today)  # a wrong --today is refused whatever the command
    ctx.obj = Env(today=today)


@app.group(cls=Group)
def case() -> None:
    """Read and advance cases (applications and mobilities)."""


@app.group(cls=Group)
def user() -> None:
    """Register NA staff and coordinators."""


@app.group(cls=Group)
def outbox() -> None:
    """See and send the mail."""


@app.group(cls=Group)
def call() -> None:
    """The National Agency's calls for proposals."""
