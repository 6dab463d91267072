"""The workspace in a real browser: Debian's headless Chromium driven by Playwright, against a
uvicorn server on a free port of this machine.

Staff approve a submitted application and see it in the history; a coordinator records a
departure and a return and sees the next step; a refused action shows its rule. Every main page
passes axe-core with no serious violation, and the pages are usable with the keyboard alone.
Screenshots of the main pages are saved in VETPRO_SCREENSHOTS (a folder), else in this run's
pytest temporary folder (`screenshots0`), whose path the first test prints.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from factories import COORDINATOR, STAFF, advance, state_of, step_of
from test_web_workspace import OTHER, PASSWORDS, agency, app_on
from vetpro_workflow.store.database import Database

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
WAIT = 30_000  # ms: generous, for a loaded machine; every wait is on a condition


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole run (Debian's, not a downloaded build)."""
    if not os.path.exists(CHROMIUM):
        message = f"no Chromium at {CHROMIUM}: apt-get install -y chromium"
        if os.environ.get("CI") or os.environ.get("VETPRO_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    """Where the screenshots of the main pages go."""
    chosen = os.environ.get("VETPRO_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots of the main pages: {folder}")
    return folder


@pytest.fixture
def serve(sqlite_url) -> Iterator[Callable[..., tuple[Database, str]]]:
    """Start the workspace on a fresh SQLite store, in a uvicorn thread on a free port."""
    started: list[tuple[uvicorn.Server, threading.Thread, Database]] = []

    def start(*, steps: int, today: date) -> tuple[Database, str]:
        db = Database(sqlite_url)
        world = agency(db, steps=steps)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(
            uvicorn.Config(app_on(db, today=today), log_level="warning", lifespan="off")
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started:
            assert time.monotonic() < deadline, "the web server did not start"
            time.sleep(0.05)
        started.append((server, thread, db))
        db.world = world  # type: ignore[attr-defined]
        return db, f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield start
    for server, thread, db in started:
        server.should_exit = True
        thread.join(timeout=60)
        db.close()


@pytest.fixture
def page(browser) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    context.set_default_timeout(WAIT)
    tab = context.new_page()
    yield tab
    context.close()


def sign_in(page: Any, base: str, email: str) -> None:
    page.goto(f"{base}/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORDS[email])
    page.get_by_role("button", name="Sign in").click()
    playwright.expect(page.get_by_role("status")).to_contain_text(f"Signed in as {email}")


def accessible(page: Any) -> None:
    """axe-core finds no serious or critical violation on the page."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    serious = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], f"{page.url}: {serious}"


def shoot(page: Any, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_staff_sign_in_approve_a_submitted_application_and_see_it_in_the_history(
    serve, page, screenshots
) -> None:
    db, base = serve(steps=step_of("evaluate"), today=date(2027, 2, 20))
    world = db.world
    advance(db, world.theirs.application, "submit", actor=OTHER, on=date(2027, 1, 20))
    sign_in(page, base, STAFF)
    playwright.expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    accessible(page)
    shoot(page, screenshots, "staff-dashboard")
    page.get_by_role("link", name="Calls").click()
    page.get_by_role("link", name="Ranking of LDV-VETPRO-2027").click()
    playwright.expect(page.get_by_text("Pass mark: 36 points.")).to_be_visible()
    accessible(page)
    shoot(page, screenshots, "staff-ranking")
    page.goto(f"{base}/cases/{world.theirs.application}/evaluate")
    accessible(page)
    shoot(page, screenshots, "staff-evaluate")
    page.goto(f"{base}/cases/{world.ours.application}")
    accessible(page)
    shoot(page, screenshots, "staff-case-submitted")
    approve = page.locator("#action-approve")
    approve.get_by_label("The quality assessment").fill("Clear objectives, sound budget.")
    approve.get_by_role("button", name="Approve").click()
    playwright.expect(page.get_by_role("status")).to_have_text(
        f"Approve: done on case {world.ours.application}."
    )
    history = page.locator("ol.timeline")
    playwright.expect(history).to_contain_text("Approve (submitted → approved) by " + STAFF)
    playwright.expect(history).to_contain_text("Clear objectives, sound budget.")
    shoot(page, screenshots, "staff-case-approved")
    assert state_of(db, world.ours.application) == "approved"
    page.get_by_role("link", name="Cases", exact=True).click()
    accessible(page)
    shoot(page, screenshots, "staff-cases")
    page.goto(f"{base}/diagrams/mobility")
    accessible(page)
    shoot(page, screenshots, "workflow-mobility")
    page.goto(f"{base}/calls/new")
    accessible(page)


def test_a_coordinator_records_departure_and_return_and_sees_the_next_step(
    serve, page, screenshots
) -> None:
    db, base = serve(steps=step_of("start_preparation", 1), today=date(2027, 9, 30))
    mobility = db.world.ours.mobilities[0]
    sign_in(page, base, COORDINATOR)
    playwright.expect(page.get_by_role("heading", level=1)).to_have_text("Cases")
    accessible(page)
    shoot(page, screenshots, "coordinator-cases")
    page.get_by_role("link", name="Markus Leitner at Omnia Vocational College").click()
    next_step = page.locator("section.next-step")
    playwright.expect(next_step).to_contain_text("records the departure (depart)")
    accessible(page)
    shoot(page, screenshots, "coordinator-mobility-preparation")
    depart = page.locator("#action-depart")
    depart.get_by_label("Departure date").fill("2027-09-06")
    depart.get_by_label("Preparation done").select_option("true")
    depart.get_by_role("button", name="Record the departure").click()
    playwright.expect(page.locator(".lead .badge")).to_have_text("abroad")
    playwright.expect(next_step).to_contain_text(
        "Markus Leitner returns on 2027-09-24; the coordinator records the return"
    )
    back = page.locator("#action-return_home")
    back.get_by_label("Return date").fill("2027-09-24")
    back.get_by_role("button", name="Record the return").click()
    playwright.expect(page.locator(".lead .badge")).to_have_text("validation")
    playwright.expect(next_step).to_contain_text(
        "The coordinator records the Europass reference (validate) by 2027-11-08"
    )
    playwright.expect(next_step).to_contain_text("Due: 2027-11-08")
    accessible(page)
    shoot(page, screenshots, "coordinator-mobility-validation")
    assert state_of(db, mobility) == "validation"
    page.goto(f"{base}/cases/{db.world.ours.application}")
    accessible(page)
    shoot(page, screenshots, "coordinator-application")


def test_a_refused_action_shows_its_rule_and_changes_nothing(serve, page, screenshots) -> None:
    db, base = serve(steps=step_of("depart", 1), today=date(2027, 9, 30))
    mobility = db.world.ours.mobilities[0]
    sign_in(page, base, COORDINATOR)
    page.goto(f"{base}/cases/{mobility}")
    back = page.locator("#action-return_home")
    back.get_by_label("Return date").fill("2027-09-01")
    back.get_by_role("button", name="Record the return").click()
    alert = page.get_by_role("alert")
    playwright.expect(alert).to_contain_text("Refused")
    playwright.expect(alert).to_contain_text("'return_home' needs returned_on")
    playwright.expect(alert).to_contain_text("Nothing was changed.")
    accessible(page)
    shoot(page, screenshots, "coordinator-refused")
    assert state_of(db, mobility) == "abroad"


def test_the_workspace_is_usable_with_the_keyboard_alone(serve, page, screenshots) -> None:
    db, base = serve(steps=0, today=date(2027, 1, 10))
    page.goto(f"{base}/sign-in")
    accessible(page)
    shoot(page, screenshots, "sign-in")
    page.keyboard.press("Tab")
    playwright.expect(page.get_by_role("link", name="Skip to the content")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    playwright.expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type(COORDINATOR)
    page.keyboard.press("Tab")
    playwright.expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORDS[COORDINATOR])
    page.keyboard.press("Enter")
    playwright.expect(page.get_by_role("heading", level=1)).to_have_text("Cases")
    # Skip the menu, then reach the first case from the keyboard.
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    link = page.get_by_role("link", name="Digital welding simulators in vocational training")
    link.focus()
    page.keyboard.press("Enter")
    playwright.expect(page.get_by_role("heading", level=1)).to_contain_text("Application")
    submit = page.locator("#action-submit").get_by_role("button", name="Submit the application")
    submit.focus()
    page.keyboard.press("Enter")
    playwright.expect(page.locator(".lead .badge")).to_have_text("submitted")
    assert state_of(db, db.world.ours.application) == "submitted"
