"""The pages of the workspace, read as HTML: what each shows, what its forms ask for, and what
posting them does (through the same services as the command line)."""

from __future__ import annotations

import html
import json
import re
from datetime import date

from factories import CALL, COORDINATOR, SCORES, STAFF, call_document, example, state_of, step_of
from test_web_workspace import (
    OTHER,
    agency,
    app_on,
    business,
    form_token,
    signed_in,
)
from vetpro_workflow.clock import Clock
from vetpro_workflow.notifications import outbox
from vetpro_workflow.notifications.render import render as render_mail
from vetpro_workflow.sweeps import sweep

STAFF_MAIL = "vetpro-staff@national-agency.example"


def text(response) -> str:
    """A page's text as people read it: tags dropped, entities decoded, spaces folded."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.text)).split())


def fields_of(page: str, trigger: str) -> list[str]:
    """The names of the fields of an action's form."""
    form = re.search(rf'<form[^>]*id="action-{trigger}".*?</form>', page, re.S)
    assert form, f"no form for {trigger}"
    return re.findall(r'name="([^"]+)"', form.group(0))


# --- the case page ------------------------------------------------------------------------------


def test_the_case_page_heads_with_the_next_step_the_mail_carries(db) -> None:
    world = agency(db, steps=step_of("start_preparation", 1))
    page = signed_in(app_on(db, today=date(2027, 6, 1)), COORDINATOR)
    response = page.get(f"/cases/{world.ours.mobilities[0]}")
    shown = text(response)
    assert response.status_code == 200
    assert (
        "Next step The coordinator records the departure (depart) with the language "
        "preparation done on 2027-09-06. Due: 2027-09-06" in shown
    )
    assert "Mobility 2: Markus Leitner at Omnia Vocational College" in shown


def test_each_action_form_asks_for_exactly_the_facts_its_trigger_needs(db) -> None:
    world = agency(db, steps=step_of("start_preparation", 1))
    page = signed_in(app_on(db), COORDINATOR).get(f"/cases/{world.ours.mobilities[0]}").text
    common = ["csrf", "trigger", "if_version", "back"]
    assert fields_of(page, "depart") == [
        *common,
        "fact_departed_on",
        "fact_preparation_done",
        "note",
    ]
    assert fields_of(page, "cancel") == [*common, "note"]
    assert 'id="depart-fact_departed_on"' not in page  # labels point at the inputs' ids
    assert '<label for="depart-departed_on">Departure date</label>' in page
    assert re.search(r'<input id="depart-departed_on" name="fact_departed_on" type="date"', page)


def test_the_case_page_shows_facts_history_mobilities_mail_and_the_diagram(db) -> None:
    world = agency(db, steps=step_of("approve"))
    response = signed_in(app_on(db), STAFF).get(f"/cases/{world.ours.application}")
    shown = text(response)
    for expected in (
        "Total score 43.0",
        "Approved on 2027-02-20",
        "Record the evaluation (submitted → submitted) by officer@national-agency.example",
        "Approve (submitted → approved) by officer@national-agency.example",
        "Clear objectives, sound budget.",
        "Markus Leitner at Omnia Vocational College",
        "receipt anna.huber@bbz-steyr.example pending",
        "decision approved anna.huber@bbz-steyr.example pending",
    ):
        assert expected in shown, expected
    assert '<g class="state current"><rect' in response.text
    assert (
        '<title id="diagram-title-application">The application workflow; the case is approved'
        in response.text
    )


def test_a_step_waiting_for_the_project_has_no_form_and_says_what_it_waits_for(db) -> None:
    world = agency(db, steps=step_of("approve"))  # approved, the grant agreement not yet signed
    page = signed_in(app_on(db, today=date(2027, 3, 1)), COORDINATOR)
    response = page.get(f"/cases/{world.ours.mobilities[0]}")
    shown = text(response)
    assert 'id="action-start_preparation"' not in response.text
    assert 'id="action-record_preparation"' in response.text
    assert "Waiting start preparation needs application 1 in preparation or later" in shown


def test_an_action_posted_from_the_case_page_moves_the_case(db) -> None:
    world = agency(db, steps=step_of("evaluate"))
    page = signed_in(app_on(db), STAFF)
    response = page.post(
        f"/cases/{world.ours.application}/advance",
        data={"csrf": form_token(page), "trigger": "approve", "if_version": "3",
              "note": "Good plan.", "back": "case"},
        follow_redirects=False,
    )  # fmt: skip
    assert response.status_code == 303
    assert response.headers["location"] == f"/cases/{world.ours.application}"
    after = text(page.get(response.headers["location"]))
    assert "Approve: done on case 1." in after
    assert "Approve (submitted → approved) by officer@national-agency.example" in after
    assert state_of(db, world.ours.application) == "approved"


def test_a_refused_action_shows_the_rule_on_the_page_keeps_what_was_typed_and_changes_nothing(
    db,
) -> None:
    world = agency(db, steps=step_of("depart", 1))
    page = signed_in(app_on(db, today=date(2027, 9, 30)), COORDINATOR)
    before = business(db)
    response = page.post(
        f"/cases/{world.ours.mobilities[0]}/advance",
        data={"csrf": form_token(page), "trigger": "return_home",
              "fact_returned_on": "2027-09-01", "note": "back early"},
    )  # fmt: skip
    assert response.status_code == 409
    shown = text(response)
    assert "Refused Mobility 2 is in 'abroad'; 'return_home' needs returned_on" in shown
    assert "Nothing was changed." in shown
    assert 'value="2027-09-01"' in response.text and ">back early</textarea>" in response.text
    assert business(db) == before


def test_a_stale_form_is_refused_as_changed_meanwhile(db) -> None:
    world = agency(db, steps=step_of("submit"))
    page = signed_in(app_on(db), STAFF)
    response = page.post(
        f"/cases/{world.ours.application}/advance",
        data={"csrf": form_token(page), "trigger": "reject", "if_version": "1", "note": "No."},
    )
    assert response.status_code == 409
    assert "changed meanwhile (version 2, you had 1)" in text(response)


# --- lists and the dashboard --------------------------------------------------------------------


def test_the_case_list_filters_and_pages(db) -> None:
    world = agency(db, steps=step_of("submit"))
    page = signed_in(app_on(db), STAFF)
    listed = text(page.get("/cases?kind=mobility&state=submitted"))
    assert "Markus Leitner at Omnia Vocational College" in listed
    assert "Petr Dvorak" not in listed
    refused = page.get("/cases?state=sleeping")
    assert refused.status_code == 422
    assert "'sleeping' is not a state" in text(refused)
    first = page.get("/cases?kind=mobility").text
    assert "Next page" not in first  # four mobilities: one page
    assert world.theirs.mobilities[1] > world.ours.mobilities[0]


def test_the_dashboard_shows_counts_overdue_undeliverable_mail_and_the_last_sweep(db) -> None:
    world = agency(db, steps=step_of("return_home", 1))
    late = date(2027, 11, 20)
    sweep(db, clock=Clock.on(late), staff_email=STAFF_MAIL)
    with db.transaction() as tx:
        row = outbox.rows(tx, case_id=world.ours.application, limit=1)[0]
        tx.execute(
            "UPDATE outbox SET status = 'undeliverable', last_error = '550 no such user' "
            "WHERE id = :id",
            {"id": row["id"]},
        )
    shown = text(signed_in(app_on(db, today=late), STAFF).get("/dashboard"))
    assert "Mobilitys" not in shown
    assert "validation 1" in shown  # the mobility waiting for its validation
    assert "validation overdue" in shown
    assert "Markus Leitner at Omnia Vocational College validation" in shown
    assert "550 no such user" in shown
    assert "Swept" in shown and "to 2027-11-20" in shown


# --- calls and evaluation -----------------------------------------------------------------------


def call_form(**changes: str) -> dict[str, str]:
    values = {
        "code": "LDV-VETPRO-2028", "title": "Mobility for VET professionals, call 2028",
        "deadline_day": "2028-02-01", "deadline_time": "12:00", "earliest_start": "2028-06-01",
        "max_project_months": "24", "min_days": "7", "max_days": "42", "scale": "10",
        "pass_mark": "36",
    }  # fmt: skip
    return values | {f"weight_{c}": "1" for c in SCORES} | changes


def test_staff_define_a_call_in_a_form(db) -> None:
    agency(db)
    page = signed_in(app_on(db), STAFF)
    response = page.post("/calls", data={**call_form(), "csrf": form_token(page)},
                         follow_redirects=False)  # fmt: skip
    assert response.headers["location"] == "/calls/LDV-VETPRO-2028"
    shown = text(page.get("/calls/LDV-VETPRO-2028"))
    assert "Call LDV-VETPRO-2028 added (version 1)." in shown
    assert "2028-02-01 12:00 Brussels time" in shown or "2028-02-01 12:00" in shown
    assert "pass mark 36 of 60" in shown
    again = page.post("/calls", data={**call_form(), "csrf": form_token(page)})
    assert again.status_code == 422
    assert "exists already" in text(again)


def test_a_call_form_with_a_bad_value_is_refused_naming_the_field(db) -> None:
    agency(db)
    page = signed_in(app_on(db), STAFF)
    before = business(db)
    response = page.post(
        "/calls", data={**call_form(min_days="50", max_days="7"), "csrf": form_token(page)}
    )
    assert response.status_code == 422
    assert "max_days: 7 is below min_days (50)" in text(response)
    assert 'value="50"' in response.text
    assert business(db) == before


def test_changing_a_calls_rules_once_applications_exist_needs_a_reason(db) -> None:
    agency(db)
    page = signed_in(app_on(db), STAFF)
    edit = page.get(f"/calls/{CALL}/edit").text
    assert 'value="2027-02-01"' in edit and 'value="12:00"' in edit
    current = {m[0]: m[1] for m in re.findall(r'name="(\w+)"[^>]*value="([^"]*)"', edit)}
    refused = page.post(f"/calls/{CALL}", data={**current, "pass_mark": "30",
                                                "csrf": form_token(page)})  # fmt: skip
    assert refused.status_code == 422
    assert "needs --force and a --note" in text(refused)
    done = page.post(
        f"/calls/{CALL}",
        data={**current, "pass_mark": "30", "force": "yes", "note": "Board decision.",
              "csrf": form_token(page)},
        follow_redirects=False,
    )  # fmt: skip
    assert done.status_code == 303
    shown = text(page.get(f"/calls/{CALL}"))
    assert "changed (version 2)" in shown and "Board decision." in shown


def test_staff_score_an_application_beside_its_content(db) -> None:
    world = agency(db, steps=step_of("submit"))
    page = signed_in(app_on(db), STAFF)
    form = page.get(f"/cases/{world.ours.application}/evaluate")
    shown = text(form)
    assert "Training needs Course design with simulators" in shown
    assert "Duration 19 days, 2027-09-06 to 2027-09-24" in shown
    assert fields_of(form.text, "evaluate") == [
        "csrf",
        "trigger",
        "back",
        "if_version",
        *[f"fact_{c}" for c in SCORES],
        "note",
    ]
    data = {f"fact_{c}": str(v) for c, v in SCORES.items()}
    response = page.post(
        f"/cases/{world.ours.application}/advance",
        data={**data, "csrf": form_token(page), "trigger": "evaluate", "back": "evaluate",
              "if_version": "2", "note": "Convincing."},
        follow_redirects=False,
    )  # fmt: skip
    assert response.status_code == 303
    assert "Total score 43" in text(page.get(f"/cases/{world.ours.application}"))


def test_a_score_off_the_scale_is_refused_on_the_evaluation_page(db) -> None:
    world = agency(db, steps=step_of("submit"))
    page = signed_in(app_on(db), STAFF)
    data = {f"fact_{c}": "7" for c in SCORES} | {"fact_match": "11"}
    response = page.post(
        f"/cases/{world.ours.application}/advance",
        data={**data, "csrf": form_token(page), "trigger": "evaluate", "back": "evaluate",
              "note": "x"},
    )  # fmt: skip
    assert response.status_code == 409
    shown = text(response)
    assert "Evaluate application 1" in shown and "Refused" in shown and "match" in shown
    assert 'name="fact_match" type="number" min="0" max="10" step="any" required value="11"' in (
        response.text
    )


def test_the_ranking_draws_the_pass_mark_and_staff_decide_from_it(db) -> None:
    world = agency(db, steps=step_of("evaluate"))
    second = agency_second(db)
    page = signed_in(app_on(db), STAFF)
    shown = text(page.get(f"/calls/{CALL}/ranking"))
    assert re.search(
        r"1 1: Digital welding .* 43 .* Pass mark: 36 points\. 1 above, 1 below", shown
    )
    assert shown.index("Pass mark: 36 points") < shown.index("not evaluated")
    response = page.post(
        f"/cases/{world.ours.application}/advance",
        data={"csrf": form_token(page), "trigger": "approve", "note": "Top of the list.",
              "if_version": "3", "back": "ranking", "call": CALL},
        follow_redirects=False,
    )  # fmt: skip
    assert response.headers["location"] == f"/calls/{CALL}/ranking"
    refused = page.post(
        f"/cases/{second}/advance",
        data={"csrf": form_token(page), "trigger": "approve", "note": "Why not.",
              "back": "ranking", "call": CALL},
    )  # fmt: skip
    assert refused.status_code == 409
    assert "Ranking of call" in text(refused) and "pass mark" in text(refused)
    assert state_of(db, world.ours.application) == "approved"
    assert state_of(db, second) == "submitted"


def agency_second(db) -> int:
    """Jan's application, submitted and not evaluated."""
    from factories import advance

    with db.transaction(write=False) as tx:
        app_id = tx.scalar(
            'SELECT c.id FROM "case" c JOIN organisation o ON o.id = c.organisation_id '
            "WHERE c.kind = 'application' AND o.name = 'Stredni prumyslova skola Brno'"
        )
    advance(db, app_id, "submit", actor=OTHER, on=date(2027, 1, 20))
    return int(app_id)


# --- the coordinator's application pages --------------------------------------------------------


def amend_values(page_html: str) -> dict[str, str]:
    """What the amendment form holds now, as a browser would post it."""
    values = dict(
        re.findall(
            r'<input id="[^"]*" name="([^"]+)" type="(?:text|email|date)" value="([^"]*)"',
            page_html,
        )
    )
    values |= {k: html.unescape(v) for k, v in re.findall(
        r'<textarea id="[^"]*" name="([^"]+)" rows="3">([^<]*)</textarea>', page_html)}  # fmt: skip
    values |= dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page_html))
    for select in re.findall(r'<select id="[^"]*" name="([^"]+)">(.*?)</select>', page_html, re.S):
        chosen = re.search(r'<option value="([^"]+)" selected', select[1])
        values[select[0]] = (
            chosen.group(1) if chosen else re.search(r'value="([^"]+)"', select[1]).group(1)
        )
    values |= {
        name: "yes"
        for name in re.findall(r'name="([^"]+)" type="checkbox" value="yes" checked', page_html)
    }
    return {k: html.unescape(v) for k, v in values.items()}  # fmt: skip


def test_a_coordinator_amends_a_drafted_application_in_a_form(db) -> None:
    world = agency(db)
    page = signed_in(app_on(db), COORDINATOR)
    form = page.get(f"/cases/{world.ours.application}/amend").text
    values = amend_values(form)
    assert values["m0_name"] == "Markus Leitner" and values["count"] == "3"
    values |= {
        "m0_end_date": "2027-09-30",  # changed
        "m1_remove": "yes",  # removed
        "m2_name": "Lena Moser", "m2_email": "lena.moser@bbz-steyr.example",
        "m2_profession": "teacher", "m2_background": "Teaches welding theory.",
        "m2_needs": "Simulator didactics.", "m2_host": "Omnia Vocational College",
        "m2_start_date": "2027-10-04", "m2_end_date": "2027-10-15",
        "m2_objectives": "Observe simulator lessons.", "m2_content": "Job shadowing.",
    }  # fmt: skip
    response = page.post(f"/cases/{world.ours.application}/amend", data=values,
                         follow_redirects=False)  # fmt: skip
    assert response.status_code == 303, text(response)
    shown = text(page.get(response.headers["location"]))
    assert "amended (version 2): 3 change(s)" in shown
    assert "Lena Moser at Omnia Vocational College" in shown
    assert state_of(db, world.ours.mobilities[1]) == "cancelled"
    assert "mobility 2.end_date" in shown  # the history says what changed


def test_an_amendment_with_a_bad_date_names_the_mobility_of_the_form_and_changes_nothing(
    db,
) -> None:
    world = agency(db)
    page = signed_in(app_on(db), COORDINATOR)
    values = amend_values(page.get(f"/cases/{world.ours.application}/amend").text)
    before = business(db)
    response = page.post(
        f"/cases/{world.ours.application}/amend",
        data={**values, "m0_remove": "yes", "m1_end_date": "2027-10-01"},
    )
    assert response.status_code == 422
    assert "mobility 2.end_date: 2027-10-01 is before start_date 2027-10-04" in text(response)
    assert business(db) == before


def test_a_coordinator_submits_the_amended_application_from_its_page(db) -> None:
    world = agency(db)
    page = signed_in(app_on(db, today=date(2027, 1, 10)), COORDINATOR)
    case = page.get(f"/cases/{world.ours.application}").text
    assert f'href="/cases/{world.ours.application}/amend"' in case
    assert fields_of(case, "submit") == ["csrf", "trigger", "if_version", "back", "note"]
    page.post(f"/cases/{world.ours.application}/advance",
              data={"csrf": form_token(page), "trigger": "submit"})  # fmt: skip
    assert state_of(db, world.ours.application) == "submitted"


def test_a_coordinator_uploads_an_application_document(db) -> None:
    agency(db)
    page = signed_in(app_on(db), COORDINATOR)
    doc = example()
    doc["project"]["title"] = "Welding, the second round"
    response = page.post(
        "/applications",
        data={"csrf": form_token(page)},
        files={"document": ("second.json", json.dumps(doc), "application/json")},
        follow_redirects=False,
    )
    assert response.status_code == 303
    shown = text(page.get(response.headers["location"]))
    assert "filed as a draft, with mobilities" in shown
    assert "Welding, the second round" in shown
    bad = page.post(
        "/applications",
        data={"csrf": form_token(page)},
        files={"document": ("bad.json", b'{"call": ', "application/json")},
    )
    assert bad.status_code == 422
    assert "bad.json: malformed JSON" in text(bad)


def test_every_mails_next_step_links_to_the_case_page_where_it_is_taken(db) -> None:
    world = agency(db, steps=step_of("approve"))
    with db.transaction(write=False) as tx:
        row = next(
            r
            for r in outbox.rows(tx, case_id=world.ours.application)
            if r["kind"] == "decision_approved"
        )
    mail = render_mail(row["kind"], row["context"], sender="vetpro@agency.example",
                       recipient=row["recipient"], agency_email=STAFF_MAIL,
                       message_id="<1@agency.example>", web_url="http://testserver")  # fmt: skip
    body = mail.get_body(("plain",)).get_content()
    link = re.search(r"http://testserver(/cases/\d+)", body)
    assert link and link.group(1) == f"/cases/{world.ours.application}"
    page = signed_in(app_on(db), COORDINATOR).get(link.group(1))
    assert page.status_code == 200
    assert 'id="action-start_preparation"' in page.text  # the step the mail asks for


def test_the_workflow_pages_draw_both_diagrams_and_list_every_transition(db) -> None:
    agency(db)
    page = signed_in(app_on(db), COORDINATOR)
    for kind, trigger in (("application", "request_changes"), ("mobility", "record_report")):
        response = page.get(f"/diagrams/{kind}")
        assert response.status_code == 200
        assert '<svg class="diagram"' in response.text and trigger in text(response)
    assert page.get("/diagrams/caravan").status_code == 404


def test_a_call_document_example_is_what_the_form_builds(db) -> None:
    from vetpro_workflow.store import calls
    from vetpro_workflow.web.calls import document_of, form_of

    agency(db)
    with db.transaction(write=False) as tx:
        stored = calls.show(tx, CALL)
    doc = document_of(form_of(stored))
    expected = call_document()
    assert doc.code == expected["code"] and doc.evaluation.pass_mark == 36
    assert doc.application_deadline.isoformat() == expected["application_deadline"]


def test_every_case_page_renders_at_every_step_of_the_story_for_staff_and_coordinator(
    sqlite_db,
) -> None:
    from factories import STORY, advance

    db = sqlite_db  # rendering does not depend on the database; once is enough
    world = agency(db)
    ids = [world.ours.application, *world.ours.mobilities]
    app = app_on(db, today=date(2029, 7, 1))
    pages = {who: signed_in(app, who) for who in (STAFF, COORDINATOR)}
    seen = set()
    for index, trigger, actor, day, note, facts in [(0, "", "", None, None, {}), *STORY]:
        if trigger:
            advance(db, ids[index], trigger, actor=actor, on=day, note=note, **facts)
        for who, page in pages.items():
            for case_id in ids:
                response = page.get(f"/cases/{case_id}")
                assert response.status_code == 200, (trigger, who, case_id)
                seen.add(re.search(r'class="badge">(\w+)<', response.text).group(1))
        assert pages[STAFF].get("/dashboard").status_code == 200
    assert seen >= {"drafted", "submitted", "approved", "preparation", "abroad", "validation",
                    "dissemination", "completed", "closed"}  # fmt: skip
