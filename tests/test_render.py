"""Rendering notifications: every kind, both parts, safe headers, and the real context of a move."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from email.message import EmailMessage
from importlib import resources
from typing import Any

import pytest
from jinja2 import UndefinedError
from markupsafe import escape

from vetpro_workflow.notifications.render import NOTIFICATION_KINDS, SUBJECT_MAX, render
from vetpro_workflow.states.notices import ON_MOVE, context_of
from vetpro_workflow.states.snapshots import (
    ApplicationSnapshot,
    CallRules,
    MobilitySnapshot,
    Partner,
)
from vetpro_workflow.states.workflows import DEFINITIONS

AGENCY = "mobility@national-agency.example"
SENDER = "VETPRO <vetpro@national-agency.example>"
TO = "claire@lycee.example"
MESSAGE_ID = "<case-1.receipt.v3@vetpro>"

APPLICATION_CONTEXT: dict[str, Any] = {
    "case_id": 1,
    "case_kind": "application",
    "state": "approved",
    "trigger": "approve",
    "note": "Strong partnership.\nPlease budget the travel of the second teacher again.",
    "coordinator_name": "Claire Martin",
    "coordinator_email": "claire@lycee.example",
    "applicant": "Lycée des Métiers",
    "next_step": "The coordinator signs the grant agreement and records it (start_preparation) "
    "before the project starts on 2027-06-01.",
    "next_step_due": "2027-06-01",
    "next_step_trigger": "start_preparation",
    "application_id": 1,
    "project_title": "Welding teachers abroad",
    "call_deadline": "2027-02-01 12:00 Brussels time",
    "call_deadline_passed": True,
    "start_date": "2027-06-01",
    "end_date": "2029-05-31",
    "resubmit_by": None,
}
MOBILITY_CONTEXT: dict[str, Any] = APPLICATION_CONTEXT | {
    "case_id": 11,
    "case_kind": "mobility",
    "state": "validation",
    "trigger": "return_home",
    "note": None,
    "next_step": "The coordinator records the Europass reference and the participant report "
    "(validate) by 2027-10-29.",
    "next_step_due": "2027-10-29",
    "next_step_trigger": "validate",
    "participant_name": "Jean Dupont",
    "host": "Berufskolleg Ost",
    "host_country": "DE",
    "start_date": "2027-09-01",
    "end_date": "2027-09-14",
    "returned_on": "2027-09-14",
    "interruption_reason": None,
}
MOBILITY_CONTEXT.pop("resubmit_by")
# The deadline each reminder is about, and the days left until it on the day it is sent.
REMINDERS: dict[str, tuple[str, int]] = {
    "call_deadline_reminder": ("2027-02-01", 7),
    "resubmission_reminder": ("2027-02-20", 1),
    "grant_agreement_to_sign": ("2027-06-01", 30),
    "training_agreement_reminder": ("2027-09-01", 7),
    "preparation_reminder": ("2027-09-01", 14),
    "participant_report_reminder": ("2027-09-14", -14),
    "validation_overdue": ("2027-10-29", 0),
    "final_report_reminder": ("2029-07-30", 7),
}
MOBILITY_KINDS = {"departure_confirmation", "return_recorded", "participant_report_request",
                  "mobility_cancelled", "stay_interrupted",
                  "training_agreement_reminder", "preparation_reminder",
                  "participant_report_reminder", "validation_overdue"}  # fmt: skip
CASE_KINDS = [k for k in NOTIFICATION_KINDS if k != "staff_digest"]
OVERDUE = {"case_id": 11, "kind": "mobility", "title": "Welding teachers abroad",
           "state": "validation", "what": "validation overdue", "due": "2027-10-29"}  # fmt: skip
BOUNCED = {"id": 42, "to": "jean@lycee.example", "kind": "participant_report_request",
           "last_error": "550 5.1.1 <jean@lycee.example>: user unknown", "case_id": 11}  # fmt: skip
DIGEST = {"day": "2027-11-05", "overdue": [OVERDUE], "undeliverable": [BOUNCED],
          "totals": {"validation": 1}}  # fmt: skip


def sample(kind: str, **changes: Any) -> dict[str, Any]:
    """A realistic context for a kind, changed as a test needs."""
    if kind == "staff_digest":
        return DIGEST | changes
    base = MOBILITY_CONTEXT if kind in MOBILITY_KINDS else APPLICATION_CONTEXT
    if kind in REMINDERS:
        due_date, days_left = REMINDERS[kind]
        base = base | {"note": None, "due_date": due_date, "days_left": days_left}
    return base | changes


def mail(kind: str, context: dict[str, Any] | None = None, **headers: Any) -> EmailMessage:
    """A notification rendered with the usual headers."""
    return render(
        kind,
        sample(kind) if context is None else context,
        sender=SENDER,
        recipient=TO,
        agency_email=AGENCY,
        message_id=MESSAGE_ID,
        **headers,
    )


def parts(msg: EmailMessage) -> tuple[str, str]:
    """The text and the HTML of a message."""
    text, html = msg.iter_parts()
    return text.get_content(), html.get_content()  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", NOTIFICATION_KINDS)
def test_every_kind_has_a_one_line_subject_naming_its_case(kind: str) -> None:
    subject = mail(kind)["Subject"]
    assert subject and subject == subject.strip() and "\n" not in subject and "\r" not in subject
    named = DIGEST["day"] if kind == "staff_digest" else APPLICATION_CONTEXT["project_title"]
    assert named in subject


@pytest.mark.parametrize("kind", NOTIFICATION_KINDS)
def test_every_kind_is_a_text_part_then_an_html_part(kind: str) -> None:
    msg = mail(kind)
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    text, html = parts(msg)
    assert text.strip() and html.strip().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("kind", CASE_KINDS)
def test_every_kind_tells_the_next_step_its_date_and_whom_to_contact(kind: str) -> None:
    context = sample(kind)
    text, html = parts(mail(kind, context))
    assert context["next_step"] in text and str(escape(context["next_step"])) in html
    assert context["next_step_due"] in text and context["next_step_due"] in html
    assert AGENCY in text and AGENCY in html
    assert str(context["case_id"]) in text


@pytest.mark.parametrize("kind", sorted(MOBILITY_KINDS))
def test_every_mobility_kind_names_the_participant_host_and_dates(kind: str) -> None:
    for part in parts(mail(kind)):
        for value in ("Jean Dupont", "Berufskolleg Ost", "2027-09-01", "2027-09-14"):
            assert value in part


def test_a_next_step_without_a_date_shows_no_date_line() -> None:
    context = sample("decision_rejected", next_step="Nothing: the application is rejected.")
    text, html = parts(mail("decision_rejected", context | {"next_step_due": None}))
    assert "Nothing: the application is rejected." in text and "Date:" not in text
    assert "Date:" not in html


def test_the_headers_are_the_ones_passed() -> None:
    msg = mail("receipt", cc="staff@national-agency.example")
    assert msg["From"] == SENDER and msg["To"] == TO and msg["Message-ID"] == MESSAGE_ID
    assert msg["Cc"] == "staff@national-agency.example"
    assert msg["Reply-To"] == AGENCY and msg["Date"]
    assert msg["Auto-Submitted"] == "auto-generated"  # no out-of-office replies to a robot


def test_without_a_cc_the_message_has_no_cc_header() -> None:
    assert "Cc" not in mail("receipt")


def test_the_note_is_quoted_under_the_label_of_its_kind() -> None:
    text, html = parts(mail("decision_approved"))
    assert "Assessment:\n    Strong partnership.\n    Please budget" in text
    assert "Strong partnership.<br>Please budget" in html
    assert "The grant agreement must now be signed" in text


def test_without_a_note_there_is_no_note_heading() -> None:
    text, _ = parts(mail("decision_approved", sample("decision_approved", note=None)))
    assert "Assessment" not in text


def test_the_participant_is_addressed_by_name_in_the_report_request() -> None:
    text, html = parts(mail("participant_report_request"))
    assert text.startswith("Dear Jean Dupont,") and "participant report" in html
    assert "requested on the end date" in text


def test_a_reminder_says_how_far_away_its_deadline_is() -> None:
    assert "The call deadline is 2027-02-01 (in 7 days)" in parts(mail("call_deadline_reminder"))[0]
    assert "was due on 2027-09-14 (14 days ago)" in parts(mail("participant_report_reminder"))[0]
    assert "is due today, 2027-10-29" in parts(mail("validation_overdue"))[0]


def test_the_overdue_validation_goes_to_staff_and_names_the_coordinator_to_chase() -> None:
    text, _ = parts(mail("validation_overdue"))
    assert text.startswith("Dear colleagues,") and "contact the coordinator, Claire Martin" in text


def test_every_move_that_sends_mail_has_a_template() -> None:
    sent = {kind for notices in ON_MOVE.values() for kind, _ in notices}
    assert sent <= set(NOTIFICATION_KINDS)


def test_a_resubmission_reminder_and_an_early_return_say_their_dates() -> None:
    assert "can be submitted until 2027-02-20 (tomorrow)" in parts(mail("resubmission_reminder"))[0]
    early = sample(
        "stay_interrupted", returned_on="2027-09-10", interruption_reason="force_majeure"
    )
    text, _ = parts(mail("stay_interrupted", early))
    assert "came back on 2027-09-10 (force majeure)" in text


def test_changes_requested_says_until_when_the_application_can_be_resubmitted() -> None:
    later = sample("changes_requested", resubmit_by="2027-03-01", call_deadline_passed=True)
    text, _ = parts(mail("changes_requested", later))
    assert "submit the application again by 2027-03-01" in text and "has passed" in text
    none_set = sample("changes_requested", resubmit_by=None, call_deadline_passed=True)
    assert "only if the National Agency sets one" in parts(mail("changes_requested", none_set))[0]
    before = sample("changes_requested", resubmit_by=None, call_deadline_passed=False)
    text, _ = parts(mail("changes_requested", before))
    assert "again before the call deadline, 2027-02-01 12:00 Brussels time" in text


def test_every_kind_has_one_template_extending_the_one_layout() -> None:
    folder = resources.files("vetpro_workflow").joinpath("notifications/templates")
    names = {p.name for p in folder.iterdir() if p.name.endswith(".j2")}
    assert names == {f"{kind}.j2" for kind in NOTIFICATION_KINDS} | {"layout.j2"}
    for kind in NOTIFICATION_KINDS:
        source = folder.joinpath(f"{kind}.j2").read_text()
        assert source.startswith('{% extends "layout.j2" %}') and "{% block subject %}" in source


@pytest.mark.parametrize(
    ("kind", "missing"),
    [("receipt", "project_title"), ("departure_confirmation", "participant_name"),
     ("call_deadline_reminder", "days_left"), ("closure", "note"), ("staff_digest", "overdue")],
)  # fmt: skip
def test_a_context_missing_a_value_the_template_uses_fails_loudly(kind: str, missing: str) -> None:
    context = sample(kind)
    del context[missing]
    with pytest.raises(UndefinedError):
        mail(kind, context)


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown notification kind 'nope'"):
        mail("nope", sample("receipt"))


def test_a_participant_named_script_is_escaped_in_html_and_verbatim_in_text() -> None:
    evil = "<script>alert(1)</script>"
    text, html = parts(
        mail("departure_confirmation", sample("departure_confirmation", participant_name=evil))
    )
    assert evil in text
    assert evil not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_project_title_with_cr_lf_cannot_add_a_header() -> None:
    msg = mail("receipt", sample("receipt", project_title="Evil\r\nBcc: x@y\n\tX-Evil: 1"))
    assert msg["Subject"] == "Application received: Evil Bcc: x@y X-Evil: 1 (case 1)"
    assert "Bcc" not in msg and "X-Evil" not in msg
    assert not any(line.lower().startswith(b"bcc:") for line in msg.as_bytes().splitlines())


def test_header_values_passed_by_the_caller_are_made_one_line() -> None:
    msg = mail("receipt", cc="a@b.example\r\nBcc: x@y")
    assert "Bcc" not in msg and "\n" not in msg["Cc"]


def test_a_long_project_title_gives_a_subject_of_bounded_length() -> None:
    msg = mail("receipt", sample("receipt", project_title="Welding " * 60))
    assert len(msg["Subject"]) <= SUBJECT_MAX and msg["Subject"].endswith("…")


def test_the_staff_digest_lists_overdue_cases_and_undeliverable_mail() -> None:
    text, html = parts(mail("staff_digest"))
    assert "Overdue cases (1):" in text and "Undeliverable mail (1):" in text
    row = next(line for line in text.splitlines() if line.startswith("42 "))
    assert "jean@lycee.example" in row and "550 5.1.1" in row
    assert "<td>validation overdue</td>" in html and "&lt;jean@lycee.example&gt;" in html
    assert "vetpro outbox retry" in text and AGENCY in text and AGENCY in html


def test_an_empty_staff_digest_says_nothing_is_wrong() -> None:
    msg = mail("staff_digest", sample("staff_digest", overdue=[], undeliverable=[]))
    text, html = parts(msg)
    assert "0 overdue, 0 undeliverable" in msg["Subject"]
    assert "Nothing is overdue and every message was delivered." in text
    assert text.count("None.") == 2 and html.count("<p>None.</p>") == 2


# --- the real context of a move, as notices.context_of builds it --------------------------------

BRUSSELS = timezone(timedelta(hours=1))
HOST = Partner(name="Berufskolleg Ost", country="DE", type="vet_provider")
CALL = CallRules(
    code="LLP-2027", title="VETPRO 2027", deadline=datetime(2027, 2, 1, 12, tzinfo=BRUSSELS),
    earliest_start=date(2027, 6, 1), max_project_months=24,
)  # fmt: skip
MOBILITY = MobilitySnapshot(
    id=11, state="preparation", version=3, application_id=1, participant_name="Jean Dupont",
    participant_email="jean@lycee.example", profession="teacher",
    professional_background="Welding teacher", training_needs="Robot welding",
    host_name=HOST.name, host_country=HOST.country, start_date=date(2027, 9, 1),
    end_date=date(2027, 9, 14), objectives="Robot welding didactics", content="Job shadowing",
    language_preparation=True,
)  # fmt: skip
APPLICATION = ApplicationSnapshot(
    id=1, state="drafted", version=3, organisation_id=1, title="Welding teachers abroad",
    applicant_name="Lycée des Métiers", applicant_type="vet_provider", applicant_country="FR",
    coordinator_name="Claire Martin", coordinator_email="claire@lycee.example", call=CALL,
    start_date=date(2027, 6, 1), end_date=date(2029, 5, 31), objectives="Simulators",
    dissemination_plan="A guide", partners=(HOST,), mobilities=(MOBILITY,),
)  # fmt: skip
NOW = datetime(2027, 3, 1, 9, tzinfo=BRUSSELS)
MOVES = sorted(ON_MOVE)


def after(
    case_kind: str, trigger: str
) -> tuple[ApplicationSnapshot, ApplicationSnapshot | MobilitySnapshot]:
    """The project and a case of it just after a move, in the state the workflow sends it to."""
    dest = next(s.dest for s in DEFINITIONS[case_kind].steps if s.trigger == trigger)
    if case_kind == "application":
        project = replace(APPLICATION, state=dest)
        return project, project
    moved = replace(MOBILITY, state=dest)
    return replace(APPLICATION, state="preparation", mobilities=(moved,)), moved


@pytest.mark.parametrize(("case_kind", "trigger"), MOVES)
def test_the_real_context_of_every_move_renders_its_notifications(
    case_kind: str, trigger: str
) -> None:
    project, case = after(case_kind, trigger)
    context = context_of(project, case, now=NOW) | {
        "trigger": trigger,
        "note": "Line one\nline two",
    }
    for kind, _ in ON_MOVE[(case_kind, trigger)]:
        text, html = parts(mail(kind, context))
        assert context["next_step"] in text and "Line one" in text and AGENCY in html


@pytest.mark.parametrize("kind", sorted(REMINDERS))
def test_the_real_context_of_a_case_plus_its_deadline_renders_every_reminder(kind: str) -> None:
    case = MOBILITY if kind in MOBILITY_KINDS else APPLICATION
    due_date, days_left = REMINDERS[kind]
    context = context_of(APPLICATION, case, now=NOW) | {
        "trigger": "sweep",
        "note": None,
        "due_date": due_date,
        "days_left": days_left,
    }
    assert context["next_step"] in parts(mail(kind, context))[0]


@pytest.mark.parametrize("case", [APPLICATION, MOBILITY], ids=["application", "mobility"])
def test_the_samples_here_have_exactly_the_keys_of_the_real_context(case: Any) -> None:
    sample_context = MOBILITY_CONTEXT if case.kind == "mobility" else APPLICATION_CONTEXT
    real = context_of(APPLICATION, case, now=NOW) | {"trigger": "x", "note": None}
    assert set(sample_context) == set(real)
