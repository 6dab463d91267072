"""The flows: deadline_sweep, dispatch_notifications, advance_case and nightly.

`build(settings)` makes them for given settings (the demo, the tests, a command); the module-level
flows, which the deployments name, read the settings from the environment of the process that
runs them. Either way the work is `sweeps.sweep`, `delivery.send_pending` and `cases.advance`,
the same functions the commands call without Prefect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from prefect import Flow, flow, task
from prefect.cache_policies import NONE

from ..cases import advance
from ..clock import Clock
from ..config import Settings, get_settings
from ..notifications.delivery import Tally, send_pending
from ..notifications.digest import enqueue_digest
from ..store.database import Database
from ..sweeps import Step, sweep


def as_task(name: str, step: Step, *args: Any) -> Any:
    """Run one step of a service as a task run (retried twice), named for the UI."""
    return task(
        step,
        name=step.__name__,
        task_run_name=name,
        cache_policy=NONE,
        retries=2,
        retry_delay_seconds=5,
    )(*args)


@dataclass(frozen=True)
class Jobs:
    """The four flows, for one set of settings."""

    deadline_sweep: Flow[..., dict[str, Any]]
    dispatch_notifications: Flow[..., dict[str, Any]]
    advance_case: Flow[..., list[dict[str, Any]]]
    nightly: Flow[..., dict[str, Any]]


def _clock(day: date | None, settings: Settings) -> Clock:
    chosen = day or settings.today
    return Clock.on(chosen) if chosen else Clock.real()


def _swept(settings: Settings, day: Clock, since: date | None, dry_run: bool) -> dict[str, Any]:
    with Database(settings.database_url) as db:
        report = sweep(
            db,
            clock=day,
            staff_email=settings.staff_email,
            since=since,
            dry_run=dry_run,
            run=as_task,
        )
    return report.as_json()


def _dispatched(settings: Settings) -> dict[str, Any]:
    totals = {"sent": 0, "retrying": 0, "undeliverable": 0, "lost": 0}
    with Database(settings.database_url) as db:
        number = 1
        while True:
            tally = as_task(f"send mail batch {number}", _send_batch, db, settings)
            for key in totals:
                totals[key] += getattr(tally, key)
            if tally.sent + tally.retrying + tally.undeliverable == 0:
                return tally.as_json() | totals
            number += 1


def _advanced(settings: Settings, day: Clock, **move: Any) -> list[dict[str, Any]]:
    with Database(settings.database_url) as db:
        decision = advance(db, clock=day, staff_email=settings.staff_email, **move)
    return [
        {
            "case_id": c.case_id,
            "trigger": c.trigger,
            "source": c.source,
            "dest": c.dest,
            "version": c.version,
        }
        for c in decision.changes
    ]


def build(settings: Settings | None = None) -> Jobs:
    """The flows, for these settings (None: read them from the environment at each run)."""

    def current() -> Settings:
        return settings or get_settings()

    # The sweep's report is kept with its run, so the Prefect UI shows what it did.
    @flow(name="deadline-sweep", flow_run_name="sweep {today}", persist_result=True)
    def deadline_sweep(
        today: date | None = None, since: date | None = None, dry_run: bool = False
    ) -> dict[str, Any]:
        """Find what fell due since the last sweep: return mobilities, enqueue reminders once."""
        s = current()
        return _swept(s, _clock(today, s), since, dry_run)

    @flow(name="dispatch-notifications", flow_run_name="dispatch")
    def dispatch_notifications() -> dict[str, Any]:
        """Drain the outbox, one task per batch, until nothing due is left to send."""
        return _dispatched(current())

    @flow(name="advance-case", flow_run_name="{trigger} case {case_id}")
    def advance_case(
        case_id: int,
        trigger: str,
        actor: str,
        facts: dict[str, Any] | None = None,
        note: str | None = None,
        today: date | None = None,
    ) -> list[dict[str, Any]]:
        """Fire a trigger on a case through the service, for automation and the Prefect UI."""
        s = current()
        move = {"case_id": case_id, "trigger": trigger, "actor": actor, "facts": facts or {}}
        return _advanced(s, _clock(today, s), note=note, **move)

    @flow(name="nightly", flow_run_name="nightly {today}", persist_result=True)
    def nightly(today: date | None = None) -> dict[str, Any]:
        """The agency's night, as one flow run: the sweep, the staff digest, then the mail."""
        s = current()
        day = _clock(today, s)
        result = _swept(s, day, None, False)
        with Database(s.database_url) as db:
            digest_id = as_task(
                f"staff digest of {day.today}", _digest, db, day.today, s.staff_email
            )
        return {"sweep": result, "digest": digest_id, "dispatch": _dispatched(s)}

    return Jobs(deadline_sweep, dispatch_notifications, advance_case, nightly)


def _send_batch(db: Database, settings: Settings) -> Tally:
    return send_pending(db, settings, limit=settings.mail_batch_size)


def _digest(db: Database, day: date, staff_email: str) -> int | None:
    with db.transaction() as tx:
        return enqueue_digest(tx, today=day, staff_email=staff_email)[0]


# What the deployments run: settings from the environment of the worker or `vetpro serve`.
_FROM_ENVIRONMENT = build()
deadline_sweep = _FROM_ENVIRONMENT.deadline_sweep
dispatch_notifications = _FROM_ENVIRONMENT.dispatch_notifications
advance_case = _FROM_ENVIRONMENT.advance_case
nightly = _FROM_ENVIRONMENT.nightly
