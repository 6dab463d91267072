"""The commands of the calendar: sweep, dispatch, nightly, serve, and the demo.

They do the work in this process and answer at once. When PREFECT_API_URL names a Prefect
server, sweep, dispatch and nightly run as flow runs of that server instead (and say so), so that
its UI shows them; `serve` serves the scheduled deployments to it.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import click

from ..errors import InvalidInput
from ..states.calendar import out_of_range
from .app import app, emit, env, json_option, today_option


def _since(since: str | None, today: date) -> date | None:
    """The --since day: a date before the day swept."""
    if since is None:
        return None
    try:
        day = date.fromisoformat(since)
    except ValueError:
        raise InvalidInput(f"--since: {since!r} is not a date; use YYYY-MM-DD") from None
    if day >= today:
        raise InvalidInput(f"--since: {since} is not before the day swept ({today})")
    if problem := out_of_range(day):
        raise InvalidInput(f"--since: {problem}")
    return day


def _prefect_jobs() -> Any:
    """The flows, with this run's settings, on the Prefect server PREFECT_API_URL names."""
    from ..flows import quiet_prefect

    quiet_prefect(env().settings.prefect_home)
    from ..flows.jobs import build

    return build(env().settings)


def _on_server() -> str | None:
    from ..flows import server_url

    return server_url()


def _sweep_text(d: dict[str, Any]) -> str:
    if d.get("busy"):
        return f"another sweep is running ({d['busy']}); this one did nothing"
    lines = [
        f"swept {d['since']} (exclusive) to {d['day']}: {d['transitions']} move(s), "
        f"{d['reminders']} reminder(s)"
    ]
    lines += [f"  {rule:<20} {count}" for rule, count in d["by_rule"].items()]
    for p in d.get("planned", []):
        if "trigger" in p:
            lines.append(f"  would return  case {p['case_id']} (planned end {p['on']})")
        else:
            lines.append(
                f"  would remind  case {p['case_id']}: {p['rule']} to {p['to']}, due {p['due']}"
            )
    if d.get("flow_run"):
        lines.append(f"  ran as Prefect flow run on {d['flow_run']}")
    return "\n".join(lines)


@app.command()
@click.option("--dry-run", is_flag=True, help="List what would be done; write nothing.")
@click.option(
    "--since", metavar="DAY", help="Sweep the days after this one (default: the last sweep's day)."
)
@today_option
@json_option
def sweep(dry_run: bool, since: str | None, today: str | None, as_json: bool) -> None:
    """Run the deadline sweep for today (see --today): returns due, reminders once each.

    Example: vetpro sweep --today 2027-09-24 --dry-run
    """
    from ..sweeps import sweep as run_sweep

    run = env()
    start = _since(since, run.clock.today)
    with run.database():
        pass  # refuse an uninitialised store before any work
    if server := _on_server():
        report = _prefect_jobs().deadline_sweep(today=run.clock.today, since=start, dry_run=dry_run)
        report["flow_run"] = server
    else:
        from ..store.database import Database

        with Database(run.settings.database_url) as db:
            report = run_sweep(
                db,
                clock=run.clock,
                staff_email=run.settings.staff_email,
                since=start,
                dry_run=dry_run,
            ).as_json()
    emit(as_json, report, _sweep_text)


def _mail_text(d: dict[str, Any]) -> str:
    text = (
        f"mail: sent {d['sent']}, retrying {d['retrying']}, "
        f"undeliverable {d['undeliverable']}, pending {d['pending']}"
    )
    return text + (f" (ran as Prefect flow run on {d['flow_run']})" if d.get("flow_run") else "")


@app.command()
@today_option
@json_option
def dispatch(today: str | None, as_json: bool) -> None:
    """Send the due mail from the outbox (times are real time; --today changes nothing here).

    Example: vetpro dispatch
    """
    run = env()
    with run.database() as db:
        if server := _on_server():
            totals = _prefect_jobs().dispatch_notifications() | {"flow_run": server}
        else:
            from ..notifications.delivery import send_pending

            totals = send_pending(db, run.settings).as_json()
    emit(as_json, totals, _mail_text)


@app.command()
@today_option
@json_option
def nightly(today: str | None, as_json: bool) -> None:
    """The night's work: the sweep, the staff digest, then the mail.

    Example: vetpro nightly --today 2027-10-01
    """
    run = env()
    if server := _on_server():
        with run.database():
            pass
        result = _prefect_jobs().nightly(today=run.clock.today) | {"flow_run": server}
    else:
        from ..notifications.delivery import send_pending
        from ..notifications.digest import enqueue_digest
        from ..sweeps import sweep as run_sweep

        s = run.settings
        with run.database() as db:
            swept = run_sweep(db, clock=run.clock, staff_email=s.staff_email).as_json()
            with db.transaction() as tx:
                digest_id = enqueue_digest(tx, today=run.clock.today, staff_email=s.staff_email)[0]
            sent = send_pending(db, s).as_json()
        result = {"sweep": swept, "digest": digest_id, "dispatch": sent}
    emit(
        as_json,
        result,
        lambda d: (
            _sweep_text(d["sweep"])
            + "\n"
            + _mail_text(d["dispatch"] | {"flow_run": d.get("flow_run")})
        ),
    )


@app.command()
@click.option(
    "--sweep-cron",
    default="0 6 * * *",
    show_default=True,
    help="When the daily sweep runs (cron, Brussels time).",
)
@click.option(
    "--dispatch-every",
    default=60,
    show_default=True,
    type=click.IntRange(5, 86_400),
    help="Seconds between two dispatches of the mail.",
)
def serve(sweep_cron: str, dispatch_every: int) -> None:
    """Serve the scheduled deployments to the Prefect server PREFECT_API_URL names
    (daily sweep 06:00 Brussels, dispatch every minute), until stopped.

    Example: PREFECT_API_URL=http://prefect.agency.example:4200/api vetpro serve
    """
    run = env()
    with run.database():
        pass
    if not _on_server():
        raise InvalidInput(
            "PREFECT_API_URL names no Prefect server; start one ('prefect server start') and "
            "set PREFECT_API_URL=http://HOST:4200/api"
        )
    from ..flows import quiet_prefect

    quiet_prefect(run.settings.prefect_home)
    from ..flows.deployments import serve as serve_deployments

    serve_deployments(sweep_cron=sweep_cron, dispatch_seconds=dispatch_every)


@app.command()
@click.option(
    "--dir",
    "workdir",
    default=".demo",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where the demo keeps its database and mail.",
)
@click.option(
    "--no-prefect", is_flag=True, help="Run the morning sweeps in this process, without Prefect."
)
@json_option
def demo(workdir: Path, no_prefect: bool, as_json: bool) -> None:
    """Import the example application and walk it through every state, printing the story.

    Example: vetpro demo --dir /tmp/demo
    """
    from ..dev.demo import run_demo

    story = run_demo(workdir, prefect=not no_prefect, echo=None if as_json else click.echo)
    if as_json:
        emit(True, story.as_json(), str)
    else:
        click.echo(story.summary())
