"""The daily deadline sweep: what fell due since the last sweep, done once.

It returns each mobility abroad on its planned end date (the system's `return_home`, through the
same write path as every move) and enqueues each reminder of `states.deadlines.RULES` once: the
outbox keys make a second run, or a run after an interrupted one, harmless. A sweep that did not
run for some days catches up from the day after the last one it recorded.

This is the one orchestration of that work: the command runs it in-process, and the Prefect flow
runs the same function with a `run` that turns each step into a task run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from .cases import advance_each
from .clock import Clock, real_now
from .notifications.outbox import enqueue
from .states.deadlines import RULES, Rule, reminders
from .store import due, leases
from .store.database import Database
from .store.schema import optimize
from .store.snapshots import load_projects

RETURN_BATCH = 500
LEASE = timedelta(hours=1)  # longer than any sweep; a crashed one frees the sweep after it
Step = Callable[..., Any]
Runner = Callable[..., Any]  # run(name, step, *args) -> what step(*args) returns


def run_here(name: str, step: Step, *args: Any) -> Any:
    """Run a step of the sweep in this process."""
    return step(*args)


@dataclass
class SweepReport:
    """What a sweep did (or, dry, would do) on a day."""

    day: date
    since: date
    reminders: int = 0
    transitions: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)
    planned: list[dict[str, Any]] = field(default_factory=list)
    busy: str | None = None  # another sweep was running: who, and until when at the latest

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "day": self.day.isoformat(),
            "since": self.since.isoformat(),
            "busy": self.busy,
            "reminders": self.reminders,
            "transitions": self.transitions,
            "by_rule": dict(sorted(self.by_rule.items())),
        }
        if self.planned:
            out["planned"] = self.planned
        return out


def window_start(db: Database, today: date, since: date | None = None) -> date:
    """The last day already swept: the last recorded sweep's, or yesterday on a first run."""
    if since is not None:
        return since
    with db.transaction(write=False) as tx:
        last = tx.scalar("SELECT max(day) FROM sweep_run")
    yesterday = today - timedelta(days=1)
    if last is None:
        return yesterday
    return min(date.fromisoformat(str(last)[:10]), yesterday)


def return_due(
    db: Database, clock: Clock, staff_email: str, dry_run: bool
) -> tuple[int, list[dict[str, Any]]]:
    """Return every mobility abroad whose planned end date has come (the system's trigger)."""
    with db.transaction(write=False) as tx:
        found = due.returns_due(tx, clock.today)
    if dry_run:
        return len(found), [
            {"case_id": case_id, "trigger": "return_home", "on": str(end)} for case_id, end in found
        ]
    moved = 0
    for start in range(0, len(found), RETURN_BATCH):
        batch = found[start : start + RETURN_BATCH]
        with db.transaction() as tx:
            done = advance_each(
                tx,
                [(case_id, {"returned_on": end}) for case_id, end in batch],
                trigger="return_home",
                clock=clock,
                staff_email=staff_email,
                note="returned by the daily sweep on the planned end date",
            )
        moved += len(done.decisions)
    return moved, []


def remind(
    db: Database, r: Rule, since: date, clock: Clock, staff_email: str, dry_run: bool
) -> tuple[int, list[dict[str, Any]]]:
    """Enqueue one rule's reminders that fell due after `since`; how many were new."""
    with db.transaction(write=not dry_run) as tx:
        rows = due.reminders_due(tx, r, since=since, today=clock.today)
        projects = {p.id: p for p in load_projects(tx, {row["project"] for row in rows})}
        notices = [
            notice
            for row in rows
            for notice in reminders(
                r,
                projects[row["project"]],
                projects[row["project"]].case(row["id"]),  # type: ignore[arg-type]
                row["anchor"],
                since=since,
                today=clock.today,
                now=clock.now,
                staff_email=staff_email,
            )
        ]
        if not dry_run:
            return enqueue(tx, notices, now=real_now()), []
        already = due.queued(tx, [n.key for n in notices])
    planned = [
        {
            "case_id": n.case_id,
            "rule": r.name,
            "to": n.recipient,
            "due": n.context["due_date"],
            "key": n.key,
        }
        for n in notices
        if n.key not in already
    ]
    return len(planned), planned


def record(db: Database, report: SweepReport, started: datetime) -> None:
    """Remember the day swept, so that the next sweep catches up from the day after."""
    with db.transaction() as tx:
        tx.execute(
            "INSERT INTO sweep_run (day, since, started_at, finished_at, reminders, transitions, "
            "by_rule) VALUES (:day, :since, :started, :finished, :reminders, :transitions, "
            ":by_rule)",
            {
                "day": report.day,
                "since": report.since,
                "started": started,
                "finished": real_now(),
                "reminders": report.reminders,
                "transitions": report.transitions,
                "by_rule": dict(report.by_rule),
            },
        )


def sweep(
    db: Database,
    *,
    clock: Clock,
    staff_email: str,
    since: date | None = None,
    dry_run: bool = False,
    run: Runner = run_here,
) -> SweepReport:
    """Sweep the days after the last sweep (or `since`) up to the clock's business day.

    Only one sweep runs at a time, on any number of machines: a second one finds the lease
    taken and does nothing (a dry run needs no lease).
    """
    started, holder = real_now(), leases.me()
    day = clock.today
    if not dry_run:
        with db.transaction() as tx:
            busy = leases.take(tx, "sweep", holder=holder, now=started, length=LEASE)
        if busy is not None:
            return SweepReport(day=day, since=day, busy=busy)
    try:
        return _sweep(db, clock, staff_email, since, dry_run, run, started)
    finally:
        if not dry_run:
            with db.transaction() as tx:
                leases.give_back(tx, "sweep", holder=holder)


def _sweep(
    db: Database,
    clock: Clock,
    staff_email: str,
    since: date | None,
    dry_run: bool,
    run: Runner,
    started: datetime,
) -> SweepReport:
    day = clock.today
    report = SweepReport(day=day, since=run("find the days to sweep", window_start, db, day, since))
    report.transitions, report.planned = run(
        f"return mobilities due by {day}", return_due, db, clock, staff_email, dry_run
    )
    for r in RULES:
        count, planned = run(
            f"remind: {r.name}", remind, db, r, report.since, clock, staff_email, dry_run
        )
        report.reminders += count
        report.planned += planned
        if count:
            report.by_rule[r.name] += count
    if not dry_run:
        run(f"record the sweep of {day}", record, db, report, started)
        optimize(db)
    return report
