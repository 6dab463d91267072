"""The daily staff digest: overdue cases and undeliverable mail, in one message a day."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select, update
from sqlmodel import Session

from factories import STORY, import_doc, walk
from vetpro_workflow.models import Outbox
from vetpro_workflow.notifications.digest import enqueue_digest, overdue

STAFF_MAIL = "digest@na.example"


def digest_on(engine, day: date) -> Outbox | None:
    with Session(engine) as session:
        row_id = enqueue_digest(
            session,
            today=day,
            now=datetime.combine(day, datetime.min.time(), UTC),
            staff_email=STAFF_MAIL,
        )
        return session.get(Outbox, row_id) if row_id else None


def whats(engine, day: date) -> list[tuple[str, str]]:
    with Session(engine) as session:
        return [(o["what"], o["due"]) for o in overdue(session, day)]


@pytest.mark.parametrize(
    ("steps", "on_time", "late", "what", "due"),
    [
        (
            2,
            date(2027, 6, 1),
            date(2027, 6, 2),
            "grant agreement not recorded; the project has started",
            "2027-06-01",
        ),
        (5, date(2027, 9, 6), date(2027, 9, 7), "departure not recorded", "2027-09-06"),
        (6, date(2027, 9, 24), date(2027, 9, 25), "return not recorded", "2027-09-24"),
        (9, date(2027, 11, 8), date(2027, 11, 9), "validation overdue", "2027-11-08"),
        (13, date(2029, 7, 30), date(2029, 7, 31), "final report overdue", "2029-07-30"),
    ],
    ids=["grant agreement", "departure", "return", "validation", "final report"],
)
def test_a_case_is_overdue_the_day_after_its_step_was_due(engine, steps, on_time, late, what, due):
    done = import_doc(engine)
    walk(engine, done, steps)
    assert (what, due) not in whats(engine, on_time)
    assert (what, due) in whats(engine, late)


def test_the_digest_lists_overdue_cases_and_undeliverable_mail_once_a_day(engine):
    done = import_doc(engine)
    walk(engine, done, 2)
    with Session(engine) as session:
        session.execute(
            update(Outbox)
            .where(Outbox.kind == "receipt")
            .values(status="undeliverable", last_error="550 5.1.1 no such user")
        )
        session.commit()
    first = digest_on(engine, date(2027, 6, 2))
    assert first is not None and first.recipient == STAFF_MAIL and first.kind == "staff_digest"
    assert [o["what"] for o in first.context["overdue"]] == [
        "grant agreement not recorded; the project has started"
    ]
    assert [(u["kind"], u["last_error"]) for u in first.context["undeliverable"]] == [
        ("receipt", "550 5.1.1 no such user")
    ]
    again = digest_on(engine, date(2027, 6, 2))
    assert again is not None and again.id == first.id
    with Session(engine) as session:
        digests = session.execute(select(Outbox).where(Outbox.kind == "staff_digest")).all()
    assert len(digests) == 1


def test_no_digest_is_sent_on_a_day_with_nothing_to_report(engine):
    done = import_doc(engine)
    walk(engine, done, len(STORY))
    assert digest_on(engine, date(2029, 8, 1)) is None
