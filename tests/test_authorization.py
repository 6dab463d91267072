"""Who may act: coordinators on their own organisation's cases, staff on staff triggers."""

from __future__ import annotations

from datetime import date

import pytest

from factories import STAFF, advance, document, import_doc, snapshot, walk
from vetpro_workflow.db import writing
from vetpro_workflow.errors import NotAllowed
from vetpro_workflow.users import add_user

OTHER = "jan.novak@sps-brno.example"


def other_applicant() -> dict:
    return document(
        **{
            "applicant.name": "Stredni prumyslova skola Brno",
            "applicant.country": "CZ",
            "applicant.contact_name": "Jan Novak",
            "applicant.contact_email": OTHER,
        }
    )


def not_allowed(engine, case_id, trigger, match, **kw):
    before = snapshot(engine)
    with pytest.raises(NotAllowed, match=match):
        advance(engine, case_id, trigger, **kw)
    assert snapshot(engine) == before


def test_a_coordinator_cannot_act_on_another_organisations_application(engine):
    mine = import_doc(engine)
    import_doc(engine, other_applicant())
    not_allowed(
        engine,
        mine.application,
        "submit",
        "coordinates Stredni prumyslova skola Brno; "
        "Application 1 belongs to Berufsbildungszentrum Steyr",
        actor=OTHER,
        on=date(2027, 1, 15),
    )


def test_a_coordinator_cannot_act_on_another_organisations_mobility(engine):
    mine = import_doc(engine)
    import_doc(engine, other_applicant())
    not_allowed(
        engine,
        mine.mobilities[0],
        "cancel",
        "belongs to Berufsbildungszentrum Steyr",
        actor=OTHER,
        on=date(2027, 1, 15),
        note="not mine",
    )


@pytest.mark.parametrize(
    ("steps", "trigger"), [(1, "approve"), (1, "reject"), (1, "request_changes")]
)
def test_a_coordinator_cannot_fire_staff_triggers(engine, steps, trigger):
    done = import_doc(engine)
    walk(engine, done, steps)
    not_allowed(
        engine,
        done.application,
        trigger,
        f"'{trigger}' on an application is fired by NA staff",
        on=date(2027, 2, 1),
        note="self-approval",
    )


@pytest.mark.parametrize(
    ("steps", "case", "trigger", "facts"),
    [
        (0, 0, "submit", {}),
        (5, 1, "depart", {"departed_on": "2027-09-06", "preparation_done": "true"}),
    ],
)
def test_staff_cannot_fire_the_coordinators_triggers(engine, steps, case, trigger, facts):
    done = import_doc(engine)
    walk(engine, done, steps)
    ids = [done.application, *done.mobilities]
    not_allowed(
        engine,
        ids[case],
        trigger,
        "is fired by the coordinator",
        actor=STAFF,
        on=date(2027, 9, 6),
        **facts,
    )


def test_nobody_can_fire_a_system_trigger_by_hand(engine):
    done = import_doc(engine)
    walk(engine, done, 6)
    not_allowed(
        engine,
        done.application,
        "mobilities_returned",
        "fired by the system",
        actor=STAFF,
        on=date(2027, 9, 30),
    )


@pytest.mark.parametrize("actor", ["nobody@nowhere.example", "system", ""])
def test_an_unknown_actor_is_refused(engine, actor):
    done = import_doc(engine)
    not_allowed(
        engine, done.application, "submit", "unknown actor", actor=actor, on=date(2027, 1, 15)
    )


def test_a_second_coordinator_of_the_same_organisation_may_act(engine):
    done = import_doc(engine)
    with writing(engine) as session:
        add_user(
            session,
            email="deputy@bbz-steyr.example",
            role="coordinator",
            organisation="Berufsbildungszentrum Steyr",
        )
    advance(
        engine, done.application, "submit", actor="deputy@bbz-steyr.example", on=date(2027, 1, 15)
    )
