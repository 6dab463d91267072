"""Both workflows checked against DOMAIN.md, table-driven and without a database.

The expected transitions, roles, facts and notes below are written out by hand from the spec, not
read from the code's TRANSITIONS: the point is to check the code against the spec.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from vetpro_workflow.errors import NotAllowed, TransitionRefused
from vetpro_workflow.states import application, mobility, steps, workflows
from vetpro_workflow.states.dossier import ApplicationFile, Given, MobilityFile, Partner
from vetpro_workflow.states.machine import Definition, check_role, fire

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
    ("validation", "validate"): "dissemination",
    ("dissemination", "complete"): "completed",
    ("drafted", "cancel"): "cancelled",
    ("submitted", "cancel"): "cancelled",
    ("approved", "cancel"): "cancelled",
    ("preparation", "cancel"): "cancelled",
    # Our design where DOMAIN.md is silent: facts that arrive before their step are recorded on
    # their own, so the reminders waiting for them ("until received") stop.
    ("approved", "record_preparation"): "approved",
    ("preparation", "record_preparation"): "preparation",
    ("validation", "record_report"): "validation",
}
WHO: dict[str, dict[str, set[str]]] = {
    "application": {
        "submit": {"coordinator"},
        "request_changes": {"staff"},
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
        "submit": {"system"},
        "request_changes": {"system"},
        "approve": {"system"},
        "start_preparation": {"coordinator"},
        "depart": {"coordinator"},
        "return_home": {"coordinator", "system"},
        "validate": {"coordinator"},
        "complete": {"coordinator"},
        "cancel": {"coordinator", "staff", "system"},
        "record_preparation": {"coordinator"},
        "record_report": {"coordinator"},
    },
}
REQUIRED_FACTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("application", "start_preparation"): ("grant_agreement_signed_on",),
    ("application", "close"): ("final_report_on",),
    ("mobility", "start_preparation"): ("agreement_signed_on",),
    ("mobility", "depart"): ("departed_on",),
    ("mobility", "return_home"): ("returned_on",),
    ("mobility", "validate"): ("europass_ref", "participant_report_on"),
    ("mobility", "complete"): ("dissemination",),
    ("mobility", "record_preparation"): ("preparation_done",),
    ("mobility", "record_report"): ("participant_report_on",),
}
NOTE_REQUIRED = {
    ("application", "request_changes"),
    ("application", "approve"),
    ("application", "reject"),
    ("application", "withdraw"),
    ("mobility", "cancel"),
}
MOVES = {"application": APPLICATION_MOVES, "mobility": MOBILITY_MOVES}
STATES = {"application": APPLICATION_STATES, "mobility": MOBILITY_STATES}
DEFINITIONS: dict[str, Definition] = {
    "application": application.DEFINITION,
    "mobility": mobility.DEFINITION,
}

# --- a case that satisfies every guard ----------------------------------------------------------

BRUSSELS = timezone(timedelta(hours=1))
DEADLINE = datetime(2027, 2, 1, 12, 0, tzinfo=BRUSSELS)
SUBMIT_NOW = datetime(2027, 1, 15, 9, 30, tzinfo=BRUSSELS)
PROJECT_START = date(2027, 6, 1)
PROJECT_END = date(2029, 5, 31)  # 24 months, the call's maximum
TODAY = date(2027, 9, 20)
NOW = datetime(2027, 9, 20, 9, 30, tzinfo=BRUSSELS)
DEPARTED = date(2027, 9, 1)
RETURNED = date(2027, 9, 14)

FACT_VALUES: dict[str, Any] = {
    "grant_agreement_signed_on": date(2027, 5, 20),
    "final_report_on": TODAY,
    "agreement_signed_on": date(2027, 8, 1),
    "departed_on": DEPARTED,
    "preparation_done": True,
    "returned_on": RETURNED,
    "europass_ref": "EUROPASS-MOB-2027-0042",
    "participant_report_on": date(2027, 9, 18),
    "dissemination": "Workshop for 12 colleagues of the welding department on 2027-09-19",
}

HOST = Partner(name="Berufskolleg Ost", country="DE", type="vet_provider")
MOBILITY = MobilityFile(
    id=11,
    state="drafted",
    version=1,
    application_id=1,
    application_state="drafted",
    project_title="Welding teachers abroad",
    project_start=PROJECT_START,
    project_end=PROJECT_END,
    applicant_name="Lycée des Métiers",
    coordinator_name="Claire Martin",
    coordinator_email="claire@lycee.example",
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
APPLICATION = ApplicationFile(
    id=1,
    state="drafted",
    version=1,
    title="Welding teachers abroad",
    applicant_name="Lycée des Métiers",
    applicant_type="vet_provider",
    applicant_country="FR",
    coordinator_name="Claire Martin",
    coordinator_email="claire@lycee.example",
    call_code="LLP-2027",
    application_deadline=DEADLINE,
    earliest_start=PROJECT_START,
    max_project_months=24,
    min_days=7,
    max_days=42,
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
_RECORDED_BY = {  # the mobility facts recorded by the time it reaches a state
    "abroad": ("departed_on",),
    "validation": ("departed_on", "returned_on"),
    "dissemination": ("departed_on", "returned_on", "europass_ref", "participant_report_on"),
    "completed": (
        "departed_on",
        "returned_on",
        "europass_ref",
        "participant_report_on",
        "dissemination",
    ),
}


def a_mobility(state: str = "drafted", **changes: Any) -> MobilityFile:
    """A mobility in a state, with the facts recorded on the way there."""
    facts = {name: FACT_VALUES[name] for name in _RECORDED_BY.get(state, ())}
    base = replace(MOBILITY, state=state, application_state="preparation", facts=facts)
    return replace(base, **changes)


def mobilities(*states: str) -> tuple[MobilityFile, ...]:
    return tuple(a_mobility(s, id=11 + i) for i, s in enumerate(states))


def an_application(state: str = "drafted", **changes: Any) -> ApplicationFile:
    """An application in a state whose mobilities let every guard from that state pass."""
    mobility_state = _MOBILITIES_OF[state]
    mobilities = (a_mobility(mobility_state, application_state=state),)
    return replace(APPLICATION, state=state, mobilities=mobilities, **changes)


def a_case(kind: str, state: str) -> ApplicationFile | MobilityFile:
    return an_application(state) if kind == "application" else a_mobility(state)


def given(kind: str, trigger: str, **facts: Any) -> Given:
    """What a trigger needs to pass: its required facts, its note, and a day that fits."""
    supplied = {name: FACT_VALUES[name] for name in REQUIRED_FACTS.get((kind, trigger), ())}
    if (kind, trigger) == ("mobility", "depart"):
        supplied["preparation_done"] = True  # the helper mobility planned language preparation
    supplied.update(facts)
    note = "Reason given by hand" if (kind, trigger) in NOTE_REQUIRED else None
    if (kind, trigger) == ("application", "submit"):
        return Given(
            facts=supplied,
            note=note,
            today=SUBMIT_NOW.date(),
            now=SUBMIT_NOW,
            fresh=frozenset(supplied),
        )
    return Given(facts=supplied, note=note, today=TODAY, now=NOW, fresh=frozenset(supplied))


def refusal(kind: str, case: Any, trigger: str, g: Given) -> str:
    """The message of a refused trigger (fails the test if the trigger is accepted)."""
    with pytest.raises(TransitionRefused) as refused:
        fire(DEFINITIONS[kind], case, trigger, g)
    return str(refused.value)


def allowed_now(message: str) -> set[str]:
    """The triggers a refusal lists as allowed now."""
    found = re.search(r"Allowed now: (.*?)\.?$", message)
    assert found, f"no 'Allowed now:' in {message!r}"
    text = found.group(1)
    return set() if text.startswith("none") else set(text.split(", "))


def human_triggers_from(kind: str, state: str) -> set[str]:
    return {t for (s, t) in MOVES[kind] if s == state and WHO[kind][t] != {"system"}}


# --- 1. every (state, trigger) pair ------------------------------------------------------------

PAIRS = [
    (kind, state, trigger)
    for kind in ("application", "mobility")
    for state in STATES[kind]
    for trigger in WHO[kind]
]


@pytest.mark.parametrize("kind", ["application", "mobility"])
def test_the_code_declares_the_states_and_triggers_of_the_spec(kind: str) -> None:
    d = DEFINITIONS[kind]
    assert set(d.states) == set(STATES[kind])
    assert d.initial == "drafted"
    assert {s.trigger for s in d.steps} == set(WHO[kind])


@pytest.mark.parametrize("kind", ["application", "mobility"])
def test_the_code_declares_exactly_the_transitions_of_the_spec(kind: str) -> None:
    declared = {
        (src, s.trigger): src if s.dest == "=" else s.dest
        for s in DEFINITIONS[kind].steps
        for src in s.sources
    }
    assert declared == MOVES[kind]


@pytest.mark.parametrize(("kind", "state", "trigger"), PAIRS)
def test_every_trigger_from_every_state_moves_as_the_spec_says_or_is_refused(
    kind: str, state: str, trigger: str
) -> None:
    case = a_case(kind, state)
    if trigger == "mobilities_cancelled":
        case = replace(case, mobilities=(a_mobility("cancelled", application_state=state),))
    expected = MOVES[kind].get((state, trigger))
    if expected is not None:
        assert fire(DEFINITIONS[kind], case, trigger, given(kind, trigger)) == expected
        return
    message = refusal(kind, case, trigger, given(kind, trigger))
    assert f"{kind.capitalize()} {case.id} is in '{state}'" in message
    assert f"'{trigger}'" in message
    assert allowed_now(message) == human_triggers_from(kind, state)


@pytest.mark.parametrize(
    ("kind", "state"),
    [(k, s) for k in ("application", "mobility") for s in STATES[k] if s not in FINAL_STATES[k]],
)
def test_a_refusal_never_calls_a_case_that_is_still_under_way_finished(
    kind: str, state: str
) -> None:
    wrong = next(t for t in WHO[kind] if (state, t) not in MOVES[kind])
    message = refusal(kind, a_case(kind, state), wrong, given(kind, wrong))
    assert "finished" not in message


@pytest.mark.parametrize(("kind", "state"), [("application", "closed"), ("mobility", "completed")])
def test_a_refusal_on_a_finished_case_says_nothing_more_is_possible(kind: str, state: str) -> None:
    message = refusal(kind, a_case(kind, state), "submit", given(kind, "submit"))
    assert "Allowed now: none" in message


@pytest.mark.parametrize(
    ("kind", "foreign"), [("application", "depart"), ("mobility", "close"), ("mobility", "fly")]
)
def test_a_trigger_of_another_kind_is_refused_with_the_triggers_allowed_now(
    kind: str, foreign: str
) -> None:
    message = refusal(kind, a_case(kind, "drafted"), foreign, given(kind, foreign))
    assert f"'{foreign}' is not a trigger of" in message
    expected = human_triggers_from(kind, "drafted")
    assert all(t in message for t in expected)


def test_a_refused_guard_names_the_rule_and_the_triggers_allowed_now() -> None:
    g = given("mobility", "depart", preparation_done=None)
    g = replace(g, facts={"departed_on": DEPARTED})
    message = refusal("mobility", a_mobility("preparation"), "depart", g)
    assert message == (
        "Mobility 11 is in 'preparation'; 'depart' needs preparation_done=true "
        "(language preparation was planned). Allowed now: depart, record_preparation, cancel."
    )


def test_a_refused_trigger_leaves_no_case_attached_to_the_shared_machine() -> None:
    machine = mobility.DEFINITION.machine()
    before = len(machine.models)
    refusal("mobility", a_mobility("preparation"), "depart", depart(preparation_done=None))
    with pytest.raises(TransitionRefused):
        fire(mobility.DEFINITION, a_mobility("abroad"), "depart", given("mobility", "depart"))
    assert len(machine.models) == before


# --- 2. roles -----------------------------------------------------------------------------------

ROLE_CASES = [
    (kind, trigger, role)
    for kind in ("application", "mobility")
    for trigger in WHO[kind]
    for role in ("coordinator", "staff", "system")
]


@pytest.mark.parametrize(("kind", "trigger", "role"), ROLE_CASES)
def test_only_the_roles_the_spec_names_may_fire_a_trigger(
    kind: str, trigger: str, role: str
) -> None:
    d = DEFINITIONS[kind]
    if role in WHO[kind][trigger]:
        check_role(d, trigger, role, "someone@example.org")
        return
    with pytest.raises(NotAllowed) as refused:
        check_role(d, trigger, role, "someone@example.org")
    assert f"'{trigger}'" in str(refused.value)
    assert "someone@example.org is " + role in str(refused.value)


# --- 3. guards: submitting an application -------------------------------------------------------


def submit_refusal(app: ApplicationFile, *, now: datetime = SUBMIT_NOW) -> str:
    g = replace(given("application", "submit"), now=now, today=now.date())
    return refusal("application", app, "submit", g)


def submits(app: ApplicationFile) -> bool:
    return fire(application.DEFINITION, app, "submit", given("application", "submit")) == (
        "submitted"
    )


def test_an_application_cannot_be_submitted_at_or_after_the_call_deadline() -> None:
    assert "before the call deadline" in submit_refusal(APPLICATION, now=DEADLINE)
    late = DEADLINE + timedelta(days=3)
    assert "before the call deadline" in submit_refusal(APPLICATION, now=late)


def test_an_application_can_be_submitted_a_minute_before_the_deadline() -> None:
    g = replace(given("application", "submit"), now=DEADLINE - timedelta(minutes=1))
    assert fire(application.DEFINITION, APPLICATION, "submit", g) == "submitted"


@pytest.mark.parametrize("applicant_type", ["individual", "learner", ""])
def test_an_applicant_of_an_ineligible_type_cannot_submit(applicant_type: str) -> None:
    message = submit_refusal(replace(APPLICATION, applicant_type=applicant_type))
    assert "eligible applicant type" in message


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
    assert "partner in another country" in message


def test_an_application_without_a_mobility_cannot_be_submitted() -> None:
    assert "at least one planned mobility" in submit_refusal(replace(APPLICATION, mobilities=()))


def test_an_application_whose_only_mobility_was_cancelled_cannot_be_submitted() -> None:
    cancelled = (a_mobility("cancelled"),)
    message = submit_refusal(replace(APPLICATION, mobilities=cancelled))
    assert "at least one planned mobility" in message


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
    assert "a host among the partners" in message


def test_a_mobility_hosted_in_the_applicants_country_makes_the_application_incomplete() -> None:
    neighbour = Partner(name="Lycée Voisin", country="FR", type="vet_provider")
    at_home = replace(MOBILITY, host_name=neighbour.name, host_country="FR")
    app = replace(APPLICATION, partners=(HOST, neighbour), mobilities=(at_home,))
    message = submit_refusal(app)
    assert "a host in another country than the applicant's (FR)" in message


def stay(days: int) -> MobilityFile:
    """The helper mobility lasting a number of days, both ends counted."""
    return replace(MOBILITY, end_date=MOBILITY.start_date + timedelta(days=days - 1))


@pytest.mark.parametrize("days", [1, 6, 43, 60])
def test_a_stay_shorter_than_a_week_or_longer_than_six_weeks_is_incomplete(days: int) -> None:
    message = submit_refusal(replace(APPLICATION, mobilities=(stay(days),)))
    assert "7 to 42 days" in message
    assert f"it lasts {days}" in message


@pytest.mark.parametrize("days", [7, 42])
def test_stays_of_exactly_seven_and_forty_two_days_both_ends_counted_are_accepted(
    days: int,
) -> None:
    assert submits(replace(APPLICATION, mobilities=(stay(days),)))


def test_the_stay_limits_come_from_the_call() -> None:
    short_call = replace(APPLICATION, min_days=5, max_days=10, mobilities=(stay(6),))
    assert submits(short_call)
    message = submit_refusal(replace(short_call, mobilities=(stay(14),)))
    assert "5 to 10 days" in message


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
    assert "dates inside the project period" in message


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
    assert "on or after 2027-06-01" in submit_refusal(early)


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


# --- 3. guards: the mobility's own steps --------------------------------------------------------


@pytest.mark.parametrize("application_state", ["drafted", "submitted", "approved"])
def test_a_training_agreement_waits_for_the_applications_grant_agreement(
    application_state: str,
) -> None:
    waiting = a_mobility("approved", application_state=application_state)
    message = refusal(
        "mobility", waiting, "start_preparation", given("mobility", "start_preparation")
    )
    assert "in preparation or later" in message


@pytest.mark.parametrize(
    "application_state", ["preparation", "abroad", "validation", "dissemination"]
)
def test_a_training_agreement_is_accepted_once_the_application_is_in_preparation_or_later(
    application_state: str,
) -> None:
    ready = a_mobility("approved", application_state=application_state)
    g = given("mobility", "start_preparation")
    assert fire(mobility.DEFINITION, ready, "start_preparation", g) == "preparation"


def depart(**facts: Any) -> Given:
    """The facts of a departure, changed (None drops a fact)."""
    g = given("mobility", "depart")
    return replace(g, facts={k: v for k, v in {**g.facts, **facts}.items() if v is not None})


def test_a_mobility_cannot_depart_before_the_project_starts() -> None:
    early = PROJECT_START - timedelta(days=1)
    m = a_mobility("preparation")
    message = refusal("mobility", m, "depart", depart(departed_on=early))
    assert "not before the project start (2027-06-01)" in message


def test_a_mobility_can_depart_on_the_day_the_project_starts() -> None:
    m = a_mobility("preparation")
    g = replace(depart(departed_on=PROJECT_START), today=PROJECT_START)
    assert fire(mobility.DEFINITION, m, "depart", g) == "abroad"


def test_a_departure_cannot_be_recorded_in_the_future() -> None:
    m = a_mobility("preparation")
    message = refusal("mobility", m, "depart", depart(departed_on=TODAY + timedelta(days=1)))
    assert "departed_on not in the future" in message


def test_a_departure_can_be_recorded_on_the_day_itself() -> None:
    m = a_mobility("preparation")
    assert fire(mobility.DEFINITION, m, "depart", depart(departed_on=TODAY)) == "abroad"


@pytest.mark.parametrize("done", [None, False])
def test_a_mobility_with_language_preparation_planned_cannot_depart_without_it_done(
    done: bool | None,
) -> None:
    m = a_mobility("preparation")
    message = refusal("mobility", m, "depart", depart(preparation_done=done))
    assert "preparation_done" in message


def test_a_mobility_without_planned_preparation_departs_without_recording_it() -> None:
    m = a_mobility("preparation", language_preparation=False)
    assert fire(mobility.DEFINITION, m, "depart", depart(preparation_done=None)) == "abroad"


def test_a_refused_departure_lists_every_failing_rule_at_once() -> None:
    m = a_mobility("preparation")
    g = depart(departed_on=PROJECT_START - timedelta(days=1), preparation_done=None)
    message = refusal("mobility", m, "depart", g)
    assert "not before the project start" in message
    assert "preparation_done" in message


def test_a_mobility_cannot_return_before_it_departed() -> None:
    m = a_mobility("abroad")
    g = given("mobility", "return_home", returned_on=DEPARTED - timedelta(days=1))
    message = refusal("mobility", m, "return_home", g)
    assert "on or after departed_on (2027-09-01)" in message


def test_a_mobility_can_return_on_the_day_it_departed() -> None:
    m = a_mobility("abroad")
    g = given("mobility", "return_home", returned_on=DEPARTED)
    assert fire(mobility.DEFINITION, m, "return_home", g) == "validation"


# --- 3. guards: the project following its mobilities, and closing it ----------------------------


def test_a_project_does_not_go_abroad_before_one_of_its_mobilities_departed() -> None:
    app = replace(an_application("preparation"), mobilities=mobilities("preparation", "approved"))
    message = refusal(
        "application", app, "mobilities_departed", given("application", "mobilities_departed")
    )
    assert "one mobility abroad" in message


def test_a_project_goes_abroad_with_its_first_departure() -> None:
    app = replace(an_application("preparation"), mobilities=mobilities("abroad", "approved"))
    g = given("application", "mobilities_departed")
    assert fire(application.DEFINITION, app, "mobilities_departed", g) == "abroad"


def test_a_project_stays_abroad_while_one_mobility_has_not_returned() -> None:
    app = replace(an_application("abroad"), mobilities=mobilities("validation", "abroad"))
    message = refusal(
        "application", app, "mobilities_returned", given("application", "mobilities_returned")
    )
    assert "every mobility returned" in message


def test_a_cancelled_mobility_does_not_hold_back_the_projects_return() -> None:
    app = replace(an_application("abroad"), mobilities=mobilities("validation", "cancelled"))
    g = given("application", "mobilities_returned")
    assert fire(application.DEFINITION, app, "mobilities_returned", g) == "validation"


def test_a_project_stays_in_validation_while_one_mobility_is_not_validated() -> None:
    app = replace(
        an_application("validation"), mobilities=mobilities("dissemination", "validation")
    )
    message = refusal(
        "application", app, "mobilities_validated", given("application", "mobilities_validated")
    )
    assert "every mobility validated" in message


def test_a_cancelled_mobility_does_not_hold_back_the_projects_validation() -> None:
    app = replace(an_application("validation"), mobilities=mobilities("completed", "cancelled"))
    g = given("application", "mobilities_validated")
    assert fire(application.DEFINITION, app, "mobilities_validated", g) == "dissemination"


def close(app: ApplicationFile) -> str:
    return fire(application.DEFINITION, app, "close", given("application", "close"))


def reported(count: int, of: int) -> tuple[MobilityFile, ...]:
    """`of` completed mobilities, the first `count` with a participant report."""
    done = mobilities(*["completed"] * of)
    return tuple(
        m if i < count else replace(m, facts={**m.facts, "participant_report_on": None})
        for i, m in enumerate(done)
    )


@pytest.mark.parametrize("open_state", ["preparation", "abroad", "validation", "dissemination"])
def test_a_project_cannot_close_with_a_mobility_still_open(open_state: str) -> None:
    app = replace(an_application("dissemination"), mobilities=mobilities("completed", open_state))
    message = refusal("application", app, "close", given("application", "close"))
    assert "every mobility completed or cancelled (open: 12)" in message


def test_a_project_cannot_close_without_participant_reports_for_a_quarter_of_its_mobilities() -> (
    None
):
    app = replace(an_application("dissemination"), mobilities=reported(0, 4))
    message = refusal("application", app, "close", given("application", "close"))
    assert "at least 25% of completed mobilities (0 of 4 received)" in message


def test_a_project_closes_with_participant_reports_for_one_mobility_in_four() -> None:
    assert close(replace(an_application("dissemination"), mobilities=reported(1, 4))) == "closed"


def test_cancelled_mobilities_do_not_count_towards_the_report_quota() -> None:
    cancelled = tuple(replace(m, id=20 + i) for i, m in enumerate(mobilities(*["cancelled"] * 3)))
    app = replace(an_application("dissemination"), mobilities=(*reported(1, 1), *cancelled))
    assert close(app) == "closed"


def test_a_refused_close_lists_every_failing_rule_at_once() -> None:
    app = replace(
        an_application("dissemination"),
        mobilities=(*reported(0, 4), a_mobility("validation", id=30)),
    )
    message = refusal("application", app, "close", given("application", "close"))
    assert "completed or cancelled (open: 30)" in message
    assert "(0 of 4 received)" in message


# --- 3. guards: required facts and notes --------------------------------------------------------

FACT_CASES = [
    (kind, trigger, fact) for (kind, trigger), facts in REQUIRED_FACTS.items() for fact in facts
]
SOURCE_OF = {(kind, t): s for kind, moves in MOVES.items() for (s, t) in moves}


@pytest.mark.parametrize(("kind", "trigger", "fact"), FACT_CASES)
def test_a_trigger_is_refused_without_each_fact_it_requires(
    kind: str, trigger: str, fact: str
) -> None:
    g = given(kind, trigger)
    g = replace(g, facts={k: v for k, v in g.facts.items() if k != fact})
    message = refusal(kind, a_case(kind, SOURCE_OF[(kind, trigger)]), trigger, g)
    assert f"'{trigger}' needs {fact} (" in message


def test_a_trigger_missing_several_facts_names_them_all() -> None:
    g = replace(given("mobility", "validate"), facts={})
    message = refusal("mobility", a_mobility("validation"), "validate", g)
    assert "europass_ref (text)" in message
    assert "participant_report_on (YYYY-MM-DD)" in message


@pytest.mark.parametrize(("kind", "trigger"), sorted(NOTE_REQUIRED))
@pytest.mark.parametrize("note", [None, "", "   "])
def test_a_trigger_is_refused_without_the_note_it_requires(
    kind: str, trigger: str, note: str | None
) -> None:
    g = replace(given(kind, trigger), note=note)
    message = refusal(kind, a_case(kind, SOURCE_OF[(kind, trigger)]), trigger, g)
    assert "a note (--note)" in message


# --- 4. reachability and the diagram ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["application", "mobility"])
def test_every_state_is_reachable_from_the_initial_state(kind: str) -> None:
    assert workflows.reachable(workflows.definition(kind)) == set(STATES[kind])


def test_the_reachability_check_finds_a_state_no_trigger_leads_to() -> None:
    orphan = Definition(
        kind="test",
        states=("drafted", "done", "orphan"),
        initial="drafted",
        transitions=[{"trigger": "finish", "source": "drafted", "dest": "done", "who": ["staff"]}],
        guards={},
    )
    assert workflows.reachable(orphan) == {"drafted", "done"}


@pytest.mark.parametrize("kind", ["application", "mobility"])
def test_every_trigger_is_used_from_a_reachable_state(kind: str) -> None:
    d = workflows.definition(kind)
    reachable = workflows.reachable(d)
    used = {s.trigger for s in d.steps if reachable & set(s.sources)}
    assert used == set(WHO[kind])


@pytest.mark.parametrize("kind", ["application", "mobility"])
def test_every_state_but_the_final_ones_has_a_way_out(kind: str) -> None:
    d = workflows.definition(kind)
    for state in STATES[kind]:
        ways_out = d.triggers_from(state, human=False)
        if state in FINAL_STATES[kind]:
            assert ways_out == [], state
        else:
            assert ways_out, state


def test_the_final_states_of_the_code_are_those_of_the_spec() -> None:
    assert set(application.FINAL) == FINAL_STATES["application"]
    assert set(mobility.FINAL) == FINAL_STATES["mobility"]


@pytest.mark.parametrize("kind", ["application", "mobility"])
def test_the_diagram_draws_every_transition_of_the_spec(kind: str) -> None:
    diagram = workflows.mermaid(workflows.definition(kind))
    lines = diagram.splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert "    [*] --> drafted" in lines
    for (source, trigger), dest in MOVES[kind].items():
        assert any(line.startswith(f"    {source} --> {dest}: {trigger} (") for line in lines), (
            source,
            trigger,
            dest,
        )
    for state in FINAL_STATES[kind]:
        assert f"    {state} --> [*]" in lines
    assert len(lines) == 2 + len(MOVES[kind]) + len(FINAL_STATES[kind])


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
        check_role(mobility.DEFINITION, m_trigger, "system", "the system")
        moved = fire(
            mobility.DEFINITION, a_mobility(before), m_trigger, given("mobility", m_trigger)
        )
        assert moved == after
    for ending in ("reject", "withdraw"):
        m_trigger = application.CARRIES[ending]
        for state in {s for (s, t) in APPLICATION_MOVES if t == ending}:
            g = given("mobility", "cancel")
            assert fire(mobility.DEFINITION, a_mobility(state), m_trigger, g) == "cancelled"


# --- 5. the next step ---------------------------------------------------------------------------


def test_a_drafted_application_is_due_from_the_coordinator_by_the_call_deadline() -> None:
    step = steps.next_step(an_application("drafted"))
    assert (step.who, step.due) == ("coordinator", date(2027, 2, 1))
    assert "2027-02-01 12:00" in step.text


def test_a_submitted_application_waits_for_na_staff() -> None:
    step = steps.next_step(an_application("submitted"))
    assert step.who == "staff"
    assert "approve" in step.text


def test_an_approved_application_needs_its_grant_agreement_before_the_project_starts() -> None:
    step = steps.next_step(an_application("approved"))
    assert (step.who, step.due) == ("coordinator", PROJECT_START)
    assert "grant agreement" in step.text


def test_a_project_in_preparation_is_due_by_its_first_planned_departure() -> None:
    later = a_mobility("approved", id=12, start_date=date(2027, 10, 4), end_date=date(2027, 10, 15))
    app = replace(an_application("preparation"), mobilities=(later, a_mobility("preparation")))
    step = steps.next_step(app)
    assert (step.who, step.due) == ("coordinator", DEPARTED)


def test_a_project_abroad_is_due_by_its_last_planned_return() -> None:
    later = a_mobility("abroad", id=12, start_date=date(2027, 10, 4), end_date=date(2027, 10, 15))
    app = replace(an_application("abroad"), mobilities=(a_mobility("abroad"), later))
    step = steps.next_step(app)
    assert (step.who, step.due) == ("coordinator", date(2027, 10, 15))


def test_a_project_in_validation_waits_for_the_coordinator() -> None:
    step = steps.next_step(an_application("validation"))
    assert step.who == "coordinator"
    assert "Europass" in step.text


def test_the_final_report_is_due_sixty_days_after_the_project_ends() -> None:
    step = steps.next_step(an_application("dissemination"))
    assert (step.who, step.due) == ("coordinator", PROJECT_END + timedelta(days=60))
    assert str(PROJECT_END + timedelta(days=60)) in step.text


@pytest.mark.parametrize("state", sorted(FINAL_STATES["application"]))
def test_a_finished_application_has_no_next_step(state: str) -> None:
    step = steps.next_step(an_application(state))
    assert (step.who, step.due) == (None, None)
    assert state in step.text


@pytest.mark.parametrize("state", ["drafted", "submitted"])
def test_a_mobility_before_approval_moves_with_its_application(state: str) -> None:
    step = steps.next_step(a_mobility(state, application_state=state))
    assert "application 1" in step.text


def test_an_approved_mobility_needs_its_training_agreement_before_departure() -> None:
    step = steps.next_step(a_mobility("approved", application_state="approved"))
    assert (step.who, step.due) == ("coordinator", DEPARTED)
    assert "grant agreement of application 1" in step.text


def test_a_mobility_in_preparation_is_due_to_depart_on_its_planned_start() -> None:
    step = steps.next_step(a_mobility("preparation"))
    assert (step.who, step.due) == ("coordinator", DEPARTED)
    assert "language preparation" in step.text
    quiet = steps.next_step(a_mobility("preparation", language_preparation=False))
    assert "language preparation" not in quiet.text


def test_a_mobility_abroad_is_due_back_on_its_planned_end() -> None:
    step = steps.next_step(a_mobility("abroad"))
    assert (step.who, step.due) == ("coordinator", RETURNED)
    assert "Jean Dupont" in step.text


def test_a_returned_mobility_is_due_for_validation_forty_five_days_after_its_return() -> None:
    back = a_mobility("validation")
    back = replace(back, facts={**back.facts, "returned_on": date(2027, 9, 16)})
    step = steps.next_step(back)
    assert (step.who, step.due) == ("coordinator", date(2027, 10, 31))


def test_a_mobility_in_dissemination_waits_for_the_coordinator() -> None:
    step = steps.next_step(a_mobility("dissemination"))
    assert step.who == "coordinator"
    assert "complete" in step.text


@pytest.mark.parametrize("state", sorted(FINAL_STATES["mobility"]))
def test_a_finished_mobility_has_no_next_step(state: str) -> None:
    step = steps.next_step(a_mobility(state))
    assert (step.who, step.due) == (None, None)
    assert state in step.text


@pytest.mark.parametrize("blank", ["objectives", "dissemination_plan"])
def test_a_project_without_objectives_or_dissemination_plan_cannot_be_submitted(blank: str) -> None:
    app = replace(an_application("drafted"), **{blank: "  "})
    message = refusal("application", app, "submit", given("application", "submit"))
    assert ("project objectives" if blank == "objectives" else "a dissemination plan") in message


def test_a_project_waits_in_preparation_while_one_mobility_is_not_cancelled() -> None:
    app = replace(
        an_application("preparation"),
        mobilities=(
            a_mobility("cancelled", application_state="preparation"),
            a_mobility("preparation", application_state="preparation"),
        ),
    )
    message = refusal("application", app, "mobilities_cancelled", given("application", "close"))
    assert "needs every mobility cancelled" in message
