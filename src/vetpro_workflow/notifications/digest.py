"""The daily staff digest: overdue cases and undeliverable mail in one message."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlmodel import Session

from ..models import Application, Case, Mobility, Organisation, Outbox, Participant
from ..states.steps import FINAL_REPORT_DAYS, VALIDATION_DAYS

LIMIT = 200  # per rule: a digest stays readable; the count says how many more there are


def _mobilities(session: Session, state: tuple[str, ...], condition: Any) -> list[Any]:
    return list(
        session.execute(
            select(
                Case.id,
                Case.state,
                Participant.name,
                Organisation.name.label("host"),
                Mobility.start_date,
                Mobility.end_date,
                Mobility.returned_on,
            )
            .join(Mobility, Mobility.id == Case.id)
            .join(Participant, Participant.id == Mobility.participant_id)
            .join(Organisation, Organisation.id == Mobility.host_id)
            .where(Case.state.in_(state), condition)
            .order_by(Case.id)
            .limit(LIMIT)
        ).all()
    )


def _applications(session: Session, state: str, condition: Any) -> list[Any]:
    return list(
        session.execute(
            select(
                Case.id, Case.state, Application.title, Application.start_date, Application.end_date
            )
            .join(Application, Application.id == Case.id)
            .where(Case.state == state, condition)
            .order_by(Case.id)
            .limit(LIMIT)
        ).all()
    )


def overdue(session: Session, today: date) -> list[dict[str, Any]]:
    """Cases whose next step is past its date, found with one query per rule."""
    found: list[dict[str, Any]] = []

    def add(kind: str, row: Any, title: str, what: str, due: date) -> None:
        found.append(
            {
                "case_id": row.id,
                "kind": kind,
                "title": title,
                "state": row.state,
                "what": what,
                "due": due.isoformat(),
            }
        )

    for r in _applications(session, "approved", Application.start_date < today):
        add(
            "application",
            r,
            r.title,
            "grant agreement not recorded; the project has started",
            r.start_date,
        )
    final_due = today - timedelta(days=FINAL_REPORT_DAYS)
    for r in _applications(session, "dissemination", Application.end_date < final_due):
        add(
            "application",
            r,
            r.title,
            "final report overdue",
            r.end_date + timedelta(days=FINAL_REPORT_DAYS),
        )
    for r in _mobilities(session, ("approved", "preparation"), Mobility.start_date < today):
        add("mobility", r, f"{r.name} at {r.host}", "departure not recorded", r.start_date)
    for r in _mobilities(session, ("abroad",), Mobility.end_date < today):
        add("mobility", r, f"{r.name} at {r.host}", "return not recorded", r.end_date)
    late = today - timedelta(days=VALIDATION_DAYS)
    for r in _mobilities(session, ("validation",), Mobility.returned_on < late):
        add(
            "mobility",
            r,
            f"{r.name} at {r.host}",
            "validation overdue",
            r.returned_on + timedelta(days=VALIDATION_DAYS),
        )
    return found


def undeliverable(session: Session) -> list[dict[str, Any]]:
    """Mail that could not be delivered and waits for staff."""
    rows = session.execute(
        select(Outbox).where(Outbox.status == "undeliverable").order_by(Outbox.id).limit(LIMIT)
    ).scalars()
    return [
        {
            "id": r.id,
            "to": r.recipient,
            "kind": r.kind,
            "last_error": r.last_error,
            "case_id": r.case_id,
        }
        for r in rows
    ]


def enqueue_digest(session: Session, *, today: date, now: datetime, staff_email: str) -> int | None:
    """Enqueue today's digest for staff, once a day; its outbox id, or None if nothing to say."""
    key = f"digest:{today.isoformat()}"
    existing = session.execute(select(Outbox.id).where(Outbox.key == key)).scalar_one_or_none()
    if existing is not None:
        return existing
    late, failed = overdue(session, today), undeliverable(session)
    if not late and not failed:
        return None
    context = {"day": today.isoformat(), "overdue": late, "undeliverable": failed}
    row_id = session.execute(
        insert(Outbox).values(
            key=key,
            case_id=None,
            kind="staff_digest",
            recipient=staff_email,
            context=context,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    ).inserted_primary_key
    session.commit()
    return int(row_id[0]) if row_id else None
