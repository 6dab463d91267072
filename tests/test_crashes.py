"""The sweep and the dispatcher killed (SIGKILL) mid-run, again and again, then run to the end:
every due reminder exists exactly once and every mail reached the SMTP server.

Both run as real `vetpro` processes on a real SQLite store holding a few hundred projects (the
dispatcher on PostgreSQL too), and the dispatcher sends to the project's real aiosmtpd sink. A
kill is never timed by the clock:
- the sweep is killed once the store shows it at work (its lease taken, and so many rows
  written), either while the test holds the store's write lock (so it cannot have finished), or
  the moment it is seen inside a write transaction (so that transaction dies half written);
- the dispatcher is killed by the sink itself, while it holds the N-th message of the run and
  before it answers it: the sender has certainly sent that message and not recorded it.
What is guaranteed (notifications/delivery.py) is at-least-once delivery with a stable
Message-ID: the only copies are of messages the server accepted in the instant before the
sender died, at most one per SMTP connection in flight. A receiver that drops repeated
Message-IDs sees each mail exactly once. Seeds are fixed; nothing asserts a duration.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import POSTGRES_URL, SCHEMA, fresh_sqlite, postgres_url
from factories import COORDINATOR, SCORES, STAFF, STAFF_MAIL, document, ensure_agency
from vetpro_workflow import sweeps
from vetpro_workflow.cases import advance_each
from vetpro_workflow.clock import Clock
from vetpro_workflow.config import get_settings
from vetpro_workflow.dev.sink import Received, Sink
from vetpro_workflow.intake.documents import parse
from vetpro_workflow.intake.filing import file_document
from vetpro_workflow.notifications.letters import message_id
from vetpro_workflow.states.actors import Actor
from vetpro_workflow.store.database import Database

VETPRO = Path(sys.executable).with_name("vetpro")
PROJECTS = 300
LAST_SWEPT = date(2027, 10, 1)  # the store's last recorded sweep
DAY = date(2027, 10, 31)  # the day swept by the killed sweeps: a month of work to catch up
KILLS = 20
REPEATED = 4  # kills in a row of the same sweep, twice
LANES = 4  # SMTP connections per sender
WAIT = 300.0  # seconds: a generous bound on waiting for a condition, never a delay
MAIL_FROM = get_settings(environ={}).mail_from


# --- a store with a month of work ---------------------------------------------------------------


def _shifted(p: int) -> dict[str, Any]:
    """The example with its stays moved by up to 18 days, so that their dates spread."""
    shift = timedelta(days=p % 19)
    first, second = date(2027, 9, 13) + shift, date(2027, 10, 25) + shift
    return document(
        **{
            "project.title": f"Welding simulators {p}",
            "mobilities.0.start_date": first.isoformat(),
            "mobilities.0.end_date": (first + timedelta(days=18)).isoformat(),
            "mobilities.1.start_date": second.isoformat(),
            "mobilities.1.end_date": (second + timedelta(days=11)).isoformat(),
        }
    )


def _fill(url: str) -> None:
    """PROJECTS projects, filed and walked in bulk, then swept on LAST_SWEPT.

    Three in four are under way, their first participant abroad until a day of October (the
    sweep returns them, asks for the participant report and reminds of the second's training
    agreement); one in four waits for changes NA staff asked for by a day of October.
    """
    with Database(url) as db:
        ensure_agency(db)
        with db.transaction() as tx:
            done = [
                file_document(
                    tx,
                    parse(json.dumps(_shifted(p))),
                    clock=Clock.on(date(2026, 12, 1)),
                    source=f"bulk-{p}.json",
                )
                for p in range(PROJECTS)
            ]
            ours = tx.scalar(
                'SELECT organisation_id FROM "user" WHERE email = :e', {"e": COORDINATOR}
            )
        coordinator, staff = Actor(COORDINATOR, "coordinator", ours), Actor(STAFF, "staff")

        def step(items: list[tuple[int, dict[str, Any]]], trigger: str, day: date, actor: Actor):
            with db.transaction() as tx:
                batch = advance_each(
                    tx,
                    items,
                    trigger=trigger,
                    clock=Clock.on(day),
                    staff_email=STAFF_MAIL,
                    note="Done in bulk by the test.",
                    actor=actor,
                )
            assert not batch.skipped, batch.skipped[:3]

        apps = [d.application for d in done]
        under_way = [d for p, d in enumerate(done) if p % 4]
        waiting = [(p, d) for p, d in enumerate(done) if not p % 4]
        step([(a, {}) for a in apps], "submit", date(2027, 1, 15), coordinator)
        resubmit = [
            (d.application, {"resubmit_by": f"2027-10-{10 + p % 19:02d}"}) for p, d in waiting
        ]
        step(resubmit, "request_changes", date(2027, 1, 20), staff)
        step([(d.application, SCORES) for d in under_way], "evaluate", date(2027, 2, 10), staff)
        step([(d.application, {}) for d in under_way], "approve", date(2027, 2, 20), staff)
        signed = {"grant_agreement_signed_on": "2027-03-10"}
        step(
            [(d.application, signed) for d in under_way],
            "start_preparation",
            date(2027, 3, 10),
            coordinator,
        )
        agreed = {"agreement_signed_on": "2027-05-10"}
        step(
            [(d.mobilities[0], agreed) for d in under_way],
            "start_preparation",
            date(2027, 5, 10),
            coordinator,
        )
        with db.transaction(write=False) as tx:
            starts = tx.rows(
                "SELECT id, start_date FROM mobility WHERE id IN (:ids)",
                {"ids": [d.mobilities[0] for d in under_way]},
            )
        by_day: dict[date, list[int]] = {}
        for row in starts:
            by_day.setdefault(row["start_date"], []).append(row["id"])
        for day, ids in sorted(by_day.items()):
            gone = {"departed_on": day.isoformat(), "preparation_done": "true"}
            step([(m, gone) for m in ids], "depart", day, coordinator)
        report = sweeps.sweep(db, clock=Clock.on(LAST_SWEPT), staff_email=STAFF_MAIL)
        assert report.busy is None


@pytest.fixture(scope="module")
def busy_store(tmp_path_factory) -> Path:
    """The file of a store with a month of work for the sweep and a thousand mails to send."""
    folder = tmp_path_factory.mktemp("busy")
    _fill(fresh_sqlite(folder))
    return folder / "vetpro.db"


def copy_of(store: Path, folder: Path) -> Path:
    """A copy of a store (through SQLite's backup, so whatever the WAL holds comes along)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "vetpro.db"
    with sqlite3.connect(store) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    source.close()
    copy.close()
    return target


def url_of(store: Path | str) -> str:
    """A store's URL: a SQLite file's, or the URL itself (PostgreSQL)."""
    return store if isinstance(store, str) else f"sqlite:///{store}"


# --- real processes ------------------------------------------------------------------------------


def environment(store: Path | str, **settings: Any) -> dict[str, str]:
    """The whole environment of a `vetpro` process on a store (no other VETPRO_* or Prefect)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VETPRO_", "PREFECT_API"))}
    return env | {
        "VETPRO_DATABASE_URL": url_of(store),
        "VETPRO_STAFF_EMAIL": STAFF_MAIL,
        **{f"VETPRO_{k.upper()}": str(v) for k, v in settings.items()},
    }


def start(store: Path | str, *args: str, **settings: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(VETPRO), *args],
        env=environment(store, **settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(child: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    out, err = child.communicate(timeout=WAIT)
    return child.returncode, out.decode(), err.decode()


def run_to_the_end(store: Path | str, *args: str, **settings: Any) -> dict[str, Any]:
    code, out, err = finish(start(store, *args, "--json", **settings))
    assert code == 0, err
    assert "Traceback" not in err
    return json.loads(out)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll a condition until it holds (the bound is generous; the condition decides)."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.002)


# --- what a store holds --------------------------------------------------------------------------


def read(store: Path | str, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with Database(url_of(store)) as db, db.transaction(write=False) as tx:
        return tx.rows(sql, params or {})


class Probe:
    """A connection of the test's own to a store, to watch a process at work and stop it."""

    def __init__(self, store: Path) -> None:
        # Reads wait (a store a killed process left behind may first need recovering).
        self.raw = sqlite3.connect(store, timeout=WAIT, isolation_level=None)

    def close(self) -> None:
        self.raw.close()

    def progress(self) -> int:
        """Rows the sweep writes: history and outbox."""
        row = self.raw.execute(
            "SELECT (SELECT count(*) FROM outbox) + (SELECT count(*) FROM history)"
        ).fetchone()
        return int(row[0])

    def lease_holder(self) -> str | None:
        row = self.raw.execute("SELECT holder FROM lease WHERE name = 'sweep'").fetchone()
        return row[0] if row else None

    def someone_writes(self) -> bool:
        """Whether another connection holds the store's write lock (is inside a write)."""
        self.raw.execute("PRAGMA busy_timeout = 0")
        try:
            self.raw.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return True
        finally:
            self.raw.execute(f"PRAGMA busy_timeout = {int(WAIT * 1000)}")
        self.raw.execute("ROLLBACK")
        return False

    def hold_the_write_lock(self) -> None:
        """Wait for the write lock and keep it (until `let_go`)."""
        self.raw.execute("BEGIN IMMEDIATE")

    def let_go(self) -> None:
        self.raw.execute("ROLLBACK")


def progress(store: Path) -> int:
    probe = Probe(store)
    try:
        return probe.progress()
    finally:
        probe.close()


def outcome(store: Path) -> dict[str, list[Any]]:
    """What a sweep leaves behind, without ids and real times: the cases, their facts and
    history, the outbox and the leases."""

    def rows(sql: str, drop: tuple[str, ...] = ()) -> list[Any]:
        return sorted(
            json.dumps({k: v for k, v in r.items() if k not in drop}, sort_keys=True, default=str)
            for r in read(store, sql)
        )

    return {
        "case": rows('SELECT * FROM "case"'),
        "application": rows("SELECT * FROM application"),
        "mobility": rows("SELECT * FROM mobility"),
        "history": rows("SELECT * FROM history", drop=("id",)),
        "outbox": rows(
            "SELECT * FROM outbox",
            drop=("id", "created_at", "next_attempt_at", "claimed_by", "claimed_until", "sent_at"),
        ),
        "lease": rows("SELECT * FROM lease"),
    }


_REMINDER = re.compile(r"case-(\d+):([a-z_]+):(\d{4}-\d{2}-\d{2}):([+-]\d+)(:cc)?$")


def reminders(store: Path) -> Counter[tuple[str, ...]]:
    """How many outbox rows each reminder (case, rule, due date, offset, copy) has."""
    found: Counter[tuple[str, ...]] = Counter()
    for row in read(store, "SELECT key FROM outbox"):
        if match := _REMINDER.match(row["key"]):
            found[match.groups(default="")] += 1
    return found


# --- the sweep -----------------------------------------------------------------------------------


def sweep_killed(store: Path, threshold: int, frozen: bool, base: int) -> bool:
    """Start a sweep of DAY and kill it once it has written `threshold` rows (beyond `base`):
    `frozen`, between two of its transactions, else inside the next one; whether it died of
    the kill (False: it had finished before the kill could land)."""
    probe = Probe(store)
    try:
        child = start(store, "sweep", "--today", DAY.isoformat(), "--json")
        me = f"{socket.gethostname()}:{child.pid}"
        wait_until(
            lambda: (
                child.poll() is not None
                or (probe.lease_holder() == me and probe.progress() - base >= threshold)
            ),
            f"the sweep wrote {threshold} rows",
        )
        if frozen:
            # With the write lock held here, the sweep cannot commit anything more: it is
            # killed between two of its transactions, however slow this machine is.
            probe.hold_the_write_lock()
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
            code, _, err = finish(child)
            probe.let_go()
        else:
            # Killed the moment it is seen writing: its transaction dies half written.
            wait_until(
                lambda: child.poll() is not None or probe.someone_writes(), "the sweep writes"
            )
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
            code, _, err = finish(child)
    finally:
        probe.close()
    assert code in (-signal.SIGKILL, 0), err
    assert "Traceback" not in err
    return code == -signal.SIGKILL


def test_a_sweep_killed_twenty_times_then_run_to_the_end_leaves_what_one_uninterrupted_sweep_does(
    busy_store, tmp_path
):
    reference = copy_of(busy_store, tmp_path / "reference")
    base = progress(reference)
    uninterrupted = run_to_the_end(reference, "sweep", "--today", DAY.isoformat())
    assert uninterrupted["busy"] is None
    total = progress(reference) - base
    expected = outcome(reference)
    rng = random.Random(20271031)
    # Twelve sweeps killed once each, at moments spread over the whole run; then two sweeps
    # killed four times over, each time a little further on (the last times with nothing left
    # to do but to record the day).
    trials = [1] * (KILLS - 2 * REPEATED) + [REPEATED, REPEATED]
    kills = 0
    for trial, times in enumerate(trials):
        store = copy_of(busy_store, tmp_path / f"trial-{trial}")
        killed, attempts = 0, 0
        while killed < times:
            attempts += 1
            assert attempts <= 10 * times, "the kills did not land mid-run"
            done = progress(store) - base
            # Between two transactions (frozen) up to near the end, or inside the transaction
            # that follows what was seen written; now and then as soon as the sweep starts.
            frozen = done == total or rng.random() < 0.5
            share = 0.0 if rng.random() < 0.25 else rng.uniform(0, 0.9 if frozen else 0.6)
            threshold = done + int((total - done) * share)
            if sweep_killed(store, threshold, frozen, base):
                killed += 1
            elif times == 1:  # it finished first (this machine is busy): start afresh
                store = copy_of(busy_store, tmp_path / f"trial-{trial}-{attempts}")
        kills += killed
        finished = run_to_the_end(store, "sweep", "--today", DAY.isoformat())

        assert finished["busy"] is None  # the killed sweeps' lease was taken over at once
        assert outcome(store) == expected, f"trial {trial}"
        nothing_left = run_to_the_end(
            store,
            "sweep",
            "--today",
            DAY.isoformat(),
            "--since",
            LAST_SWEPT.isoformat(),
            "--dry-run",
        )
        assert (nothing_left["transitions"], nothing_left["reminders"]) == (0, 0)

    assert kills == KILLS
    # Each due reminder (case, rule, due date, offset) is there once, and there are plenty.
    due = reminders(reference)
    assert set(due.values()) == {1}
    assert uninterrupted["reminders"] > 300 and uninterrupted["transitions"] > 150
    assert {rule for (_, rule, *_) in due} >= {
        "participant_report",
        "training_agreement",
        "resubmission",
    }
    # Each mobility the sweep returned asks once for its report and tells its return once.
    returned = read(
        reference,
        "SELECT case_id FROM history WHERE trigger = 'return_home' AND at = :at",
        {"at": Clock.on(DAY).now},
    )
    assert len(returned) == uninterrupted["transitions"]
    mail = Counter(
        (r["case_id"], r["kind"])
        for r in read(
            reference,
            "SELECT case_id, kind FROM outbox WHERE case_id IN (:ids)",
            {"ids": [r["case_id"] for r in returned]},
        )
    )
    for r in returned:
        assert mail[(r["case_id"], "participant_report_request")] == 1
        assert mail[(r["case_id"], "return_recorded")] == 1


# --- the sweep on PostgreSQL ----------------------------------------------------------------------

CHILD_APP = "vetpro-crash-test"  # the application_name of the killed processes' connections
PG_KILLS = 10


def pg_copy(name: str) -> str:
    """A copy of this run's PostgreSQL store in a schema of its own; its URL, on which the
    processes' connections carry CHILD_APP."""
    target = f"{SCHEMA}_{name}"
    with Database(POSTGRES_URL) as db, db.transaction() as tx:
        tx.execute(f"DROP SCHEMA IF EXISTS {target} CASCADE")
        tx.execute(f"CREATE SCHEMA {target}")
        for table in tx.scalars(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = :s AND table_type = 'BASE TABLE'",
            {"s": SCHEMA},
        ):
            tx.execute(f'CREATE TABLE {target}."{table}" (LIKE {SCHEMA}."{table}" INCLUDING ALL)')
            tx.execute(f'INSERT INTO {target}."{table}" SELECT * FROM {SCHEMA}."{table}"')
    return f"{POSTGRES_URL}?options=-csearch_path%3D{target}&application_name={CHILD_APP}"


def drop_copies() -> None:
    with Database(POSTGRES_URL) as db, db.transaction() as tx:
        for schema in tx.scalars(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE :p",
            {"p": f"{SCHEMA}\\_%"},
        ):
            tx.execute(f"DROP SCHEMA {schema} CASCADE")


def pg_progress(db: Database) -> tuple[int, str | None]:
    """Rows the sweep wrote (history and outbox), and who holds the sweep's lease."""
    with db.transaction(write=False) as tx:
        written = tx.scalar("SELECT (SELECT count(*) FROM outbox) + (SELECT count(*) FROM history)")
        holder = tx.scalar("SELECT holder FROM lease WHERE name = 'sweep'")
    return int(written), holder


def pg_writing(db: Database) -> bool:
    """Whether a killed-to-be process is inside a transaction that has written (has an xid)."""
    with db.transaction(write=False) as tx:
        return bool(
            tx.scalar(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = :app AND backend_xid IS NOT NULL",
                {"app": CHILD_APP},
            )
        )


def pg_sweep_killed(url: str, threshold: int, base: int, mid_write: bool) -> bool:
    """Start a sweep of DAY and kill it once it has written `threshold` rows (beyond `base`),
    then, with `mid_write`, the moment it is seen inside a write; whether the kill landed."""
    probe = Database(url.replace(CHILD_APP, "vetpro-crash-probe"), pool_size=1)
    try:
        child = start(url, "sweep", "--today", DAY.isoformat(), "--json")
        me = f"{socket.gethostname()}:{child.pid}"

        def at_work() -> bool:
            written, holder = pg_progress(probe)
            return holder == me and written - base >= threshold

        wait_until(lambda: child.poll() is not None or at_work(), f"{threshold} rows written")
        if mid_write:
            wait_until(lambda: child.poll() is not None or pg_writing(probe), "the sweep writes")
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
        code, _, err = finish(child)
    finally:
        probe.close()
    assert code in (-signal.SIGKILL, 0), err
    assert "Traceback" not in err
    return code == -signal.SIGKILL


def test_a_sweep_killed_on_postgresql_then_run_to_the_end_leaves_what_one_uninterrupted_does():
    _fill(postgres_url())
    try:
        reference = pg_copy("reference")
        with Database(reference) as db:
            base, _ = pg_progress(db)
        uninterrupted = run_to_the_end(reference, "sweep", "--today", DAY.isoformat())
        assert uninterrupted["busy"] is None and uninterrupted["reminders"] > 300
        with Database(reference) as db:
            total = pg_progress(db)[0] - base
        expected = outcome(reference)
        rng = random.Random(20271101)
        kills = 0
        for trial in range(PG_KILLS // 2):  # two kills a trial, the second further on
            store = pg_copy(f"trial{trial}")
            done = 0
            for _ in range(2):
                threshold = done + int((total - done) * rng.uniform(0, 0.8))
                kills += pg_sweep_killed(store, threshold, base, mid_write=rng.random() < 0.5)
                with Database(store) as db:
                    done = pg_progress(db)[0] - base
            finished = run_to_the_end(store, "sweep", "--today", DAY.isoformat())
            assert finished["busy"] is None  # the killed sweeps' lease was taken over at once
            assert outcome(store) == expected, f"trial {trial}"
        assert kills >= PG_KILLS // 2  # most land mid-run; a sweep that finished first is fine
        assert set(reminders(reference).values()) == {1}
    finally:
        drop_copies()


# --- the dispatcher ------------------------------------------------------------------------------


class Killer:
    """Kills the sender process when the sink has stored the message that makes `at` in all,
    before the sink answers it; waits until the process is gone, so the answer can never reach
    it. What it killed on is kept: (pid, Message-ID)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.child: subprocess.Popen[bytes] | None = None
        self.at: int | None = None
        self.fired: list[tuple[int, str]] = []

    def arm(self, child: subprocess.Popen[bytes], at: int) -> None:
        with self._lock:
            self.child, self.at = child, at

    def __call__(self, received: Received) -> None:
        with self._lock:
            self.count += 1
            if self.child is None or self.at is None or self.count < self.at:
                return
            child, self.child, self.at = self.child, None, None
            self.fired.append((child.pid, str(received.message["Message-ID"])))
            os.kill(child.pid, signal.SIGKILL)
        wait_until(lambda: _gone(child.pid), f"process {child.pid} died")


def _gone(pid: int) -> bool:
    """Whether a process has stopped running (a zombie no longer runs)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_dispatcher_killed_twenty_times_mid_run_then_run_to_the_end_delivers_every_mail(
    backend, busy_store, tmp_path
):
    store: Path | str
    if backend == "sqlite":
        store = copy_of(busy_store, tmp_path / "mail")
    else:  # the same month of work filed on PostgreSQL, where the claims use SKIP LOCKED
        store = postgres_url()
        _fill(store)
    rows = read(store, "SELECT id, key, created_at, recipient FROM outbox ORDER BY id")
    assert len(rows) > 1000
    message_of = {r["id"]: message_id(r, MAIL_FROM) for r in rows}
    rng = random.Random(42)
    killer = Killer()
    in_flight: list[set[str]] = []  # per kill: the messages its sender held and had not settled
    with Sink(on_message=killer) as sink:
        settings = {
            "smtp_host": "127.0.0.1",
            "smtp_port": sink.port,
            "smtp_tls": "none",
            "mail_concurrency": LANES,
            "mail_batch_size": 50,
        }
        for kill in range(KILLS):
            pending = len(read(store, "SELECT id FROM outbox WHERE status = 'pending'"))
            more = rng.randint(5, 40)
            assert pending > more  # the kill lands before the run could finish
            command = ("outbox", "send") if kill % 2 else ("dispatch",)
            child = start(store, *command, "--json", **settings)
            killer.arm(child, at=killer.count + more)
            code, _, err = finish(child)
            assert code == -signal.SIGKILL, err
            assert killer.fired[-1][0] == child.pid
            held = read(
                store,
                "SELECT id FROM outbox WHERE status = 'pending' AND claimed_by LIKE :me",
                {"me": f"{socket.gethostname()}:{child.pid}:%"},
            )
            in_flight.append({message_of[r["id"]] for r in held})
        finished = run_to_the_end(store, "dispatch", **settings)
        arrived = Counter(str(m.message["Message-ID"]) for m in sink.messages)

    after = read(store, "SELECT id, status, attempts FROM outbox ORDER BY id")
    assert {r["status"] for r in after} == {"sent"}
    assert (finished["pending"], finished["undeliverable"], finished["retrying"]) == (0, 0, 0)
    # Counting distinct Message-IDs (what a receiver does with a copy), each mail arrived once.
    assert set(arrived) == set(message_of.values())
    assert len(arrived) == len(rows)
    # The copies: only of messages a killed sender held unsettled, at most one per connection
    # per kill; the message the sink held when it killed the sender is always one of them.
    copies = arrived - Counter(set(arrived))
    for mid, extra in copies.items():
        assert extra <= sum(mid in held for held in in_flight), mid
    for (_, killed_on), held in zip(killer.fired, in_flight, strict=True):
        assert killed_on in held
        assert arrived[killed_on] >= 2
    assert sum(copies.values()) <= KILLS * LANES
    # The copies are the same message: the same recipients and subject.
    first_copy: dict[str, tuple[Any, ...]] = {}
    for m in sink.messages:
        seen = (m.recipients, str(m.message["Subject"]), str(m.message["To"]))
        assert first_copy.setdefault(str(m.message["Message-ID"]), seen) == seen
