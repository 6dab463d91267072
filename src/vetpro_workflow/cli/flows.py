"""The commands that run Prefect flows: sweep, dispatch, nightly and serve.

Only these import Prefect (after quieting it), so every other command answers at once.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import typer

from .base import JsonOpt, app, emit, env_of, open_engine, parse_today


def _flows(ctx: typer.Context) -> Any:
    from ..flows import quiet_prefect

    open_engine(env_of(ctx)).dispose()  # refuse an uninitialised store before starting Prefect
    quiet_prefect()
    from ..flows import jobs

    return jobs


TodayOpt = Annotated[
    str | None, typer.Option("--today", help="The day to run for (YYYY-MM-DD); as vetpro --today.")
]


def _day(ctx: typer.Context, today: str | None = None) -> date:
    """The command's own --today, else the global one (or the real date)."""
    day = parse_today(today)
    if day is None:
        return env_of(ctx).clock.today
    return day.date() if isinstance(day, datetime) else day


def _sweep_text(d: dict[str, Any]) -> str:
    lines = [
        f"swept {d['since']} (exclusive) to {d['day']}: {d['transitions']} move(s), "
        f"{d['reminders']} reminder(s)"
    ]
    lines += [f"  {rule:<20} {count}" for rule, count in d["by_rule"].items()]
    lines += [
        f"  would {p.get('trigger') or 'remind: ' + p['rule']}  case {p['case_id']}"
        for p in d.get("planned", [])
    ]
    return "\n".join(lines)


@app.command()
def sweep(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, write nothing.")] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Sweep the days after this one (default: the last sweep's day)."
        ),
    ] = None,
    today: TodayOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the deadline sweep as a Prefect flow for today (see --today)."""
    from ..errors import InvalidInput

    try:
        start = date.fromisoformat(since) if since else None
    except ValueError:
        raise InvalidInput(f"--since: {since!r} is not a date; use YYYY-MM-DD") from None
    day = _day(ctx, today)
    jobs = _flows(ctx)
    report = jobs.deadline_sweep(today=day, since=start, dry_run=dry_run)
    emit(as_json, report, _sweep_text)


@app.command()
def dispatch(ctx: typer.Context, today: TodayOpt = None, as_json: JsonOpt = False) -> None:
    """Run the dispatch flow: send the due mail from the outbox."""
    day = _day(ctx, today)
    jobs = _flows(ctx)
    totals = jobs.dispatch_notifications(today=day)
    emit(as_json, totals, lambda d: ", ".join(f"{k} {v}" for k, v in d.items()))


@app.command()
def nightly(ctx: typer.Context, today: TodayOpt = None, as_json: JsonOpt = False) -> None:
    """Run the night's work as one flow: sweep, staff digest, dispatch."""
    day = _day(ctx, today)
    jobs = _flows(ctx)
    result = jobs.nightly(today=day)
    emit(
        as_json,
        result,
        lambda d: (
            _sweep_text(d["sweep"])
            + "\nmail: "
            + ", ".join(f"{k} {v}" for k, v in d["dispatch"].items())
        ),
    )


@app.command()
def serve(ctx: typer.Context) -> None:
    """Serve the scheduled deployments (daily sweep 06:00 Brussels, dispatch every minute)."""
    _flows(ctx)
    from ..flows.deployments import serve as serve_deployments

    serve_deployments()
