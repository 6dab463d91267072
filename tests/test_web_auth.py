"""Real sign-in: passwords kept as argon2id hashes, personal tokens and sessions kept as digests,
disabled users shut out, sign-in attempts throttled through the store (so every web process
counts the same), and the operator's commands that set all this up."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from factories import COORDINATOR, STAFF, snapshot
from test_web_workspace import (
    CHEAP,
    PASSWORDS,
    agency,
    api_token,
    app_on,
    csrf_of,
    signed_in,
)
from vetpro_workflow.cli.app import app as cli
from vetpro_workflow.clock import real_now
from vetpro_workflow.errors import InvalidInput, NotFound
from vetpro_workflow.store import auth


def attempt(client: TestClient, email: str, password: str):
    token = csrf_of(client.get("/sign-in").text)
    return client.post(
        "/sign-in",
        data={"email": email, "password": password, "csrf": token},
        follow_redirects=False,
    )


def everything(db) -> str:
    """Every row of the store, as one text to search."""
    return repr(snapshot(db))


def test_a_password_is_kept_only_as_an_argon2id_hash(db) -> None:
    agency(db)
    with db.transaction(write=False) as tx:
        stored = tx.scalars("SELECT password_hash FROM credential")
    assert len(stored) == 3
    assert all(h.startswith("$argon2id$") for h in stored)
    text = everything(db)
    assert not any(password in text for password in PASSWORDS.values())


def test_a_personal_token_is_shown_once_and_kept_only_as_its_digest(db) -> None:
    agency(db)
    header = api_token(db, STAFF)
    token = header["Authorization"].removeprefix("Bearer ")
    assert token.startswith("vetpro_") and len(token) > 40
    assert token not in everything(db)
    assert auth.digest(token) in everything(db)
    assert TestClient(app_on(db)).get("/api/cases", headers=header).status_code == 200


def test_a_session_id_is_kept_only_as_its_digest(db) -> None:
    agency(db)
    client = signed_in(app_on(db), STAFF)
    cookie = client.cookies["vetpro_session"]
    with db.transaction(write=False) as tx:
        (digest,) = tx.scalars("SELECT digest FROM web_session")
    assert len(digest) == 64 and digest not in cookie


def test_a_short_password_is_refused(db) -> None:
    agency(db)
    with db.transaction() as tx, pytest.raises(InvalidInput, match="at least 10"):
        auth.set_password(tx, STAFF, "short", now=real_now(), hasher=CHEAP)


def test_a_password_of_an_unknown_person_is_refused(db) -> None:
    with db.transaction() as tx, pytest.raises(NotFound, match="vetpro user add"):
        auth.set_password(tx, "nobody@example.org", "long-enough-1", now=real_now())


def test_the_right_password_signs_in_and_a_wrong_one_does_not_say_which_part_was_wrong(
    db,
) -> None:
    agency(db)
    client = TestClient(app_on(db))
    wrong = attempt(client, STAFF, "not-the-password")
    unknown = attempt(client, "nobody@example.org", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    said = "the email or the password is wrong, or the account is disabled"
    assert said in wrong.text and said in unknown.text
    assert attempt(client, STAFF, PASSWORDS[STAFF]).headers["location"] == "/"


def test_resetting_a_password_signs_the_person_out_everywhere(db) -> None:
    agency(db)
    client = signed_in(app_on(db), COORDINATOR)
    with db.transaction() as tx:
        auth.set_password(tx, COORDINATOR, "a-new-password-1", now=real_now(), hasher=CHEAP)
    assert client.get("/cases", follow_redirects=False).status_code == 303


def test_a_disabled_person_can_no_longer_sign_in_nor_use_a_session_or_token(db) -> None:
    agency(db)
    app = app_on(db)
    session = signed_in(app, COORDINATOR)
    header = api_token(db, COORDINATOR)
    with db.transaction() as tx:
        done = auth.disable(tx, COORDINATOR, now=real_now())
    assert done == {"email": COORDINATOR, "disabled": True, "sessions": 1, "tokens": 1}
    assert session.get("/cases", follow_redirects=False).headers["location"].startswith("/sign-in")
    assert TestClient(app).get("/api/cases", headers=header).status_code == 401
    assert attempt(TestClient(app), COORDINATOR, PASSWORDS[COORDINATOR]).status_code == 401


def test_too_many_failed_sign_ins_lock_the_account_for_a_while_even_with_the_right_password(
    db,
) -> None:
    agency(db)
    client = TestClient(app_on(db))
    for _ in range(auth.MAX_FAILURES_PER_ACCOUNT):
        assert attempt(client, STAFF, "guess-guess-guess").status_code == 401
    locked = attempt(client, STAFF, PASSWORDS[STAFF])
    assert locked.status_code == 429
    assert "too many failed sign-ins for this account; try again in 15 minute(s)" in locked.text
    # Others are not locked out with it.
    assert attempt(client, COORDINATOR, PASSWORDS[COORDINATOR]).status_code == 303


def test_failed_sign_ins_count_across_web_processes_because_the_store_keeps_them(db) -> None:
    agency(db)
    first, second = TestClient(app_on(db)), TestClient(app_on(db))
    for i in range(auth.MAX_FAILURES_PER_ACCOUNT):
        attempt(first if i % 2 else second, STAFF, "guess-guess-guess")
    assert attempt(first, STAFF, PASSWORDS[STAFF]).status_code == 429
    assert attempt(second, STAFF, PASSWORDS[STAFF]).status_code == 429


def test_failures_older_than_the_window_no_longer_count(db) -> None:
    agency(db)
    old = real_now() - auth.WINDOW - timedelta(minutes=1)
    with db.transaction() as tx:
        for _ in range(auth.MAX_FAILURES_PER_ACCOUNT):
            tx.execute(
                "INSERT INTO sign_in_failure (email, address, at) VALUES (:e, 'testclient', :at)",
                {"e": STAFF, "at": old},
            )
    assert attempt(TestClient(app_on(db)), STAFF, PASSWORDS[STAFF]).status_code == 303


def test_one_address_guessing_many_accounts_is_throttled_too(db) -> None:
    agency(db)
    client = TestClient(app_on(db))
    for i in range(auth.MAX_FAILURES_PER_ADDRESS):
        attempt(client, f"someone{i}@example.org", "guess-guess-guess")
    refused = attempt(client, STAFF, PASSWORDS[STAFF])
    assert refused.status_code == 429
    assert "too many failed sign-ins for your address" in refused.text


# --- the operator's commands --------------------------------------------------------------------


def run(db, *args: str, input: str | None = None):
    env = {"VETPRO_DATABASE_URL": db.url, "VETPRO_TODAY": ""}
    return CliRunner().invoke(cli, list(args), input=input, env=env)


def test_user_add_with_password_stdin_registers_the_person_with_a_password(db) -> None:
    agency(db)
    result = run(
        db, "user", "add", "deputy@national-agency.example", "--role", "staff",
        "--password-stdin", input="deputy-password-1\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "registered deputy@national-agency.example as staff\n"
    client = TestClient(app_on(db))
    token = csrf_of(client.get("/sign-in").text)
    response = client.post(
        "/sign-in",
        data={"email": "deputy@national-agency.example", "password": "deputy-password-1",
              "csrf": token},
        follow_redirects=False,
    )  # fmt: skip
    assert response.status_code == 303


def test_user_add_with_password_stdin_resets_the_password_of_a_registered_person(db) -> None:
    agency(db)
    with db.transaction() as tx:
        auth.disable(tx, COORDINATOR, now=real_now())
    result = run(
        db, "user", "add", COORDINATOR, "--role", "coordinator", "--password-stdin",
        input="a-brand-new-password\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"password reset for {COORDINATOR}\n"
    with db.transaction(write=False) as tx:
        found = auth.credentials_of(tx, COORDINATOR)
    assert found is not None and not found["disabled"]
    assert auth.password_matches(found["password_hash"], "a-brand-new-password", CHEAP)


def test_user_add_refuses_to_change_a_role_and_an_empty_or_short_password(db) -> None:
    agency(db)
    before = snapshot(db)
    org = "Berufsbildungszentrum Steyr"
    wrong_role = run(db, "user", "add", STAFF, "--role", "coordinator", "--org", org,
                     "--password-stdin", input="long-enough-1\n")  # fmt: skip
    empty = run(db, "user", "add", STAFF, "--role", "staff", "--password-stdin", input="")
    short = run(db, "user", "add", STAFF, "--role", "staff", "--password-stdin", input="abc\n")
    assert wrong_role.stderr == f"error: EMAIL: {STAFF} is registered as staff, not coordinator\n"
    assert empty.stderr == "error: --password-stdin: standard input held no password\n"
    assert short.stderr.startswith("error: password: the password has 3 characters")
    assert {wrong_role.exit_code, empty.exit_code, short.exit_code} == {1}
    assert snapshot(db) == before


def test_user_token_prints_a_new_token_once(db) -> None:
    agency(db)
    result = run(db, "user", "token", STAFF)
    assert result.exit_code == 0, result.stderr
    token = result.stdout.strip()
    assert token.startswith("vetpro_")
    response = TestClient(app_on(db)).get(
        "/api/cases", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert run(db, "user", "token", STAFF).stdout.strip() != token


def test_user_disable_ends_the_access_of_a_person(db) -> None:
    agency(db)
    header = api_token(db, STAFF)
    result = run(db, "user", "disable", STAFF)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"disabled {STAFF}: 0 session(s) and 1 token(s) ended\n"
    assert TestClient(app_on(db)).get("/api/cases", headers=header).status_code == 401
    assert run(db, "user", "disable", "nobody@example.org").exit_code == 1
