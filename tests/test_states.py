"""Both workflows checked against DOMAIN.md, table-driven and without a database.

The expected transitions, roles, facts and notes below are written out by hand from the spec, not
read from the code's TRANSITIONS: the point is to check the code against the spec. The snapshots
the guards judge are built by hand too (no store is involved).
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from vetpro_workflow.errors import InvalidInput, NotAllowed, TransitionRefused
from vetpro_workflow.states import application, evaluation, mobility, steps, workflows
from vetpro_workflow.states.calendar import BRUSSELS
from vetpro_workflow.states.facts import FACT_TYPES, parse_facts
from vetpro_workflow.states.machine import Definition, fire
from vetpro_workflow.states.rules import possible_step
from vetpro_workflow.states.snapshots import (
    ApplicationSnapshot,
    CallRules,
    Given,
    MobilitySnapshot,
    Partner,
)

# --- the spec, by hand --------------------------------------------------------------------------

APPLICATION_STATES = (
    "drafted",
    "submitted",
    "approved",
    "preparation",
    "abroad",
    "validation",
    "dissemination",
    "closed",
    "rejected",
    "withdrawn",
)
MOBILITY_STATES = (
    "drafted",
    "submitted",
    "approved",
    "preparation",
    "abroad",
    "validation",
    "dissemination",
    "completed",
    "cancelled",
)
FINAL_STATES = {
    "application": {"closed", "rejected", "withdrawn"},
    "mobility": {"completed", "cancelled"},
}

# (state, trigger) -> destination
APPLICATION_MOVES: dict[tuple[str, str], str] = {
    ("drafted", "submit"): "submitted",
    ("submitted", "request_changes"): "drafted",
    ("submitted", "evaluate"): "submitted",
    ("submitted", "approve"): "approved",
    ("submitted", "reject"): "rejected",
    ("drafted", "withdraw"): "withdrawn",
    ("submitted", "withdraw"): "withdrawn",
    ("approved", "withdraw"): "withdrawn",
    ("approved", "start_preparation"): "preparation",
    ("preparation", "mobilities_departed"): "abroad",
    ("abroad", "mobilities_returned"): "validation",
    ("validation", "mobilities_validated"): "dissemination",
    # Our design where DOMAIN.md is silent: a project whose every mobility was cancelled before
    # anyone left goes straight to its final report.
    ("preparation", "mobilities_cancelled"): "dissemination",
    ("dissemination", "close"): "closed",
}
MOBILITY_MOVES: dict[tuple[str, str], str] = {
    ("drafted", "submit"): "submitted",
    ("submitted", "request_changes"): "drafted",
    ("submitted", "approve"): "approved",
    ("approved", "start_preparation"): "preparation",
    ("preparation", "depart"): "abroad",
    ("abroad", "return_home"): "validation",
    ("abroad", "interrupt"): "validation",
    ("validation", "validate"): "dissemination",
    ("dissemination", "complete"): "completed",
    ("drafted", "cancel"): "cancelled",
    ("submitted", "cancel"): "cancelled",
    ("approved", "cancel"): "cancelled",
    ("preparation", "cancel"): "cancelled",
    # Our design where DOMAIN.md is silent: a planned preparation recorded on its own, so the
    # reminder waiting for it stops.
    ("approved", "record_preparation"): "approved",
    ("preparation", "record_preparation"): "preparation",
    # The participant report is collected on its own, from the return on (DOMAIN.md).
    ("validation", "record_report"): "validation",
    ("dissemination", "record_report"): "dissemination",
    ("completed", "record_report"): "completed",
}
WHO: dict[str, dict[str, set[str]]] = {
    "application": {
        "submit": {"coordinator"},
        "request_changes": {"staff"},
        "evaluate": {"staff"},
        "approve": {"staff"},
        "reject": {"staff"},
        "withdraw": {"coordinator"},
        "start_preparation": {"coordinator", "staff"},
        "mobilities_departed": {"system"},
        "mobilities_returned": {"system"},
        "mobilities_validated": {"system"},
        "mobilities_cancelled": {"system"},
        "close": {"staff"},
    },
    "mobility": {
        # carried along by the application's own triggers
        "submit": {"system"},
        "request_changes": {"system"},
        "approve": {"system"},
        "start_preparation": {"coordinator"},
        "depart": {"coordinator"},
        "return_home": {"coordinator", "system"},  # the sweep, on the planned end date
        "interrupt": {"coordinator", "staff"},
        "validate": {"coordinator"},
        "complete": {"coordinator"},
        "cancel": {"coordinator", "staff", "system"},  # system: with a rejected/withdrawn project
        "record_preparation": {"coordinator"},
        "record_report": {"coordinator", "staff"},
    },
}
CRITERIA = ("objectives", "match", "preparation", "validation", "organisation", "dissemination")
REQUIRED_FACTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("application", "evaluate"): CRITERIA,
    ("application", "start_preparation"): ("grant_agreement_signed_on",),
    ("application", "close"): ("final_report_on",),
    ("mobility", "start_preparation"): ("agreement_signed_on",),
    ("mobility", "depart"): ("departed_on",),
    ("mobility", "return_home"): ("returned_on",),
    ("mobility", "interrupt"): ("returned_on", "reason"),
    ("mobility", "validate"): ("europass_ref",),
    ("mobility", "complete"): ("dissemination",),
    ("mobility", "record_preparation"): ("preparation_done",),
    ("mobility", "record_report"): ("participant_report_on",),
}
OPTIONAL_FACTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("application", "request_changes"): ("resubmit_by",),
    ("mobility", "depart"): ("preparation_done",),
    ("mobility", "validate"): ("participant_report_on",),
}
NOTE_REQUIRED = {
    ("application", "request_changes"),
    ("application", "evaluate"),
    ("application", "approve"),
    ("application", "reject"),
    ("application", "withdraw"),
    ("mobility", "interrupt"),
    ("mobility", "cancel"),
}
# Days on which something happened (never in the future), and days by which something is due.
EVENT_DATES = {
    "application": {"grant_agreement_signed_on", "final_report_on"},
    "mobility": {"agreement_signed_on", "departed_on", "returned_on", "participant_report_on"},
}
DUE_DATES = {"application": {"resubmit_by"}, "mobility": set()}
ROLE_NAMES = {"coordinator": "the coordinator", "staff": "NA staff", "system": "the system"}
MOVES = {"application": APPLICATION_MOVES, "mobility": MOBILITY_MOVES}
STATES = {"application": APPLICATION_STATES, "mobility": MOBILITY_STATES}
DEFINITIONS: dict[str, Definition] = {
    "application": application.DEFINITION,
    "mobility": mobility.DEFINITION,
}
KINDS = ("application", "mobility")

# --- a project that satisfies every guard -------------------------------------------------------

DEADLINE = datetime(2027, 2, 1, 12, 0, tzinfo=BRUSSELS)
SUBMIT_NOW = datetime(2027, 1, 15, 9, 30, tzinfo=BRUSSELS)
PROJECT_START = date(2027, 6, 1)
PROJECT_END = date(2029, 5, 31)  # 24 months, the call's maximum
APPROVED_ON = date(2027, 2, 20)
TODAY = date(2027, 9, 20)
NOW = datetime(2027, 9, 20, 9, 30, tzinfo=BRUSSELS)
DEPARTED = date(2027, 9, 1)
RETURNED = date(2027, 9, 14)
SCORES = {
    "objectives": 8,
    "match": 7,
    "preparation": 7,
    "validation": 6,
    "organisation": 8,
    "dissemination": 7,
}  # 43 of 60; the default pass mark is 36

FACT_VALUES: dict[str, Any] = {
    "grant_agreement_signed_on": date(2027, 3, 10),
    "final_report_on": TODAY,
    "resubmit_by": TODAY + timedelta(days=14),
    **SCORES,
    "agreement_signed_on": date(2027, 8, 1),
    "departed_on": DEPARTED,
    "preparation_done": True,
    "returned_on": RETURNED,
    "reason": "force_majeure",
    "europass_ref": "EUROPASS-MOB-2027-0042",
    "participant_report_on": date(2027, 9, 18),
}
MOBILITY_FACT_VALUES = {
    **FACT_VALUES,
    "dissemination": "Workshop for 12 colleagues of the welding department on 2027-09-19",
}

CALL = CallRules(
    code="LLP-2027",
    title="Lifelong Learning Programme 2027",
    deadline=DEADLINE,
    earliest_start=PROJECT_START,
    max_project_months=24,
)
HOST = Partner(name="Berufskolleg Ost", country="DE", type="vet_provider")
MOBILITY = MobilitySnapshot(
    id=11,
    state="drafted",
    version=1,
    application_id=1,
    participant_name="Jean Dupont",
    participant_email="jean@lycee.example",
    profession="teacher",
    professional_background="Welding teacher for 12 years",
    training_needs="Robot welding",
    host_name=HOST.name,
    host_country=HOST.country,
    start_date=DEPARTED,
    end_date=RETURNED,
    objectives="Learn robot welding didactics",
    content="Job shadowing in the robot welding workshop",
    language_preparation=True,
)
APPLICATION = ApplicationSnapshot(
    id=1,
    state="drafted",
    version=1,
    organisation_id=7,
    title="Welding teachers abroad",
    applicant_name="Lycée des Métiers",
    applicant_type="vet_provider",
    applicant_country="FR",
    coordinator_name="Claire Martin",
    coordinator_email="claire@lycee.example",
    call=CALL,
    start_date=PROJECT_START,
    end_date=PROJECT_END,
    objectives="Trainers learn to teach welding with simulators.",
    dissemination_plan="A guide on the school's website.",
    partners=(HOST,),
    mobilities=(MOBILITY,),
)

# The state of its mobilities that lets every guard of an application in a state pass.
_MOBILITIES_OF = {
    "drafted": "drafted",
    "submitted": "submitted",
    "approved": "approved",
    "preparation": "abroad",
    "abroad": "validation",
    "validation": "dissemination",
    "dissemination": "completed",
    "closed": "completed",
    "rejected": "cancelled",
    "withdrawn": "cancelled",
}
# The state of the project a lone mobility in a state belongs to.
_PROJECT_OF = {
    "drafted": "drafted",
    "submitted": "submitted",
    "approved": "preparation",  # so that its training agreement may be recorded
    "preparation": "preparation",
    "abroad": "abroad",
    "validation": "validation",
    "dissemination": "dissemination",
    "completed": "dissemination",
    "cancelled": "preparation",
}
_EVALUATED = {"scores": SCORES, "score": 43, "evaluated_on": date(2027, 2, 10)}
_APPLICATION_FACTS = {  # the facts an application has recorded by the time it reaches a state
    "drafted": {},
    "submitted": _EVALUATED,
    "approved": {**_EVALUATED, "approved_on": APPROVED_ON},
    "preparation": {
        **_EVALUATED,
        "approved_on": APPROVED_ON,
        "grant_agreement_signed_on": FACT_VALUES["grant_agreement_signed_on"],
    },
}
for _state in ("abroad", "validation", "dissemination"):
    _APPLICATION_FACTS[_state] = _APPLICATION_FACTS["preparation"]
_APPLICATION_FACTS["closed"] = {**_APPLICATION_FACTS["preparation"], "final_report_on": TODAY}
_APPLICATION_FACTS["rejected"] = _EVALUATED
_APPLICATION_FACTS["withdrawn"] = {}

_RECORDED_BY = {  # the mobility facts recorded by the time it reaches a state
    "preparation": ("agreement_signed_on",),
    "abroad": ("agreement_signed_on", "departed_on", "preparation_done"),
    "validation": ("agreement_signed_on", "departed_on", "preparation_done", "returned_on"),
    "dissemination": (
        "agreement_signed_on",
        "departed_on",
        "preparation_done",
        "returned_on",
        "europass_ref",
        "participant_report_on",
    ),
    "completed": (
        "agreement_signed_on",
        "departed_on",
        "preparation_done",
        "returned_on",
        "europass_ref",
        "participant_report_on",
        "dissemination",
    ),
}


def a_mobility(state: str = "drafted", **changes: Any) -> MobilitySnapshot:
    """A mobility in a state, with the facts recorded on the way there."""
    facts = {name: MOBILITY_FACT_VALUES[name] for name in _RECORDED_BY.get(state, ())}
    return replace(MOBILITY, state=state, **{"facts": facts, **changes})


def mobilities(*states: str) -> tuple[MobilitySnapshot, ...]:
    return tuple(a_mobility(s, id=11 + i) for i, s in enumerate(states))


def an_application(state: str = "drafted", **changes: Any) -> ApplicationSnapshot:
    """An application in a state whose mobilities let every guard from that state pass."""
    base = replace(
        APPLICATION,
        state=state,
        facts=dict(_APPLICATION_FACTS[state]),
        mobilities=(a_mobility(_MOBILITIES_OF[state]),),
    )
    return replace(base, **changes)


def project_of(
    m: MobilitySnapshot, state: str | None = None, **changes: Any
) -> ApplicationSnapshot:
    """The project a mobility belongs to, in a state (by default, one that fits the mobility)."""
    project_state = state or _PROJECT_OF[m.state]
    return an_application(project_state, mobilities=(m,), **changes)


def a_case(kind: str, state: str) -> ApplicationSnapshot | MobilitySnapshot:
    return an_application(state) if kind == "application" else a_mobility(state)


def given(
    kind: str,
    trigger: str,
    case: ApplicationSnapshot | MobilitySnapshot | None = None,
    *,
    project: ApplicationSnapshot | None = None,
    **facts: Any,
) -> Given:
    """What a trigger needs to pass: its required facts, its note, and a day that fits.

    A fact given as None is left out.
    """
    values = MOBILITY_FACT_VALUES if kind == "mobility" else FACT_VALUES
    supplied = {name: values[name] for name in REQUIRED_FACTS.get((kind, trigger), ())}
    if (kind, trigger) == ("mobility", "depart"):
        supplied["preparation_done"] = True  # the helper mobility planned language preparation
    supplied.update(facts)
    supplied = {k: v for k, v in supplied.items() if v is not None}
    note = "Reason given by hand" if (kind, trigger) in NOTE_REQUIRED else None
    if case is None:
        case = a_case(kind, next(s for (s, t) in MOVES[kind] if t == trigger))
    if project is None:
        project = case if isinstance(case, ApplicationSnapshot) else project_of(case)
    today, now = (SUBMIT_NOW.date(), SUBMIT_NOW) if trigger == "submit" else (TODAY, NOW)
    return Given(
        facts={**case.facts, **supplied},
        note=note,
        today=today,
        now=now,
        project=project,
        fresh=frozenset(supplied),
    )


def role_for(kind: str, trigger: str) -> str:
    """A role the spec lets fire a trigger (a person's before the system's)."""
    return next(r for r in ("coordinator", "staff", "system") if r in WHO[kind].get(trigger, ()))


def fires(
    kind: str, case: Any, trigger: str, g: Given | None = None, role: str | None = None
) -> str:
    """The state a trigger moves a case to (fails the test when it is refused)."""
    g = g or given(kind, trigger, case)
    return fire(DEFINITIONS[kind], case, trigger, g, role or role_for(kind, trigger))


def refusal(
    kind: str, case: Any, trigger: str, g: Given | None = None, role: str | None = None
) -> str:
    """The message of a refused trigger (fails the test if the trigger is accepted)."""
    g = g or given(kind, trigger, case)
    who = role or (role_for(kind, trigger) if trigger in WHO[kind] else "coordinator")
    with pytest.raises(TransitionRefused) as refused:
        fire(DEFINITIONS[kind], case, trigger, g, who)
    return str(refused.value)


def allowed_now(message: str) -> tuple[str, set[str]]:
    """What a refusal says may be done now: (mine | others | automatic | finished, triggers)."""
    found = re.search(r"Allowed now(?: for [^:]+)?: (.*)\.$", message)
    assert found, f"no 'Allowed now:' in {message!r}"
    text = found.group(1)
    for prefix, what in (
        ("nothing (others may: ", "others"),
        ("nothing by hand (it moves on by itself: ", "automatic"),
    ):
        if text.startswith(prefix):
            return what, set(text[len(prefix) : -1].split(", "))
    if text == "nothing (the case is finished)":
        return "finished", set()
    return "mine", set(text.split(", "))


def expected_allowed(kind: str, state: str, role: str) -> tuple[str, set[str]]:
    """What the spec lets a role, then anyone, then the system do from a state."""
    possible = [t for (s, t) in MOVES[kind] if s == state]
    if mine := {t for t in possible if role in WHO[kind][t]}:
        return "mine", mine
    if others := {t for t in possible if WHO[kind][t] != {"system"}}:
        return "others", others
    if automatic := {t for t in possible if "system" in WHO[kind][t]}:
        return "automatic", automatic
    return "finished", set()


# --- 1. every (state, trigger) pair ------------------------------------------------------------

PAIRS = [
    (kind, state, trigger) for kind in KINDS for state in STATES[kind] for trigger in WHO[kind]
]


@pytest.mark.parametrize("kind", KINDS)
def test_the_code_declares_the_states_and_triggers_of_the_spec(kind: str) -> None:
    d = DEFINITIONS[kind]
    assert set(d.states) == set(STATES[kind])
    assert d.initial == "drafted"
    assert {s.trigger for s in d.steps} == set(WHO[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_the_code_declares_exactly_the_transitions_of_the_spec(kind: str) -> None:
    declared = {
        (src, s.trigger): src if s.dest == "=" else s.dest
        for s in DEFINITIONS[kind].steps
        for src in s.sources
    }
    assert declared == MOVES[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_the_code_lets_exactly_the_roles_of_the_spec_fire_each_trigger(kind: str) -> None:
    assert {s.trigger: set(s.who) for s in DEFINITIONS[kind].steps} == WHO[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_the_code_asks_exactly_the_facts_and_notes_of_the_spec(kind: str) -> None:
    for s in DEFINITIONS[kind].steps:
        assert set(s.required_facts) == set(REQUIRED_FACTS.get((kind, s.trigger), ())), s.trigger
        optional = set(s.accepted_facts) - set(s.required_facts)
        assert optional == set(OPTIONAL_FACTS.get((kind, s.trigger), ())), s.trigger
        assert s.note == ((kind, s.trigger) in NOTE_REQUIRED), s.trigger


@pytest.mark.parametrize("kind", KINDS)
def test_event_dates_are_typed_date_and_due_dates_due(kind: str) -> None:
    types = FACT_TYPES[kind]
    assert {name for name, t in types.items() if t == "date"} == EVENT_DATES[kind]
    assert {name for name, t in types.items() if t == "due"} == DUE_DATES[kind]


@pytest.mark.parametrize(("kind", "state", "trigger"), PAIRS)
def test_every_trigger_from_every_state_moves_as_the_spec_says_or_is_refused(
    kind: str, state: str, trigger: str
) -> None:
    case = a_case(kind, state)
    if trigger == "mobilities_cancelled":
        case = replace(case, mobilities=(a_mobility("cancelled"),))
    role = role_for(kind, trigger)
    expected = MOVES[kind].get((state, trigger))
    if expected is not None:
        assert fires(kind, case, trigger, given(kind, trigger, case), role) == expected
        return
    message = refusal(kind, case, trigger, given(kind, trigger, case), role)
    assert message.startswith(f"{kind.capitalize()} {case.id} is in '{state}'; '{trigger}' ")
    assert "is only possible from" in message
    assert allowed_now(message) == expected_allowed(kind, state, role)


@pytest.mark.parametrize(
    ("kind", "state", "role"),
    [(k, s, r) for k in KINDS for s in STATES[k] for r in ("coordinator", "staff", "system")],
)
def test_a_refusal_names_what_the_person_may_do_now(kind: str, state: str, role: str) -> None:
    # 'fly' is no trigger at all: the refusal still says what this role may do instead.
    case = a_case(kind, state)
    message = refusal(kind, case, "fly", given(kind, "submit", case), role)
    article = "an" if kind == "application" else "a"
    assert f"'fly' is not a trigger of {article} {kind}" in message
    assert allowed_now(message) == expected_allowed(kind, state, role)
    if role != "system" and expected_allowed(kind, state, role)[0] in ("mine", "others"):
        assert f"Allowed now for {ROLE_NAMES[role]}:" in message


def test_a_step_that_waits_on_the_project_is_not_offered_and_says_what_it_waits_for() -> None:
    # The coordinator may not start a mobility's preparation before the application's grant
    # agreement: the refusal offers what can be done instead, not the step just refused.
    mobility = a_mobility("approved")
    waiting = project_of(mobility, "approved")
    message = refusal(
        "mobility", mobility, "start_preparation", given("mobility", "start_preparation", mobility,
        project=waiting), "coordinator",
    )  # fmt: skip
    assert "needs application 1 in preparation or later" in message
    assert message.endswith("Allowed now for the coordinator: record_preparation, cancel.")
    # Approve waits for an evaluation at the pass mark; with nothing else left, it says so.
    unevaluated = an_application("submitted", facts={})
    message = refusal("application", unevaluated, "close", role="staff")
    assert message.endswith("Allowed now for NA staff: request_changes, evaluate, reject.")
    finished = an_application("dissemination", mobilities=(a_mobility("validation"),))
    message = refusal("application", finished, "approve", role="staff")
    assert message.endswith(
        "Allowed now for NA staff: nothing (close needs every mobility completed or cancelled "
        "(open: 11))."
    )


@pytest.mark.parametrize(
    ("kind", "state"),
    [(k, s) for k in KINDS for s in STATES[k] if s not in FINAL_STATES[k]],
)
def test_a_refusal_never_calls_a_case_that_is_still_under_way_finished(
    kind: str, state: str
) -> None:
    wrong = next(t for t in WHO[kind] if (state, t) not in MOVES[kind])
    message = refusal(kind, a_case(kind, state), wrong)
    assert "finished" not in message


@pytest.mark.parametrize(
    ("kind", "state", "trigger"),
    [("application", "closed", "submit"), ("application", "rejected", "submit"),
     ("application", "withdrawn", "submit"), ("mobility", "cancelled", "depart")],
)  # fmt: skip
def test_a_refusal_on_a_finished_case_says_nothing_more_is_possible(
    kind: str, state: str, trigger: str
) -> None:
    message = refusal(kind, a_case(kind, state), trigger, role="coordinator")
    assert message.endswith("Allowed now: nothing (the case is finished).")


def test_a_completed_mobility_still_takes_its_participant_report() -> None:
    message = refusal("mobility", a_mobility("completed"), "depart")
    assert message.endswith("Allowed now for the coordinator: record_report.")


@pytest.mark.parametrize(
    ("kind", "foreign"), [("application", "depart"), ("mobility", "close"), ("mobility", "fly")]
)
def test_a_trigger_of_another_kind_is_refused_with_the_triggers_allowed_now(
    kind: str, foreign: str
) -> None:
    article = "an" if kind == "application" else "a"
    message = refusal(kind, a_case(kind, "drafted"), foreign, given(kind, "submit"), "coordinator")
    assert f"'{foreign}' is not a trigger of {article} {kind}" in message
    assert allowed_now(message) == expected_allowed(kind, "drafted", "coordinator")


def test_a_refused_guard_names_the_rule_and_the_triggers_allowed_now() -> None:
    m = a_mobility("preparation")
    g = given("mobility", "depart", m, preparation_done=None)
    message = refusal("mobility", m, "depart", g)
    assert message == (
        "Mobility 11 is in 'preparation'; 'depart' needs preparation_done=true "
        "(language preparation was planned). Allowed now for the coordinator: "
        "depart, record_preparation, cancel."
    )


def test_firing_many_cases_does_not_grow_the_shared_machine() -> None:
    machine = mobility.DEFINITION.machine()
    fires("mobility", a_mobility("preparation"), "depart")
    before = len(machine.models)
    for i in range(20):
        m = a_mobility("preparation", id=100 + i)
        assert fires("mobility", m, "depart") == "abroad"
        refusal("mobility", m, "depart", given("mobility", "depart", m, preparation_done=None))
    assert len(machine.models) == before


def test_a_refused_trigger_leaves_the_next_case_unaffected() -> None:
    refusal(
        "mobility",
        a_mobility("preparation"),
        "depart",
        given("mobility", "depart", preparation_done=None),
    )
    assert fires("mobility", a_mobility("preparation", id=12), "depart") == "abroad"


# --- 2. roles -----------------------------------------------------------------------------------

ROLE_CASES = [
    (kind, trigger, role)
    for kind in KINDS
    for trigger in WHO[kind]
    for role in ("coordinator", "staff", "system")
]


@pytest.mark.parametrize(("kind", "trigger", "role"), ROLE_CASES)
def test_only_the_roles_the_spec_names_may_fire_a_trigger(
    kind: str, trigger: str, role: str
) -> None:
    d = DEFINITIONS[kind]
    source = next(s for (s, t) in MOVES[kind] if t == trigger)
    case = a_case(kind, source)
    g = given(kind, trigger, case)
    if role in WHO[kind][trigger]:
        assert possible_step(d, case, trigger, role, g).trigger == trigger
        return
    with pytest.raises(NotAllowed) as refused:
        possible_step(d, case, trigger, role, g)
    message = str(refused.value)
    assert f"'{trigger}'" in message
    assert f"not by {ROLE_NAMES[role]}" in message
    assert allowed_now(message) == expected_allowed(kind, source, role)


@pytest.mark.parametrize(
    ("kind", "state", "trigger", "role"),
    [
        ("application", "submitted", "approve", "coordinator"),
        ("application", "drafted", "submit", "staff"),
        ("application", "preparation", "mobilities_departed", "staff"),
        ("mobility", "abroad", "return_home", "staff"),
        ("mobility", "preparation", "depart", "staff"),
        ("mobility", "approved", "start_preparation", "staff"),
    ],
)
def test_firing_with_the_wrong_role_is_not_allowed_even_when_the_guards_pass(
    kind: str, state: str, trigger: str, role: str
) -> None:
    case = a_case(kind, state)
    with pytest.raises(NotAllowed):
        fire(DEFINITIONS[kind], case, trigger, given(kind, trigger, case), role)


def test_na_staff_may_interrupt_a_stay_but_not_record_the_planned_return() -> None:
    m = a_mobility("abroad")
    assert fires("mobility", m, "interrupt", role="staff") == "validation"
    with pytest.raises(NotAllowed):
        fires("mobility", m, "return_home", role="staff")


def test_na_staff_may_record_a_participant_report() -> None:
    assert (
        fires("mobility", a_mobility("validation"), "record_report", role="staff") == "validation"
    )


# --- 3. guards: submitting an application -------------------------------------------------------


def submit_refusal(app: ApplicationSnapshot, *, now: datetime = SUBMIT_NOW) -> str:
    g = replace(given("application", "submit", app), now=now, today=now.date())
    return refusal("application", app, "submit", g)


def submits(app: ApplicationSnapshot, *, now: datetime = SUBMIT_NOW) -> bool:
    g = replace(given("application", "submit", app), now=now, today=now.date())
    return fires("application", app, "submit", g) == "submitted"


def test_an_application_cannot_be_submitted_at_or_after_the_call_deadline() -> None:
    message = submit_refusal(APPLICATION, now=DEADLINE)
    assert "needs to be sent before the call deadline" in message
    assert "the call deadline (2027-02-01 12:00 Brussels time) has passed" in message
    late = DEADLINE + timedelta(days=3)
    assert "before the call deadline" in submit_refusal(APPLICATION, now=late)


def test_an_application_can_be_submitted_a_minute_before_the_deadline() -> None:
    assert submits(APPLICATION, now=DEADLINE - timedelta(minutes=1))


def test_changes_requested_may_be_resubmitted_after_the_deadline_until_the_day_staff_set() -> None:
    resubmit_by = date(2027, 2, 15)
    app = replace(APPLICATION, facts={"resubmit_by": resubmit_by})
    on_the_day = datetime(2027, 2, 15, 23, 0, tzinfo=BRUSSELS)
    assert submits(app, now=on_the_day)
    message = submit_refusal(app, now=on_the_day + timedelta(hours=2))
    assert "needed resubmitting by 2027-02-15, the date NA staff set" in message


@pytest.mark.parametrize("applicant_type", ["individual", "learner", ""])
def test_an_applicant_of_an_ineligible_type_cannot_submit(applicant_type: str) -> None:
    message = submit_refusal(replace(APPLICATION, applicant_type=applicant_type))
    assert f"needs an eligible applicant type (not '{applicant_type}')" in message


@pytest.mark.parametrize(
    "applicant_type",
    [
        "vet_provider",
        "enterprise",
        "chamber",
        "social_partner",
        "guidance_body",
        "public_body",
        "research_centre",
        "higher_education",
        "association",
        "ngo",
    ],
)
def test_every_eligible_organisation_type_may_submit(applicant_type: str) -> None:
    assert submits(replace(APPLICATION, applicant_type=applicant_type))


def test_an_application_without_a_partner_abroad_cannot_be_submitted() -> None:
    home = Partner(name=HOST.name, country="FR", type="enterprise")
    message = submit_refusal(replace(APPLICATION, partners=(home,)))
    assert "needs a partner in another country than the applicant's (FR)" in message


def test_an_application_without_a_mobility_cannot_be_submitted() -> None:
    assert "at least one planned mobility" in submit_refusal(replace(APPLICATION, mobilities=()))


def test_an_application_whose_only_mobility_was_cancelled_cannot_be_submitted() -> None:
    cancelled = (a_mobility("cancelled"),)
    message = submit_refusal(replace(APPLICATION, mobilities=cancelled))
    assert "at least one planned mobility" in message


@pytest.mark.parametrize("blank", ["objectives", "dissemination_plan"])
def test_a_project_without_objectives_or_dissemination_plan_cannot_be_submitted(blank: str) -> None:
    message = submit_refusal(replace(APPLICATION, **{blank: "  "}))
    assert ("project objectives" if blank == "objectives" else "a dissemination plan") in message


@pytest.mark.parametrize(
    ("field", "label"),
    [
        ("objectives", "objectives"),
        ("content", "content"),
        ("training_needs", "training needs"),
        ("professional_background", "professional background"),
    ],
)
def test_a_mobility_with_an_empty_field_makes_the_application_incomplete(
    field: str, label: str
) -> None:
    gap = replace(MOBILITY, **{field: "   "})
    message = submit_refusal(replace(APPLICATION, mobilities=(gap,)))
    assert "every mobility complete" in message
    assert f"mobility 11 (Jean Dupont) needs {label}" in message


def test_a_mobility_whose_host_is_not_a_partner_makes_the_application_incomplete() -> None:
    stranger = replace(MOBILITY, host_name="Unknown GmbH")
    message = submit_refusal(replace(APPLICATION, mobilities=(stranger,)))
    assert "a host among the partners ('Unknown GmbH' is not one)" in message


def test_a_mobility_hosted_in_the_applicants_country_makes_the_application_incomplete() -> None:
    neighbour = Partner(name="Lycée Voisin", country="FR", type="vet_provider")
    at_home = replace(MOBILITY, host_name=neighbour.name, host_country="FR")
    app = replace(APPLICATION, partners=(HOST, neighbour), mobilities=(at_home,))
    assert "a host in another country than the applicant's (FR)" in submit_refusal(app)


def stay(days: int) -> MobilitySnapshot:
    """The helper mobility lasting a number of days, both ends counted."""
    return replace(MOBILITY, end_date=MOBILITY.start_date + timedelta(days=days - 1))


@pytest.mark.parametrize("days", [1, 6, 43, 60])
def test_a_stay_shorter_than_a_week_or_longer_than_six_weeks_is_incomplete(days: int) -> None:
    message = submit_refusal(replace(APPLICATION, mobilities=(stay(days),)))
    assert f"a stay of 7 to 42 days (it lasts {days}, both ends counted)" in message


@pytest.mark.parametrize("days", [7, 42])
def test_stays_of_exactly_seven_and_forty_two_days_both_ends_counted_are_accepted(
    days: int,
) -> None:
    assert submits(replace(APPLICATION, mobilities=(stay(days),)))


def test_the_stay_limits_come_from_the_call() -> None:
    short_call = replace(
        APPLICATION, call=replace(CALL, min_days=5, max_days=10), mobilities=(stay(6),)
    )
    assert submits(short_call)
    assert "5 to 10 days" in submit_refusal(replace(short_call, mobilities=(stay(14),)))


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (PROJECT_START - timedelta(days=3), PROJECT_START + timedelta(days=10)),
        (PROJECT_END - timedelta(days=10), PROJECT_END + timedelta(days=3)),
    ],
)
def test_a_mobility_outside_the_project_period_makes_the_application_incomplete(
    start: date, end: date
) -> None:
    outside = replace(MOBILITY, start_date=start, end_date=end)
    message = submit_refusal(replace(APPLICATION, mobilities=(outside,)))
    assert "dates inside the project period (2027-06-01 to 2029-05-31)" in message


@pytest.mark.parametrize("profession", ["apprentice", "learner", "student", ""])
def test_a_participant_who_is_not_a_vetpro_professional_makes_the_application_incomplete(
    profession: str,
) -> None:
    learner = replace(MOBILITY, profession=profession)
    message = submit_refusal(replace(APPLICATION, mobilities=(learner,)))
    assert "a VETPRO profession" in message


@pytest.mark.parametrize(
    "profession",
    [
        "teacher",
        "trainer",
        "vet_staff",
        "guidance_counsellor",
        "head_of_training",
        "training_planner",
        "occupational_guidance",
        "hr_manager",
    ],
)
def test_every_vetpro_profession_may_go_abroad(profession: str) -> None:
    assert submits(replace(APPLICATION, mobilities=(replace(MOBILITY, profession=profession),)))


def test_a_cancelled_mobility_need_not_be_complete() -> None:
    dropped = replace(MOBILITY, id=12, state="cancelled", objectives="")
    assert submits(replace(APPLICATION, mobilities=(MOBILITY, dropped)))


def test_a_project_starting_before_the_calls_earliest_start_cannot_be_submitted() -> None:
    early = replace(APPLICATION, start_date=PROJECT_START - timedelta(days=1))
    assert "a project start on or after 2027-06-01" in submit_refusal(early)


def test_a_project_longer_than_the_calls_maximum_cannot_be_submitted() -> None:
    long = replace(APPLICATION, end_date=PROJECT_END + timedelta(days=1))
    assert "at most 24 months (it lasts 25)" in submit_refusal(long)


def test_a_project_of_exactly_the_calls_maximum_length_is_accepted() -> None:
    mid_month = replace(APPLICATION, start_date=date(2027, 6, 15), end_date=date(2029, 6, 14))
    assert submits(mid_month)


def test_a_refused_submit_lists_every_failing_rule_at_once() -> None:
    app = replace(
        APPLICATION,
        applicant_type="individual",
        partners=(Partner(name=HOST.name, country="FR", type="vet_provider"),),
        mobilities=(replace(MOBILITY, objectives="", profession="apprentice"),),
    )
    message = submit_refusal(app, now=DEADLINE + timedelta(hours=1))
    for rule in (
        "before the call deadline",
        "eligible applicant type",
        "partner in another country",
        "needs objectives",
        "a host in another country",
        "a VETPRO profession",
    ):
        assert rule in message


# --- 3. guards: NA staff's decision -------------------------------------------------------------


def evaluate(app: ApplicationSnapshot | None = None, **scores: Any) -> Given:
    app = app or an_application("submitted", facts={})
    return given("application", "evaluate", app, **scores)


def test_an_evaluation_scores_the_six_quality_criteria_with_a_note() -> None:
    app = an_application("submitted", facts={})
    assert fires("application", app, "evaluate", evaluate(app)) == "submitted"


@pytest.mark.parametrize("criterion", CRITERIA)
def test_an_evaluation_without_one_of_the_criteria_is_refused(criterion: str) -> None:
    app = an_application("submitted", facts={})
    message = refusal("application", app, "evaluate", evaluate(app, **{criterion: None}))
    assert f"'evaluate' needs {criterion} (a number)" in message


def test_an_evaluation_is_refused_without_a_note_saying_the_assessment() -> None:
    app = an_application("submitted", facts={})
    message = refusal("application", app, "evaluate", replace(evaluate(app), note=None))
    assert "needs a note saying the assessment" in message


@pytest.mark.parametrize(("score", "shown"), [(11, "objectives=11"), (-1, "objectives=-1")])
def test_a_score_off_the_calls_scale_is_refused(score: int, shown: str) -> None:
    app = an_application("submitted", facts={})
    message = refusal("application", app, "evaluate", evaluate(app, objectives=score))
    assert f"needs scores from 0 to 10 (not {shown})" in message


def test_the_scale_comes_from_the_call() -> None:
    app = an_application("submitted", facts={}, call=replace(CALL, scale=5))
    message = refusal("application", app, "evaluate", evaluate(app))
    assert "needs scores from 0 to 5 (not objectives=8, match=7" in message
    low = {c: 5 for c in CRITERIA}
    assert fires("application", app, "evaluate", evaluate(app, **low)) == "submitted"


def test_an_application_cannot_be_approved_before_it_is_evaluated() -> None:
    app = an_application("submitted", facts={})
    message = refusal("application", app, "approve")
    assert "needs an evaluation (evaluate) at or above the pass mark (36 of 60)" in message


def test_an_application_evaluated_below_the_pass_mark_cannot_be_approved() -> None:
    app = an_application("submitted", facts={"score": 35.5})
    message = refusal("application", app, "approve")
    assert (
        "needs an evaluation at or above the pass mark (36 of 60); the latest totals 35.5"
        in message
    )
    # ... but it may still be rejected, sent back for changes, or evaluated again.
    assert fires("application", app, "reject") == "rejected"
    assert fires("application", app, "request_changes") == "drafted"
    assert fires("application", app, "evaluate", evaluate(app)) == "submitted"


def test_an_application_evaluated_exactly_at_the_pass_mark_may_be_approved() -> None:
    assert (
        fires("application", an_application("submitted", facts={"score": 36}), "approve")
        == "approved"
    )


def test_the_pass_mark_and_weights_come_from_the_call() -> None:
    call = replace(CALL, weights={**{c: 1 for c in CRITERIA}, "objectives": 4}, pass_mark=50)
    assert call.max_total == 90
    app = an_application("submitted", facts={"score": 49}, call=call)
    assert "the pass mark (50 of 90); the latest totals 49" in refusal(
        "application", app, "approve"
    )
    assert fires("application", replace(app, facts={"score": 50}), "approve") == "approved"
    assert evaluation.evaluation_total(app, SCORES) == 8 * 4 + 7 + 7 + 6 + 8 + 7


def test_without_a_pass_mark_of_its_own_a_call_passes_at_sixty_percent() -> None:
    assert CALL.mark == 36
    assert replace(CALL, scale=5).mark == 18


def test_changes_may_be_requested_with_a_resubmission_date_in_the_future() -> None:
    app = an_application("submitted")
    g = given("application", "request_changes", app, resubmit_by=TODAY + timedelta(days=30))
    assert fires("application", app, "request_changes", g) == "drafted"


def test_changes_may_be_requested_without_a_resubmission_date() -> None:
    app = an_application("submitted")
    g = given("application", "request_changes", app)
    assert "resubmit_by" not in g.fresh
    assert fires("application", app, "request_changes", g) == "drafted"


def test_a_resubmission_date_already_past_is_refused() -> None:
    app = an_application("submitted")
    past = TODAY - timedelta(days=1)
    g = given("application", "request_changes", app, resubmit_by=past)
    message = refusal("application", app, "request_changes", g)
    assert f"needs resubmit_by today or later (not {past})" in message


def test_a_grant_agreement_cannot_be_dated_before_the_approval() -> None:
    app = an_application("approved")
    g = given(
        "application",
        "start_preparation",
        app,
        grant_agreement_signed_on=APPROVED_ON - timedelta(days=1),
    )
    message = refusal("application", app, "start_preparation", g)
    assert "needs grant_agreement_signed_on on or after the approval (2027-02-20)" in message


def test_na_staff_may_record_the_grant_agreement_too() -> None:
    assert (
        fires("application", an_application("approved"), "start_preparation", role="staff")
        == "preparation"
    )


# --- 3. guards: required facts, notes and dates -------------------------------------------------

FACT_CASES = [
    (kind, trigger, fact) for (kind, trigger), facts in REQUIRED_FACTS.items() for fact in facts
]
SOURCE_OF: dict[tuple[str, str], str] = {}  # the first state each trigger is possible from
for _kind, _moves in MOVES.items():
    for _source, _trigger in _moves:
        SOURCE_OF.setdefault((_kind, _trigger), _source)


@pytest.mark.parametrize(("kind", "trigger", "fact"), FACT_CASES)
def test_a_trigger_is_refused_without_each_fact_it_requires(
    kind: str, trigger: str, fact: str
) -> None:
    case = a_case(kind, SOURCE_OF[(kind, trigger)])
    message = refusal(kind, case, trigger, given(kind, trigger, case, **{fact: None}))
    assert f"'{trigger}' needs {fact} (" in message


@pytest.mark.parametrize(
    ("state", "trigger", "fact"),
    [("completed", "record_report", "participant_report_on"),
     ("preparation", "record_preparation", "preparation_done")],
)  # fmt: skip
def test_a_required_fact_must_be_given_with_the_trigger_not_only_recorded_before(
    state: str, trigger: str, fact: str
) -> None:
    m = a_mobility(state)
    m = replace(m, facts={**m.facts, fact: MOBILITY_FACT_VALUES[fact]})
    g = given("mobility", trigger, m, **{fact: None})
    assert fact not in g.fresh and fact in g.facts
    assert f"'{trigger}' needs {fact} (" in refusal("mobility", m, trigger, g)


@pytest.mark.parametrize(("kind", "trigger"), sorted(REQUIRED_FACTS))
def test_a_trigger_passes_with_its_required_facts_alone(kind: str, trigger: str) -> None:
    case = a_case(kind, SOURCE_OF[(kind, trigger)])
    if (kind, trigger) == ("mobility", "depart"):
        case = replace(case, language_preparation=False)  # else preparation_done is needed
    g = given(kind, trigger, case, **({"preparation_done": None} if trigger == "depart" else {}))
    assert g.fresh == set(REQUIRED_FACTS[(kind, trigger)])
    assert fires(kind, case, trigger, g) == MOVES[kind][(SOURCE_OF[(kind, trigger)], trigger)]


def test_a_trigger_missing_several_facts_and_its_note_names_them_all() -> None:
    m = a_mobility("abroad")
    g = replace(given("mobility", "interrupt", m), facts=dict(m.facts), fresh=frozenset(), note=" ")
    message = refusal("mobility", m, "interrupt", g)
    assert (
        "'interrupt' needs returned_on (YYYY-MM-DD), reason (force_majeure or other), "
        "a note saying why the stay ended early" in message
    )


def test_validation_needs_only_the_europass_reference() -> None:
    m = a_mobility("validation")
    g = given("mobility", "validate", m)
    assert "participant_report_on" not in g.facts
    assert fires("mobility", m, "validate", g) == "dissemination"
    message = refusal(
        "mobility", m, "validate", given("mobility", "validate", m, europass_ref=None)
    )
    assert "'validate' needs europass_ref (text)." in message


@pytest.mark.parametrize(("kind", "trigger"), sorted(NOTE_REQUIRED))
@pytest.mark.parametrize("note", [None, "", "   "])
def test_a_trigger_is_refused_without_the_note_it_requires(
    kind: str, trigger: str, note: str | None
) -> None:
    case = a_case(kind, SOURCE_OF[(kind, trigger)])
    message = refusal(kind, case, trigger, replace(given(kind, trigger, case), note=note))
    assert "a note saying" in message


DATE_CASES = [
    (kind, trigger, fact)
    for (kind, trigger) in sorted({*REQUIRED_FACTS, *OPTIONAL_FACTS})
    for fact in (*REQUIRED_FACTS.get((kind, trigger), ()), *OPTIONAL_FACTS.get((kind, trigger), ()))
    if fact in EVENT_DATES[kind]
]


@pytest.mark.parametrize(("kind", "trigger", "fact"), DATE_CASES)
def test_a_day_on_which_something_happened_cannot_be_in_the_future(
    kind: str, trigger: str, fact: str
) -> None:
    case = a_case(kind, SOURCE_OF[(kind, trigger)])
    tomorrow = TODAY + timedelta(days=1)
    message = refusal(kind, case, trigger, given(kind, trigger, case, **{fact: tomorrow}))
    assert f"needs {fact} not in the future ({tomorrow} is after today, {TODAY})" in message


@pytest.mark.parametrize(("kind", "trigger", "fact"), DATE_CASES)
def test_a_day_on_which_something_happened_may_be_today(kind: str, trigger: str, fact: str) -> None:
    case = a_case(kind, SOURCE_OF[(kind, trigger)])
    g = given(kind, trigger, case, **{fact: TODAY})
    if (kind, trigger) == ("mobility", "return_home"):
        g = replace(g, note="Stayed on after the planned end")  # 20 days: within limits anyway
    assert fires(kind, case, trigger, g) == MOVES[kind][(SOURCE_OF[(kind, trigger)], trigger)]


def test_a_fact_recorded_earlier_is_not_judged_again_as_if_new() -> None:
    # A return recorded (on another clock) after today: only the facts given now are checked.
    back = a_mobility("validation")
    m = replace(back, facts={**back.facts, "returned_on": TODAY + timedelta(days=1)})
    g = given("mobility", "validate", m)
    assert g.fresh == {"europass_ref"}
    assert fires("mobility", m, "validate", g) == "dissemination"


def test_an_interruption_reason_is_force_majeure_or_other() -> None:
    accepted = ("returned_on", "reason")
    assert parse_facts("mobility", "interrupt", accepted, {"reason": "other"}) == {
        "reason": "other"
    }
    with pytest.raises(InvalidInput) as refused:
        parse_facts("mobility", "interrupt", accepted, {"reason": "bored"})
    assert "reason: 'bored' is not a reason; use force_majeure or other" in str(refused.value)


def test_a_fact_a_trigger_does_not_take_is_refused_when_read() -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_facts(
            "mobility",
            "validate",
            ("europass_ref", "participant_report_on"),
            {"departed_on": "2027-09-01"},
        )
    assert "'departed_on' is not a fact of 'validate'" in str(refused.value)


# --- 3. guards: the mobility's own steps --------------------------------------------------------


@pytest.mark.parametrize("application_state", ["drafted", "submitted", "approved"])
def test_a_training_agreement_waits_for_the_applications_grant_agreement(
    application_state: str,
) -> None:
    waiting = a_mobility("approved")
    g = given(
        "mobility", "start_preparation", waiting, project=project_of(waiting, application_state)
    )
    message = refusal("mobility", waiting, "start_preparation", g)
    assert f"needs application 1 in preparation or later (it is '{application_state}'" in message


@pytest.mark.parametrize(
    "application_state", ["preparation", "abroad", "validation", "dissemination"]
)
def test_a_training_agreement_is_accepted_once_the_application_is_in_preparation_or_later(
    application_state: str,
) -> None:
    ready = a_mobility("approved")
    g = given("mobility", "start_preparation", ready, project=project_of(ready, application_state))
    assert fires("mobility", ready, "start_preparation", g) == "preparation"


@pytest.mark.parametrize("state", ["approved", "preparation"])
def test_a_planned_preparation_may_be_recorded_before_the_departure(state: str) -> None:
    assert fires("mobility", a_mobility(state), "record_preparation") == state


def depart(m: MobilitySnapshot | None = None, **facts: Any) -> Given:
    """The facts of a departure, changed (None drops a fact)."""
    m = m or a_mobility("preparation")
    return given("mobility", "depart", m, **facts)


def test_a_mobility_cannot_depart_before_the_project_starts() -> None:
    m = a_mobility("preparation", facts={})
    message = refusal(
        "mobility", m, "depart", depart(m, departed_on=PROJECT_START - timedelta(days=1))
    )
    assert "needs departed_on not before the project start (2027-06-01)" in message


def test_a_mobility_can_depart_on_the_day_the_project_starts() -> None:
    m = a_mobility("preparation", facts={})
    g = replace(depart(m, departed_on=PROJECT_START), today=PROJECT_START)
    assert fires("mobility", m, "depart", g) == "abroad"


def test_a_mobility_cannot_depart_before_its_training_agreement() -> None:
    m = a_mobility("preparation")  # training agreement signed on 2027-08-01
    message = refusal("mobility", m, "depart", depart(m, departed_on=date(2027, 7, 31)))
    assert "needs departed_on not before the training agreement (2027-08-01)" in message


def test_a_mobility_cannot_depart_before_the_projects_grant_agreement_or_approval() -> None:
    m = a_mobility("preparation", facts={})
    project = project_of(
        m, facts={"approved_on": date(2027, 6, 10), "grant_agreement_signed_on": date(2027, 6, 20)}
    )
    g = given("mobility", "depart", m, project=project, departed_on=date(2027, 6, 5))
    message = refusal("mobility", m, "depart", g)
    assert "departed_on not before the approval (2027-06-10)" in message
    assert "departed_on not before the grant agreement (2027-06-20)" in message


def test_a_mobility_cannot_depart_after_the_project_ends() -> None:
    m = a_mobility("preparation")
    later = PROJECT_END + timedelta(days=1)
    g = replace(depart(m, departed_on=later), today=later)
    assert "needs departed_on not after the project end (2029-05-31)" in refusal(
        "mobility", m, "depart", g
    )


def test_a_departure_cannot_be_recorded_in_the_future() -> None:
    m = a_mobility("preparation")
    message = refusal("mobility", m, "depart", depart(m, departed_on=TODAY + timedelta(days=1)))
    assert "needs departed_on not in the future" in message


def test_a_departure_can_be_recorded_on_the_day_itself() -> None:
    assert (
        fires("mobility", a_mobility("preparation"), "depart", depart(departed_on=TODAY))
        == "abroad"
    )


@pytest.mark.parametrize("done", [None, False])
def test_a_mobility_with_language_preparation_planned_cannot_depart_without_it_done(
    done: bool | None,
) -> None:
    m = a_mobility("preparation")
    message = refusal("mobility", m, "depart", depart(m, preparation_done=done))
    assert "needs preparation_done=true (language preparation was planned)" in message


def test_a_preparation_recorded_earlier_lets_the_participant_depart() -> None:
    m = a_mobility(
        "preparation", facts={**a_mobility("preparation").facts, "preparation_done": True}
    )
    assert fires("mobility", m, "depart", depart(m, preparation_done=None)) == "abroad"


def test_a_mobility_without_planned_preparation_departs_without_recording_it() -> None:
    m = a_mobility("preparation", language_preparation=False)
    assert fires("mobility", m, "depart", depart(m, preparation_done=None)) == "abroad"


def test_a_refused_departure_lists_every_failing_rule_at_once() -> None:
    m = a_mobility("preparation", facts={})
    g = depart(m, departed_on=PROJECT_START - timedelta(days=1), preparation_done=None)
    message = refusal("mobility", m, "depart", g)
    assert "not before the project start" in message
    assert "preparation_done" in message


def test_a_refusal_lists_missing_facts_future_dates_and_guards_together() -> None:
    away = a_mobility("abroad")
    m = replace(away, facts={**away.facts, "departed_on": TODAY + timedelta(days=3)})
    g = given("mobility", "interrupt", m, returned_on=TODAY + timedelta(days=1), reason=None)
    g = replace(g, note=None)
    message = refusal("mobility", m, "interrupt", g)
    assert "'interrupt' needs reason (force_majeure or other), a note saying why" in message
    assert "needs returned_on not in the future" in message
    assert f"needs returned_on on or after departed_on ({TODAY + timedelta(days=3)})" in message


def returning(m: MobilitySnapshot, returned_on: date, note: str | None = None) -> Given:
    return replace(given("mobility", "return_home", m, returned_on=returned_on), note=note)


def test_a_mobility_cannot_return_before_it_departed() -> None:
    m = a_mobility("abroad")
    message = refusal("mobility", m, "return_home", returning(m, DEPARTED - timedelta(days=1), "x"))
    assert "needs returned_on on or after departed_on (2027-09-01)" in message


def test_a_mobility_cannot_return_after_the_project_ends() -> None:
    m = a_mobility("abroad", facts={**a_mobility("abroad").facts, "departed_on": date(2029, 5, 10)})
    later = PROJECT_END + timedelta(days=1)
    g = replace(returning(m, later), today=later)
    message = refusal("mobility", m, "return_home", g)
    assert "needs returned_on not after the project end (2029-05-31)" in message


def test_an_interruption_cannot_date_the_return_before_the_departure() -> None:
    m = a_mobility("abroad")
    g = given("mobility", "interrupt", m, returned_on=DEPARTED - timedelta(days=1))
    assert "on or after departed_on (2027-09-01)" in refusal("mobility", m, "interrupt", g)


def test_a_stay_within_the_calls_limits_returns_without_a_note() -> None:
    m = a_mobility("abroad")
    assert (
        fires("mobility", m, "return_home", returning(m, DEPARTED + timedelta(days=6)))
        == "validation"
    )


@pytest.mark.parametrize("days", [1, 6, 43])
def test_a_stay_outside_the_calls_limits_is_recorded_only_with_a_note(days: int) -> None:
    m = a_mobility("abroad")
    back = DEPARTED + timedelta(days=days - 1)
    g = replace(returning(m, back), today=max(TODAY, back))
    message = refusal("mobility", m, "return_home", g)
    assert (
        f"needs a note explaining the actual stay of {days} days, outside the call's 7 to 42 days"
        in message
    )
    noted = replace(g, note="Came back early: a family emergency")
    assert fires("mobility", m, "return_home", noted) == "validation"
    sets = mobility.DEFINITION.record(m, "return_home", {"returned_on": back}, noted)
    assert sets == {
        "returned_on": back,
        "stay_note": f"{days} days abroad: Came back early: a family emergency",
    }


def test_an_interrupted_stay_outside_the_limits_is_recorded_with_its_note() -> None:
    m = a_mobility("abroad")
    back = DEPARTED + timedelta(days=2)
    g = given("mobility", "interrupt", m, returned_on=back)
    assert fires("mobility", m, "interrupt", g) == "validation"
    sets = mobility.DEFINITION.record(
        m, "interrupt", {"returned_on": back, "reason": "force_majeure"}, g
    )
    assert sets == {
        "returned_on": back,
        "interruption_reason": "force_majeure",
        "stay_note": "3 days abroad: Reason given by hand",
    }


@pytest.mark.parametrize("trigger", ["validate", "record_report"])
def test_a_participant_report_cannot_be_dated_before_the_departure(trigger: str) -> None:
    m = a_mobility("validation")
    g = given("mobility", trigger, m, participant_report_on=DEPARTED - timedelta(days=1))
    message = refusal("mobility", m, trigger, g)
    assert "needs participant_report_on on or after the departure (2027-09-01)" in message


@pytest.mark.parametrize("state", ["validation", "dissemination", "completed"])
def test_a_participant_report_may_be_recorded_from_the_return_on(state: str) -> None:
    assert fires("mobility", a_mobility(state), "record_report") == state


# --- 3. guards: the project following its mobilities, and closing it ----------------------------


def follows(app: ApplicationSnapshot, trigger: str) -> str:
    return fires("application", app, trigger, given("application", trigger, app), "system")


def follow_refusal(app: ApplicationSnapshot, trigger: str) -> str:
    return refusal("application", app, trigger, given("application", trigger, app), "system")


def test_a_project_does_not_go_abroad_before_one_of_its_mobilities_departed() -> None:
    app = an_application("preparation", mobilities=mobilities("preparation", "approved"))
    assert "needs one mobility abroad" in follow_refusal(app, "mobilities_departed")


def test_a_project_goes_abroad_with_its_first_departure() -> None:
    app = an_application("preparation", mobilities=mobilities("abroad", "approved"))
    assert follows(app, "mobilities_departed") == "abroad"


def test_a_project_stays_abroad_while_one_mobility_has_not_returned() -> None:
    app = an_application("abroad", mobilities=mobilities("validation", "abroad"))
    assert "needs every mobility returned" in follow_refusal(app, "mobilities_returned")


def test_a_cancelled_mobility_does_not_hold_back_the_projects_return() -> None:
    app = an_application("abroad", mobilities=mobilities("validation", "cancelled"))
    assert follows(app, "mobilities_returned") == "validation"


def test_a_project_stays_in_validation_while_one_mobility_is_not_validated() -> None:
    app = an_application("validation", mobilities=mobilities("dissemination", "validation"))
    assert "needs every mobility validated" in follow_refusal(app, "mobilities_validated")


def test_a_cancelled_mobility_does_not_hold_back_the_projects_validation() -> None:
    app = an_application("validation", mobilities=mobilities("completed", "cancelled"))
    assert follows(app, "mobilities_validated") == "dissemination"


def test_a_project_waits_in_preparation_while_one_mobility_is_not_cancelled() -> None:
    app = an_application("preparation", mobilities=mobilities("cancelled", "preparation"))
    assert "needs every mobility cancelled" in follow_refusal(app, "mobilities_cancelled")


def test_a_project_whose_every_mobility_was_cancelled_goes_to_its_final_report() -> None:
    app = an_application("preparation", mobilities=mobilities("cancelled", "cancelled"))
    assert follows(app, "mobilities_cancelled") == "dissemination"


def close(app: ApplicationSnapshot) -> str:
    return fires("application", app, "close")


def reported(count: int, of: int) -> tuple[MobilitySnapshot, ...]:
    """`of` completed mobilities, the first `count` with a participant report."""
    done = mobilities(*["completed"] * of)
    return tuple(
        m
        if i < count
        else replace(m, facts={k: v for k, v in m.facts.items() if k != "participant_report_on"})
        for i, m in enumerate(done)
    )


@pytest.mark.parametrize("open_state", ["preparation", "abroad", "validation", "dissemination"])
def test_a_project_cannot_close_with_a_mobility_still_open(open_state: str) -> None:
    app = an_application("dissemination", mobilities=mobilities("completed", open_state))
    message = refusal("application", app, "close")
    assert "needs every mobility completed or cancelled (open: 12)" in message


def test_a_project_cannot_close_without_participant_reports_for_a_quarter_of_its_mobilities() -> (
    None
):
    app = an_application("dissemination", mobilities=reported(0, 4))
    message = refusal("application", app, "close")
    assert (
        "needs participant reports for at least 25% of completed mobilities (0 of 4 received"
        in message
    )


def test_a_project_closes_with_participant_reports_for_one_mobility_in_four() -> None:
    assert close(an_application("dissemination", mobilities=reported(1, 4))) == "closed"


def test_cancelled_mobilities_do_not_count_towards_the_report_quota() -> None:
    cancelled = tuple(replace(m, id=20 + i) for i, m in enumerate(mobilities(*["cancelled"] * 3)))
    app = an_application("dissemination", mobilities=(*reported(1, 1), *cancelled))
    assert close(app) == "closed"


def test_a_project_whose_every_mobility_was_cancelled_may_be_closed() -> None:
    app = an_application("dissemination", mobilities=mobilities("cancelled", "cancelled"))
    assert close(app) == "closed"


def test_a_refused_close_lists_every_failing_rule_at_once() -> None:
    app = an_application(
        "dissemination", mobilities=(*reported(0, 4), a_mobility("validation", id=30))
    )
    message = refusal("application", app, "close")
    assert "completed or cancelled (open: 30)" in message
    assert "(0 of 4 received" in message


# --- 4. reachability and the diagram ------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_state_is_reachable_from_the_initial_state(kind: str) -> None:
    assert workflows.reachable(workflows.definition(kind)) == set(STATES[kind])


def test_the_reachability_check_finds_a_state_no_trigger_leads_to() -> None:
    orphan = Definition(
        kind="application",
        states=("drafted", "done", "orphan"),
        initial="drafted",
        transitions=[{"trigger": "finish", "source": "drafted", "dest": "done", "who": ["staff"]}],
        guards={},
    )
    assert workflows.reachable(orphan) == {"drafted", "done"}


@pytest.mark.parametrize("kind", KINDS)
def test_every_trigger_is_used_from_a_reachable_state(kind: str) -> None:
    d = workflows.definition(kind)
    reachable = workflows.reachable(d)
    used = {s.trigger for s in d.steps if reachable & set(s.sources)}
    assert used == set(WHO[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_every_state_but_the_final_ones_has_a_way_out(kind: str) -> None:
    d = workflows.definition(kind)
    for state in STATES[kind]:
        leaving = [s.trigger for s in d.steps if state in s.sources and s.dest != "="]
        if state in FINAL_STATES[kind]:
            assert leaving == [], state
        else:
            assert leaving, state


def test_the_final_states_of_the_code_are_those_of_the_spec() -> None:
    assert set(application.DEFINITION.final_states) == FINAL_STATES["application"]
    assert set(mobility.DEFINITION.final_states) == FINAL_STATES["mobility"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_diagram_draws_every_transition_of_the_spec(kind: str) -> None:
    diagram = workflows.mermaid(workflows.definition(kind))
    lines = diagram.splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert lines[1] == "    [*] --> drafted"
    drawn = {}
    for line in lines[2:]:
        found = re.fullmatch(r"    (\w+) --> (\w+): (\w+) \(([\w/]+)\)", line)
        if found:
            source, dest, trigger, who = found.groups()
            drawn[(source, trigger)] = (dest, set(who.split("/")))
    assert drawn == {
        (source, trigger): (dest, WHO[kind][trigger])
        for (source, trigger), dest in MOVES[kind].items()
    }
    for state in FINAL_STATES[kind]:
        assert f"    {state} --> [*]" in lines
    assert len(lines) == 2 + len(MOVES[kind]) + len(FINAL_STATES[kind])


def test_the_diagram_highlights_the_current_state() -> None:
    lines = workflows.mermaid(workflows.definition("mobility"), current="abroad").splitlines()
    assert lines[-1] == "    class abroad current"
    assert lines[-2].startswith("    classDef current ")


# --- the carried triggers -----------------------------------------------------------------------


def test_the_application_carries_its_mobilities_by_system_triggers_from_matching_states() -> None:
    carried = {  # application trigger -> (mobility trigger, mobility state before, after)
        "submit": ("submit", "drafted", "submitted"),
        "request_changes": ("request_changes", "submitted", "drafted"),
        "approve": ("approve", "submitted", "approved"),
    }
    for app_trigger, (m_trigger, before, after) in carried.items():
        assert application.CARRIES[app_trigger] == m_trigger
        assert "system" in WHO["mobility"][m_trigger]
        assert fires("mobility", a_mobility(before), m_trigger, role="system") == after
    for ending in ("reject", "withdraw"):
        m_trigger = application.CARRIES[ending]
        assert m_trigger == "cancel"
        for state in {s for (s, t) in APPLICATION_MOVES if t == ending}:
            m = a_mobility(_MOBILITIES_OF[state])
            assert fires("mobility", m, m_trigger, role="system") == "cancelled"


# --- 5. the next step ---------------------------------------------------------------------------


def app_step(app: ApplicationSnapshot) -> steps.NextStep:
    return steps.next_step(app, app)


def mobility_step(m: MobilitySnapshot, project_state: str | None = None) -> steps.NextStep:
    project = project_of(m, project_state)
    return steps.next_step(project, m)


def test_a_drafted_application_is_due_from_the_coordinator_by_the_call_deadline() -> None:
    step = app_step(an_application("drafted"))
    assert (step.who, step.due, step.trigger) == ("coordinator", date(2027, 2, 1), "submit")
    assert "2027-02-01 12:00 Brussels time" in step.text


def test_an_application_sent_back_for_changes_is_due_by_the_day_staff_set() -> None:
    step = app_step(an_application("drafted", facts={"resubmit_by": date(2027, 3, 1)}))
    assert (step.who, step.due, step.trigger) == ("coordinator", date(2027, 3, 1), "submit")
    assert "again by 2027-03-01" in step.text


def test_a_submitted_application_waits_for_na_staffs_evaluation() -> None:
    step = app_step(an_application("submitted", facts={}))
    assert (step.who, step.trigger) == ("staff", "evaluate")
    assert "six quality criteria" in step.text


def test_an_evaluated_application_waits_for_na_staffs_decision() -> None:
    step = app_step(an_application("submitted"))
    assert (step.who, step.trigger) == ("staff", "approve")
    assert "totals 43 of 60 (pass mark 36)" in step.text


def test_an_approved_application_needs_its_grant_agreement_before_the_project_starts() -> None:
    step = app_step(an_application("approved"))
    assert (step.who, step.due, step.trigger) == ("coordinator", PROJECT_START, "start_preparation")
    assert "grant agreement" in step.text


def test_a_project_in_preparation_is_due_by_its_first_planned_departure() -> None:
    later = a_mobility("approved", id=12, start_date=date(2027, 10, 4), end_date=date(2027, 10, 15))
    app = an_application("preparation", mobilities=(later, a_mobility("preparation")))
    step = app_step(app)
    assert (step.who, step.due) == ("coordinator", DEPARTED)


def test_a_project_abroad_is_due_by_its_last_planned_return() -> None:
    later = a_mobility("abroad", id=12, start_date=date(2027, 10, 4), end_date=date(2027, 10, 15))
    app = an_application("abroad", mobilities=(a_mobility("abroad"), later))
    step = app_step(app)
    assert (step.who, step.due) == ("coordinator", date(2027, 10, 15))


def test_a_project_in_validation_is_due_forty_five_days_after_the_first_return_awaiting_it() -> (
    None
):
    first = a_mobility(
        "validation", facts={**a_mobility("validation").facts, "returned_on": date(2027, 9, 16)}
    )
    second = a_mobility("validation", id=12)
    step = app_step(an_application("validation", mobilities=(second, first)))
    assert (step.who, step.due) == ("coordinator", date(2027, 10, 29))
    assert "Europass" in step.text


def test_the_final_report_is_due_sixty_days_after_the_project_ends() -> None:
    step = app_step(an_application("dissemination"))
    assert (step.due, step.trigger) == (PROJECT_END + timedelta(days=60), None)
    assert str(PROJECT_END + timedelta(days=60)) in step.text
    assert "NA staff then close the project" in step.text


@pytest.mark.parametrize("state", sorted(FINAL_STATES["application"]))
def test_a_finished_application_has_no_next_step(state: str) -> None:
    step = app_step(an_application(state))
    assert (step.who, step.due, step.trigger) == (None, None, None)
    assert state in step.text


@pytest.mark.parametrize("state", ["drafted", "submitted"])
def test_a_mobility_before_approval_moves_with_its_application(state: str) -> None:
    step = mobility_step(a_mobility(state))
    assert f"application 1, which is '{state}'" in step.text
    assert (step.who, step.trigger) == (None, None)


def test_an_approved_mobility_needs_its_training_agreement_before_departure() -> None:
    step = mobility_step(a_mobility("approved"), "approved")
    assert (step.who, step.due, step.trigger) == ("coordinator", DEPARTED, "start_preparation")
    assert "grant agreement of application 1" in step.text
    ready = mobility_step(a_mobility("approved"), "preparation")
    assert "grant agreement" not in ready.text


def test_a_mobility_in_preparation_is_due_to_depart_on_its_planned_start() -> None:
    step = mobility_step(a_mobility("preparation"))
    assert (step.who, step.due, step.trigger) == ("coordinator", DEPARTED, "depart")
    assert "language preparation" in step.text
    quiet = mobility_step(a_mobility("preparation", language_preparation=False))
    assert "language preparation" not in quiet.text


def test_a_mobility_abroad_is_due_back_on_its_planned_end() -> None:
    step = mobility_step(a_mobility("abroad"))
    assert (step.who, step.due, step.trigger) == ("coordinator", RETURNED, "return_home")
    assert "Jean Dupont" in step.text


def test_a_returned_mobility_is_due_for_validation_forty_five_days_after_its_return() -> None:
    back = a_mobility("validation")
    back = replace(back, facts={**back.facts, "returned_on": date(2027, 9, 16)})
    step = mobility_step(back)
    assert (step.who, step.due, step.trigger) == ("coordinator", date(2027, 10, 31), "validate")
    assert "participant report is still awaited (record_report)" in step.text
    reported_ = replace(back, facts={**back.facts, "participant_report_on": date(2027, 9, 20)})
    assert "participant report" not in mobility_step(reported_).text


def test_a_mobility_in_dissemination_waits_for_the_coordinator() -> None:
    step = mobility_step(a_mobility("dissemination"))
    assert (step.who, step.trigger) == ("coordinator", "complete")


@pytest.mark.parametrize("state", sorted(FINAL_STATES["mobility"]))
def test_a_finished_mobility_has_no_next_step(state: str) -> None:
    step = mobility_step(a_mobility(state))
    assert (step.who, step.due, step.trigger) == (None, None, None)
    assert state in step.text


def test_a_completed_mobility_without_its_participant_report_says_it_is_awaited() -> None:
    done = a_mobility("completed")
    done = replace(
        done, facts={k: v for k, v in done.facts.items() if k != "participant_report_on"}
    )
    assert "still awaited (record_report)" in mobility_step(done).text


@pytest.mark.parametrize(("kind", "state"), [(k, s) for k in KINDS for s in STATES[k]])
def test_every_state_has_a_next_step_whose_trigger_is_possible_from_it(
    kind: str, state: str
) -> None:
    case = a_case(kind, state)
    step = app_step(case) if kind == "application" else mobility_step(case)
    assert step.text.strip()
    if state in FINAL_STATES[kind]:
        assert step.who is None
    if step.trigger is not None:
        assert (state, step.trigger) in MOVES[kind]
