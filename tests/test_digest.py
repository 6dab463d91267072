"""The daily staff digest: overdue cases and undeliverable mail, in one message a day."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from factories import STAFF_MAIL, STORY, import_doc, step_of, walk
from vetpro_workflow.notifications.digest import content, enqueue_digest
from vetpro_workflow.notifications.outbox import row_of
from vetpro_workflow.store.database import Database


def digest_on(db: Database, day: date) -> dict[str, Any] | None:
    """Enqueue the digest of a day; its outbox row, or None when there was nothing to say."""
    with db.transaction() as tx:
        row_id, _ = enqueue_digest(tx, today=day, staff_email=STAFF_MAIL)
        return row_of(tx, row_id) if row_id else None


def whats(db: Database, day: date) -> list[tuple[str, str]]:
    with db.transaction(write=False) as tx:
        return [(o["what"], o["due"]) for o in content(tx, day)["overdue"]]


@pytest.mark.parametrize(
    ("steps", "on_time", "late", "what", "due"),
    [
        (
            step_of("approve"),
            date(2027, 6, 1),
            date(2027, 6, 2),
            "grant agreement not recorded; the project has started",
            "2027-06-01",
        ),
        (
            step_of("start_preparation", 2),
            date(2027, 9, 6),
            date(2027, 9, 7),
            "departure not recorded",
            "2027-09-06",
        ),
        (
            step_of("depart", 1),
            date(2027, 9, 24),
            date(2027, 9, 25),
            "return not recorded",
            "2027-09-24",
        ),
        (
            step_of("return_home", 2),
            date(2027, 11, 8),
            date(2027, 11, 9),
            "validation overdue",
            "2027-11-08",
        ),
        (
            step_of("complete", 2),
            date(2029, 7, 30),
            date(2029, 7, 31),
            "final report overdue",
            "2029-07-30",
        ),
    ],
    ids=["grant agreement", "departure", "return", "validation", "final report"],
)
def test_a_case_is_overdue_the_day_after_its_step_was_due(db, steps, on_time, late, what, due):
    done = import_doc(db)
    walk(db, done, steps)
    assert (what, due) not in whats(db, on_time)
    assert (what, due) in whats(db, late)


def test_the_digest_lists_overdue_cases_and_undeliverable_mail_once_a_day(db):
    done = import_doc(db)
    walk(db, done, step_of("approve"))
    with db.transaction() as tx:
        tx.execute(
            "UPDATE outbox SET status = 'undeliverable', last_error = :error "
            "WHERE kind = 'receipt'",
            {"error": "550 5.1.1 no such user"},
        )
    first = digest_on(db, date(2027, 6, 2))
    assert first is not None and first["recipient"] == STAFF_MAIL
    assert (first["kind"], first["case_id"], first["key"]) == (
        "staff_digest",
        None,
        "digest:2027-06-02",
    )
    assert [o["what"] for o in first["context"]["overdue"]] == [
        "grant agreement not recorded; the project has started"
    ]
    assert [
        (u["kind"], u["last_error"], u["case_id"]) for u in first["context"]["undeliverable"]
    ] == [("receipt", "550 5.1.1 no such user", done.application)]
    again = digest_on(db, date(2027, 6, 2))
    assert again is not None and again["id"] == first["id"]
    with db.transaction(write=False) as tx:
        assert tx.scalar("SELECT count(*) FROM outbox WHERE kind = 'staff_digest'") == 1


def test_no_digest_is_sent_on_a_day_with_nothing_to_report(db):
    done = import_doc(db)
    walk(db, done, len(STORY))
    assert digest_on(db, date(2029, 8, 1)) is None
    with db.transaction(write=False) as tx:
        assert tx.scalar("SELECT count(*) FROM outbox WHERE kind = 'staff_digest'") == 0
