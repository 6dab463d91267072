"""Who may act: coordinators on their own organisation's cases, staff on staff triggers; and what
`case show` offers each of them."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from factories import (
    COORDINATOR,
    STAFF,
    advance,
    document,
    import_doc,
    snapshot,
    state_of,
    step_of,
    walk,
)
from vetpro_workflow.errors import ConflictError, NotAllowed, NotFound
from vetpro_workflow.states.facts import CRITERIA
from vetpro_workflow.store import views
from vetpro_workflow.store.users import add_user, resolve

OTHER = "jan.novak@sps-brno.example"
DEPUTY = "deputy@bbz-steyr.example"


def other_applicant() -> dict:
    return document(
        **{
            "applicant.name": "Stredni prumyslova skola Brno",
            "applicant.country": "CZ",
            "applicant.contact_name": "Jan Novak",
            "applicant.contact_email": OTHER,
        }
    )


def not_allowed(db, case_id, trigger, rule, /, *, error=NotAllowed, **kw):
    """Fire a trigger the actor may not fire; assert the message and that nothing changed."""
    before = snapshot(db)
    with pytest.raises(error, match=rule):
        advance(db, case_id, trigger, **kw)
    assert snapshot(db) == before


def show_as(db, case_id: int, email: str) -> dict[str, Any]:
    """`vetpro case show ID --actor EMAIL`: the case as that person sees it."""
    with db.transaction(write=False) as tx:
        return views.show(tx, case_id, actor=resolve(tx, email))


def offered(shown: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["trigger"]: a for a in shown["allowed"]}


# --- firing triggers ----------------------------------------------------------------------------


def test_a_coordinator_cannot_act_on_another_organisations_application(db):
    mine = import_doc(db)
    import_doc(db, other_applicant())
    not_allowed(
        db,
        mine.application,
        "submit",
        f"{OTHER} may act only on the cases of their own organisation; "
        f"application {mine.application} is not one of them",
        actor=OTHER,
        on=date(2027, 1, 15),
    )


def test_a_coordinator_cannot_act_on_another_organisations_mobility(db):
    mine = import_doc(db)
    import_doc(db, other_applicant())
    not_allowed(
        db,
        mine.mobilities[0],
        "cancel",
        f"mobility {mine.mobilities[0]} is not one of them",
        actor=OTHER,
        on=date(2027, 1, 15),
        note="not mine",
    )


def test_a_coordinator_of_another_organisation_learns_nothing_from_a_stale_version(db):
    mine = import_doc(db)
    import_doc(db, other_applicant())
    # Out of scope comes first: a conflict would tell them the case exists and its version.
    not_allowed(
        db,
        mine.application,
        "submit",
        "may act only on the cases of their own organisation",
        actor=OTHER,
        on=date(2027, 1, 15),
        expected_version=99,
    )


@pytest.mark.parametrize("trigger", ["evaluate", "approve", "reject", "request_changes"])
def test_a_coordinator_cannot_fire_staff_triggers(db, trigger):
    done = import_doc(db)
    walk(db, done, step_of("evaluate"))
    not_allowed(
        db,
        done.application,
        trigger,
        f"'{trigger}' on an application is fired by NA staff, not by the coordinator",
        on=date(2027, 2, 1),
        note="self-approval",
    )


def test_a_coordinator_cannot_close_their_own_project(db):
    done = import_doc(db)
    walk(db, done, step_of("complete", 2))
    not_allowed(
        db,
        done.application,
        "close",
        "'close' on an application is fired by NA staff",
        on=date(2029, 7, 1),
        final_report_on="2029-06-20",
    )


@pytest.mark.parametrize(
    ("steps", "case", "trigger", "facts"),
    [
        (0, 0, "submit", {}),
        (0, 0, "withdraw", {}),
        (
            step_of("start_preparation", 2),
            1,
            "depart",
            {"departed_on": "2027-09-06", "preparation_done": "true"},
        ),
        (
            step_of("start_preparation"),
            1,
            "start_preparation",
            {"agreement_signed_on": "2027-05-10"},
        ),
        (step_of("return_home", 2), 1, "validate", {"europass_ref": "EMD-1"}),
    ],
    ids=["submit", "withdraw", "depart", "training agreement", "validate"],
)
def test_staff_cannot_fire_the_coordinators_triggers(db, steps, case, trigger, facts):
    done = import_doc(db)
    walk(db, done, steps)
    ids = [done.application, *done.mobilities]
    not_allowed(
        db,
        ids[case],
        trigger,
        "is fired by the coordinator, not by NA staff",
        actor=STAFF,
        on=date(2027, 11, 6),
        note="on their behalf",
        **facts,
    )


def test_staff_may_record_the_grant_agreement_and_cancel_a_mobility(db):
    done = import_doc(db)
    walk(db, done, step_of("approve"))
    advance(
        db,
        done.application,
        "start_preparation",
        actor=STAFF,
        on=date(2027, 3, 10),
        grant_agreement_signed_on="2027-03-10",
    )
    advance(
        db,
        done.mobilities[0],
        "cancel",
        actor=STAFF,
        on=date(2027, 3, 11),
        note="Participant retired.",
    )
    assert state_of(db, done.application) == "preparation"
    assert state_of(db, done.mobilities[0]) == "cancelled"
    with db.transaction(write=False) as tx:
        actors = {
            (h["trigger"], h["actor"])
            for case in (done.application, done.mobilities[0])
            for h in views.history(tx, case)
        }
    assert {("start_preparation", STAFF), ("cancel", STAFF)} <= actors


def test_nobody_can_fire_a_system_trigger_by_hand(db):
    done = import_doc(db)
    walk(db, done, step_of("depart", 1))
    not_allowed(
        db,
        done.application,
        "mobilities_returned",
        "fired by the system",
        actor=STAFF,
        on=date(2027, 9, 30),
    )


@pytest.mark.parametrize("actor", ["nobody@nowhere.example", "system", ""])
def test_an_unknown_actor_is_refused(db, actor):
    done = import_doc(db)
    not_allowed(db, done.application, "submit", "unknown actor", actor=actor, on=date(2027, 1, 15))


def test_a_second_coordinator_of_the_same_organisation_may_act(db):
    done = import_doc(db)
    with db.transaction() as tx:
        add_user(tx, email=DEPUTY, role="coordinator", organisation="Berufsbildungszentrum Steyr")
    advance(db, done.application, "submit", actor=DEPUTY, on=date(2027, 1, 15))
    assert state_of(db, done.application) == "submitted"


def test_a_version_conflict_is_refused_before_anything_is_written_for_a_permitted_actor(db):
    done = import_doc(db)
    not_allowed(
        db,
        done.application,
        "submit",
        "changed meanwhile",
        error=ConflictError,
        on=date(2027, 1, 15),
        expected_version=2,
    )


# --- case show, per person ----------------------------------------------------------------------


def test_a_coordinator_is_not_offered_staff_triggers(db):
    done = import_doc(db)
    walk(db, done, step_of("submit"))
    shown = show_as(db, done.application, COORDINATOR)
    assert shown["allowed_triggers"] == ["withdraw"]
    assert offered(shown)["withdraw"] == {
        "trigger": "withdraw",
        "who": ["coordinator"],
        "facts": [],
        "note": True,
    }


def test_staff_are_offered_the_staff_triggers_with_the_facts_each_asks_for(db):
    done = import_doc(db)
    walk(db, done, step_of("submit"))
    waiting = show_as(db, done.application, STAFF)
    assert sorted(waiting["allowed_triggers"]) == ["evaluate", "reject", "request_changes"]
    assert [w["trigger"] for w in waiting["waiting"]] == ["approve"]
    walk(db, done, step_of("evaluate"), start=step_of("submit"))
    shown = show_as(db, done.application, STAFF)
    assert sorted(shown["allowed_triggers"]) == ["approve", "evaluate", "reject", "request_changes"]
    actions = offered(shown)
    assert actions["evaluate"]["facts"] == [
        {"name": name, "shape": "a number", "required": True} for name in CRITERIA
    ]
    assert actions["request_changes"]["facts"] == [
        {"name": "resubmit_by", "shape": "YYYY-MM-DD", "required": False}
    ]
    assert actions["approve"]["facts"] == [] and actions["approve"]["note"] is True
    assert "withdraw" not in actions


def test_coordinator_and_staff_are_both_offered_the_grant_agreement(db):
    done = import_doc(db)
    walk(db, done, step_of("approve"))
    fact = [{"name": "grant_agreement_signed_on", "shape": "YYYY-MM-DD", "required": True}]
    for person in (COORDINATOR, STAFF):
        actions = offered(show_as(db, done.application, person))
        assert actions["start_preparation"]["facts"] == fact
    assert sorted(offered(show_as(db, done.application, COORDINATOR))) == [
        "start_preparation",
        "withdraw",
    ]
    assert sorted(offered(show_as(db, done.application, STAFF))) == ["start_preparation"]


def test_a_mobility_offers_each_person_their_own_triggers_with_their_facts(db):
    done = import_doc(db)
    walk(db, done, step_of("start_preparation", 2))
    mine = offered(show_as(db, done.mobilities[0], COORDINATOR))
    assert sorted(mine) == ["cancel", "depart", "record_preparation"]
    assert mine["depart"]["facts"] == [
        {"name": "departed_on", "shape": "YYYY-MM-DD", "required": True},
        {"name": "preparation_done", "shape": "true or false", "required": False},
    ]
    assert mine["cancel"]["note"] is True
    staffs = offered(show_as(db, done.mobilities[0], STAFF))
    assert sorted(staffs) == ["cancel"]


def test_a_stay_abroad_offers_interruption_to_coordinator_and_staff(db):
    done = import_doc(db)
    walk(db, done, step_of("depart", 1))
    mine = offered(show_as(db, done.mobilities[0], COORDINATOR))
    assert sorted(mine) == ["interrupt", "return_home"]
    assert mine["interrupt"]["facts"] == [
        {"name": "returned_on", "shape": "YYYY-MM-DD", "required": True},
        {"name": "reason", "shape": "force_majeure or other", "required": True},
    ]
    assert mine["interrupt"]["note"] is True
    assert sorted(offered(show_as(db, done.mobilities[0], STAFF))) == ["interrupt"]


def test_a_coordinator_of_another_organisation_cannot_see_the_case(db):
    mine = import_doc(db)
    import_doc(db, other_applicant())
    for case in (mine.application, *mine.mobilities):
        with pytest.raises(
            NotFound, match=f"case {case} does not exist or is not one of your organisation's"
        ):
            show_as(db, case, OTHER)


def test_a_coordinator_sees_their_own_case_with_its_version(db):
    done = import_doc(db)
    walk(db, done, step_of("submit"))
    shown = show_as(db, done.mobilities[1], COORDINATOR)
    assert (shown["id"], shown["state"], shown["version"]) == (done.mobilities[1], "submitted", 2)
    # A submitted mobility moves with its application; it can only be called off.
    assert shown["allowed_triggers"] == ["cancel"]
