"""Many processes on one PostgreSQL store at once: four dispatchers draining 10,000 mails, and
eight processes advancing 10,000 cases, some of them the same ones.

The processes are spawned and start working together, once every one of them is connected (an
Event, never the clock); nothing here asserts how long anything took. What must hold:
- each of the 10,000 mails reaches the SMTP sink exactly once (by Message-ID), every row sent;
- a process moving a case someone else moved meanwhile meets only a conflict (its version was
  stale) or a refusal saying the case has moved on; every planned move is made exactly once;
  every case's history is contiguous and replays to its state; every project's phase follows its
  mobilities.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from conftest import postgres_url
from factories import (
    COORDINATOR,
    IMPORT_DAY,
    SCORES,
    STAFF,
    STAFF_MAIL,
    ensure_agency,
    example,
    import_doc,
    walk,
)
from vetpro_workflow.cases import advance, advance_each
from vetpro_workflow.clock import Clock, real_now
from vetpro_workflow.config import get_settings
from vetpro_workflow.dev.sink import Sink
from vetpro_workflow.errors import ConflictError, TransitionRefused
from vetpro_workflow.intake.documents import parse
from vetpro_workflow.intake.filing import file_document
from vetpro_workflow.notifications import outbox
from vetpro_workflow.notifications.delivery import send_pending
from vetpro_workflow.notifications.letters import message_id
from vetpro_workflow.states.actors import Actor
from vetpro_workflow.states.cascade import rederive
from vetpro_workflow.states.notices import Notice
from vetpro_workflow.store import snapshots, users
from vetpro_workflow.store.database import Database
from workers import in_processes

pytestmark = pytest.mark.postgres

MAILS = 10_000
DISPATCHERS = 4
PROJECTS = 3_334  # an application and two mobilities each: 10,002 cases
MOVERS = 8
RACE_DAY = date(2027, 9, 6)  # the first departure of the example
PATIENCE = 900  # seconds a silent worker is given before the test gives up on it (never a delay)


# --- four dispatchers, 10,000 mails ------------------------------------------------------------


def _dispatch(url: str, port: int, *, ready: Callable[[], None]) -> dict[str, Any]:
    """One dispatcher: the sender the command line and the flows run, until nothing is due."""
    settings = get_settings(
        environ={},
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_tls="none",
        smtp_timeout=300,
        staff_email=STAFF_MAIL,
        mail_concurrency=4,
        mail_batch_size=100,
    )
    with Database(url) as db:
        with db.transaction(write=False) as tx:  # connected before the start
            tx.scalar("SELECT 1")
        ready()
        return send_pending(db, settings).as_json()


def _message_id(raw: bytes) -> str:
    """The Message-ID of a message as received (read from its header, without parsing it all)."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    found = re.search(rb"^Message-ID: *(<[^>\r\n]+>)", head, re.MULTILINE | re.IGNORECASE)
    assert found is not None, raw[:500]
    return found.group(1).decode()


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of a plan (EXPLAIN's JSON), depth first."""
    return [plan, *(n for child in plan.get("Plans", ()) for n in _nodes(child))]


def test_a_claim_locks_its_batch_once_even_when_the_statistics_predate_a_burst_of_mail():
    # Statistics taken while the outbox was empty but large on disk (as `ANALYZE` after an
    # import leaves them), then 10,000 mails queued at once: the claim must still pick and lock
    # its batch once. As `id IN (… FOR UPDATE SKIP LOCKED)` PostgreSQL planned a semi-join that
    # ran the locking subquery again for every row: four dispatchers spun for minutes.
    with Database(postgres_url()) as db:
        done = import_doc(db)
        walk(db, done, 1)

        def burst(tx: Any, name: str) -> None:
            notices = [
                Notice(f"{name}:{n}", done.application, "receipt", f"c{n}@school.example", {})
                for n in range(10_000)
            ]
            outbox.enqueue(tx, notices, now=real_now())

        with db.transaction() as tx:
            burst(tx, "earlier")
        with db.transaction() as tx:
            tx.execute("DELETE FROM outbox")
        with db.transaction() as tx:
            tx.execute("ANALYZE outbox")
        with db.transaction() as tx:
            burst(tx, "burst")
        with db.transaction() as tx:
            tx.execute("SET LOCAL statement_timeout = '120s'")  # a regression fails, not hangs
            (explained,) = tx.scalars(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + outbox.claim_statement("postgresql"),
                {"by": "test:1:1", "until": real_now(), "now": real_now(), "size": 50},
            )
            claimed = tx.scalar("SELECT count(*) FROM outbox WHERE claimed_by = 'test:1:1'")
    plan = (json.loads(explained) if isinstance(explained, str) else explained)[0]["Plan"]
    locking = [n for n in _nodes(plan) if n["Node Type"] == "LockRows"]
    assert [n["Actual Loops"] for n in locking] == [1], plan
    assert locking[0]["Actual Rows"] == 50
    assert claimed == 50


def test_four_dispatchers_draining_ten_thousand_mails_deliver_each_exactly_once():
    url = postgres_url()
    with Database(url) as db:
        done = import_doc(db)
        walk(db, done, 1)  # submitted: its receipt is queued, and gives the mail a real context
        with db.transaction() as tx:
            (receipt,) = outbox.rows(tx)
            outbox.enqueue(
                tx,
                [
                    Notice(
                        f"load:{n}",
                        done.application,
                        "receipt",
                        f"coordinator{n}@school{n % 97}.example",
                        receipt["context"],
                    )
                    for n in range(MAILS - 1)
                ],
                now=real_now(),
            )
        with Sink() as sink:
            tallies = in_processes([(_dispatch, (url, sink.port))] * DISPATCHERS)
            sink.wait_for(MAILS, timeout=PATIENCE)
            arrived = Counter(_message_id(m.raw) for m in sink.messages)
        with db.transaction(write=False) as tx:
            rows = outbox.rows(tx)

    assert len(rows) == MAILS
    assert {(r["status"], r["attempts"]) for r in rows} == {("sent", 1)}
    mail_from = get_settings(environ={}).mail_from
    assert arrived == Counter({message_id(r, mail_from): 1 for r in rows})
    assert sum(t["sent"] for t in tallies) == MAILS
    assert all(t["sent"] > 0 for t in tallies), tallies  # all four really drained together
    assert sum(t["lost"] + t["retrying"] + t["undeliverable"] for t in tallies) == 0


# --- eight processes, 10,000 cases -----------------------------------------------------------


def _steps(app: int, mobilities: list[int]) -> list[tuple[int, str, str, dict[str, Any], str]]:
    """A project's moves, in order: (case, trigger, actor, facts, note). The approval carries
    both mobilities along; the first departure moves the project abroad."""
    day = RACE_DAY.isoformat()
    first = mobilities[0]
    return [
        (app, "approve", STAFF, {}, "Approved by the committee."),
        (app, "start_preparation", COORDINATOR, {"grant_agreement_signed_on": day}, ""),
        (first, "start_preparation", COORDINATOR, {"agreement_signed_on": day}, ""),
        (first, "depart", COORDINATOR, {"departed_on": day, "preparation_done": True}, ""),
    ]


def _movers_of(index: int) -> set[int]:
    """Which processes move a project: one each; every third one a second process as well,
    every hundred-and-first all eight."""
    movers = {index % MOVERS}
    if index % 3 == 0:
        movers.add((index + 3) % MOVERS)
    if index % 101 == 0:
        movers = set(range(MOVERS))
    return movers


def _move(url: str, projects: list[list[tuple]], *, ready: Callable[[], None]) -> dict[str, Any]:
    """One process: each project's moves in order, each with the version it read just before
    (as a person's form does); a conflict is read again and tried again, a refusal means
    someone else made the move."""
    moved: list[tuple[int, str]] = []
    refused: list[tuple[int, str, str]] = []
    conflicts = 0
    clock = Clock.on(RACE_DAY)
    with Database(url) as db:
        with db.transaction(write=False) as tx:  # connected before the start
            users.resolve(tx, COORDINATOR)
        ready()
        for steps in projects:
            for case_id, trigger, actor, facts, note in steps:
                retried = 0
                while True:
                    with db.transaction(write=False) as tx:
                        version = tx.scalar(
                            'SELECT version FROM "case" WHERE id = :id', {"id": case_id}
                        )
                    try:
                        advance(
                            db,
                            case_id=case_id,
                            trigger=trigger,
                            actor=actor,
                            clock=clock,
                            staff_email=STAFF_MAIL,
                            facts=facts,
                            note=note or None,
                            expected_version=version,
                        )
                    except ConflictError:
                        conflicts += 1
                        retried += 1
                        assert retried < 1000, f"{trigger} on {case_id}: conflicts without end"
                        continue
                    except TransitionRefused as exc:
                        refused.append((case_id, trigger, str(exc)))
                    else:
                        moved.append((case_id, trigger))
                    break
    return {"moved": moved, "refused": refused, "conflicts": conflicts}


def _ten_thousand_cases(db: Database) -> list[tuple[int, list[int]]]:
    """PROJECTS copies of the example, filed in one transaction, submitted and evaluated."""
    ensure_agency(db)
    parsed = parse(json.dumps(example()))
    with db.transaction() as tx:
        done = [
            file_document(
                tx, parsed, clock=Clock.on(IMPORT_DAY), source="load", allow_duplicate=True
            )
            for _ in range(PROJECTS)
        ]
        coordinator, staff = users.resolve(tx, COORDINATOR), users.resolve(tx, STAFF)
    apps = [d.application for d in done]
    for trigger, facts, actor, day in (
        ("submit", {}, coordinator, date(2027, 1, 15)),
        ("evaluate", SCORES, staff, date(2027, 2, 10)),
    ):
        with db.transaction() as tx:
            batch = advance_each(
                tx,
                [(a, facts) for a in apps],
                trigger=trigger,
                clock=Clock.on(day),
                staff_email=STAFF_MAIL,
                note="Sound.",
                actor=actor,
            )
        assert not batch.skipped, batch.skipped[:3]
    return [(d.application, d.mobilities) for d in done]


def test_eight_processes_advancing_ten_thousand_cases_meet_only_conflicts_and_keep_every_history():
    url = postgres_url()
    with Database(url) as db:
        projects = _ten_thousand_cases(db)
        shares: list[list[list[tuple]]] = [[] for _ in range(MOVERS)]
        planned: Counter[tuple[int, str]] = Counter()  # how many processes try each move
        for index, (app, mobilities) in enumerate(projects):
            steps = _steps(app, mobilities)
            for mover in _movers_of(index):
                shares[mover].append(steps)
                planned.update((case_id, trigger) for case_id, trigger, *_ in steps)

        outcomes = in_processes([(_move, (url, share)) for share in shares])

        moved = Counter(m for o in outcomes for m in o["moved"])
        refused = [r for o in outcomes for r in o["refused"]]
        # Every planned move made exactly once, by one of the processes that tried it; every
        # other try refused because the case had moved on (after conflicts, read and tried again).
        assert moved == Counter(set(planned))
        assert len(refused) == sum(planned.values()) - len(planned)
        for case_id, trigger, message in refused:
            assert (case_id, trigger) in moved
            assert "is only possible from" in message, message
        with db.transaction(write=False) as tx:
            cases = tx.rows('SELECT id, kind, state, version FROM "case" ORDER BY id')
            history = tx.rows(
                "SELECT case_id, version, trigger, source, dest FROM history ORDER BY case_id, id"
            )
            keys = tx.row("SELECT count(*) AS n, count(DISTINCT key) AS distinct_ FROM outbox")
            loaded = snapshots.load_projects(tx, [app for app, _ in projects])

    # Every case's history is contiguous and replays to its state.
    by_case: dict[int, list[dict[str, Any]]] = {}
    for row in history:
        by_case.setdefault(row["case_id"], []).append(row)
    broken = []
    for case in cases:
        moves = by_case.get(case["id"], [])
        state = None
        for row in moves:
            if row["source"] != state:
                broken.append((case["id"], row))
            state = row["dest"]
        if [r["version"] for r in moves] != list(range(1, case["version"] + 1)):
            broken.append((case["id"], "versions", [r["version"] for r in moves]))
        if state != case["state"]:
            broken.append((case["id"], "state", state, case["state"]))
    assert broken == []
    assert len(cases) == 3 * PROJECTS
    # Each project went through its moves once: approved (its mobilities with it), in
    # preparation, its first mobility prepared and abroad, and so the project abroad.
    assert Counter(c["state"] for c in cases if c["kind"] == "application") == {"abroad": PROJECTS}
    assert Counter(c["state"] for c in cases if c["kind"] == "mobility") == {
        "abroad": PROJECTS,
        "approved": PROJECTS,
    }
    per_case = Counter((h["case_id"], h["trigger"]) for h in history)
    assert set(per_case.values()) == {1}
    staff = Actor(STAFF, "staff")
    behind = []
    for project in loaded:
        decision = rederive(
            project, actor=staff, today=RACE_DAY, now=Clock.on(RACE_DAY).now, staff_email=STAFF_MAIL
        )
        if decision.changes:
            behind.append((project.id, project.state, [c.trigger for c in decision.changes]))
    assert behind == []
    assert keys["n"] == keys["distinct_"]
