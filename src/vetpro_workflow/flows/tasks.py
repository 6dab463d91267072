"""The tasks of the flows: one service call each, with retries and a readable run name."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import task

from ..clock import Clock
from ..config import get_settings
from ..db import make_engine, writing
from ..deadlines import rule
from ..notifications.delivery import send_pending
from ..notifications.digest import enqueue_digest
from ..sweep import SweepReport, record_sweep, sweep_returns, sweep_rule, window_start


def _clock(day: date | None) -> Clock:
    return Clock.from_today(day or get_settings().today)


@task(task_run_name="find the window to sweep up to {day}")
def sweep_window(day: date, since: date | None) -> date:
    """The last day already swept."""
    engine = make_engine(get_settings().database_url)
    try:
        return window_start(engine, day, since)
    finally:
        engine.dispose()


@task(retries=2, retry_delay_seconds=10, task_run_name="return mobilities due by {day}")
def return_mobilities(day: date, dry_run: bool) -> tuple[int, list[dict[str, Any]]]:
    """Move every mobility whose planned end date has come to validation."""
    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        return sweep_returns(
            engine, clock=_clock(day), staff_email=settings.staff_email, dry_run=dry_run
        )
    finally:
        engine.dispose()


@task(retries=2, retry_delay_seconds=10, task_run_name="remind: {name} ({since} to {day})")
def remind(name: str, since: date, day: date, dry_run: bool) -> tuple[int, list[dict[str, Any]]]:
    """Enqueue one rule's reminders that fell due in the window."""
    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        return sweep_rule(
            engine,
            rule(name),
            since=since,
            clock=_clock(day),
            staff_email=settings.staff_email,
            dry_run=dry_run,
        )
    finally:
        engine.dispose()


@task(task_run_name="record the sweep of {report.day}")
def record(report: SweepReport) -> None:
    """Remember the day swept."""
    engine = make_engine(get_settings().database_url)
    try:
        record_sweep(engine, report, clock=_clock(report.day))
    finally:
        engine.dispose()


@task(retries=3, retry_delay_seconds=30, task_run_name="send mail batch {number}")
def send_batch(number: int, day: date | None = None) -> dict[str, int]:
    """Send one batch of due mail."""
    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        tally = send_pending(engine, settings, _clock(day), limit=settings.mail_batch_size)
        return tally.as_json()
    finally:
        engine.dispose()


@task(task_run_name="staff digest of {day}")
def digest(day: date) -> int | None:
    """Enqueue the day's staff digest."""
    settings = get_settings()
    engine = make_engine(settings.database_url)
    clock = _clock(day)
    try:
        with writing(engine) as session:
            return enqueue_digest(
                session, today=clock.today, now=clock.now, staff_email=settings.staff_email
            )
    finally:
        engine.dispose()
