"""The JSON API: the same cases, moves and refusals as the command line, as JSON and problem
JSON with the right status, for whoever owns the personal token."""

from __future__ import annotations

import json
from datetime import date

from click.testing import CliRunner
from fastapi.testclient import TestClient

from factories import COORDINATOR, SCORES, STAFF, example, state_of, step_of
from test_web_workspace import OTHER, agency, api_token, app_on, business
from vetpro_workflow.cli.app import app as cli
from vetpro_workflow.notifications.digest import content
from vetpro_workflow.store.views import history

PROBLEM = "application/problem+json"


def client_for(db, email: str, *, today: date = date(2027, 2, 20)) -> TestClient:
    client = TestClient(app_on(db, today=today))
    client.headers.update(api_token(db, email))
    return client


def problem(response, status: int, detail: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["type"] == "about:blank"
    assert detail in body["detail"], body["detail"]


def test_a_case_has_the_keys_of_vetpro_case_show_json(db) -> None:
    world = agency(db, steps=step_of("submit"))
    env = {"VETPRO_DATABASE_URL": db.url, "VETPRO_TODAY": "2027-02-20"}
    for case_id in (world.ours.application, world.ours.mobilities[0]):
        shown = CliRunner().invoke(cli, ["case", "show", str(case_id), "--json"], env=env)
        from_cli = json.loads(shown.stdout)
        from_api = client_for(db, STAFF).get(f"/api/cases/{case_id}").json()
        assert set(from_api) == set(from_cli)
        assert {k: v for k, v in from_api.items() if k not in ("allowed", "allowed_triggers")} == {
            k: v for k, v in from_cli.items() if k not in ("allowed", "allowed_triggers")
        }
    application = client_for(db, STAFF).get(f"/api/cases/{world.ours.application}").json()
    assert application["allowed_triggers"] == ["request_changes", "evaluate", "reject"]
    assert [w["trigger"] for w in application["waiting"]] == ["approve"]
    mine = client_for(db, COORDINATOR).get(f"/api/cases/{world.ours.application}").json()
    assert mine["allowed_triggers"] == ["withdraw"]


def test_the_history_is_the_one_the_command_line_shows(db) -> None:
    world = agency(db, steps=step_of("approve"))
    answer = client_for(db, COORDINATOR).get(f"/api/cases/{world.ours.application}/history")
    with db.transaction(write=False) as tx:
        assert answer.json() == history(tx, world.ours.application)
    assert [e["trigger"] for e in answer.json()] == ["import", "submit", "evaluate", "approve"]


def test_advancing_a_case_moves_it_and_answers_with_the_case_as_it_is_now(db) -> None:
    world = agency(db, steps=step_of("start_preparation", 1))
    mobility = world.ours.mobilities[0]
    client = client_for(db, COORDINATOR, today=date(2027, 9, 6))
    answer = client.post(
        f"/api/cases/{mobility}/advance",
        json={
            "trigger": "depart",
            "facts": {"departed_on": "2027-09-06", "preparation_done": True},
            "note": "Left by train.",
            "if_version": 4,
        },
    )
    assert answer.status_code == 200, answer.text
    moved = answer.json()
    assert (moved["state"], moved["version"]) == ("abroad", 5)
    assert moved["facts"] == {
        "agreement_signed_on": "2027-05-10",
        "departed_on": "2027-09-06",
        "preparation_done": True,
    }
    assert state_of(db, world.ours.application) == "abroad"
    last = client.get(f"/api/cases/{mobility}/history").json()[-1]
    assert (last["trigger"], last["actor"], last["note"]) == (
        "depart",
        COORDINATOR,
        "Left by train.",
    )


def test_staff_evaluate_with_numbers_as_json(db) -> None:
    world = agency(db, steps=step_of("submit"))
    answer = client_for(db, STAFF).post(
        f"/api/cases/{world.ours.application}/advance",
        json={"trigger": "evaluate", "facts": SCORES, "note": "Sound."},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["facts"]["score"] == 43


def test_a_refusal_by_a_rule_is_409_with_the_rule_and_nothing_changes(db) -> None:
    world = agency(db, steps=step_of("depart", 1))
    client = client_for(db, COORDINATOR, today=date(2027, 9, 30))
    before = business(db)
    answer = client.post(
        f"/api/cases/{world.ours.mobilities[0]}/advance",
        json={"trigger": "return_home", "facts": {"returned_on": "2027-09-01"}},
    )
    problem(answer, 409, "returned_on")
    assert "Allowed now for the coordinator" in answer.json()["detail"]
    assert answer.json()["title"] == "Conflict"
    assert business(db) == before


def test_the_errors_of_the_command_line_come_with_their_statuses(db) -> None:
    world = agency(db, steps=step_of("submit"))
    app_id = world.ours.application
    staff, coordinator = client_for(db, STAFF), client_for(db, COORDINATOR)
    before = business(db)
    url = f"/api/cases/{app_id}/advance"
    problem(staff.post(url, json={"trigger": "fly"}), 409, "'fly' is not a trigger")
    problem(coordinator.post(url, json={"trigger": "reject", "note": "x"}), 403, "NA staff")
    problem(
        staff.post(url, json={"trigger": "reject", "note": "No.", "if_version": 1}),
        409,
        "changed meanwhile (version 2, you had 1)",
    )
    problem(
        staff.post(url, json={"trigger": "evaluate", "facts": {"colour": "red"}, "note": "x"}),
        422,
        "'colour' is not a fact of 'evaluate'",
    )
    problem(staff.post(url, json={"trigger": "reject", "extra": 1}), 422, "extra")
    problem(staff.post(url, content=b"{not json", headers={"content-type": "application/json"}),
            422, "JSON")  # fmt: skip
    problem(staff.get("/api/cases/424242"), 404, "does not exist")
    problem(staff.get("/api/cases/0"), 422, "case_id")
    problem(staff.get("/api/cases?state=sleeping"), 422, "'sleeping' is not a state")
    problem(staff.get("/api/cases?limit=100000"), 422, "limit")
    assert business(db) == before


def test_cases_are_listed_a_page_at_a_time_by_keyset(db) -> None:
    agency(db)
    for _ in range(3):
        agency_more(db)
    client = client_for(db, STAFF)
    everything = client.get("/api/cases?limit=500").json()["cases"]
    seen, after = [], None
    while True:
        query = "/api/cases?limit=4" + (f"&after={after}" if after else "")
        page = client.get(query).json()
        seen += [c["id"] for c in page["cases"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == [c["id"] for c in everything] == sorted(seen)
    back = client.get(f"/api/cases?limit=4&before={seen[8]}").json()
    assert [c["id"] for c in back["cases"]] == seen[4:8]
    assert back["previous_before"] == seen[4] and back["next_after"] == seen[7]


def agency_more(db) -> None:
    from factories import import_doc

    import_doc(db)


def test_cases_are_filtered_by_kind_state_call_and_country(db) -> None:
    world = agency(db, steps=step_of("submit"))
    client = client_for(db, STAFF)

    def ids(query: str) -> set[int]:
        return {c["id"] for c in client.get(f"/api/cases?{query}").json()["cases"]}

    assert ids("kind=application") == {world.ours.application, world.theirs.application}
    assert ids("kind=mobility&state=submitted") == set(world.ours.mobilities)
    assert ids("country=cz") == {world.theirs.application, *world.theirs.mobilities}
    assert ids("call=LDV-VETPRO-2027&kind=application&state=drafted") == {world.theirs.application}
    assert ids("call=NO-SUCH-CALL") == set()
    row = client.get("/api/cases?kind=mobility&country=AT&limit=1").json()["cases"][0]
    assert row["title"] == "Markus Leitner at Omnia Vocational College"
    assert set(row) == {"id", "kind", "state", "version", "application_id", "call", "applicant",
                        "country", "participant", "host", "title"}  # fmt: skip


def test_the_overdue_filter_lists_what_the_staff_digest_names(db) -> None:
    world = agency(db, steps=step_of("return_home", 1))
    late = date(2027, 9, 24).replace(month=11, day=20)  # 57 days after the return
    client = client_for(db, STAFF, today=late)
    overdue = client.get("/api/cases?overdue=true").json()["cases"]
    with db.transaction(write=False) as tx:
        named = content(tx, late)["overdue"]
    assert [c["id"] for c in overdue] == sorted({o["case_id"] for o in named})
    assert [(c["id"], c["state"]) for c in overdue] == [
        (world.ours.mobilities[0], "validation"),  # not validated 45 days after the return
        (world.ours.mobilities[1], "preparation"),  # its departure day has passed
    ]
    mine = client_for(db, OTHER, today=late).get("/api/cases?overdue=true").json()["cases"]
    assert mine == []


def test_an_application_document_is_filed_as_a_draft(db) -> None:
    agency(db)
    client = client_for(db, COORDINATOR)
    doc = example()
    doc["project"]["title"] = "Second thoughts on welding"
    answer = client.post("/api/applications", json=doc)
    assert answer.status_code == 201, answer.text
    filed = answer.json()
    assert state_of(db, filed["application"]) == "drafted"
    assert len(filed["mobilities"]) == 2
    shown = client.get(f"/api/cases/{filed['application']}").json()
    assert shown["title"] == "Second thoughts on welding"


def test_a_bad_application_document_is_refused_naming_the_field(db) -> None:
    agency(db)
    client = client_for(db, STAFF)
    before = business(db)
    doc = example()
    doc["mobilities"][0]["start_date"] = "2027-13-01"
    problem(client.post("/api/applications", json=doc), 422, "mobilities[0].start_date")
    problem(client.post("/api/applications", json=[1, 2]), 422, "is a JSON object")
    problem(client.post("/api/applications", content=b"{"), 422, "malformed JSON")
    duplicate = client.post("/api/applications", json=example())
    problem(duplicate, 422, "was filed already as application 1")
    assert business(db) == before
