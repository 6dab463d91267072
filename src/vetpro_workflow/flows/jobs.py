"""The flows: deadline_sweep, dispatch_notifications, advance_case and nightly."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow

from ..clock import Clock
from ..config import get_settings
from ..db import make_engine, writing
from ..deadlines import RULES
from ..sweep import SweepReport
from .tasks import digest, record, remind, return_mobilities, send_batch, sweep_window


def _today(day: date | None) -> date:
    return day or get_settings().today or Clock.real().today


@flow(name="deadline-sweep", flow_run_name="sweep {today}", log_prints=False)
def deadline_sweep(
    today: date | None = None, since: date | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Find what fell due since the last sweep: return mobilities, enqueue reminders once."""
    day = _today(today)
    report = SweepReport(day=day, since=sweep_window(day, since))
    report.transitions, report.planned = return_mobilities(day, dry_run)
    for r in RULES:
        count, planned = remind(r.name, report.since, day, dry_run)
        report.reminders += count
        report.planned += planned
        if count:
            report.by_rule[r.name] += count
    if not dry_run:
        record(report)
    return report.as_json()


@flow(name="dispatch-notifications", flow_run_name="dispatch", log_prints=False)
def dispatch_notifications(today: date | None = None) -> dict[str, int]:
    """Drain the outbox, one task per batch, until nothing due is left to send."""
    totals = {"sent": 0, "retrying": 0, "undeliverable": 0, "pending": 0}
    number = 1
    while True:
        tally = send_batch(number, today)
        for key in ("sent", "retrying", "undeliverable"):
            totals[key] += tally[key]
        totals["pending"] = tally["pending"]
        if tally["sent"] + tally["retrying"] + tally["undeliverable"] == 0:
            return totals
        number += 1


@flow(name="advance-case", flow_run_name="{trigger} case {case_id}", log_prints=False)
def advance_case(
    case_id: int,
    trigger: str,
    actor: str,
    facts: dict[str, Any] | None = None,
    note: str | None = None,
    today: date | None = None,
) -> list[dict[str, Any]]:
    """Fire a trigger on a case through the service, for automation and the Prefect UI."""
    from ..cases import apply

    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        with writing(engine) as session:
            moves = apply(
                session=session,
                case_id=case_id,
                trigger=trigger,
                actor=actor,
                clock=Clock.from_today(today or settings.today),
                facts=facts or {},
                note=note,
                staff_email=settings.staff_email,
            )
    finally:
        engine.dispose()
    return [m.__dict__ for m in moves]


@flow(name="nightly", flow_run_name="nightly {today}", log_prints=False)
def nightly(today: date | None = None) -> dict[str, Any]:
    """The agency's night: sweep, the staff digest, then send the mail."""
    day = _today(today)
    swept = deadline_sweep(day)
    digest_id = digest(day)
    sent = dispatch_notifications(day)
    return {"sweep": swept, "digest": digest_id, "dispatch": sent}
