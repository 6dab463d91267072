"""The daily deadline sweep: what fell due since the last sweep, found with set-based queries.

It fires the system's own trigger (a mobility abroad returns on its planned end date, through
`cases.apply` like any other move) and enqueues each reminder of `deadlines.RULES` once: the
outbox key makes a second run, or a run after an interrupted one, harmless. A sweep that did not
run for some days catches up from the day after the last one it recorded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, Select, and_, false, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from . import dossiers
from .actors import SYSTEM
from .cases import apply, apply_each
from .clock import Clock
from .db import reading, write_connection, writing
from .deadlines import RULES, Rule, anchor_window, reminder_context, reminder_key
from .errors import ConflictError, TransitionRefused
from .models import Application, Call, Case, Mobility, Organisation, Outbox, SweepRun, User

BRUSSELS = ZoneInfo("Europe/Brussels")


@dataclass
class SweepReport:
    """What a sweep did (or, dry, would do) on a day."""

    day: date
    since: date
    reminders: int = 0
    transitions: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)
    planned: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "day": self.day.isoformat(),
            "since": self.since.isoformat(),
            "reminders": self.reminders,
            "transitions": self.transitions,
            "by_rule": dict(sorted(self.by_rule.items())),
        }
        if self.planned:
            out["planned"] = self.planned
        return out


def last_swept(engine: Engine) -> date | None:
    """The last day a sweep recorded."""
    with reading(engine) as session:
        return session.execute(select(func.max(SweepRun.day))).scalar_one_or_none()


def _returns(engine: Engine, today: date) -> list[tuple[int, date]]:
    """Mobilities abroad whose planned end date has come."""
    with reading(engine) as session:
        query = (
            select(Case.id, Mobility.end_date)
            .join(Mobility, Mobility.id == Case.id)
            .where(Case.kind == "mobility", Case.state == "abroad", Mobility.end_date <= today)
            .order_by(Mobility.end_date, Case.id)
        )
        return [(row.id, row.end_date) for row in session.connection().execute(query)]


def _applications() -> Select[Any]:
    return (
        select(
            Case.id,
            Case.state,
            Application.id.label("application_id"),
            Application.title.label("project_title"),
            Application.start_date,
            Application.end_date,
            Organisation.name.label("applicant_name"),
            User.name.label("coordinator_name"),
            User.email.label("coordinator_email"),
            Call.application_deadline.label("deadline"),
        )
        .join(Application, Application.id == Case.id)
        .join(Organisation, Organisation.id == Application.applicant_id)
        .join(User, User.id == Application.coordinator_id)
        .join(Call, Call.id == Application.call_id)
    )


def _due_rows(engine: Engine, r: Rule, since: date, today: date) -> list[Any]:
    """The cases a rule reminds of on any of its days after `since` up to `today`: one query."""
    windows = [anchor_window(offset, since, today) for offset in r.offsets]
    if r.kind == "mobility":
        m = Mobility.__table__  # type: ignore[attr-defined]
        column = {"start": m.c.start_date, "end": m.c.end_date, "returned": m.c.returned_on}[
            r.anchor
        ]
        query = dossiers.mobility_rows().where(
            or_(*(column.between(lo, hi) for lo, hi in windows)), Case.state.in_(r.states)
        )
        if r.condition == "preparation_missing":
            query = query.where(
                m.c.language_preparation.is_(True),
                or_(m.c.preparation_done.is_(None), m.c.preparation_done.is_(false())),
            )
        elif r.condition == "report_missing":
            query = query.where(m.c.participant_report_on.is_(None))
    else:
        query = _applications().where(Case.kind == "application", Case.state.in_(r.states))
        if r.anchor == "deadline":  # a call's deadline day is a day in Brussels
            spans = [
                and_(
                    Call.application_deadline >= datetime.combine(lo, time(0), tzinfo=BRUSSELS),
                    Call.application_deadline
                    < datetime.combine(hi + timedelta(days=1), time(0), tzinfo=BRUSSELS),
                )
                for lo, hi in windows
            ]
            with reading(engine) as session:  # a handful of calls: most days, none
                calls = session.execute(select(Call.id).where(or_(*spans))).scalars().all()
            if not calls:
                return []
            query = query.where(Application.call_id.in_(calls))
        else:
            column = {"start": Application.start_date, "end": Application.end_date}[r.anchor]
            query = query.where(or_(*(column.between(lo, hi) for lo, hi in windows)))
    with reading(engine) as session:
        return list(session.connection().execute(query).mappings())


def _anchor(r: Rule, row: Any) -> date:
    if r.anchor == "deadline":
        return row["deadline"].astimezone(BRUSSELS).date()  # type: ignore[no-any-return]
    if r.anchor == "returned":
        return row["fact_returned_on"]  # type: ignore[no-any-return]
    return row["start_date"] if r.anchor == "start" else row["end_date"]  # type: ignore[no-any-return]


def _notices(
    r: Rule, rows: list[Any], *, since: date, today: date, now: datetime, staff_email: str
) -> list[dict[str, Any]]:
    """One outbox row per case and reminder day that fell due in the window."""
    notices = []
    for row in rows:
        anchor = _anchor(r, row)
        context = reminder_context(r, dict(row), anchor=anchor, today=today)
        to = {"participant": row.get("participant_email"), "staff": staff_email}.get(
            r.to, row["coordinator_email"]
        )
        due = date.fromisoformat(context["due_date"])
        for offset in r.offsets:
            lo, hi = anchor_window(offset, since, today)
            if not lo <= anchor <= hi:
                continue
            notices.append(
                {
                    "key": reminder_key(row["id"], r, due, offset),
                    "case_id": row["id"],
                    "kind": r.notice,
                    "recipient": to,
                    "cc": row["coordinator_email"] if offset in r.cc_coordinator_at else None,
                    "context": context,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
    return notices


def _enqueue(engine: Engine, notices: list[dict[str, Any]]) -> int:
    """Insert reminders, skipping any whose key is already in the outbox; how many were new."""
    if not notices:
        return 0
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    table = Outbox.__table__  # type: ignore[attr-defined]
    statement = (
        dialect.insert(table).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.id)
    )
    with write_connection(engine) as db:
        return len(db.execute(statement, notices).all())


def _not_yet_queued(engine: Engine, notices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = [n["key"] for n in notices]
    with reading(engine) as session:
        queued = set(session.execute(select(Outbox.key).where(Outbox.key.in_(keys))).scalars())
    return [n for n in notices if n["key"] not in queued]


def window_start(engine: Engine, today: date, since: date | None = None) -> date:
    """The last day already swept: the last recorded sweep's, or yesterday on a first run."""
    if since is not None:
        return since
    last = last_swept(engine)
    yesterday = today - timedelta(days=1)
    return min(last, yesterday) if last else yesterday


RETURN_BATCH = 500


def sweep_returns(
    engine: Engine, *, clock: Clock, staff_email: str, dry_run: bool = False
) -> tuple[int, list[dict[str, Any]]]:
    """Return every mobility abroad whose planned end date has come (system trigger)."""
    due = _returns(engine, clock.today)
    if dry_run:
        return len(due), [
            {"case_id": case_id, "trigger": "return_home", "on": str(end)} for case_id, end in due
        ]
    moved = 0
    for start in range(0, len(due), RETURN_BATCH):
        batch = due[start : start + RETURN_BATCH]
        try:
            with writing(engine) as session:
                apply_each(
                    session=session,
                    trigger="return_home",
                    clock=clock,
                    staff_email=staff_email,
                    cases=[(case_id, {"returned_on": end}) for case_id, end in batch],
                )
            moved += len(batch)
        except (ConflictError, TransitionRefused):
            moved += _return_one_by_one(engine, batch, clock=clock, staff_email=staff_email)
    return moved, []


def _return_one_by_one(
    engine: Engine, batch: list[tuple[int, date]], *, clock: Clock, staff_email: str
) -> int:
    """Someone moved one of the batch meanwhile: return the others one at a time."""
    moved = 0
    for case_id, end in batch:
        try:
            with writing(engine) as session:
                apply(
                    session=session,
                    case_id=case_id,
                    trigger="return_home",
                    actor=SYSTEM,
                    clock=clock,
                    facts={"returned_on": end},
                    staff_email=staff_email,
                )
            moved += 1
        except (ConflictError, TransitionRefused):
            continue  # someone recorded the return meanwhile: nothing left to do
    return moved


def sweep_rule(
    engine: Engine,
    r: Rule,
    *,
    since: date,
    clock: Clock,
    staff_email: str,
    dry_run: bool = False,
) -> tuple[int, list[dict[str, Any]]]:
    """Enqueue one rule's reminders that fell due after `since`; how many were new."""
    rows = _due_rows(engine, r, since, clock.today)
    notices = _notices(
        r, rows, since=since, today=clock.today, now=clock.now, staff_email=staff_email
    )
    if not dry_run:
        return _enqueue(engine, notices), []
    notices = _not_yet_queued(engine, notices)
    planned = [
        {"case_id": n["case_id"], "rule": r.name, "to": n["recipient"], "key": n["key"]}
        for n in notices
    ]
    return len(notices), planned


def record_sweep(engine: Engine, report: SweepReport, *, clock: Clock) -> None:
    """Remember the day swept, so the next sweep catches up from the day after."""
    with writing(engine) as session:
        session.add(
            SweepRun(
                day=report.day,
                since=report.since,
                started_at=clock.now,
                finished_at=clock.now,
                reminders=report.reminders,
                transitions=report.transitions,
                by_rule=dict(report.by_rule),
            )
        )
        session.commit()


def sweep(
    engine: Engine,
    *,
    clock: Clock,
    staff_email: str,
    since: date | None = None,
    dry_run: bool = False,
) -> SweepReport:
    """Sweep the days after the last sweep (or `since`) up to the clock's today."""
    report = SweepReport(day=clock.today, since=window_start(engine, clock.today, since))
    report.transitions, report.planned = sweep_returns(
        engine, clock=clock, staff_email=staff_email, dry_run=dry_run
    )
    for r in RULES:
        count, planned = sweep_rule(
            engine, r, since=report.since, clock=clock, staff_email=staff_email, dry_run=dry_run
        )
        report.reminders += count
        report.planned += planned
        if count:
            report.by_rule[r.name] += count
    if not dry_run:
        record_sweep(engine, report, clock=clock)
    return report
