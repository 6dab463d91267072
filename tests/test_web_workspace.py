"""The web workspace as an application: how it is built, what every response carries, and the
people and cases the other web tests share (they import the helpers below).

Passwords are hashed with cheap argon2 parameters here (the product's defaults cost 0.2 s and
64 MiB a hash); the stored hash names its parameters, so the check is the real one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from factories import COORDINATOR, STAFF, document, import_doc, snapshot, walk
from vetpro_workflow.clock import real_now
from vetpro_workflow.config import get_settings
from vetpro_workflow.intake.filing import Imported
from vetpro_workflow.store import auth
from vetpro_workflow.store.database import Database
from vetpro_workflow.web.app import create_app

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
OTHER = "jan.novak@sps-brno.example"  # a coordinator of another organisation
OTHER_ORG = "Stredni prumyslova skola Brno"
PASSWORDS = {
    STAFF: "officer-password-1",
    COORDINATOR: "anna-password-1",
    OTHER: "jan-password-12",
}
SECRET = "a-test-secret-that-signs-the-sessions"
TODAY = date(2027, 2, 20)


def other_document() -> dict[str, Any]:
    """An application of another organisation, with its own coordinator."""
    return document(
        **{
            "applicant.name": OTHER_ORG,
            "applicant.country": "CZ",
            "applicant.contact_name": "Jan Novak",
            "applicant.contact_email": OTHER,
            "project.title": "Robotics trainers abroad",
            "mobilities.0.participant.name": "Petr Dvorak",
            "mobilities.0.participant.email": "petr.dvorak@sps-brno.example",
            "mobilities.1.participant.name": "Eva Svobodova",
            "mobilities.1.participant.email": "eva.svobodova@sps-brno.example",
        }
    )


@dataclass
class Agency:
    """A store with the example application (Anna's), another organisation's (Jan's), and the
    passwords of NA staff and both coordinators."""

    db: Database
    ours: Imported
    theirs: Imported


def agency(db: Database, *, steps: int = 0) -> Agency:
    """The shared store of the web tests, the example's story played `steps` steps."""
    ours = import_doc(db)
    theirs = import_doc(db, other_document())
    walk(db, ours, steps)
    with db.transaction() as tx:
        for email, password in PASSWORDS.items():
            auth.set_password(tx, email, password, now=real_now(), hasher=CHEAP)
    return Agency(db, ours, theirs)


def app_on(db: Database, *, today: date | None = TODAY, web_url: str | None = None) -> Any:
    """The workspace on a store, on a fixed business day."""
    settings = get_settings(
        {},
        database_url=db.url,
        today=today,
        secret_key=SECRET,
        web_url=web_url or "http://testserver",
    )
    return create_app(settings, database=db, hasher=CHEAP)


def csrf_of(html: str) -> str:
    """The CSRF token of a page's forms."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def signed_in(app: Any, email: str) -> TestClient:
    """A browser-like client signed in as a person."""
    client = TestClient(app)
    token = csrf_of(client.get("/sign-in").text)
    response = client.post(
        "/sign-in",
        data={"email": email, "password": PASSWORDS[email], "csrf": token, "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    client.get(response.headers["location"])  # where the "signed in" message is shown
    return client


def form_token(client: TestClient) -> str:
    """The CSRF token of a signed-in client's session."""
    return csrf_of(client.get("/applications/new").text)


AUTH_TABLES = ("credential", "api_token", "web_session", "sign_in_failure")


def business(db: Database) -> dict[str, list[str]]:
    """Every row of the cases, calls, people and mail (not of sign-ins): to show nothing
    changed."""
    return {k: v for k, v in snapshot(db).items() if k not in AUTH_TABLES}


def api_token(db: Database, email: str) -> dict[str, str]:
    """The Authorization header of a new personal token."""
    with db.transaction() as tx:
        return {"Authorization": f"Bearer {auth.new_token(tx, email, now=real_now())}"}


# --- the application ----------------------------------------------------------------------------


def test_every_page_and_answer_carries_the_security_headers(db) -> None:
    agency(db)
    client = TestClient(app_on(db))
    for path in ("/sign-in", "/api/cases", "/static/style.css", "/no-such-page"):
        headers = client.get(path).headers
        assert "default-src 'self'" in headers["content-security-policy"], path
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "same-origin"
    assert client.get("/sign-in").headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in client.get("/sign-in").headers


def test_head_is_answered_as_get_without_the_body(db) -> None:
    agency(db)
    client = TestClient(app_on(db))
    got, head = client.get("/sign-in"), client.head("/sign-in")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]
    assert head.headers["content-security-policy"] == got.headers["content-security-policy"]
    assert client.head("/api/cases").status_code == 401


def test_an_unexpected_error_is_a_500_with_the_security_headers_and_is_logged(
    sqlite_url, caplog
) -> None:
    with Database(sqlite_url) as db:
        agency(db)
        client = signed_in(app_on(db), STAFF)
        token = api_token(db, STAFF)
        with db.transaction() as tx:
            tx.execute("DROP TABLE outbox")  # a damaged store: every read of the mail fails
        page = client.get("/")
        answer = client.get("/api/cases/1", headers=token)
    assert page.status_code == 500
    assert "something went wrong on our side; the error is logged" in page.text
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == "something went wrong on our side; the error is logged"
    for response in (page, answer):
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert "Traceback" not in response.text and "outbox" not in response.text
    assert "unexpected error answering GET /" in caplog.text
    assert "no such table: outbox" in caplog.text


def test_the_session_cookie_is_http_only_and_same_site_and_secure_over_https(db) -> None:
    agency(db)
    plain = TestClient(app_on(db)).get("/sign-in").headers["set-cookie"].lower()
    assert plain.startswith("vetpro_session=")
    assert "httponly" in plain and "samesite=lax" in plain and "secure" not in plain
    secure = TestClient(app_on(db, web_url="https://vetpro.agency.example"))
    response = secure.get("/sign-in")
    set_cookie = response.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie and "secure" in set_cookie
    assert response.headers["strict-transport-security"].startswith("max-age=")


def test_the_stylesheet_is_one_file_served_with_the_pages(db) -> None:
    client = TestClient(app_on(db))
    response = client.get("/static/style.css")
    assert response.status_code == 200
    assert "@media print" in response.text
    assert '<link rel="stylesheet" href="/static/style.css">' in client.get("/sign-in").text


def test_the_api_is_described_at_openapi_json_with_its_bearer_tokens(db) -> None:
    spec = TestClient(app_on(db)).get("/openapi.json").json()
    assert set(spec["paths"]) == {
        "/api/cases",
        "/api/cases/{case_id}",
        "/api/cases/{case_id}/history",
        "/api/cases/{case_id}/advance",
        "/api/applications",
    }
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_a_workspace_without_a_secret_key_still_signs_sessions(db, caplog) -> None:
    agency(db)
    settings = get_settings({}, database_url=db.url, today=TODAY)
    app = create_app(settings, database=db, hasher=CHEAP)
    assert "VETPRO_SECRET_KEY is not set" in caplog.text
    client = TestClient(app)
    token = csrf_of(client.get("/sign-in").text)
    response = client.post(
        "/sign-in",
        data={"email": STAFF, "password": PASSWORDS[STAFF], "csrf": token},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"
    assert client.get("/dashboard").status_code == 200


def test_staff_start_on_the_dashboard_and_coordinators_on_their_cases(db) -> None:
    agency(db)
    app = app_on(db)
    staff = signed_in(app, STAFF).get("/", follow_redirects=False)
    coordinator = signed_in(app, COORDINATOR).get("/", follow_redirects=False)
    assert staff.headers["location"] == "/dashboard"
    assert coordinator.headers["location"] == "/cases"


def test_signing_in_goes_back_to_the_page_asked_for_but_never_to_another_site(db) -> None:
    agency(db)
    client = TestClient(app_on(db))
    first = client.get("/cases/1", follow_redirects=False)
    assert first.headers["location"] == "/sign-in?next=%2Fcases%2F1"
    for target, lands in (
        ("/cases/1", "/cases/1"),
        ("//evil.example/x", "/"),
        ("https://evil.example", "/"),
    ):
        token = csrf_of(client.get("/sign-in").text)
        response = client.post(
            "/sign-in",
            data={"email": STAFF, "password": PASSWORDS[STAFF], "csrf": token, "next": target},
            follow_redirects=False,
        )
        assert response.headers["location"] == lands
