"""The service on a real database: every guard refuses with its rule and changes nothing."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from factories import (
    COORDINATOR,
    SCORES,
    STAFF,
    STAFF_MAIL,
    STORY,
    SUBMIT_DAY,
    advance,
    document,
    import_doc,
    snapshot,
    state_of,
    step_of,
    walk,
)
from vetpro_workflow.cases import advance_in
from vetpro_workflow.clock import Clock
from vetpro_workflow.errors import ConflictError, InvalidInput, TransitionRefused
from vetpro_workflow.store import views
from vetpro_workflow.store.database import Database

SUBMIT = SUBMIT_DAY
PARTICIPANTS = ("markus.leitner@bbz-steyr.example", "sabine.gruber@bbz-steyr.example")
# Where the story stands after a step: both mobilities in preparation, the first abroad...
BOTH_PREPARED = step_of("start_preparation", 2)
FIRST_ABROAD = step_of("depart", 1)
FIRST_RETURNED = step_of("return_home", 1)
BOTH_RETURNED = step_of("return_home", 2)


def refused(db, case_id, trigger, rule, /, *, error=TransitionRefused, **kw):
    """Fire a trigger that must be refused; assert the message and that nothing changed."""
    before = snapshot(db)
    with pytest.raises(error, match=rule):
        advance(db, case_id, trigger, **kw)
    assert snapshot(db) == before


def rows(db: Database, sql: str, **params: Any) -> list[dict[str, Any]]:
    with db.transaction(write=False) as tx:
        return tx.rows(sql, params)


def outbox_of(db: Database, case_id: int) -> list[dict[str, Any]]:
    return rows(
        db, "SELECT kind, recipient, key FROM outbox WHERE case_id = :id ORDER BY id", id=case_id
    )


def last_move(db: Database, case_id: int) -> dict[str, Any]:
    return rows(
        db, "SELECT * FROM history WHERE case_id = :id ORDER BY id DESC LIMIT 1", id=case_id
    )[0]


def mobility_row(db: Database, case_id: int) -> dict[str, Any]:
    return rows(db, "SELECT * FROM mobility WHERE id = :id", id=case_id)[0]


def shown(db: Database, case_id: int) -> dict[str, Any]:
    with db.transaction(write=False) as tx:
        return views.show(tx, case_id)


# --- submit ---------------------------------------------------------------------------------


def test_submit_after_the_call_deadline_is_refused(db):
    done = import_doc(db)
    refused(db, done.application, "submit", "call deadline", on=date(2027, 2, 2))


def test_submit_on_the_deadline_day_before_noon_brussels_is_accepted(db):
    done = import_doc(db)
    advance(db, done.application, "submit", on=date(2027, 2, 1))
    assert state_of(db, done.application) == "submitted"


def test_submit_by_an_applicant_of_an_ineligible_type_is_refused(db):
    done = import_doc(db)
    with db.transaction() as tx:
        tx.execute(
            "UPDATE organisation SET type = 'individual' WHERE name = :name",
            {"name": "Berufsbildungszentrum Steyr"},
        )
    refused(db, done.application, "submit", "eligible applicant type", on=SUBMIT)


def test_submit_without_a_partner_in_another_country_is_refused(db):
    doc = document(**{"partners.0.country": "AT", "partners.1.country": "AT"})
    done = import_doc(db, doc)
    refused(db, done.application, "submit", "partner in another country", on=SUBMIT)


def test_submit_with_every_mobility_cancelled_is_refused_for_lack_of_a_mobility(db):
    done = import_doc(db)
    for m in done.mobilities:
        advance(db, m, "cancel", on=SUBMIT, note="participant left the school")
    refused(db, done.application, "submit", "at least one planned mobility", on=SUBMIT)


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
def test_submit_of_an_incomplete_or_ineligible_project_names_the_rule(db, changes, rule):
    done = import_doc(db, document(**changes))
    refused(db, done.application, "submit", rule, on=SUBMIT)


def test_a_refusal_lists_every_rule_that_failed(db):
    doc = document(**{"mobilities.0.objectives": "", "mobilities.1.end_date": "2027-10-05"})
    done = import_doc(db, doc)
    with pytest.raises(TransitionRefused) as info:
        advance(db, done.application, "submit", on=date(2027, 3, 1))
    message = str(info.value)
    assert "call deadline" in message and "needs objectives" in message
    assert "a stay of 7 to 42 days (it lasts 2" in message
    assert "Allowed now for the coordinator: submit, withdraw" in message


# --- evaluation and decisions -----------------------------------------------------------------


@pytest.mark.parametrize("trigger", ["request_changes", "approve", "reject"])
def test_staff_decisions_need_a_note(db, trigger):
    done = import_doc(db)
    walk(db, done, step_of("evaluate"))  # evaluated to the pass mark: only the note is missing
    refused(db, done.application, trigger, "needs a note", actor=STAFF, on=date(2027, 2, 20))


def test_approval_needs_an_evaluation(db):
    done = import_doc(db)
    walk(db, done, step_of("submit"))
    refused(
        db,
        done.application,
        "approve",
        r"needs an evaluation \(evaluate\) at or above the pass mark \(36 of 60\)",
        actor=STAFF,
        on=date(2027, 2, 20),
        note="Looks good.",
    )


def test_approval_needs_the_latest_evaluation_at_or_above_the_pass_mark(db):
    done = import_doc(db)
    walk(db, done, step_of("submit"))
    low = dict(SCORES, objectives=3, match=4)  # 35 of 60, one point short of the mark
    advance(
        db, done.application, "evaluate", actor=STAFF, on=date(2027, 2, 10), note="Weak.", **low
    )
    refused(
        db,
        done.application,
        "approve",
        "the latest totals 35",
        actor=STAFF,
        on=date(2027, 2, 20),
        note="Approve anyway.",
    )
    exact = dict(SCORES, objectives=3, match=5)  # 36: the pass mark itself is enough
    advance(
        db, done.application, "evaluate", actor=STAFF, on=date(2027, 2, 11), note="Ok.", **exact
    )
    advance(db, done.application, "approve", actor=STAFF, on=date(2027, 2, 20), note="Passed.")
    assert state_of(db, done.application) == "approved"
    (app,) = rows(
        db, "SELECT score, approved_on FROM application WHERE id = :id", id=done.application
    )
    assert (app["score"], app["approved_on"]) == (36, date(2027, 2, 20))


def test_an_evaluation_needs_every_criterion_on_the_calls_scale(db):
    done = import_doc(db)
    walk(db, done, step_of("submit"))
    partial = {k: v for k, v in SCORES.items() if k != "dissemination"}
    refused(
        db,
        done.application,
        "evaluate",
        "needs dissemination",
        actor=STAFF,
        on=date(2027, 2, 10),
        note="Partial.",
        **partial,
    )
    refused(
        db,
        done.application,
        "evaluate",
        r"needs scores from 0 to 10 \(not match=11\)",
        actor=STAFF,
        on=date(2027, 2, 10),
        note="Too kind.",
        **dict(SCORES, match=11),
    )
    refused(
        db,
        done.application,
        "evaluate",
        "match: 'good' is not a number",
        error=InvalidInput,
        actor=STAFF,
        on=date(2027, 2, 10),
        note="Words.",
        **dict(SCORES, match="good"),
    )


def test_requested_changes_discard_the_evaluation_of_the_version_sent(db):
    done = import_doc(db)
    walk(db, done, step_of("evaluate"))
    advance(
        db,
        done.application,
        "request_changes",
        actor=STAFF,
        on=date(2027, 2, 12),
        note="Add the Finnish partner's letter of intent.",
        resubmit_by="2027-03-01",
    )
    advance(db, done.application, "submit", on=date(2027, 2, 20))  # after the deadline: allowed
    refused(
        db,
        done.application,
        "approve",
        "needs an evaluation",
        actor=STAFF,
        on=date(2027, 2, 21),
        note="As before.",
    )


def test_resubmission_after_the_date_staff_set_is_refused(db):
    done = import_doc(db)
    walk(db, done, step_of("evaluate"))
    advance(
        db,
        done.application,
        "request_changes",
        actor=STAFF,
        on=date(2027, 2, 12),
        note="Add the Finnish partner's letter of intent.",
        resubmit_by="2027-03-01",
    )
    refused(
        db, done.application, "submit", "needed resubmitting by 2027-03-01", on=date(2027, 3, 2)
    )


def test_withdraw_needs_a_note(db):
    done = import_doc(db)
    refused(db, done.application, "withdraw", "needs a note", on=SUBMIT)


# --- agreements, departure and return ---------------------------------------------------------


def test_grant_agreement_needs_its_signature_date_which_cannot_be_in_the_future(db):
    done = import_doc(db)
    walk(db, done, step_of("approve"))
    refused(
        db,
        done.application,
        "start_preparation",
        "needs grant_agreement_signed_on",
        on=date(2027, 3, 10),
    )
    refused(
        db,
        done.application,
        "start_preparation",
        "not in the future",
        on=date(2027, 3, 10),
        grant_agreement_signed_on="2027-03-11",
    )


def test_grant_agreement_cannot_be_signed_before_the_approval(db):
    done = import_doc(db)
    walk(db, done, step_of("approve"))
    refused(
        db,
        done.application,
        "start_preparation",
        r"on or after the approval \(2027-02-20\)",
        on=date(2027, 3, 10),
        grant_agreement_signed_on="2027-02-19",
    )


def test_staff_may_record_the_grant_agreement(db):
    done = import_doc(db)
    walk(db, done, step_of("approve"))
    advance(
        db,
        done.application,
        "start_preparation",
        actor=STAFF,
        on=date(2027, 3, 10),
        grant_agreement_signed_on="2027-03-09",
    )
    assert state_of(db, done.application) == "preparation"
    move = last_move(db, done.application)
    assert (move["trigger"], move["actor"]) == ("start_preparation", STAFF)
    assert shown(db, done.application)["facts"]["grant_agreement_signed_on"] == "2027-03-09"


def test_a_training_agreement_waits_for_the_grant_agreement(db):
    done = import_doc(db)
    walk(db, done, step_of("approve"))
    refused(
        db,
        done.mobilities[0],
        "start_preparation",
        "record its grant agreement first",
        on=date(2027, 3, 1),
        agreement_signed_on="2027-03-01",
    )


def test_a_training_agreement_needs_its_signature_date(db):
    done = import_doc(db)
    walk(db, done, step_of("start_preparation"))
    refused(
        db,
        done.mobilities[0],
        "start_preparation",
        "needs agreement_signed_on",
        on=date(2027, 5, 10),
    )


def test_departure_needs_recorded_language_preparation_when_it_was_planned(db):
    done = import_doc(db)
    walk(db, done, BOTH_PREPARED)
    refused(
        db,
        done.mobilities[0],
        "depart",
        "preparation_done=true",
        on=date(2027, 9, 6),
        departed_on="2027-09-06",
    )
    refused(
        db,
        done.mobilities[0],
        "depart",
        "preparation_done=true",
        on=date(2027, 9, 6),
        departed_on="2027-09-06",
        preparation_done="false",
    )


def test_preparation_recorded_on_its_own_counts_at_departure(db):
    done = import_doc(db)
    walk(db, done, BOTH_PREPARED)
    advance(
        db, done.mobilities[0], "record_preparation", on=date(2027, 8, 20), preparation_done=True
    )
    assert state_of(db, done.mobilities[0]) == "preparation"
    advance(db, done.mobilities[0], "depart", on=date(2027, 9, 6), departed_on="2027-09-06")
    assert state_of(db, done.mobilities[0]) == "abroad"


def test_departure_without_planned_preparation_needs_no_preparation_fact(db):
    done = import_doc(db)
    walk(db, done, BOTH_PREPARED)
    advance(db, done.mobilities[1], "depart", on=date(2027, 10, 4), departed_on="2027-10-04")
    assert state_of(db, done.mobilities[1]) == "abroad"


def test_departure_cannot_be_in_the_future_nor_before_the_project_start(db):
    done = import_doc(db)
    walk(db, done, BOTH_PREPARED)
    refused(
        db,
        done.mobilities[1],
        "depart",
        "not in the future",
        on=date(2027, 10, 3),
        departed_on="2027-10-04",
    )
    refused(
        db,
        done.mobilities[1],
        "depart",
        r"^(?!.*agreement)(?!.*approval).*departed_on not before the project start \(2027-06-01\)",
        on=date(2027, 10, 3),
        departed_on="2027-05-31",
    )


def test_departure_cannot_precede_the_training_agreement(db):
    done = import_doc(db)
    walk(db, done, step_of("start_preparation"))  # grant agreement 2027-03-10
    advance(
        db,
        done.mobilities[1],
        "start_preparation",
        on=date(2027, 7, 1),
        agreement_signed_on="2027-07-01",
    )
    refused(
        db,
        done.mobilities[1],
        "depart",
        r"needs departed_on not before the training agreement \(2027-07-01\)\.",
        on=date(2027, 7, 2),
        departed_on="2027-06-20",
    )


def test_departure_cannot_precede_the_grant_agreement(db):
    done = import_doc(db)
    walk(db, done, step_of("approve"))
    advance(
        db,
        done.application,
        "start_preparation",
        on=date(2027, 6, 15),
        grant_agreement_signed_on="2027-06-15",
    )
    advance(
        db,
        done.mobilities[1],
        "start_preparation",
        on=date(2027, 6, 15),
        agreement_signed_on="2027-06-15",
    )
    refused(
        db,
        done.mobilities[1],
        "depart",
        r"departed_on not before the grant agreement \(2027-06-15\)",
        on=date(2027, 6, 16),
        departed_on="2027-06-10",
    )


def test_departure_cannot_precede_the_approval(db):
    done = import_doc(db)
    walk(db, done, step_of("evaluate"))
    advance(db, done.application, "approve", actor=STAFF, on=date(2027, 6, 10), note="Late, fine.")
    advance(
        db,
        done.application,
        "start_preparation",
        on=date(2027, 6, 12),
        grant_agreement_signed_on="2027-06-12",
    )
    advance(
        db,
        done.mobilities[1],
        "start_preparation",
        on=date(2027, 6, 12),
        agreement_signed_on="2027-06-12",
    )
    refused(
        db,
        done.mobilities[1],
        "depart",
        r"departed_on not before the approval \(2027-06-10\)",
        on=date(2027, 6, 12),
        departed_on="2027-06-05",
    )


def test_departure_cannot_be_after_the_project_end(db):
    done = import_doc(db)
    walk(db, done, BOTH_PREPARED)
    refused(
        db,
        done.mobilities[1],
        "depart",
        r"departed_on not after the project end \(2029-05-31\)",
        on=date(2029, 6, 2),
        departed_on="2029-06-01",
    )


def test_return_cannot_precede_departure(db):
    done = import_doc(db)
    walk(db, done, FIRST_ABROAD)
    refused(
        db,
        done.mobilities[0],
        "return_home",
        "on or after departed_on",
        on=date(2027, 9, 24),
        returned_on="2027-09-05",
    )


def test_return_cannot_be_after_the_project_end(db):
    done = import_doc(db)
    walk(db, done, BOTH_PREPARED)
    advance(db, done.mobilities[1], "depart", on=date(2029, 5, 25), departed_on="2029-05-25")
    refused(
        db,
        done.mobilities[1],
        "return_home",
        r"returned_on not after the project end \(2029-05-31\)",
        on=date(2029, 6, 5),
        returned_on="2029-06-03",
    )


@pytest.mark.parametrize(
    ("mobility", "returned_on", "days"),
    [(0, "2027-09-08", 3), (1, "2027-11-30", 58)],
    ids=["3-day stay", "58-day stay"],
)
def test_an_actual_stay_outside_the_calls_limits_is_recorded_only_with_a_note(
    db, mobility, returned_on, days
):
    done = import_doc(db)
    walk(db, done, BOTH_PREPARED)
    advance(
        db,
        done.mobilities[0],
        "depart",
        on=date(2027, 9, 6),
        departed_on="2027-09-06",
        preparation_done=True,
    )
    advance(db, done.mobilities[1], "depart", on=date(2027, 10, 4), departed_on="2027-10-04")
    case = done.mobilities[mobility]
    refused(
        db,
        case,
        "return_home",
        f"needs a note explaining the actual stay of {days} days, outside the call's 7 to 42 days",
        on=date(2027, 12, 1),
        returned_on=returned_on,
    )
    note = "Host closed the lab; agreed with the NA."
    advance(db, case, "return_home", on=date(2027, 12, 1), returned_on=returned_on, note=note)
    assert state_of(db, case) == "validation"
    stay_note = mobility_row(db, case)["stay_note"]
    assert f"{days} days" in stay_note and note in stay_note  # the actual stay, and why
    assert shown(db, case)["stay_note"] == stay_note  # shown to staff with the case


def test_a_stay_within_the_calls_limits_carries_no_stay_note(db):
    done = import_doc(db)
    walk(db, done, FIRST_RETURNED)
    assert mobility_row(db, done.mobilities[0])["stay_note"] is None
    assert shown(db, done.mobilities[0])["stay_note"] is None


# --- interruption -----------------------------------------------------------------------------


def test_an_interrupted_stay_goes_to_validation_with_its_return_reason_and_note(db):
    done = import_doc(db)
    walk(db, done, FIRST_ABROAD)
    case = done.mobilities[0]
    note = "Flood closed the host's workshop."
    advance(
        db,
        case,
        "interrupt",
        on=date(2027, 9, 15),
        returned_on="2027-09-14",
        reason="force_majeure",
        note=note,
    )
    assert state_of(db, case) == "validation"
    row = mobility_row(db, case)
    assert (row["returned_on"], row["interruption_reason"]) == (date(2027, 9, 14), "force_majeure")
    assert row["stay_note"] is None  # 9 days: within the call's limits
    move = last_move(db, case)
    assert (move["trigger"], move["source"], move["dest"], move["note"]) == (
        "interrupt",
        "abroad",
        "validation",
        note,
    )
    assert move["facts"] == {"returned_on": "2027-09-14", "reason": "force_majeure"}
    version = move["version"]
    assert outbox_of(db, case)[-2:] == [
        {
            "kind": "participant_report_request",
            "recipient": PARTICIPANTS[0],
            "key": f"case-{case}:participant_report_request:v{version}",
        },
        {
            "kind": "stay_interrupted",
            "recipient": COORDINATOR,
            "key": f"case-{case}:stay_interrupted:v{version}",
        },
    ]


def test_an_interrupted_stay_outside_the_calls_limits_keeps_its_note(db):
    done = import_doc(db)
    walk(db, done, FIRST_ABROAD)
    note = "Participant fell ill."
    advance(
        db,
        done.mobilities[0],
        "interrupt",
        actor=STAFF,
        on=date(2027, 9, 9),
        returned_on="2027-09-08",
        reason="other",
        note=note,
    )
    stay_note = mobility_row(db, done.mobilities[0])["stay_note"]
    assert "3 days" in stay_note and note in stay_note
    assert last_move(db, done.mobilities[0])["actor"] == STAFF


def test_interrupting_the_last_stay_abroad_moves_the_project_to_validation(db):
    done = import_doc(db)
    walk(db, done, step_of("depart", 2))  # the first returned, the second abroad
    advance(
        db,
        done.mobilities[1],
        "interrupt",
        on=date(2027, 10, 12),
        returned_on="2027-10-11",
        reason="force_majeure",
        note="Strike at the host.",
    )
    assert state_of(db, done.application) == "validation"
    assert last_move(db, done.application)["trigger"] == "mobilities_returned"


def test_an_interruption_needs_its_return_reason_and_note(db):
    done = import_doc(db)
    walk(db, done, FIRST_ABROAD)
    case = done.mobilities[0]
    refused(
        db,
        case,
        "interrupt",
        r"needs reason \(force_majeure or other\)",
        on=date(2027, 9, 15),
        returned_on="2027-09-14",
        note="Flood.",
    )
    refused(
        db,
        case,
        "interrupt",
        "needs a note saying why the stay ended early",
        on=date(2027, 9, 15),
        returned_on="2027-09-14",
        reason="other",
    )
    refused(
        db,
        case,
        "interrupt",
        r"needs returned_on \(YYYY-MM-DD\)",
        on=date(2027, 9, 15),
        reason="other",
        note="Flood.",
    )
    refused(
        db,
        case,
        "interrupt",
        "on or after departed_on",
        on=date(2027, 9, 15),
        returned_on="2027-09-01",
        reason="other",
        note="Flood.",
    )
    refused(
        db,
        case,
        "interrupt",
        "'illness' is not a reason",
        error=InvalidInput,
        on=date(2027, 9, 15),
        returned_on="2027-09-14",
        reason="illness",
        note="Flood.",
    )


def test_only_a_stay_abroad_can_be_interrupted(db):
    done = import_doc(db)
    walk(db, done, BOTH_PREPARED)
    refused(
        db,
        done.mobilities[0],
        "interrupt",
        "only possible from abroad",
        on=date(2027, 9, 15),
        returned_on="2027-09-14",
        reason="other",
        note="Never left.",
    )


# --- validation, completion, closing -----------------------------------------------------------


def test_validation_needs_the_europass_reference_but_not_the_participant_report(db):
    done = import_doc(db)
    walk(db, done, BOTH_RETURNED)
    refused(
        db,
        done.mobilities[0],
        "validate",
        "europass_ref",
        on=date(2027, 11, 2),
        participant_report_on="2027-09-30",
    )
    advance(db, done.mobilities[0], "validate", on=date(2027, 11, 2), europass_ref="EMD-1")
    assert state_of(db, done.mobilities[0]) == "dissemination"
    assert mobility_row(db, done.mobilities[0])["participant_report_on"] is None


def test_a_participant_report_dated_before_the_departure_is_refused(db):
    done = import_doc(db)
    walk(db, done, FIRST_RETURNED)
    refused(
        db,
        done.mobilities[0],
        "record_report",
        r"on or after the departure \(2027-09-06\)",
        on=date(2027, 9, 30),
        participant_report_on="2027-09-01",
    )


def test_a_participant_report_recorded_on_its_own_keeps_the_state_and_is_kept(db):
    done = import_doc(db)
    walk(db, done, FIRST_RETURNED)
    advance(
        db,
        done.mobilities[0],
        "record_report",
        on=date(2027, 9, 30),
        participant_report_on="2027-09-30",
    )
    assert state_of(db, done.mobilities[0]) == "validation"
    advance(db, done.mobilities[0], "validate", on=date(2027, 10, 5), europass_ref="EMD-9")
    assert state_of(db, done.mobilities[0]) == "dissemination"
    assert mobility_row(db, done.mobilities[0])["participant_report_on"] == date(2027, 9, 30)


def test_completion_needs_what_was_disseminated(db):
    done = import_doc(db)
    walk(db, done, step_of("validate", 2))
    refused(db, done.mobilities[0], "complete", "needs dissemination", on=date(2027, 12, 1))


def test_closing_needs_every_mobility_completed_or_cancelled(db):
    done = import_doc(db)
    walk(db, done, step_of("complete", 1))
    refused(
        db,
        done.application,
        "close",
        r"completed or cancelled \(open: ",
        actor=STAFF,
        on=date(2029, 7, 1),
        final_report_on="2029-06-20",
    )


def _completed_without_reports(db) -> Any:
    """The example with both mobilities completed, validated without participant reports."""
    done = import_doc(db)
    walk(db, done, BOTH_RETURNED)
    for i, m in enumerate(done.mobilities):
        advance(db, m, "validate", on=date(2027, 11, 2), europass_ref=f"EMD-2027-000{i + 1}")
    for m in done.mobilities:
        advance(db, m, "complete", on=date(2027, 12, 1), dissemination="Talk at the staff day")
    assert state_of(db, done.application) == "dissemination"
    return done


def test_closing_needs_participant_reports_for_a_quarter_of_completed_mobilities(db):
    done = _completed_without_reports(db)
    refused(
        db,
        done.application,
        "close",
        r"at least 25% of completed mobilities \(0 of 2 received",
        actor=STAFF,
        on=date(2029, 7, 1),
        final_report_on="2029-06-20",
    )


def test_a_report_recorded_on_a_completed_mobility_makes_closing_possible(db):
    done = _completed_without_reports(db)
    advance(
        db,
        done.mobilities[0],
        "record_report",
        actor=STAFF,
        on=date(2029, 6, 1),
        participant_report_on="2027-10-01",
    )
    assert state_of(db, done.mobilities[0]) == "completed"
    advance(
        db,
        done.application,
        "close",
        actor=STAFF,
        on=date(2029, 7, 1),
        final_report_on="2029-06-20",
    )
    assert state_of(db, done.application) == "closed"


def test_closing_needs_the_final_report_date(db):
    done = import_doc(db)
    walk(db, done, len(STORY) - 1)
    refused(
        db, done.application, "close", "needs final_report_on", actor=STAFF, on=date(2029, 7, 1)
    )


# --- cancelling, facts, versions --------------------------------------------------------------


def test_cancelling_a_mobility_needs_a_reason(db):
    done = import_doc(db)
    refused(db, done.mobilities[0], "cancel", "needs a note", on=SUBMIT)


def test_staff_may_cancel_a_mobility(db):
    done = import_doc(db)
    walk(db, done, BOTH_PREPARED)
    advance(
        db, done.mobilities[1], "cancel", actor=STAFF, on=date(2027, 8, 1), note="Host withdrew."
    )
    assert state_of(db, done.mobilities[1]) == "cancelled"
    move = last_move(db, done.mobilities[1])
    assert (move["trigger"], move["actor"], move["note"]) == ("cancel", STAFF, "Host withdrew.")


def test_a_fact_the_trigger_does_not_take_is_refused(db):
    done = import_doc(db)
    walk(db, done, FIRST_ABROAD)
    refused(
        db,
        done.mobilities[0],
        "return_home",
        "'returned' is not a fact of 'return_home'",
        error=InvalidInput,
        on=date(2027, 9, 24),
        returned="2027-09-24",
    )


def test_a_malformed_fact_value_is_refused(db):
    done = import_doc(db)
    walk(db, done, FIRST_ABROAD)
    refused(
        db,
        done.mobilities[0],
        "return_home",
        "returned_on: '24.09.2027' is not a date",
        error=InvalidInput,
        on=date(2027, 9, 24),
        returned_on="24.09.2027",
    )


def test_a_trigger_from_the_wrong_state_names_the_triggers_allowed_now(db):
    done = import_doc(db)
    refused(
        db,
        done.application,
        "approve",
        r"Allowed now for NA staff: nothing \(others may: submit, withdraw\)",
        actor=STAFF,
        on=SUBMIT,
    )


def test_a_stale_version_is_a_conflict_and_changes_nothing(db):
    done = import_doc(db)
    refused(
        db,
        done.application,
        "submit",
        "changed meanwhile",
        error=ConflictError,
        on=SUBMIT,
        expected_version=7,
    )


def test_a_move_made_meanwhile_turns_the_version_read_into_a_conflict(db):
    done = import_doc(db)
    walk(db, done, step_of("submit"))
    seen = shown(db, done.application)["version"]
    advance(
        db, done.application, "evaluate", actor=STAFF, on=date(2027, 2, 10), note="Ok.", **SCORES
    )
    refused(
        db,
        done.application,
        "withdraw",
        rf"version {seen + 1}, you had {seen}",
        error=ConflictError,
        on=date(2027, 2, 11),
        note="We found another funder.",
        expected_version=seen,
    )
    advance(
        db,
        done.application,
        "withdraw",
        on=date(2027, 2, 11),
        note="We found another funder.",
        expected_version=seen + 1,
    )
    assert state_of(db, done.application) == "withdrawn"


def test_recorded_facts_and_notes_are_kept_in_the_history(db):
    done = import_doc(db)
    walk(db, done, FIRST_ABROAD)
    entry = last_move(db, done.mobilities[0])
    assert (entry["trigger"], entry["source"], entry["dest"], entry["actor"]) == (
        "depart",
        "preparation",
        "abroad",
        COORDINATOR,
    )
    assert entry["facts"] == {"departed_on": "2027-09-06", "preparation_done": True}
    assert entry["at"].isoformat() == "2027-09-05T22:00:00+00:00"  # 00:00 in Brussels (CEST)
    mobility = mobility_row(db, done.mobilities[0])
    assert mobility["departed_on"] == date(2027, 9, 6) and mobility["preparation_done"] is True
    with db.transaction(write=False) as tx:
        history = views.history(tx, done.mobilities[0])
    assert [h["trigger"] for h in history] == [
        "import",
        "submit",
        "approve",
        "start_preparation",
        "depart",
    ]
    assert [h["version"] for h in history] == [1, 2, 3, 4, 5]


# --- cascades ---------------------------------------------------------------------------------


def test_requested_changes_send_the_mobilities_back_to_draft_with_the_application(db):
    done = import_doc(db)
    walk(db, done, 1)
    advance(
        db,
        done.application,
        "request_changes",
        actor=STAFF,
        on=date(2027, 1, 20),
        note="Add the Finnish partner's letter of intent.",
    )
    assert [state_of(db, c) for c in [done.application, *done.mobilities]] == ["drafted"] * 3
    advance(db, done.application, "submit", on=date(2027, 1, 25))
    assert [state_of(db, c) for c in [done.application, *done.mobilities]] == ["submitted"] * 3


@pytest.mark.parametrize(
    ("steps", "trigger", "actor"),
    [
        (step_of("submit"), "reject", STAFF),
        (step_of("evaluate"), "withdraw", COORDINATOR),
        (step_of("approve"), "withdraw", COORDINATOR),
        (0, "withdraw", COORDINATOR),
    ],
    ids=["rejected", "withdrawn when submitted", "withdrawn when approved", "withdrawn drafted"],
)
def test_a_rejected_or_withdrawn_application_cancels_its_mobilities(db, steps, trigger, actor):
    done = import_doc(db)
    walk(db, done, steps)
    advance(db, done.application, trigger, actor=actor, on=date(2027, 2, 20), note="No budget.")
    assert state_of(db, done.application) in ("rejected", "withdrawn")
    assert [state_of(db, m) for m in done.mobilities] == ["cancelled", "cancelled"]


def test_cancelling_the_last_mobility_abroad_moves_the_project_to_validation(db):
    done = import_doc(db)
    walk(db, done, FIRST_RETURNED)  # the first has returned, the second is still in preparation
    assert state_of(db, done.application) == "abroad"
    advance(db, done.mobilities[1], "cancel", on=date(2027, 10, 1), note="Force majeure: flood.")
    assert state_of(db, done.application) == "validation"


def test_cancelling_the_last_mobility_to_validate_moves_the_project_on_twice(db):
    done = import_doc(db)
    walk(db, done, FIRST_RETURNED)
    advance(db, done.mobilities[0], "validate", on=date(2027, 9, 30), europass_ref="EMD-1")
    assert state_of(db, done.application) == "abroad"
    advance(db, done.mobilities[1], "cancel", on=date(2027, 10, 1), note="Force majeure: flood.")
    assert state_of(db, done.application) == "dissemination"
    triggers = rows(
        db, "SELECT trigger FROM history WHERE case_id = :id ORDER BY id", id=done.application
    )
    assert [t["trigger"] for t in triggers][-2:] == ["mobilities_returned", "mobilities_validated"]


def test_a_project_whose_every_mobility_is_cancelled_goes_to_its_final_report(db):
    done = import_doc(db)
    walk(db, done, step_of("start_preparation"))
    for m in done.mobilities:
        advance(db, m, "cancel", on=date(2027, 4, 1), note="Host closed its simulator lab.")
    assert state_of(db, done.application) == "dissemination"
    advance(
        db,
        done.application,
        "close",
        actor=STAFF,
        on=date(2029, 7, 1),
        final_report_on="2029-06-20",
    )
    assert state_of(db, done.application) == "closed"


def test_ids_are_unique_across_applications_and_mobilities(db):
    first = import_doc(db)
    second = import_doc(db)
    ids = [first.application, *first.mobilities, second.application, *second.mobilities]
    assert len(set(ids)) == 6
    kinds = rows(db, 'SELECT kind FROM "case" ORDER BY id')
    assert [k["kind"] for k in kinds] == ["application", "mobility", "mobility"] * 2


# --- mail written with the move ---------------------------------------------------------------


def _request_changes(db, done):
    walk(db, done, step_of("evaluate"))
    return done.application, "request_changes", STAFF, date(2027, 2, 12), {}, "Add a letter."


def _reject(db, done):
    walk(db, done, step_of("evaluate"))
    return done.application, "reject", STAFF, date(2027, 2, 20), {}, "Budget exhausted."


def _withdraw(db, done):
    walk(db, done, step_of("approve"))
    return done.application, "withdraw", COORDINATOR, date(2027, 3, 1), {}, "Another funder."


def _cancel(db, done):
    walk(db, done, BOTH_PREPARED)
    return done.mobilities[1], "cancel", COORDINATOR, date(2027, 8, 1), {}, "Host withdrew."


MAIL_MOVES = {
    "changes_requested": _request_changes,
    "decision_rejected": _reject,
    "withdrawal_confirmed": _withdraw,
    "mobility_cancelled": _cancel,
}


@pytest.mark.parametrize("kind", list(MAIL_MOVES))
def test_a_move_that_sends_mail_writes_its_outbox_row_with_the_move(db, kind):
    done = import_doc(db)
    case, trigger, actor, day, facts, note = MAIL_MOVES[kind](db, done)
    before = {r["key"] for r in rows(db, "SELECT key FROM outbox")}
    advance(db, case, trigger, actor=actor, on=day, note=note, **facts)
    version = last_move(db, case)["version"]
    new = [
        {k: r[k] for k in ("case_id", "kind", "recipient", "key", "status")}
        for r in rows(db, "SELECT * FROM outbox ORDER BY id")
        if r["key"] not in before
    ]
    # Mobilities cancelled along with their application send nothing of their own.
    assert new == [
        {
            "case_id": case,
            "kind": kind,
            "recipient": COORDINATOR,
            "key": f"case-{case}:{kind}:v{version}",
            "status": "pending",
        }
    ]
    (context,) = rows(db, "SELECT context FROM outbox WHERE key = :key", key=new[0]["key"])
    assert context["context"]["note"] == note


@pytest.mark.parametrize("kind", list(MAIL_MOVES))
def test_a_move_and_its_mail_are_one_transaction(db, kind):
    done = import_doc(db)
    case, trigger, actor, day, facts, note = MAIL_MOVES[kind](db, done)
    before = snapshot(db)

    class Abandoned(Exception):
        pass

    with pytest.raises(Abandoned), db.transaction() as tx:
        decision = advance_in(
            tx,
            case_id=case,
            trigger=trigger,
            actor=actor,
            clock=Clock.on(day),
            staff_email=STAFF_MAIL,
            facts=facts,
            note=note,
        )
        version = decision.changes[0].version
        found = tx.scalar(
            "SELECT count(*) FROM outbox o JOIN history h ON h.case_id = o.case_id "
            "AND h.version = :version WHERE o.key = :key",
            {"version": version, "key": f"case-{case}:{kind}:v{version}"},
        )
        assert found == 1  # the row and the move, visible together inside the transaction
        raise Abandoned
    assert snapshot(db) == before  # and gone together when it rolls back
