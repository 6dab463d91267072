"""Who may reach what, over every route of the workspace and the API (read from the
application itself, so a route added later is checked too): signed out, a coordinator of
another organisation, a coordinator firing a staff trigger, a form without its CSRF token, a
forged or expired session."""

from __future__ import annotations

import base64
import html
import json
import time
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner

from factories import CALL, COORDINATOR, STAFF, example, step_of
from test_web_workspace import (
    OTHER,
    SECRET,
    agency,
    api_token,
    app_on,
    business,
    form_token,
    other_document,
    signed_in,
)
from vetpro_workflow.web.app import create_app

PUBLIC = {("GET", "/sign-in"), ("POST", "/sign-in")}


def api_routes(routes: list[Any]) -> list[APIRoute]:
    """The routes of a list, those of included routers too (newer FastAPI keeps them apart)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found += api_routes(route.original_router.routes)
    return found


def routes(app: Any) -> list[tuple[str, str]]:
    """Every (method, path) the application answers, but the public ones."""
    return [
        (method, route.path)
        for route in api_routes(app.routes)
        for method in sorted(route.methods)
        if (method, route.path) not in PUBLIC
    ]


def concrete(path: str, case_id: int) -> str:
    return path.format(case_id=case_id, code=CALL, kind="mobility")


def test_the_routes_read_from_the_application_are_the_ones_this_file_checks(db) -> None:
    found = set(routes(create_app_for(db)))
    # If this fails, a route was added or removed: every check below covers it by itself,
    # but say here what the workspace is.
    assert found == {
        ("GET", "/"), ("POST", "/sign-out"), ("GET", "/dashboard"), ("GET", "/cases"),
        ("GET", "/cases/{case_id}"), ("POST", "/cases/{case_id}/advance"),
        ("GET", "/diagrams/{kind}"), ("GET", "/calls"), ("GET", "/calls/new"),
        ("POST", "/calls"), ("GET", "/calls/{code}"), ("GET", "/calls/{code}/edit"),
        ("POST", "/calls/{code}"), ("GET", "/calls/{code}/ranking"),
        ("GET", "/cases/{case_id}/evaluate"), ("GET", "/cases/{case_id}/amend"),
        ("POST", "/cases/{case_id}/amend"), ("GET", "/applications/new"),
        ("POST", "/applications"), ("GET", "/api/cases"), ("GET", "/api/cases/{case_id}"),
        ("GET", "/api/cases/{case_id}/history"), ("POST", "/api/cases/{case_id}/advance"),
        ("POST", "/api/applications"),
    }  # fmt: skip


def create_app_for(db) -> Any:
    return app_on(db)


def test_signed_out_every_page_sends_to_the_sign_in_form_and_every_api_call_gets_401(
    db,
) -> None:
    world = agency(db, steps=1)
    app = app_on(db)
    client = TestClient(app)
    before = business(db)
    for method, path in routes(app):
        token = form_token_anonymous(client)  # signing out makes a new one
        url = concrete(path, world.ours.application)
        if path.startswith("/api/"):
            response = client.request(method, url, json={})
            assert response.status_code == 401, (method, path)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["www-authenticate"] == "Bearer"
            assert "a valid personal token is needed" in response.json()["detail"]
        else:
            response = client.request(
                method, url, data={"csrf": token} if method == "POST" else None,
                follow_redirects=False,
            )  # fmt: skip
            assert response.status_code == 303, (method, path, response.text[:300])
            assert response.headers["location"].startswith("/sign-in"), (method, path)
    assert business(db) == before


def form_token_anonymous(client: TestClient) -> str:
    from test_web_workspace import csrf_of

    return csrf_of(client.get("/sign-in").text)


# What a coordinator of another organisation must not learn about Anna's application.
SECRETS = ("Digital welding", "Markus Leitner", "Sabine Gruber", "Berufsbildungszentrum")


def case_routes(app: Any) -> list[tuple[str, str]]:
    return [(m, p) for m, p in routes(app) if "{case_id}" in p]


@pytest.mark.parametrize("steps", [0, step_of("submit")])
def test_a_coordinator_of_another_organisation_gets_404_and_learns_nothing(db, steps) -> None:
    world = agency(db, steps=steps)
    app = app_on(db)
    page = signed_in(app, OTHER)
    token = form_token(page)
    api = TestClient(app)
    header = api_token(db, OTHER)
    before = business(db)
    checked = 0
    for case_id in (world.ours.application, *world.ours.mobilities):
        for method, path in case_routes(app):
            url = concrete(path, case_id)
            if path.startswith("/api/"):
                body = {"trigger": "withdraw", "note": "x"} if method == "POST" else None
                response = api.request(method, url, headers=header, json=body)
            else:
                data = {"csrf": token, "trigger": "withdraw", "note": "x"}
                response = page.request(method, url, data=data if method == "POST" else None)
            if path == "/cases/{case_id}/evaluate":  # a staff page: refused whatever the case
                assert response.status_code == 403, (method, url)
            else:
                assert response.status_code == 404, (method, url, response.text[:300])
                assert "does not exist or is not one of your organisation" in response.text
            assert not any(secret in response.text for secret in SECRETS), (method, url)
            checked += 1
    assert checked == 3 * 8
    assert business(db) == before


def test_a_case_that_does_not_exist_reads_exactly_like_another_organisations(db) -> None:
    world = agency(db)
    app = app_on(db)
    page = signed_in(app, OTHER)
    theirs = page.get(f"/cases/{world.ours.application}")
    missing = page.get("/cases/999999")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.text == missing.text
    header = api_token(db, OTHER)
    api = TestClient(app)
    assert (
        api.get(f"/api/cases/{world.ours.application}", headers=header).json()["detail"]
        == api.get("/api/cases/999999", headers=header).json()["detail"]
    )


def test_a_coordinator_lists_only_their_own_organisations_cases(db) -> None:
    world = agency(db)
    app = app_on(db)
    listed = signed_in(app, OTHER).get("/cases").text
    assert "Robotics trainers abroad" in listed
    assert not any(secret in listed for secret in SECRETS)
    rows = TestClient(app).get("/api/cases", headers=api_token(db, OTHER)).json()["cases"]
    assert {r["id"] for r in rows} == {world.theirs.application, *world.theirs.mobilities}


def test_a_coordinator_firing_a_staff_trigger_is_refused_with_403_and_nothing_changes(
    db,
) -> None:
    world = agency(db, steps=step_of("evaluate"))
    app = app_on(db)
    page = signed_in(app, COORDINATOR)
    header = api_token(db, COORDINATOR)
    before = business(db)
    response = page.post(
        f"/cases/{world.ours.application}/advance",
        data={"csrf": form_token(page), "trigger": "approve", "note": "Looks fine to me."},
    )
    assert response.status_code == 403
    assert "'approve' on an application is fired by NA staff, not by the coordinator" in (
        html.unescape(response.text)
    )
    api = TestClient(app).post(
        f"/api/cases/{world.ours.application}/advance",
        headers=header,
        json={"trigger": "approve", "note": "Looks fine to me."},
    )
    assert api.status_code == 403
    assert api.json()["title"] == "Forbidden"
    assert business(db) == before


def test_staff_pages_are_refused_to_coordinators(db) -> None:
    world = agency(db, steps=step_of("submit"))
    page = signed_in(app_on(db), COORDINATOR)
    for path in ("/dashboard", "/calls", "/calls/new", f"/calls/{CALL}",
                 f"/calls/{CALL}/edit", f"/calls/{CALL}/ranking",
                 f"/cases/{world.ours.application}/evaluate"):  # fmt: skip
        response = page.get(path)
        assert response.status_code == 403, path
        assert "this page is for NA staff" in response.text
    posted = page.post("/calls", data={"csrf": form_token(page), "code": "X"})
    assert posted.status_code == 403


def test_staff_do_not_amend_applications_coordinators_do(db) -> None:
    world = agency(db)
    page = signed_in(app_on(db), STAFF)
    assert page.get(f"/cases/{world.ours.application}/amend").status_code == 403


def test_every_form_posted_without_its_csrf_token_is_refused_and_changes_nothing(db) -> None:
    world = agency(db, steps=step_of("submit"))
    app = app_on(db)
    before = business(db)
    for who in (STAFF, COORDINATOR):
        page = signed_in(app, who)
        for method, path in routes(app):
            if method != "POST" or path.startswith("/api/"):
                continue
            url = concrete(path, world.ours.application)
            for token in (None, "forged-token"):
                data = {"trigger": "withdraw", "note": "x", "code": CALL}
                if token:
                    data["csrf"] = token
                response = page.post(url, data=data, follow_redirects=False)
                assert response.status_code == 403, (who, url, token)
                assert "not sent from a page of this workspace" in response.text
    assert business(db) == before


def test_an_upload_without_its_csrf_token_is_refused(db) -> None:
    agency(db)
    page = signed_in(app_on(db), COORDINATOR)
    response = page.post(
        "/applications", files={"document": ("a.json", json.dumps(example()), "application/json")}
    )
    assert response.status_code == 403


def session_cookie(data: dict[str, Any], *, age: int = 0, secret: str = SECRET) -> str:
    """A session cookie as Starlette signs it, made `age` seconds ago."""

    class Then(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - age

    payload = base64.b64encode(json.dumps(data).encode())
    return Then(secret).sign(payload).decode()


def test_a_forged_session_cookie_reads_as_signed_out(db) -> None:
    agency(db)
    app = app_on(db)
    real = signed_in(app, STAFF)
    session_id = json.loads(base64.b64decode(real.cookies["vetpro_session"].split(".")[0] + "=="))[
        "sid"
    ]
    for cookie in (
        "garbage",
        session_cookie({"sid": session_id}, secret="somebody-elses-secret"),
        session_cookie({"sid": "a-session-id-nobody-was-given"}),
    ):
        client = TestClient(app, cookies={"vetpro_session": cookie})
        response = client.get("/dashboard", follow_redirects=False)
        assert response.status_code == 303, cookie
        assert response.headers["location"].startswith("/sign-in")
    # The same id, signed with the right key, is the real session.
    good = TestClient(app, cookies={"vetpro_session": session_cookie({"sid": session_id})})
    assert good.get("/dashboard").status_code == 200


def test_an_expired_session_reads_as_signed_out(db) -> None:
    agency(db)
    app = app_on(db)
    real = signed_in(app, STAFF)
    session_id = json.loads(base64.b64decode(real.cookies["vetpro_session"].split(".")[0] + "=="))[
        "sid"
    ]
    old = session_cookie({"sid": session_id}, age=9 * 3600)
    client = TestClient(app, cookies={"vetpro_session": old})
    assert client.get("/dashboard", follow_redirects=False).status_code == 303
    # ... and the store's own expiry holds even for a freshly signed cookie.
    with db.transaction() as tx:
        tx.execute("UPDATE web_session SET expires_at = created_at")
    assert real.get("/dashboard", follow_redirects=False).status_code == 303


def test_signing_out_ends_the_session_for_a_copy_of_the_cookie_too(db) -> None:
    agency(db)
    app = app_on(db)
    client = signed_in(app, STAFF)
    copy = TestClient(app, cookies={"vetpro_session": client.cookies["vetpro_session"]})
    assert copy.get("/dashboard").status_code == 200
    response = client.post("/sign-out", data={"csrf": form_token(client)}, follow_redirects=False)
    assert response.headers["location"] == "/sign-in"
    assert copy.get("/dashboard", follow_redirects=False).status_code == 303


def test_an_api_token_is_not_taken_from_a_cookie_nor_a_session_from_a_token(db) -> None:
    world = agency(db)
    app = app_on(db)
    browser = signed_in(app, STAFF)
    assert browser.get("/api/cases").status_code == 401
    header = api_token(db, STAFF)
    client = TestClient(app)
    assert client.get(f"/cases/{world.ours.application}", headers=header,
                      follow_redirects=False).status_code == 303  # fmt: skip
    bad = client.get("/api/cases", headers={"Authorization": "Bearer vetpro_not-a-token"})
    assert bad.status_code == 401


def test_another_organisations_document_cannot_be_uploaded_by_a_coordinator(db) -> None:
    agency(db)
    app = app_on(db)
    page = signed_in(app, COORDINATOR)
    header = api_token(db, COORDINATOR)
    before = business(db)
    response = page.post(
        "/applications",
        data={"csrf": form_token(page)},
        files={"document": ("theirs.json", json.dumps(other_document()), "application/json")},
    )
    assert response.status_code == 403
    assert "you may upload only its applications" in response.text
    api = TestClient(app).post("/api/applications", headers=header, json=other_document())
    assert api.status_code == 403
    assert business(db) == before


def test_a_workspace_with_a_new_secret_signs_everybody_out(db) -> None:
    agency(db)
    client = signed_in(app_on(db), STAFF)
    settings = app_on(db).state.workspace.settings.with_(secret_key="another-secret-entirely")
    other = TestClient(
        create_app(settings, database=db),
        cookies={"vetpro_session": client.cookies["vetpro_session"]},
    )
    assert other.get("/dashboard", follow_redirects=False).status_code == 303
