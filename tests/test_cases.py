"""The service on a real database: every guard refuses with its rule and changes nothing."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select, text, update
from sqlmodel import Session

from factories import (
    COORDINATOR,
    STAFF,
    STORY,
    advance,
    document,
    import_doc,
    snapshot,
    state_of,
    walk,
)
from vetpro_workflow.errors import ConflictError, InvalidInput, TransitionRefused
from vetpro_workflow.models import History, Mobility, Organisation

SUBMIT = date(2027, 1, 15)


def refused(engine, case_id, trigger, match, *, error=TransitionRefused, **kw):
    """Fire a trigger that must be refused; assert the message and that nothing changed."""
    before = snapshot(engine)
    with pytest.raises(error, match=match):
        advance(engine, case_id, trigger, **kw)
    assert snapshot(engine) == before


def test_submit_after_the_call_deadline_is_refused(engine):
    done = import_doc(engine)
    refused(engine, done.application, "submit", "call deadline", on=date(2027, 2, 2))


def test_submit_on_the_deadline_day_before_noon_brussels_is_accepted(engine):
    done = import_doc(engine)
    advance(engine, done.application, "submit", on=date(2027, 2, 1))
    assert state_of(engine, done.application) == "submitted"


def test_submit_by_an_applicant_of_an_ineligible_type_is_refused(engine):
    done = import_doc(engine)
    with Session(engine) as session:
        session.execute(
            update(Organisation)
            .where(Organisation.name == "Berufsbildungszentrum Steyr")
            .values(type="individual")
        )
        session.commit()
    refused(engine, done.application, "submit", "eligible applicant type", on=SUBMIT)


def test_submit_without_a_partner_in_another_country_is_refused(engine):
    doc = document(**{"partners.0.country": "AT", "partners.1.country": "AT"})
    done = import_doc(engine, doc)
    refused(engine, done.application, "submit", "partner in another country", on=SUBMIT)


def test_submit_with_every_mobility_cancelled_is_refused_for_lack_of_a_mobility(engine):
    done = import_doc(engine)
    for m in done.mobilities:
        advance(engine, m, "cancel", on=SUBMIT, note="participant left the school")
    refused(engine, done.application, "submit", "at least one planned mobility", on=SUBMIT)


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"mobilities.0.start_date": "2027-09-20"}, "a stay of 7 to 42 days"),
        ({"mobilities.0.end_date": "2027-10-19"}, "a stay of 7 to 42 days"),
        ({"mobilities.0.objectives": ""}, "needs objectives"),
        ({"project.objectives": ""}, "needs project objectives"),
        ({"mobilities.0.participant.training_needs": " "}, "training needs"),
        ({"partners.0.country": "AT"}, "a host in another country"),
        (
            {"mobilities.1.start_date": "2029-05-20", "mobilities.1.end_date": "2029-06-05"},
            "inside the project period",
        ),
        ({"project.start_date": "2027-05-01"}, "on or after 2027-06-01"),
        ({"project.end_date": "2029-07-31"}, "at most 24 months"),
    ],
    ids=[
        "6-day stay",
        "44-day stay",
        "no objectives",
        "no project objectives",
        "no training needs",
        "host at home",
        "outside the project",
        "project starts early",
        "project too long",
    ],
)
def test_submit_of_an_incomplete_or_ineligible_project_names_the_rule(engine, changes, rule):
    done = import_doc(engine, document(**changes))
    refused(engine, done.application, "submit", rule, on=SUBMIT)


def test_a_refusal_lists_every_rule_that_failed(engine):
    doc = document(**{"mobilities.0.objectives": "", "mobilities.1.end_date": "2027-10-05"})
    done = import_doc(engine, doc)
    with pytest.raises(TransitionRefused) as info:
        advance(engine, done.application, "submit", on=date(2027, 3, 1))
    message = str(info.value)
    assert "call deadline" in message and "needs objectives" in message
    assert "a stay of 7 to 42 days (it lasts 2" in message
    assert "Allowed now: submit, withdraw" in message


@pytest.mark.parametrize("trigger", ["request_changes", "approve", "reject"])
def test_staff_decisions_need_a_note(engine, trigger):
    done = import_doc(engine)
    walk(engine, done, 1)
    refused(engine, done.application, trigger, "needs a note", actor=STAFF, on=date(2027, 2, 20))


def test_withdraw_needs_a_note(engine):
    done = import_doc(engine)
    refused(engine, done.application, "withdraw", "needs a note", on=SUBMIT)


def test_grant_agreement_needs_its_signature_date_which_cannot_be_in_the_future(engine):
    done = import_doc(engine)
    walk(engine, done, 2)
    refused(
        engine,
        done.application,
        "start_preparation",
        "needs grant_agreement_signed_on",
        on=date(2027, 3, 10),
    )
    refused(
        engine,
        done.application,
        "start_preparation",
        "not in the future",
        on=date(2027, 3, 10),
        grant_agreement_signed_on="2027-03-11",
    )


def test_a_training_agreement_waits_for_the_grant_agreement(engine):
    done = import_doc(engine)
    walk(engine, done, 2)
    refused(
        engine,
        done.mobilities[0],
        "start_preparation",
        "record its grant agreement first",
        on=date(2027, 3, 1),
        agreement_signed_on="2027-03-01",
    )


def test_a_training_agreement_needs_its_signature_date(engine):
    done = import_doc(engine)
    walk(engine, done, 3)
    refused(
        engine,
        done.mobilities[0],
        "start_preparation",
        "needs agreement_signed_on",
        on=date(2027, 5, 10),
    )


def test_departure_needs_recorded_language_preparation_when_it_was_planned(engine):
    done = import_doc(engine)
    walk(engine, done, 5)
    refused(
        engine,
        done.mobilities[0],
        "depart",
        "preparation_done=true",
        on=date(2027, 9, 6),
        departed_on="2027-09-06",
    )
    refused(
        engine,
        done.mobilities[0],
        "depart",
        "preparation_done=true",
        on=date(2027, 9, 6),
        departed_on="2027-09-06",
        preparation_done="false",
    )


def test_departure_without_planned_preparation_needs_no_preparation_fact(engine):
    done = import_doc(engine)
    walk(engine, done, 5)
    advance(engine, done.mobilities[1], "depart", on=date(2027, 10, 4), departed_on="2027-10-04")
    assert state_of(engine, done.mobilities[1]) == "abroad"


def test_departure_cannot_be_in_the_future_nor_before_the_project_start(engine):
    done = import_doc(engine)
    walk(engine, done, 5)
    refused(
        engine,
        done.mobilities[1],
        "depart",
        "not in the future",
        on=date(2027, 10, 3),
        departed_on="2027-10-04",
    )
    refused(
        engine,
        done.mobilities[1],
        "depart",
        "not before the project start",
        on=date(2027, 10, 3),
        departed_on="2027-05-31",
    )


def test_return_cannot_precede_departure(engine):
    done = import_doc(engine)
    walk(engine, done, 6)
    refused(
        engine,
        done.mobilities[0],
        "return_home",
        "on or after departed_on",
        on=date(2027, 9, 24),
        returned_on="2027-09-05",
    )


def test_validation_needs_the_europass_reference_and_the_participant_report(engine):
    done = import_doc(engine)
    walk(engine, done, 9)
    refused(
        engine,
        done.mobilities[0],
        "validate",
        "europass_ref",
        on=date(2027, 11, 2),
        participant_report_on="2027-09-30",
    )
    refused(
        engine,
        done.mobilities[0],
        "validate",
        "participant_report_on",
        on=date(2027, 11, 2),
        europass_ref="EMD-1",
    )


def test_completion_needs_what_was_disseminated(engine):
    done = import_doc(engine)
    walk(engine, done, 11)
    refused(engine, done.mobilities[0], "complete", "needs dissemination", on=date(2027, 12, 1))


def test_closing_needs_every_mobility_completed_or_cancelled(engine):
    done = import_doc(engine)
    walk(engine, done, 12)
    refused(
        engine,
        done.application,
        "close",
        r"completed or cancelled \(open: ",
        actor=STAFF,
        on=date(2029, 7, 1),
        final_report_on="2029-06-20",
    )


def test_closing_needs_participant_reports_for_a_quarter_of_completed_mobilities(engine):
    done = import_doc(engine)
    walk(engine, done, len(STORY) - 1)
    with Session(engine) as session:  # reports lost in a migration from the old system
        session.execute(update(Mobility).values(participant_report_on=None))
        session.commit()
    refused(
        engine,
        done.application,
        "close",
        r"at least 25% of completed mobilities \(0 of 2",
        actor=STAFF,
        on=date(2029, 7, 1),
        final_report_on="2029-06-20",
    )


def test_closing_needs_the_final_report_date(engine):
    done = import_doc(engine)
    walk(engine, done, len(STORY) - 1)
    refused(
        engine, done.application, "close", "needs final_report_on", actor=STAFF, on=date(2029, 7, 1)
    )


def test_cancelling_a_mobility_needs_a_reason(engine):
    done = import_doc(engine)
    refused(engine, done.mobilities[0], "cancel", "needs a note", on=SUBMIT)


def test_a_fact_the_trigger_does_not_take_is_refused(engine):
    done = import_doc(engine)
    walk(engine, done, 6)
    refused(
        engine,
        done.mobilities[0],
        "return_home",
        "'returned' is not a fact of 'return_home'",
        error=InvalidInput,
        on=date(2027, 9, 24),
        returned="2027-09-24",
    )


def test_a_malformed_fact_value_is_refused(engine):
    done = import_doc(engine)
    walk(engine, done, 6)
    refused(
        engine,
        done.mobilities[0],
        "return_home",
        "returned_on: '24.09.2027' is not a date",
        error=InvalidInput,
        on=date(2027, 9, 24),
        returned_on="24.09.2027",
    )


def test_a_trigger_from_the_wrong_state_names_the_triggers_allowed_now(engine):
    done = import_doc(engine)
    refused(
        engine, done.application, "approve", "Allowed now: submit, withdraw", actor=STAFF, on=SUBMIT
    )


def test_a_stale_version_is_a_conflict_and_changes_nothing(engine):
    done = import_doc(engine)
    refused(
        engine,
        done.application,
        "submit",
        "changed meanwhile",
        error=ConflictError,
        on=SUBMIT,
        expected_version=7,
    )


def test_recorded_facts_and_notes_are_kept_in_the_history(engine):
    done = import_doc(engine)
    walk(engine, done, 6)
    with Session(engine) as session:
        entry = (
            session.execute(
                select(History)
                .where(History.case_id == done.mobilities[0])
                .order_by(History.id.desc())
            )
            .scalars()
            .first()
        )
        mobility = session.get(Mobility, done.mobilities[0])
    assert (entry.trigger, entry.source, entry.dest, entry.actor) == (
        "depart",
        "preparation",
        "abroad",
        COORDINATOR,
    )
    assert entry.facts == {"departed_on": "2027-09-06", "preparation_done": True}
    assert entry.at.isoformat() == "2027-09-06T00:00:00+00:00"
    assert mobility.departed_on == date(2027, 9, 6) and mobility.preparation_done is True


def test_requested_changes_send_the_mobilities_back_to_draft_with_the_application(engine):
    done = import_doc(engine)
    walk(engine, done, 1)
    advance(
        engine,
        done.application,
        "request_changes",
        actor=STAFF,
        on=date(2027, 1, 20),
        note="Add the Finnish partner's letter of intent.",
    )
    assert [state_of(engine, c) for c in [done.application, *done.mobilities]] == ["drafted"] * 3
    advance(engine, done.application, "submit", on=date(2027, 1, 25))
    assert [state_of(engine, c) for c in [done.application, *done.mobilities]] == ["submitted"] * 3


@pytest.mark.parametrize(
    ("steps", "trigger", "actor"),
    [(1, "reject", STAFF), (2, "withdraw", COORDINATOR), (0, "withdraw", COORDINATOR)],
)
def test_a_rejected_or_withdrawn_application_cancels_its_mobilities(engine, steps, trigger, actor):
    done = import_doc(engine)
    walk(engine, done, steps)
    advance(engine, done.application, trigger, actor=actor, on=date(2027, 2, 20), note="No budget.")
    assert state_of(engine, done.application) in ("rejected", "withdrawn")
    assert [state_of(engine, m) for m in done.mobilities] == ["cancelled", "cancelled"]


def test_cancelling_the_last_mobility_abroad_moves_the_project_to_validation(engine):
    done = import_doc(engine)
    walk(engine, done, 7)  # the first has returned, the second is still in preparation
    assert state_of(engine, done.application) == "abroad"
    advance(
        engine, done.mobilities[1], "cancel", on=date(2027, 10, 1), note="Force majeure: flood."
    )
    assert state_of(engine, done.application) == "validation"


def test_a_project_whose_every_mobility_is_cancelled_goes_to_its_final_report(engine):
    done = import_doc(engine)
    walk(engine, done, 3)
    for m in done.mobilities:
        advance(engine, m, "cancel", on=date(2027, 4, 1), note="Host closed its simulator lab.")
    assert state_of(engine, done.application) == "dissemination"
    advance(
        engine,
        done.application,
        "close",
        actor=STAFF,
        on=date(2029, 7, 1),
        final_report_on="2029-06-20",
    )
    assert state_of(engine, done.application) == "closed"


def test_ids_are_unique_across_applications_and_mobilities(engine):
    first = import_doc(engine)
    second = import_doc(engine)
    ids = [first.application, *first.mobilities, second.application, *second.mobilities]
    assert len(set(ids)) == 6
    with Session(engine) as session:
        kinds = session.execute(text('select kind from "case" order by id')).scalars().all()
    assert kinds == ["application", "mobility", "mobility"] * 2


def test_a_participant_report_recorded_before_validation_counts_at_validation(engine):
    done = import_doc(engine)
    walk(engine, done, 7)
    advance(
        engine,
        done.mobilities[0],
        "record_report",
        on=date(2027, 9, 30),
        participant_report_on="2027-09-30",
    )
    assert state_of(engine, done.mobilities[0]) == "validation"
    advance(engine, done.mobilities[0], "validate", on=date(2027, 10, 5), europass_ref="EMD-9")
    assert state_of(engine, done.mobilities[0]) == "dissemination"
