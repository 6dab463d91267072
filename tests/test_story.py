"""The example application goes through every state, on SQLite and on PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from factories import STORY, import_doc, state_of, walk
from vetpro_workflow.models import History, Outbox


def test_example_application_reaches_closed_with_both_mobilities_completed(engine):
    done = import_doc(engine)
    walk(engine, done, len(STORY))
    assert state_of(engine, done.application) == "closed"
    assert [state_of(engine, m) for m in done.mobilities] == ["completed", "completed"]


def test_application_follows_its_mobilities_through_system_triggers(engine):
    done = import_doc(engine)
    walk(engine, done, len(STORY))
    with Session(engine) as session:
        triggers = session.execute(
            select(History.trigger, History.actor)
            .where(History.case_id == done.application)
            .order_by(History.id)
        ).all()
    assert triggers == [
        ("import", "system"),
        ("submit", "anna.huber@bbz-steyr.example"),
        ("approve", "officer@national-agency.example"),
        ("start_preparation", "anna.huber@bbz-steyr.example"),
        ("mobilities_departed", "system"),
        ("mobilities_returned", "system"),
        ("mobilities_validated", "system"),
        ("close", "officer@national-agency.example"),
    ]


def test_every_move_that_prompts_someone_leaves_a_pending_outbox_row(engine):
    done = import_doc(engine)
    walk(engine, done, len(STORY))
    with Session(engine) as session:
        rows = session.execute(
            select(Outbox.case_id, Outbox.kind, Outbox.recipient, Outbox.status).order_by(Outbox.id)
        ).all()
    app, first, second = done.application, *done.mobilities
    coordinator = "anna.huber@bbz-steyr.example"
    assert rows == [
        (app, "receipt", coordinator, "pending"),
        (app, "decision_approved", coordinator, "pending"),
        (app, "grant_agreement_recorded", coordinator, "pending"),
        (first, "departure_confirmation", coordinator, "pending"),
        (first, "participant_report_request", "markus.leitner@bbz-steyr.example", "pending"),
        (first, "return_recorded", coordinator, "pending"),
        (second, "departure_confirmation", coordinator, "pending"),
        (second, "participant_report_request", "sabine.gruber@bbz-steyr.example", "pending"),
        (second, "return_recorded", coordinator, "pending"),
        (app, "final_report_due", coordinator, "pending"),
        (app, "closure", coordinator, "pending"),
    ]
