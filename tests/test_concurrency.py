"""People and processes moving cases at the same moment: one move wins, nothing is doubled and
no project is left behind its mobilities.

Workers start together on an Event set once every one of them is ready (connected), so no start
depends on the wall clock; nothing here asserts how long anything took.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from factories import (
    COORDINATOR,
    IMPORT_DAY,
    SCORES,
    STAFF,
    STAFF_MAIL,
    document,
    ensure_agency,
    example,
    import_doc,
    step_of,
    walk,
)
from vetpro_workflow.cases import advance, advance_each
from vetpro_workflow.clock import Clock
from vetpro_workflow.errors import ConflictError, TransitionRefused
from vetpro_workflow.intake.documents import parse
from vetpro_workflow.intake.filing import file_document
from vetpro_workflow.states.actors import SYSTEM
from vetpro_workflow.states.cascade import rederive
from vetpro_workflow.store import snapshots, users
from vetpro_workflow.store.database import Database
from workers import in_processes

WORKERS = 8
DECISION_DAY = date(2027, 2, 20)
# How long a spawned process may take to start, or the whole race to run, before the test gives
# up on a worker that hangs; generous, so that a loaded machine never fails a test.
PATIENCE = 600


# --- running workers together -------------------------------------------------------------------


def _in_threads(work: Callable[[], Any], count: int = WORKERS) -> list[Any]:
    """Run `work` in `count` threads released at once; their results (or exceptions)."""
    go = threading.Event()
    results: list[Any] = []
    lock = threading.Lock()

    def worker() -> None:
        go.wait()
        try:
            outcome = work()
        except Exception as exc:  # reported with the results, so the test shows it
            outcome = exc
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(PATIENCE)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors
    return results


# --- eight people, one move -----------------------------------------------------------------------


def _approve(db: Database, case_id: int, version: int | None) -> str:
    """One person approving the application: moved, conflict or refused."""
    try:
        advance(
            db,
            case_id=case_id,
            trigger="approve",
            actor=STAFF,
            clock=Clock.on(DECISION_DAY),
            staff_email=STAFF_MAIL,
            note="Approved by the committee.",
            expected_version=version,
        )
        return "moved"
    except ConflictError:
        return "conflict"
    except TransitionRefused:
        return "refused"


def _approve_in_process(url: str, case_id: int, version: int | None, *, ready) -> str:
    with Database(url) as db:
        with db.transaction(write=False) as tx:  # connected before the start
            users.resolve(tx, STAFF)
        ready()
        return _approve(db, case_id, version)


def _evaluated(db: Database) -> tuple[int, list[int], int]:
    """An evaluated application, ready for approval, and its version."""
    done = import_doc(db)
    walk(db, done, step_of("evaluate"))
    with db.transaction(write=False) as tx:
        version = tx.scalar('SELECT version FROM "case" WHERE id = :id', {"id": done.application})
    return done.application, done.mobilities, version


def _one_approval(db: Database, app: int, mobilities: list[int], outcomes: list[str]) -> None:
    """Exactly one move won; the others were turned away; the approval is written once."""
    assert Counter(outcomes)["moved"] == 1, outcomes
    assert set(outcomes) <= {"moved", "conflict", "refused"}
    with db.transaction(write=False) as tx:
        approvals = tx.rows(
            "SELECT case_id, version FROM history WHERE trigger = 'approve' ORDER BY case_id"
        )
        states = tx.scalars('SELECT state FROM "case" ORDER BY id')
        mail = tx.scalars("SELECT key FROM outbox WHERE kind = 'decision_approved'")
        version = tx.scalar('SELECT version FROM "case" WHERE id = :id', {"id": app})
    assert [a["case_id"] for a in approvals] == [app, *mobilities]
    assert states == ["approved"] * 3
    assert mail == [f"case-{app}:decision_approved:v{version}"]


@pytest.mark.parametrize("if_version", [True, False], ids=["with --if-version", "without"])
def test_eight_threads_approving_at_once_yield_one_move(db, if_version):
    app, mobilities, version = _evaluated(db)
    outcomes = _in_threads(lambda: _approve(db, app, version if if_version else None))
    _one_approval(db, app, mobilities, outcomes)
    if if_version:
        assert sorted(outcomes) == ["conflict"] * (WORKERS - 1) + ["moved"]


def test_eight_processes_approving_at_once_yield_one_move(store_url):
    with Database(store_url) as db:
        app, mobilities, _ = _evaluated(db)
        outcomes = in_processes([(_approve_in_process, (store_url, app, None))] * WORKERS)
        _one_approval(db, app, mobilities, outcomes)


# --- the last mobilities of 200 projects, moved at once (issue #7, point 3) ----------------------

PROJECTS = 200
RACE_DAY = date(2027, 11, 2)
RETURNS = ("2027-09-24", "2027-10-15")  # the example's two planned returns
# Kinds of project: the last move of each of its two mobilities, and the phase they imply.
KINDS: dict[str, tuple[tuple[str, str], str]] = {
    "both return": (("return_home", "return_home"), "validation"),
    "both validate": (("validate", "validate"), "dissemination"),
    "both cancel": (("cancel", "cancel"), "dissemination"),
    "one returns, one is cancelled": (("return_home", "cancel"), "validation"),
    "one validates, one is cancelled": (("validate", "cancel"), "dissemination"),
}
# What each last move writes: the history of the mobility and the mail it sends.
MAIL = {
    "return_home": ["participant_report_request", "return_recorded"],
    "validate": [],
    "cancel": ["mobility_cancelled"],
}
# How the project follows, by kind: its own system moves and the mail they send.
FOLLOWS = {
    "both return": (["mobilities_returned"], []),
    "both validate": (["mobilities_validated"], ["final_report_due"]),
    "both cancel": (["mobilities_cancelled"], ["final_report_due"]),
    "one returns, one is cancelled": (["mobilities_returned"], []),
    "one validates, one is cancelled": (
        ["mobilities_returned", "mobilities_validated"],
        ["final_report_due"],
    ),
}


def _facts(trigger: str, sibling: int) -> tuple[dict[str, object], str | None]:
    if trigger == "return_home":
        return {"returned_on": RETURNS[sibling]}, None
    if trigger == "validate":
        return {"europass_ref": f"EMD-2027-{sibling}"}, None
    return {}, "The host closed for renovation."


def _projects_one_step_away(db: Database) -> list[tuple[str, int, list[int]]]:
    """200 projects, each of whose mobilities is one move away from the project's next phase."""
    ensure_agency(db)
    kinds = list(KINDS)
    parsed = parse(json.dumps(example()))
    with db.transaction() as tx:
        projects = [
            (
                kinds[i % len(kinds)],
                file_document(
                    tx, parsed, clock=Clock.on(IMPORT_DAY), source="race", allow_duplicate=True
                ),
            )
            for i in range(PROJECTS)
        ]
        coordinator, staff = users.resolve(tx, COORDINATOR), users.resolve(tx, STAFF)

    def each(trigger, items, actor, day, note=None) -> None:
        with db.transaction() as tx:
            batch = advance_each(
                tx,
                items,
                trigger=trigger,
                clock=Clock.on(day),
                staff_email=STAFF_MAIL,
                note=note,
                actor=actor,
            )
        assert not batch.skipped, batch.skipped[:3]

    apps = [done.application for _, done in projects]
    firsts = [(kind, done.mobilities[0]) for kind, done in projects]
    seconds = [(kind, done.mobilities[1]) for kind, done in projects]
    each("submit", [(a, {}) for a in apps], coordinator, date(2027, 1, 15))
    each("evaluate", [(a, SCORES) for a in apps], staff, date(2027, 2, 10), "Sound.")
    each("approve", [(a, {}) for a in apps], staff, DECISION_DAY, "Approved.")
    each(
        "start_preparation",
        [(a, {"grant_agreement_signed_on": "2027-03-10"}) for a in apps],
        coordinator,
        date(2027, 3, 10),
    )
    each(
        "start_preparation",
        [(m, {"agreement_signed_on": "2027-05-10"}) for _, m in firsts + seconds],
        coordinator,
        date(2027, 5, 10),
    )
    gone = [m for kind, m in firsts if KINDS[kind][0][0] != "cancel"]
    each(
        "depart",
        [(m, {"departed_on": "2027-09-06", "preparation_done": True}) for m in gone],
        coordinator,
        date(2027, 9, 6),
    )
    gone = [m for kind, m in seconds if KINDS[kind][0][1] != "cancel"]
    each(
        "depart", [(m, {"departed_on": "2027-10-04"}) for m in gone], coordinator, date(2027, 10, 4)
    )
    back = [
        (m, {"returned_on": RETURNS[sibling]})
        for sibling, pairs in enumerate((firsts, seconds))
        for kind, m in pairs
        if KINDS[kind][0][sibling] == "validate"
    ]
    each("return_home", back, coordinator, date(2027, 10, 20))
    return [(kind, done.application, done.mobilities) for kind, done in projects]


def _last_moves(url: str, moves: list[tuple[int, str, dict, str | None]], *, ready) -> list:
    """One process's share of the last moves, fired one by one through the service."""
    outcomes = []
    with Database(url) as db:
        with db.transaction(write=False) as tx:
            users.resolve(tx, COORDINATOR)
        ready()
        for case_id, trigger, facts, note in moves:
            try:
                advance(
                    db,
                    case_id=case_id,
                    trigger=trigger,
                    actor=COORDINATOR,
                    clock=Clock.on(RACE_DAY),
                    staff_email=STAFF_MAIL,
                    facts=facts,
                    note=note,
                )
                outcomes.append((case_id, trigger, "moved"))
            except (ConflictError, TransitionRefused) as exc:
                outcomes.append((case_id, trigger, f"{type(exc).__name__}: {exc}"))
    return outcomes


@pytest.fixture
def postgres_store_url() -> str:
    """A fresh store on PostgreSQL only (the race below needs row locks to mean anything)."""
    from conftest import postgres_url

    return postgres_url()


@pytest.mark.postgres
def test_the_last_mobilities_of_200_projects_moved_at_once_leave_every_project_in_step(
    postgres_store_url,
):
    store_url = postgres_store_url
    with Database(store_url) as db:
        projects = _projects_one_step_away(db)
        with db.transaction(write=False) as tx:
            history_from = tx.scalar("SELECT max(id) FROM history")
            outbox_from = tx.scalar("SELECT coalesce(max(id), 0) FROM outbox")

        # Siblings race: the two processes of a pair walk the same projects in the same order,
        # one moving each project's first mobility, the other its second.
        pairs = WORKERS // 2
        shares: list[list[tuple[int, str, dict, str | None]]] = [[] for _ in range(WORKERS)]
        expected_history: Counter[tuple[int, str]] = Counter()
        expected_mail: Counter[tuple[int, str]] = Counter()
        for i, (kind, app, mobilities) in enumerate(projects):
            triggers, _ = KINDS[kind]
            for sibling, (case_id, trigger) in enumerate(zip(mobilities, triggers, strict=True)):
                facts, note = _facts(trigger, sibling)
                shares[2 * (i % pairs) + sibling].append((case_id, trigger, facts, note))
                expected_history[(case_id, trigger)] += 1
                expected_mail.update((case_id, k) for k in MAIL[trigger])
            follows, mail = FOLLOWS[kind]
            expected_history.update((app, t) for t in follows)
            expected_mail.update((app, k) for k in mail)

        outcomes = in_processes([(_last_moves, (store_url, share)) for share in shares])

        turned_away = [o for share in outcomes for o in share if o[2] != "moved"]
        assert not turned_away, turned_away[:5]
        with db.transaction(write=False) as tx:
            history = tx.rows(
                "SELECT case_id, trigger FROM history WHERE id > :id", {"id": history_from}
            )
            mail = tx.rows("SELECT case_id, kind FROM outbox WHERE id > :id", {"id": outbox_from})
            versions = tx.rows(
                "SELECT c.id, c.version, count(h.id) AS moves, max(h.version) AS last "
                'FROM "case" c JOIN history h ON h.case_id = c.id GROUP BY c.id, c.version'
            )
            loaded = snapshots.load_projects(tx, [app for _, app, _ in projects])
        phase = {app: KINDS[kind][1] for kind, app, _ in projects}
        behind = []
        for project in loaded:
            decision = rederive(
                project,
                actor=SYSTEM,
                today=RACE_DAY,
                now=Clock.on(RACE_DAY).now,
                staff_email=STAFF_MAIL,
            )
            if decision.changes:
                behind.append((project.id, project.state, [c.trigger for c in decision.changes]))
        assert behind == []
        assert {p.id: p.state for p in loaded} == phase
        assert Counter((h["case_id"], h["trigger"]) for h in history) == expected_history
        assert Counter((m["case_id"], m["kind"]) for m in mail) == expected_mail
        # Every move of every case is in its history once, under the version it made.
        assert [v for v in versions if not v["version"] == v["moves"] == v["last"]] == []


# --- imports and digests racing (issue #7, point 9) ----------------------------------------------

NEW_ORGANISATION = "Berufskolleg Neustadt"
NEW_CONTACT = "ines.neumann@bk-neustadt.example"


def _import_in_process(url: str, path: str, *, ready) -> int | str:
    """Import one document once every worker is connected; its application, or the error line."""
    from vetpro_workflow.errors import VetproError
    from vetpro_workflow.intake.filing import import_one

    with Database(url) as db:
        with db.transaction(write=False) as tx:
            tx.scalar("SELECT 1")
        ready()
        try:
            return import_one(db, Path(path), clock=Clock.on(IMPORT_DAY))["application"]
        except VetproError as exc:
            return f"error: {exc}"


def test_eight_processes_importing_documents_of_the_same_new_organisation_all_file_once(
    store_url, tmp_path
):
    # Each document names the same organisation, new to the store, and its contact: whoever files
    # first registers them, and the imports that lost that race find them on their retry.
    with Database(store_url) as db:
        ensure_agency(db)
    paths = []
    for n in range(WORKERS):
        doc = document(
            **{
                "project.title": f"Digital welding simulators, part {n + 1}",
                "applicant.name": NEW_ORGANISATION,
                "applicant.country": "DE",
                "applicant.contact_name": "Ines Neumann",
                "applicant.contact_email": NEW_CONTACT,
            }
        )
        path = tmp_path / f"part-{n + 1}.json"
        path.write_text(json.dumps(doc))
        paths.append(str(path))
    outcomes = in_processes([(_import_in_process, (store_url, p)) for p in paths])
    assert all(isinstance(o, int) for o in outcomes), outcomes
    with Database(store_url) as db, db.transaction(write=False) as tx:
        organisations = tx.scalars(
            "SELECT id FROM organisation WHERE name = :n", {"n": NEW_ORGANISATION}
        )
        coordinators = tx.rows(
            'SELECT role, organisation_id FROM "user" WHERE email = :e', {"e": NEW_CONTACT}
        )
        applicants = tx.scalars(
            "SELECT DISTINCT applicant_id FROM application WHERE id IN (:ids)",
            {"ids": outcomes},
        )
    assert len(organisations) == 1
    assert coordinators == [{"role": "coordinator", "organisation_id": organisations[0]}]
    assert len(set(outcomes)) == WORKERS and applicants == organisations


def _digest_in_process(url: str, day: date, *, ready) -> int | str | None:
    """Queue the day's staff digest once every worker is connected; its outbox row."""
    from vetpro_workflow.errors import VetproError
    from vetpro_workflow.notifications.digest import enqueue_digest

    with Database(url) as db:
        with db.transaction(write=False) as tx:
            tx.scalar("SELECT 1")
        ready()
        try:
            with db.transaction() as tx:
                return enqueue_digest(tx, today=day, staff_email=STAFF_MAIL)[0]
        except VetproError as exc:
            return f"error: {exc}"


def test_eight_processes_queueing_the_same_days_digest_queue_it_once(store_url):
    with Database(store_url) as db:
        done = import_doc(db)
        walk(db, done, step_of("submit"))
        with db.transaction() as tx:  # something for the digest to report
            tx.execute(
                "UPDATE outbox SET status = 'undeliverable', last_error = '550 no such user'"
            )
        day = date(2027, 1, 20)
        outcomes = in_processes([(_digest_in_process, (store_url, day))] * WORKERS)
        with db.transaction(write=False) as tx:
            digests = tx.scalars("SELECT id FROM outbox WHERE kind = 'staff_digest'")
    assert len(digests) == 1
    assert outcomes == digests * WORKERS
