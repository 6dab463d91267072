"""The whole decision of a move (states/cascade.py), checked without a database.

A table of project snapshots, built by hand, against the changes and notices the spec asks for;
then a walk through every combination of states a project with three mobilities can reach, firing
every trigger anyone may fire, to show that no project is ever left where nobody can move it.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from typing import Any, NamedTuple

import pytest

from vetpro_workflow.errors import InvalidInput, NotAllowed, NotFound, TransitionRefused
from vetpro_workflow.states.actors import SYSTEM, Actor
from vetpro_workflow.states.calendar import BRUSSELS
from vetpro_workflow.states.cascade import Decision, OutOfScope, decide, rederive
from vetpro_workflow.states.snapshots import (
    ApplicationSnapshot,
    CallRules,
    MobilitySnapshot,
    Partner,
)
from vetpro_workflow.states.workflows import definition

ORGANISATION = 7
COORDINATOR_MAIL = "claire@lycee.example"
COORDINATOR = Actor(COORDINATOR_MAIL, "coordinator", ORGANISATION)
STRANGER = Actor("someone@elsewhere.example", "coordinator", ORGANISATION + 1)
STAFF = Actor("officer@national-agency.example", "staff")
STAFF_MAIL = "vetpro-staff@national-agency.example"
ACTORS = {"coordinator": COORDINATOR, "staff": STAFF, "system": SYSTEM}

DEADLINE = datetime(2027, 2, 1, 12, 0, tzinfo=BRUSSELS)
PROJECT_START = date(2027, 6, 1)
PROJECT_END = date(2029, 5, 31)
APPROVED_ON = date(2027, 2, 20)
GRANT_SIGNED = date(2027, 3, 10)
AGREEMENT_SIGNED = date(2027, 5, 10)
SCORES = {
    "objectives": 8,
    "match": 7,
    "preparation": 7,
    "validation": 6,
    "organisation": 8,
    "dissemination": 7,
}  # 43 of 60; the default pass mark is 36
LOW_SCORES = dict.fromkeys(SCORES, 3)  # 18 of 60

CALL = CallRules(
    code="LLP-2027",
    title="Lifelong Learning Programme 2027",
    deadline=DEADLINE,
    earliest_start=PROJECT_START,
    max_project_months=24,
)
HOST = Partner(name="Berufskolleg Ost", country="DE", type="vet_provider")


class Plan(NamedTuple):
    id: int
    version: int
    participant: str
    email: str
    start: date
    end: date


PLANS = (
    Plan(11, 2, "Jean Dupont", "jean@lycee.example", date(2027, 9, 6), date(2027, 9, 24)),
    Plan(12, 3, "Marie Curie", "marie@lycee.example", date(2027, 10, 4), date(2027, 10, 15)),
    Plan(13, 4, "Paul Klee", "paul@lycee.example", date(2027, 11, 8), date(2027, 11, 19)),
)
PLAN = {p.id: p for p in PLANS}
APPLICATION_VERSION = 5


def recorded(plan: Plan, state: str) -> dict[str, Any]:
    """The facts a mobility has recorded by the time it reaches a state."""
    order = ("preparation", "abroad", "validation", "dissemination", "completed")
    reached = order.index(state) + 1 if state in order else 0
    facts: dict[str, Any] = {}
    if reached >= 1:
        facts["agreement_signed_on"] = AGREEMENT_SIGNED
    if reached >= 2:
        facts |= {"departed_on": plan.start, "preparation_done": True}
    if reached >= 3:
        facts["returned_on"] = plan.end
    if reached >= 4:
        facts |= {"europass_ref": f"EMD-{plan.id}", "participant_report_on": plan.end}
    if reached >= 5:
        facts["dissemination"] = "A workshop for colleagues"
    return facts


def a_mobility(plan: Plan, state: str) -> MobilitySnapshot:
    return MobilitySnapshot(
        id=plan.id,
        state=state,
        version=plan.version,
        application_id=1,
        participant_name=plan.participant,
        participant_email=plan.email,
        profession="teacher",
        professional_background="Welding teacher for 12 years",
        training_needs="Robot welding",
        host_name=HOST.name,
        host_country=HOST.country,
        start_date=plan.start,
        end_date=plan.end,
        objectives="Learn robot welding didactics",
        content="Job shadowing in the robot welding workshop",
        language_preparation=plan.id == 11,
        facts=recorded(plan, state),
    )


def application_facts(state: str) -> dict[str, Any]:
    """The facts an application has recorded by the time it reaches a state."""
    if state in ("drafted", "withdrawn"):
        return {}
    facts: dict[str, Any] = {"scores": SCORES, "score": 43, "evaluated_on": date(2027, 2, 10)}
    if state in ("submitted", "rejected"):
        return facts
    facts["approved_on"] = APPROVED_ON
    if state == "approved":
        return facts
    return facts | {"grant_agreement_signed_on": GRANT_SIGNED}


def project(state: str, *mobility_states: str, **changes: Any) -> ApplicationSnapshot:
    """A project in a state with its mobilities (the first, second, third plan) in theirs."""
    base = ApplicationSnapshot(
        id=1,
        state=state,
        version=APPLICATION_VERSION,
        organisation_id=ORGANISATION,
        title="Welding teachers abroad",
        applicant_name="Lycée des Métiers",
        applicant_type="vet_provider",
        applicant_country="FR",
        coordinator_name="Claire Martin",
        coordinator_email=COORDINATOR_MAIL,
        call=CALL,
        start_date=PROJECT_START,
        end_date=PROJECT_END,
        objectives="Trainers learn to teach welding with simulators.",
        dissemination_plan="A guide on the school's website.",
        partners=(HOST,),
        mobilities=tuple(a_mobility(p, s) for p, s in zip(PLANS, mobility_states, strict=False)),
        facts=application_facts(state),
    )
    return replace(base, **changes)


def at(day: date) -> dict[str, Any]:
    return {"today": day, "now": datetime.combine(day, time(10, 0), tzinfo=BRUSSELS)}


def decide_on(
    p: ApplicationSnapshot,
    case_id: int,
    trigger: str,
    actor: Actor,
    day: date,
    facts: dict[str, Any] | None = None,
    note: str | None = None,
) -> Decision:
    return decide(
        p, case_id, trigger, actor=actor, staff_email=STAFF_MAIL, facts=facts, note=note, **at(day)
    )


# --- the table ----------------------------------------------------------------------------------


class Row(NamedTuple):
    name: str
    before: ApplicationSnapshot
    case_id: int
    trigger: str
    actor: Actor
    day: date
    facts: dict[str, Any]
    note: str | None
    changes: tuple[tuple[int, str, str, str, bool], ...]  # case, trigger, source, dest, carried
    notices: tuple[tuple[str, str, str], ...]  # kind, recipient, key


JEAN, MARIE, PAUL = (p.email for p in PLANS)
C = COORDINATOR_MAIL

TABLE = [
    Row("submit carries the planned mobilities, not a cancelled one",
        project("drafted", "drafted", "drafted", "cancelled"), 1, "submit", COORDINATOR,
        date(2027, 1, 15), {}, None,
        ((1, "submit", "drafted", "submitted", False),
         (11, "submit", "drafted", "submitted", True),
         (12, "submit", "drafted", "submitted", True)),
        (("receipt", C, "case-1:receipt:v6"),)),
    Row("request_changes carries the mobilities back to drafted",
        project("submitted", "submitted", "submitted"), 1, "request_changes", STAFF,
        date(2027, 2, 15), {"resubmit_by": "2027-03-01"}, "Clarify the host's role.",
        ((1, "request_changes", "submitted", "drafted", False),
         (11, "request_changes", "submitted", "drafted", True),
         (12, "request_changes", "submitted", "drafted", True)),
        (("changes_requested", C, "case-1:changes_requested:v6"),)),
    Row("approve carries the submitted mobilities",
        project("submitted", "submitted", "cancelled", "submitted"), 1, "approve", STAFF,
        APPROVED_ON, {}, "Sound objectives.",
        ((1, "approve", "submitted", "approved", False),
         (11, "approve", "submitted", "approved", True),
         (13, "approve", "submitted", "approved", True)),
        (("decision_approved", C, "case-1:decision_approved:v6"),)),
    Row("reject cancels the open mobilities",
        project("submitted", "submitted", "cancelled"), 1, "reject", STAFF,
        APPROVED_ON, {}, "Below the quality threshold.",
        ((1, "reject", "submitted", "rejected", False),
         (11, "cancel", "submitted", "cancelled", True)),
        (("decision_rejected", C, "case-1:decision_rejected:v6"),)),
    Row("withdraw from approved cancels the open mobilities",
        project("approved", "approved", "approved"), 1, "withdraw", COORDINATOR,
        date(2027, 3, 1), {}, "The school closes.",
        ((1, "withdraw", "approved", "withdrawn", False),
         (11, "cancel", "approved", "cancelled", True),
         (12, "cancel", "approved", "cancelled", True)),
        (("withdrawal_confirmed", C, "case-1:withdrawal_confirmed:v6"),)),
    Row("withdraw from drafted cancels the planned mobilities",
        project("drafted", "drafted", "drafted"), 1, "withdraw", COORDINATOR,
        date(2027, 1, 10), {}, "Not this year.",
        ((1, "withdraw", "drafted", "withdrawn", False),
         (11, "cancel", "drafted", "cancelled", True),
         (12, "cancel", "drafted", "cancelled", True)),
        (("withdrawal_confirmed", C, "case-1:withdrawal_confirmed:v6"),)),
    Row("the first departure moves the project abroad",
        project("preparation", "preparation", "approved"), 11, "depart", COORDINATOR,
        date(2027, 9, 6), {"departed_on": "2027-09-06", "preparation_done": "true"}, None,
        ((11, "depart", "preparation", "abroad", False),
         (1, "mobilities_departed", "preparation", "abroad", False)),
        (("departure_confirmation", C, "case-11:departure_confirmation:v3"),)),
    Row("a second departure leaves the project abroad",
        project("abroad", "abroad", "preparation"), 12, "depart", COORDINATOR,
        date(2027, 10, 4), {"departed_on": "2027-10-04"}, None,
        ((12, "depart", "preparation", "abroad", False),),
        (("departure_confirmation", C, "case-12:departure_confirmation:v4"),)),
    Row("a return while another mobility is abroad leaves the project abroad",
        project("abroad", "abroad", "abroad"), 11, "return_home", COORDINATOR,
        date(2027, 9, 24), {"returned_on": "2027-09-24"}, None,
        ((11, "return_home", "abroad", "validation", False),),
        (("participant_report_request", JEAN, "case-11:participant_report_request:v3"),
         ("return_recorded", C, "case-11:return_recorded:v3"))),
    Row("the last return moves the project to validation",
        project("abroad", "validation", "abroad"), 12, "return_home", COORDINATOR,
        date(2027, 10, 15), {"returned_on": "2027-10-15"}, None,
        ((12, "return_home", "abroad", "validation", False),
         (1, "mobilities_returned", "abroad", "validation", False)),
        (("participant_report_request", MARIE, "case-12:participant_report_request:v4"),
         ("return_recorded", C, "case-12:return_recorded:v4"))),
    Row("the last return moves the project to validation beside a cancelled mobility",
        project("abroad", "abroad", "cancelled"), 11, "return_home", COORDINATOR,
        date(2027, 9, 24), {"returned_on": "2027-09-24"}, None,
        ((11, "return_home", "abroad", "validation", False),
         (1, "mobilities_returned", "abroad", "validation", False)),
        (("participant_report_request", JEAN, "case-11:participant_report_request:v3"),
         ("return_recorded", C, "case-11:return_recorded:v3"))),
    Row("the sweep's return on the planned end date counts as the last return",
        project("abroad", "validation", "abroad"), 12, "return_home", SYSTEM,
        date(2027, 10, 15), {"returned_on": "2027-10-15"},
        "returned by the daily sweep on the planned end date",
        ((12, "return_home", "abroad", "validation", False),
         (1, "mobilities_returned", "abroad", "validation", False)),
        (("participant_report_request", MARIE, "case-12:participant_report_request:v4"),
         ("return_recorded", C, "case-12:return_recorded:v4"))),
    Row("an interruption counts as a return",
        project("abroad", "validation", "abroad"), 12, "interrupt", STAFF,
        date(2027, 10, 6), {"returned_on": "2027-10-06", "reason": "force_majeure"},
        "The host's workshop burnt down.",
        ((12, "interrupt", "abroad", "validation", False),
         (1, "mobilities_returned", "abroad", "validation", False)),
        (("participant_report_request", MARIE, "case-12:participant_report_request:v4"),
         ("stay_interrupted", C, "case-12:stay_interrupted:v4"))),
    Row("a validation while another mobility awaits it leaves the project in validation",
        project("validation", "validation", "validation"), 11, "validate", COORDINATOR,
        date(2027, 11, 2), {"europass_ref": "EMD-11"}, None,
        ((11, "validate", "validation", "dissemination", False),),
        ()),
    Row("the last validation moves the project to dissemination",
        project("validation", "completed", "validation"), 12, "validate", COORDINATOR,
        date(2027, 11, 2), {"europass_ref": "EMD-12", "participant_report_on": "2027-10-20"},
        None,
        ((12, "validate", "validation", "dissemination", False),
         (1, "mobilities_validated", "validation", "dissemination", False)),
        (("final_report_due", C, "case-1:final_report_due:v6"),)),
    Row("cancelling the last live mobility in preparation moves the project to dissemination",
        project("preparation", "cancelled", "preparation"), 12, "cancel", COORDINATOR,
        date(2027, 7, 1), {}, "The participant left the school.",
        ((12, "cancel", "preparation", "cancelled", False),
         (1, "mobilities_cancelled", "preparation", "dissemination", False)),
        (("mobility_cancelled", C, "case-12:mobility_cancelled:v4"),
         ("final_report_due", C, "case-1:final_report_due:v6"))),
    Row("cancelling one of two mobilities in preparation leaves the project in preparation",
        project("preparation", "preparation", "preparation"), 11, "cancel", STAFF,
        date(2027, 7, 1), {}, "Force majeure.",
        ((11, "cancel", "preparation", "cancelled", False),),
        (("mobility_cancelled", C, "case-11:mobility_cancelled:v3"),)),
    Row("cancelling the last live mobility of an approved project waits for its grant agreement",
        project("approved", "cancelled", "approved"), 12, "cancel", COORDINATOR,
        date(2027, 3, 1), {}, "The participant left the school.",
        ((12, "cancel", "approved", "cancelled", False),),
        (("mobility_cancelled", C, "case-12:mobility_cancelled:v4"),)),
    Row("recording the grant agreement of a project with no live mobility goes on to dissemination",
        project("approved", "cancelled", "cancelled"), 1, "start_preparation", COORDINATOR,
        GRANT_SIGNED, {"grant_agreement_signed_on": "2027-03-10"}, None,
        ((1, "start_preparation", "approved", "preparation", False),
         (1, "mobilities_cancelled", "preparation", "dissemination", False)),
        (("grant_agreement_recorded", C, "case-1:grant_agreement_recorded:v6"),
         ("final_report_due", C, "case-1:final_report_due:v7"))),
    Row("cancelling the last mobility not yet returned moves the project to validation",
        project("abroad", "validation", "preparation"), 12, "cancel", COORDINATOR,
        date(2027, 9, 28), {}, "The participant fell ill.",
        ((12, "cancel", "preparation", "cancelled", False),
         (1, "mobilities_returned", "abroad", "validation", False)),
        (("mobility_cancelled", C, "case-12:mobility_cancelled:v4"),)),
    Row("cancelling the last open mobility beside validated ones moves the project twice",
        project("abroad", "dissemination", "preparation"), 12, "cancel", COORDINATOR,
        date(2027, 10, 20), {}, "The participant fell ill.",
        ((12, "cancel", "preparation", "cancelled", False),
         (1, "mobilities_returned", "abroad", "validation", False),
         (1, "mobilities_validated", "validation", "dissemination", False)),
        (("mobility_cancelled", C, "case-12:mobility_cancelled:v4"),
         ("final_report_due", C, "case-1:final_report_due:v7"))),
    Row("a training agreement moves only its mobility",
        project("preparation", "approved", "approved"), 11, "start_preparation", COORDINATOR,
        AGREEMENT_SIGNED, {"agreement_signed_on": "2027-05-10"}, None,
        ((11, "start_preparation", "approved", "preparation", False),),
        ()),
    Row("a participant report recorded after completion changes no state",
        project("dissemination", "completed", "completed"), 12, "record_report", STAFF,
        date(2027, 12, 1), {"participant_report_on": "2027-11-30"}, None,
        ((12, "record_report", "completed", "completed", False),),
        ()),
    Row("evaluate keeps the application submitted and its mobilities where they are",
        project("submitted", "submitted", "submitted"), 1, "evaluate", STAFF,
        date(2027, 2, 10), dict(SCORES), "Clear objectives.",
        ((1, "evaluate", "submitted", "submitted", False),),
        ()),
    Row("close ends the project",
        project("dissemination", "completed", "cancelled"), 1, "close", STAFF,
        date(2029, 7, 1), {"final_report_on": "2029-06-20"}, None,
        ((1, "close", "dissemination", "closed", False),),
        (("closure", C, "case-1:closure:v6"),)),
]  # fmt: skip


@pytest.mark.parametrize("row", TABLE, ids=[r.name for r in TABLE])
def test_a_move_decides_the_changes_and_notices_the_spec_asks_for(row: Row) -> None:
    decision = decide_on(
        row.before, row.case_id, row.trigger, row.actor, row.day, row.facts, row.note
    )
    got = tuple((c.case_id, c.trigger, c.source, c.dest, c.carried) for c in decision.changes)
    assert got == row.changes
    assert tuple((n.kind, n.recipient, n.key) for n in decision.notices) == row.notices
    after = {c.case_id: c.dest for c in decision.changes}
    assert decision.project.state == after.get(1, row.before.state)
    for m in decision.project.mobilities:
        assert m.state == after.get(m.id, row.before.case(m.id).state)  # type: ignore[union-attr]


@pytest.mark.parametrize("row", TABLE, ids=[r.name for r in TABLE])
def test_each_change_is_a_compare_and_set_on_the_version_seen(row: Row) -> None:
    decision = decide_on(
        row.before, row.case_id, row.trigger, row.actor, row.day, row.facts, row.note
    )
    seen: dict[int, int] = {}
    for c in decision.changes:
        before = row.before.case(c.case_id)
        assert before is not None
        assert c.seen_version == seen.get(c.case_id, before.version)
        assert c.version == c.seen_version + 1
        seen[c.case_id] = c.version
    for case_id, version in seen.items():
        assert decision.project.case(case_id).version == version  # type: ignore[union-attr]


@pytest.mark.parametrize("row", TABLE, ids=[r.name for r in TABLE])
def test_the_move_is_recorded_for_the_actor_and_what_follows_for_the_system(row: Row) -> None:
    decision = decide_on(
        row.before, row.case_id, row.trigger, row.actor, row.day, row.facts, row.note
    )
    first, *rest = decision.changes
    assert (first.actor, first.note) == (row.actor.email, row.note)
    for c in rest:
        assert c.actor == "system"
        assert c.note
        if c.carried:
            assert c.note.startswith(f"with application 1 ({row.trigger})")
        else:
            assert c.note.startswith("following its mobilities")


def test_facts_are_read_and_typed_before_they_are_judged() -> None:
    decision = decide_on(
        project("preparation", "preparation"),
        11,
        "depart",
        COORDINATOR,
        date(2027, 9, 6),
        {"departed_on": " 2027-09-06 ", "preparation_done": "yes"},
    )
    depart = decision.changes[0]
    assert depart.facts == {"departed_on": date(2027, 9, 6), "preparation_done": True}
    assert depart.sets == {"departed_on": date(2027, 9, 6), "preparation_done": True}
    assert decision.project.case(11).facts["departed_on"] == date(2027, 9, 6)  # type: ignore[union-attr]


def test_a_fact_the_trigger_does_not_take_is_refused() -> None:
    with pytest.raises(InvalidInput, match="'returned_on' is not a fact of 'depart'"):
        decide_on(
            project("preparation", "preparation"),
            11,
            "depart",
            COORDINATOR,
            date(2027, 9, 6),
            {"departed_on": "2027-09-06", "preparation_done": "true", "returned_on": "2027-09-07"},
        )


def test_a_notice_says_what_the_move_was_and_what_comes_next() -> None:
    decision = decide_on(
        project("submitted", "submitted"),
        1,
        "request_changes",
        STAFF,
        date(2027, 2, 15),
        {"resubmit_by": "2027-03-01"},
        "  Clarify the host's role.  ",
    )
    (notice,) = decision.notices
    assert notice.case_id == 1
    assert notice.context["trigger"] == "request_changes"
    assert notice.context["note"] == "Clarify the host's role."
    assert notice.context["resubmit_by"] == "2027-03-01"
    assert notice.context["next_step_due"] == "2027-03-01"
    assert "again by 2027-03-01" in notice.context["next_step"]


# --- who may act --------------------------------------------------------------------------------


@pytest.mark.parametrize(("case_id", "trigger"), [(1, "withdraw"), (11, "cancel")])
def test_a_coordinator_of_another_organisation_is_out_of_scope(case_id: int, trigger: str) -> None:
    with pytest.raises(OutOfScope) as refused:
        decide_on(
            project("approved", "approved"),
            case_id,
            trigger,
            STRANGER,
            date(2027, 3, 1),
            None,
            "Not ours.",
        )
    assert isinstance(refused.value, NotAllowed)
    assert refused.value.http_status == 404
    assert "someone@elsewhere.example may act only on the cases of their own organisation" in str(
        refused.value
    )


def test_na_staff_act_on_the_cases_of_every_organisation() -> None:
    decision = decide_on(
        project("approved", "approved"),
        11,
        "cancel",
        STAFF,
        date(2027, 3, 1),
        None,
        "Force majeure.",
    )
    assert decision.changes[0].dest == "cancelled"


def test_a_coordinator_cannot_fire_what_staff_decide() -> None:
    with pytest.raises(NotAllowed) as refused:
        decide_on(
            project("submitted", "submitted"),
            1,
            "approve",
            COORDINATOR,
            APPROVED_ON,
            None,
            "We like it.",
        )
    assert not isinstance(refused.value, OutOfScope)


def test_a_case_outside_the_project_is_not_found() -> None:
    with pytest.raises(NotFound, match="case 99 is not part of application 1"):
        decide_on(project("approved", "approved"), 99, "cancel", STAFF, date(2027, 3, 1), None, "x")


def test_a_refused_move_raises_instead_of_deciding_part_of_it() -> None:
    # The language preparation of the first mobility was planned and is not recorded.
    with pytest.raises(TransitionRefused, match="preparation_done=true"):
        decide_on(
            project("preparation", "preparation"),
            11,
            "depart",
            COORDINATOR,
            date(2027, 9, 6),
            {"departed_on": "2027-09-06"},
        )


# --- what the moves record ----------------------------------------------------------------------


def test_evaluate_records_the_scores_and_their_weighted_total() -> None:
    before = project("submitted", "submitted", facts={})
    decision = decide_on(before, 1, "evaluate", STAFF, date(2027, 2, 10), dict(SCORES), "Good.")
    (change,) = decision.changes
    assert change.sets == {"scores": SCORES, "score": 43, "evaluated_on": date(2027, 2, 10)}
    assert decision.project.facts["score"] == 43
    weighted = replace(CALL, weights={**dict.fromkeys(SCORES, 1), "objectives": 2})
    decision = decide_on(
        replace(before, call=weighted),
        1,
        "evaluate",
        STAFF,
        date(2027, 2, 10),
        dict(SCORES),
        "Good.",
    )
    assert decision.changes[0].sets["score"] == 51


def test_an_evaluation_below_the_pass_mark_is_recorded_and_then_refuses_approval() -> None:
    before = project("submitted", "submitted", facts={})
    evaluated = decide_on(before, 1, "evaluate", STAFF, date(2027, 2, 10), LOW_SCORES, "Weak.")
    assert evaluated.changes[0].sets["score"] == 18
    with pytest.raises(TransitionRefused, match="the latest totals 18"):
        decide_on(evaluated.project, 1, "approve", STAFF, APPROVED_ON, None, "Approve anyway.")
    again = decide_on(
        evaluated.project, 1, "evaluate", STAFF, date(2027, 2, 12), dict(SCORES), "Re-read."
    )
    approved = decide_on(again.project, 1, "approve", STAFF, APPROVED_ON, None, "Sound.")
    assert approved.project.state == "approved"
    assert approved.changes[0].sets == {"approved_on": APPROVED_ON}


def test_request_changes_clears_the_evaluation_and_sets_the_resubmission_date() -> None:
    decision = decide_on(
        project("submitted", "submitted"),
        1,
        "request_changes",
        STAFF,
        date(2027, 2, 15),
        {"resubmit_by": "2027-03-01"},
        "Clarify.",
    )
    change = decision.changes[0]
    assert change.sets == {
        "resubmit_by": date(2027, 3, 1),
        "scores": None,
        "score": None,
        "evaluated_on": None,
    }
    assert decision.project.facts.get("resubmit_by") == date(2027, 3, 1)
    assert "score" not in decision.project.facts
    assert "scores" not in decision.project.facts


def test_request_changes_without_a_date_drops_an_earlier_one() -> None:
    before = project("submitted", "submitted")
    before = replace(before, facts={**before.facts, "resubmit_by": date(2027, 2, 20)})
    decision = decide_on(before, 1, "request_changes", STAFF, date(2027, 2, 15), None, "Again.")
    assert decision.changes[0].sets["resubmit_by"] is None
    assert "resubmit_by" not in decision.project.facts


def test_a_resubmitted_application_must_be_evaluated_afresh_before_approval() -> None:
    sent_back = decide_on(
        project("submitted", "submitted"),
        1,
        "request_changes",
        STAFF,
        date(2027, 2, 15),
        {"resubmit_by": "2027-03-01"},
        "Clarify.",
    )
    again = decide_on(sent_back.project, 1, "submit", COORDINATOR, date(2027, 2, 25))
    assert [c.dest for c in again.changes] == ["submitted", "submitted"]
    with pytest.raises(TransitionRefused, match=r"needs an evaluation \(evaluate\)"):
        decide_on(again.project, 1, "approve", STAFF, date(2027, 3, 2), None, "Fine now.")


def test_a_return_outside_the_calls_stay_limits_needs_a_note_and_records_it() -> None:
    before = project("abroad", "abroad")
    early = {"returned_on": "2027-09-08"}  # 3 days, both ends counted
    with pytest.raises(TransitionRefused) as refused:
        decide_on(before, 11, "return_home", COORDINATOR, date(2027, 9, 8), early)
    assert "needs a note explaining the actual stay of 3 days, outside the call's 7 to 42 days" in (
        str(refused.value)
    )
    decision = decide_on(
        before,
        11,
        "return_home",
        COORDINATOR,
        date(2027, 9, 8),
        early,
        "Came back for a family emergency.",
    )
    change = decision.changes[0]
    assert change.sets == {
        "returned_on": date(2027, 9, 8),
        "stay_note": "3 days abroad: Came back for a family emergency.",
    }
    assert decision.project.state == "validation"


def test_an_interruption_records_its_reason_and_the_short_stay() -> None:
    decision = decide_on(
        project("abroad", "abroad"),
        11,
        "interrupt",
        COORDINATOR,
        date(2027, 9, 8),
        {"returned_on": "2027-09-08", "reason": "other"},
        "The host cancelled the programme.",
    )
    assert decision.changes[0].sets == {
        "returned_on": date(2027, 9, 8),
        "interruption_reason": "other",
        "stay_note": "3 days abroad: The host cancelled the programme.",
    }


def test_a_return_within_the_limits_records_no_stay_note() -> None:
    decision = decide_on(
        project("abroad", "abroad"),
        11,
        "return_home",
        COORDINATOR,
        date(2027, 9, 24),
        {"returned_on": "2027-09-24"},
    )
    assert decision.changes[0].sets == {"returned_on": date(2027, 9, 24)}


# --- re-deriving a project left behind ----------------------------------------------------------


def re_derived(p: ApplicationSnapshot) -> Decision:
    return rederive(p, actor=STAFF, staff_email=STAFF_MAIL, **at(date(2027, 11, 1)))


def test_rederive_moves_a_project_left_abroad_with_every_mobility_returned_to_validation() -> None:
    decision = re_derived(project("abroad", "validation", "validation"))
    assert [(c.case_id, c.trigger, c.source, c.dest, c.actor) for c in decision.changes] == [
        (1, "mobilities_returned", "abroad", "validation", "system")
    ]
    assert decision.changes[0].note == (
        "following its mobilities (re-derived by officer@national-agency.example)"
    )
    assert decision.project.state == "validation"
    assert decision.notices == ()


def test_rederive_catches_up_as_many_phases_as_the_mobilities_allow() -> None:
    decision = re_derived(project("abroad", "completed", "dissemination"))
    assert [c.trigger for c in decision.changes] == ["mobilities_returned", "mobilities_validated"]
    assert [(n.kind, n.key) for n in decision.notices] == [
        ("final_report_due", "case-1:final_report_due:v7")
    ]


@pytest.mark.parametrize(
    "states",
    [
        ("drafted", "drafted", "drafted"),
        ("submitted", "submitted", "cancelled"),
        ("approved", "cancelled", "cancelled"),
        ("preparation", "preparation", "approved"),
        ("abroad", "abroad", "validation"),
        ("validation", "validation", "dissemination"),
        ("dissemination", "completed", "cancelled"),
        ("closed", "completed", "completed"),
        ("withdrawn", "cancelled", "cancelled"),
    ],
)
def test_rederive_changes_nothing_on_a_consistent_project(states: tuple[str, ...]) -> None:
    decision = re_derived(project(*states))
    assert decision.changes == ()
    assert decision.notices == ()
    assert decision.project == project(*states)


# --- the order of cancellations -----------------------------------------------------------------


@pytest.mark.parametrize("order", list(itertools.permutations((11, 12, 13))))
def test_the_project_goes_to_dissemination_when_its_last_mobility_is_cancelled_in_any_order(
    order: tuple[int, ...],
) -> None:
    p = project("preparation", "approved", "preparation", "preparation")
    for i, case_id in enumerate(order):
        decision = decide_on(p, case_id, "cancel", COORDINATOR, date(2027, 7, 1), None, "Gone.")
        p = decision.project
        last = i == len(order) - 1
        assert p.state == ("dissemination" if last else "preparation")
        assert ("mobilities_cancelled" in [c.trigger for c in decision.changes]) == last


# --- the dead-end walk --------------------------------------------------------------------------


def mobility_moves(
    plan: Plan,
) -> dict[str, list[tuple[date, dict[str, Any], str | None, tuple[str, ...]]]]:
    """The valid ways to fire each mobility trigger: (day, facts, note, roles)."""
    sweep = "returned by the daily sweep on the planned end date"
    return {
        "start_preparation": [(AGREEMENT_SIGNED, {"agreement_signed_on": AGREEMENT_SIGNED}, None,
                               ("coordinator",))],
        "record_preparation": [(date(2027, 5, 20), {"preparation_done": True}, None,
                                ("coordinator",))],
        "depart": [(plan.start, {"departed_on": plan.start, "preparation_done": True}, None,
                    ("coordinator",))],
        "return_home": [(plan.end, {"returned_on": plan.end}, None, ("coordinator",)),
                        (plan.end, {"returned_on": plan.end}, sweep, ("system",))],
        "interrupt": [(plan.start + timedelta(days=2),
                       {"returned_on": plan.start + timedelta(days=2), "reason": "force_majeure"},
                       "Stopped early.", ("coordinator", "staff"))],
        "validate": [(plan.end + timedelta(days=20), {"europass_ref": f"EMD-{plan.id}"}, None,
                      ("coordinator",))],
        "record_report": [(plan.end + timedelta(days=10),
                           {"participant_report_on": plan.end + timedelta(days=5)}, None,
                           ("coordinator", "staff"))],
        "complete": [(plan.end + timedelta(days=40), {"dissemination": "A workshop"}, None,
                      ("coordinator",))],
        "cancel": [(date(2027, 6, 15), {}, "Did not take place.", ("coordinator", "staff"))],
    }  # fmt: skip


APPLICATION_MOVES: dict[str, list[tuple[date, dict[str, Any], str | None, tuple[str, ...]]]] = {
    "submit": [(date(2027, 1, 15), {}, None, ("coordinator",))],
    "evaluate": [(date(2027, 2, 10), dict(SCORES), "Good.", ("staff",)),
                 (date(2027, 2, 10), dict(LOW_SCORES), "Weak.", ("staff",))],
    "request_changes": [(date(2027, 2, 15), {"resubmit_by": date(2027, 3, 1)}, "Clarify.",
                         ("staff",))],
    "approve": [(APPROVED_ON, {}, "Sound.", ("staff",))],
    "reject": [(APPROVED_ON, {}, "Weak.", ("staff",))],
    "withdraw": [(date(2027, 2, 25), {}, "Not this year.", ("coordinator",))],
    "start_preparation": [(GRANT_SIGNED, {"grant_agreement_signed_on": GRANT_SIGNED}, None,
                           ("coordinator", "staff"))],
    "close": [(date(2029, 7, 1), {"final_report_on": date(2029, 6, 20)}, None, ("staff",))],
    # what the system itself may fire on the application (re-deriving a project left behind)
    "mobilities_departed": [(date(2027, 12, 1), {}, None, ("system",))],
    "mobilities_returned": [(date(2027, 12, 1), {}, None, ("system",))],
    "mobilities_validated": [(date(2027, 12, 1), {}, None, ("system",))],
    "mobilities_cancelled": [(date(2027, 12, 1), {}, None, ("system",))],
}  # fmt: skip

FINAL = {"closed", "rejected", "withdrawn"}
UNDER_WAY = {"preparation", "abroad", "validation"}


def key_of(p: ApplicationSnapshot) -> tuple[Any, ...]:
    """A project's states and recorded facts (not its versions)."""

    def facts(f: Any) -> str:
        return repr(sorted((k, repr(v)) for k, v in f.items()))

    return (p.state, facts(p.facts), tuple((m.state, facts(m.facts)) for m in p.mobilities))


def every_move(
    p: ApplicationSnapshot, skip: frozenset[str] = frozenset()
) -> list[tuple[str, Decision]]:
    """Every decision anyone may take on a project, with valid facts: (what, decision)."""
    found = []
    cases: list[tuple[Any, dict[str, Any]]] = [(p, APPLICATION_MOVES)]
    cases += [(m, mobility_moves(PLAN[m.id])) for m in p.mobilities]
    for case, moves in cases:
        for step in definition(case.kind).steps:
            if case.state not in step.sources or step.trigger in skip:
                continue  # refused by the state alone: checked in test_states.py
            for day, facts, note, roles in moves.get(step.trigger, []):
                for role in roles:
                    assert role in step.who, (case.kind, step.trigger, role)
                    try:
                        decision = decide_on(
                            p, case.id, step.trigger, ACTORS[role], day, facts, note
                        )
                    except (TransitionRefused, NotAllowed):
                        continue
                    found.append((f"{role}: {step.trigger} {case.kind} {case.id}", decision))
                    break  # another role would decide the same
    return found


Graph = tuple[dict[Any, ApplicationSnapshot], dict[Any, list[tuple[str, Any]]]]


def explore(start: ApplicationSnapshot, skip: frozenset[str] = frozenset()) -> Graph:
    """Every project reachable from a start, and the moves between them."""
    nodes = {key_of(start): start}
    edges: dict[Any, list[tuple[str, Any]]] = {}
    queue = deque([start])
    while queue:
        p = queue.popleft()
        here = key_of(p)
        edges[here] = []
        for what, decision in every_move(p, skip):
            there = key_of(decision.project)
            edges[here].append((what, there))
            if there not in nodes:
                nodes[there] = decision.project
                queue.append(decision.project)
    return nodes, edges


WALKS = {
    # Two mobilities, from the draft, every move anyone may make.
    "two mobilities, every move": (project("drafted", "drafted", "drafted"), frozenset()),
    # Three mobilities, from the approval on; the moves that only record a fact on the way
    # (and the interruption, a return by another name) are left out to keep the walk short.
    "three mobilities from approval": (
        project("approved", "approved", "approved", "approved"),
        frozenset({"evaluate", "record_preparation", "interrupt"}),
    ),
}


@pytest.fixture(scope="module", params=list(WALKS))
def walked(request: pytest.FixtureRequest) -> Graph:
    start, skip = WALKS[request.param]
    return explore(start, skip)


def describe(p: ApplicationSnapshot) -> str:
    return f"application {p.state}, mobilities {[m.state for m in p.mobilities]}"


def test_the_walk_reaches_every_state_from_where_it_starts(walked: Graph) -> None:
    nodes, _ = walked
    start = next(iter(nodes.values()))
    app_states = {p.state for p in nodes.values()}
    m_states = {m.state for p in nodes.values() for m in p.mobilities}
    if start.state == "drafted":
        assert app_states == set(definition("application").states)
        assert m_states == set(definition("mobility").states)
    else:  # from the approval on
        before_approval = {"drafted", "submitted", "rejected"}
        assert app_states == set(definition("application").states) - before_approval
        assert m_states == set(definition("mobility").states) - {"drafted", "submitted"}


def test_from_every_unfinished_project_someone_may_fire_something(walked: Graph) -> None:
    nodes, edges = walked
    stuck = [describe(p) for k, p in nodes.items() if p.state not in FINAL and not edges[k]]
    assert stuck == []


def test_every_project_can_still_be_brought_to_an_end(walked: Graph) -> None:
    nodes, edges = walked
    ends = {k for k, p in nodes.items() if p.state in FINAL}
    back: dict[Any, set[Any]] = {k: set() for k in nodes}
    for here, moves in edges.items():
        for _, there in moves:
            back[there].add(here)
    can_end, queue = set(ends), deque(ends)
    while queue:
        for earlier in back[queue.popleft()] - can_end:
            can_end.add(earlier)
            queue.append(earlier)
    assert [describe(p) for k, p in nodes.items() if k not in can_end] == []


def test_a_finished_project_leaves_no_mobility_open(walked: Graph) -> None:
    nodes, _ = walked
    open_ = [
        describe(p)
        for p in nodes.values()
        if p.state in FINAL and any(m.state not in ("completed", "cancelled") for m in p.mobilities)
    ]
    assert open_ == []


def test_every_reachable_project_follows_its_mobilities(walked: Graph) -> None:
    nodes, _ = walked
    behind = [describe(p) for p in nodes.values() if re_derived(p).changes]
    assert behind == []


def test_a_project_under_way_always_has_a_live_mobility(walked: Graph) -> None:
    nodes, _ = walked
    empty = [
        describe(p) for p in nodes.values() if p.state in UNDER_WAY and not p.live_mobilities()
    ]
    assert empty == []


def test_the_walk_saw_the_last_live_mobility_go_in_every_order(walked: Graph) -> None:
    nodes, edges = walked
    seen_orders = set()
    for here, moves in edges.items():
        before = nodes[here]
        for what, there in moves:
            after = nodes[there]
            if (
                before.live_mobilities()
                and not after.live_mobilities()
                and before.state in UNDER_WAY
            ):
                assert after.state == "dissemination", (describe(before), what, describe(after))
                seen_orders.add(what.split()[-1])
    assert seen_orders == {str(m.id) for m in next(iter(nodes.values())).mobilities}
