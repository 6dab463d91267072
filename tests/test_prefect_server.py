"""The served deployments on a real Prefect server: `prefect server start` and `vetpro serve`.

One Prefect server for this module (its own SQLite file in a temporary folder, UI and analytics
off), a store made with the `vetpro` commands as an agency makes it, a real SMTP sink, and
`vetpro serve --sweep-cron "* * * * *" --dispatch-every 5` run from a folder that is not the
project, so that every flow run imports the installed package by module path (issue 7, point
10; issue 11, "Prefect for real"). deploy/ and the README's "Deploying" section do the same.

The served processes act on a fixed business day (VETPRO_TODAY, the day the store was filled),
so that the sweeps the schedule starts every minute sweep the same day whatever the machine's
date; the runs a test triggers name their own later days. Mail times are real time regardless.

Nothing waits a fixed time: every wait is for a condition, with generous limits, since a loaded
two-core machine takes up to a minute to start the server and tens of seconds per flow run.
The fixture stops `vetpro serve` with SIGTERM and the server with SIGINT, and checks that no
process it started (or that they started) is left.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from factories import COORDINATOR, IMPORT_DAY, STAFF, SUBMIT_DAY, import_doc, snapshot, state_of
from vetpro_workflow.clock import real_now
from vetpro_workflow.config import Settings
from vetpro_workflow.dev.sink import Sink
from vetpro_workflow.notifications.letters import message_id
from vetpro_workflow.store import leases
from vetpro_workflow.store.database import Database

BIN = Path(sys.prefix) / "bin"  # the project's virtual environment
PREFECT = str(BIN / "prefect")
VETPRO = str(BIN / "vetpro")

SWEEP = "nightly/daily-sweep"
DISPATCH = "dispatch-notifications/dispatch-every-minute"
ADVANCE = "advance-case/advance-case"

SERVER_START = 300  # seconds: 17 on an idle machine, about a minute on a loaded one
RUN_LIMIT = 600  # seconds from triggering a flow run to its final state
STOP_LIMIT = 120  # seconds for a clean stop before SIGKILL
ELSEWHERE = "elsewhere:1"  # a sweep on another host: its lease is never taken over as dead

# The days the triggered sweeps sweep; the example's call closes on 2027-02-01 and reminds a
# draft 30, 7 and 1 days before (2027-01-02, 2027-01-25, 2027-01-31).
BACK_TO_BACK = date(2027, 1, 18)
WHILE_LEASED = date(2027, 1, 19)
LAST_SWEPT = date(2027, 1, 20)
CAUGHT_UP = date(2027, 1, 27)


# --- processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(log: Path, size: int = 4000) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return f"\n--- {log} (end) ---\n{text[-size:]}"


@dataclass
class Process:
    """A long-running child in a session of its own, its output in a log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, name: str, args: list[str], *, cwd: Path, env: dict[str, str]) -> Process:
        log = cwd / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                args,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(name, proc, log)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"{self.name} exited with {self.proc.returncode}{tail(self.log)}")

    def stop(self, sig: signal.Signals) -> int:
        """Stop with `sig`, or SIGKILL the whole session after STOP_LIMIT; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(STOP_LIMIT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


def wait_for(what: str, check: Callable[[], Any], *, limit: float, alive: list[Process]) -> Any:
    """Poll `check` until it returns something true; fail when a process died or after limit."""
    give_up = time.monotonic() + limit
    while True:
        found = check()
        if found:
            return found
        for process in alive:
            process.check_alive()
        if time.monotonic() > give_up:
            pytest.fail(f"gave up after {limit:g} s waiting for {what}")
        time.sleep(0.5)


def marked(marker: str) -> list[int]:
    """The processes whose environment holds the marker: ours, and whatever they started."""
    needle = marker.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:  # gone meanwhile, or not ours to read
                continue
            if needle in environ.split(b"\0"):
                found.append(int(entry.name))
    return found


def quiet_env(**extra: str) -> dict[str, str]:
    """This environment without any Prefect or vetpro setting of the person running the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "VETPRO_"))}
    return env | {"DO_NOT_TRACK": "1"} | extra


# --- the served deployments --------------------------------------------------------------


@dataclass
class Served:
    api: str  # PREFECT_API_URL of the server
    db: Database  # the store `vetpro serve` works on
    sink: Sink
    settings: Settings  # the served processes' settings (mail_from, staff_email)
    application: int  # the example application, submitted by the first test
    draft: int  # a copy of it that stays a draft: the call deadline reminds it
    processes: list[Process] = field(default_factory=list)

    def run(self, deployment: str, *, at: datetime | None = None, **parameters: Any) -> Any:
        """Trigger a run of a deployment (due now, or at a given time); the flow run, at once.

        On SQLite the server refuses to create a run ("database is locked", answered 503) when
        another of its writes commits meanwhile, which a busy machine makes likely. The client
        would back off 2, 4, 8, 16 and 32 s; this asks again at once instead (with the same
        idempotency key, so that a run is never created twice) until the limit.
        """
        import prefect.settings as ps
        from prefect.deployments import run_deployment
        from prefect.exceptions import PrefectHTTPStatusError

        key = uuid.uuid4().hex

        def created() -> Any:
            try:
                with ps.temporary_settings(updates={ps.PREFECT_CLIENT_MAX_RETRIES: 0}):
                    return run_deployment(
                        deployment,
                        parameters=parameters,
                        scheduled_time=at,
                        timeout=0,
                        idempotency_key=key,
                    )
            except PrefectHTTPStatusError as exc:
                if exc.response.status_code != 503:
                    raise
                return None

        return wait_for(f"a run of {deployment}", created, limit=RUN_LIMIT, alive=self.processes)

    def finished(self, run_id: Any) -> Any:
        """The flow run once it reached a final state."""
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:

            def final() -> Any:
                run = client.read_flow_run(run_id)
                return run if run.state is not None and run.state.is_final() else None

            return wait_for(f"flow run {run_id}", final, limit=RUN_LIMIT, alive=self.processes)

    def completed(self, deployment: str, **parameters: Any) -> Any:
        """Trigger a run and wait for it; it must end COMPLETED."""
        run = self.finished(self.run(deployment, **parameters).id)
        serve_log = next(p.log for p in self.processes if p.name == "vetpro-serve")
        assert run.state.is_completed(), f"{run.name}: {run.state}{tail(serve_log)}"
        return run

    def runs(self, deployment: str) -> list[Any]:
        """Every flow run of a deployment so far."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        with get_client(sync_client=True) as client:
            found = client.read_deployment_by_name(deployment)
            return client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id]))
            )

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.db.transaction(write=False) as tx:
            return tx.rows(sql, params)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from vetpro_workflow.flows import quiet_prefect

    tmp = tmp_path_factory.mktemp("prefect")
    before = set(os.environ)
    marker = f"VETPRO_TEST_PREFECT_SERVER={uuid.uuid4().hex}"
    base = quiet_env(**dict([marker.split("=")]))
    results = tmp / "results"
    processes: list[Process] = []
    sink = Sink().start()
    try:
        # 1. The Prefect server, on its own database. It takes a while: fill the store meanwhile.
        port = free_port()
        api = f"http://127.0.0.1:{port}/api"
        (tmp / "server").mkdir()
        server_env = base | {
            "PREFECT_HOME": str(tmp / "server" / "home"),
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp}/server/prefect.db",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
            # The scheduler makes the runs of a new deployment within a second, a few at a time;
            # a run waiting for the concurrency slot asks again after a second, not 30.
            "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "1",
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "10",
            "PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS": "5",
            "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "1",
            # Not needed here (task runs, events, automations, marking runs late or workers
            # offline): fewer writes to the server's SQLite file and less work for a busy machine.
            "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_EVENT_LOGGER_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
            "PREFECT_API_LOG_RETRYABLE_ERRORS": "true",
        }
        server = Process.start(
            "prefect-server",
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp / "server",
            env=server_env,
        )
        processes.append(server)

        # 2. The store, as an agency fills it: the call, its staff and the example application
        #    (twice: the second copy stays a draft for the reminders).
        store = tmp / "store"
        store.mkdir()
        url = f"sqlite:///{store / 'vetpro.db'}"
        vetpro_env = base | {
            "VETPRO_DATABASE_URL": url,
            "VETPRO_SMTP_PORT": str(sink.port),
            "VETPRO_TODAY": IMPORT_DAY.isoformat(),
        }

        def vetpro(*args: str) -> str:
            done = subprocess.run(
                [VETPRO, *args],
                cwd=store,
                env=vetpro_env,
                capture_output=True,
                text=True,
                timeout=RUN_LIMIT,
            )
            assert done.returncode == 0, f"vetpro {' '.join(args)}: {done.stderr}"
            return done.stdout

        vetpro("init")
        vetpro("user", "add", STAFF, "--role", "staff")
        (store / "call.json").write_text(vetpro("example", "call"))
        vetpro("call", "add", "call.json", "--actor", STAFF)
        (store / "a.json").write_text(vetpro("example", "application"))
        application = json.loads(vetpro("import", "a.json", "--json"))["application"]
        draft = json.loads(vetpro("import", "a.json", "--allow-duplicate", "--json"))["application"]

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{api}/health", timeout=5) as answer:
                    return bool(answer.status == 200)
            except OSError:
                return False

        wait_for("the Prefect server to answer", healthy, limit=SERVER_START, alive=processes)

        # 3. `vetpro serve`, from a folder that is not the project.
        elsewhere = tmp / "elsewhere"
        elsewhere.mkdir()
        serve_env = vetpro_env | {
            "PREFECT_API_URL": api,
            "PREFECT_HOME": str(elsewhere / "prefect-home"),
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            # Flow results kept where this process reads them (the sweep's report).
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
            "PREFECT_LOCAL_STORAGE_PATH": str(results),
        }
        serve = Process.start(
            "vetpro-serve",
            [VETPRO, "serve", "--sweep-cron", "* * * * *", "--dispatch-every", "5"],
            cwd=elsewhere,
            env=serve_env,
        )
        processes.append(serve)

        # This process's Prefect client: quiet, its state in the temporary folder, and the
        # server named by a setting (prefect reads the environment once, when imported).
        quiet_prefect(str(tmp / "client-home"))
        import prefect.settings as ps
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound

        with ps.temporary_settings(
            updates={ps.PREFECT_API_URL: api, ps.PREFECT_LOCAL_STORAGE_PATH: results}
        ):
            with get_client(sync_client=True) as client:

                def registered() -> bool:
                    try:
                        for name in (SWEEP, DISPATCH, ADVANCE):
                            client.read_deployment_by_name(name)
                    except ObjectNotFound:  # not yet
                        return False
                    return True

                wait_for("the served deployments", registered, limit=RUN_LIMIT, alive=processes)

            with Database(url) as db:
                yield Served(
                    api=api,
                    db=db,
                    sink=sink,
                    settings=Settings(database_url=url),
                    application=application,
                    draft=draft,
                    processes=processes,
                )
    finally:
        # SIGTERM: the runner cancels the runs in flight, waits for them and exits 0;
        # SIGINT: the server says "Server stopped!" and exits 0. Then nothing may be left.
        codes = {p.name: p.stop(signal.SIGTERM if p.name == "vetpro-serve" else signal.SIGINT)
                 for p in reversed(processes)}  # fmt: skip
        sink.stop()
        left = marked(marker)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        for name in set(os.environ) - before:  # what quiet_prefect set for this process
            del os.environ[name]
    serve_log = (tmp / "elsewhere" / "vetpro-serve.log").read_text(errors="replace")
    assert left == [], f"processes left behind: {left}"
    assert codes == {"vetpro-serve": 0, "prefect-server": 0}, codes
    assert "Traceback" not in serve_log, serve_log[-4000:]


def states_of(run_id: Any) -> list[str]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return [s.name for s in client.read_flow_run_states(run_id)]


def sweep_report(run: Any) -> dict[str, Any]:
    """The sweep's report in a daily-sweep run's result (kept by the served process)."""
    result = run.state.result(raise_on_failure=False)
    assert isinstance(result, dict), result
    return dict(result["sweep"])


def reminder_rows(served: Served, case_id: int) -> list[str]:
    """The keys of the call deadline reminders of a case."""
    rows = served.rows(
        "SELECT key FROM outbox WHERE case_id = :id AND kind = 'call_deadline_reminder'",
        id=case_id,
    )
    return sorted(r["key"] for r in rows)


def never_overlap(spans: list[tuple[Any, Any]]) -> None:
    """Each (start, end) begins at or after the end of the one before it."""
    spans = sorted(spans)
    for (_, end), (start, _) in pairwise(spans):
        assert start >= end, spans


# --- the tests, in this order: each works on the store the ones before left ------------------


def test_vetpro_serve_registers_its_deployments_by_module_path_with_schedules_and_limits(served):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        sweep, dispatch, advance = (
            client.read_deployment_by_name(name) for name in (SWEEP, DISPATCH, ADVANCE)
        )
    assert (sweep.entrypoint, dispatch.entrypoint, advance.entrypoint) == (
        "vetpro_workflow.flows.jobs.nightly",
        "vetpro_workflow.flows.jobs.dispatch_notifications",
        "vetpro_workflow.flows.jobs.advance_case",
    )
    assert [(s.schedule.cron, s.schedule.timezone) for s in sweep.schedules] == [
        ("* * * * *", "Europe/Brussels")
    ]
    assert [s.schedule.interval for s in dispatch.schedules] == [timedelta(seconds=5)]
    assert advance.schedules == []
    for limited in (sweep, dispatch):
        assert limited.global_concurrency_limit.limit == 1
        assert limited.concurrency_options.collision_strategy.value == "ENQUEUE"
    assert not any(d.paused for d in (sweep, dispatch, advance))


def test_a_triggered_run_of_the_served_advance_case_deployment_completes_and_moves_the_case(
    served,
):
    assert state_of(served.db, served.application) == "drafted"

    run = served.completed(
        ADVANCE,
        case_id=served.application,
        trigger="submit",
        actor=COORDINATOR,
        today=SUBMIT_DAY.isoformat(),  # before the call's deadline, 2027-02-01
    )

    assert state_of(served.db, served.application) == "submitted"
    moves = served.rows(
        "SELECT trigger, source, dest, actor FROM history WHERE case_id = :id ORDER BY version",
        id=served.application,
    )
    assert [(m["trigger"], m["source"], m["dest"], m["actor"]) for m in moves][-1:] == [
        ("submit", "drafted", "submitted", COORDINATOR)
    ]
    changes = run.state.result(raise_on_failure=False)
    assert [(c["case_id"], c["trigger"], c["dest"]) for c in changes][:1] == [
        (served.application, "submit", "submitted")
    ]
    # The move queued its mail (the coordinator's receipt); the last test sees it delivered.
    assert served.rows("SELECT kind FROM outbox WHERE case_id = :id", id=served.application) == [
        {"kind": "receipt"}
    ]


def test_two_sweeps_triggered_back_to_back_never_run_at_the_same_time(served):
    from prefect.client.orchestration import get_client
    from prefect.states import Scheduled

    # Two runs made due at the same moment: made for later, then both moved to now (so that a
    # slow answer from the server while making the second cannot let the first finish first).
    later = datetime.now(UTC) + timedelta(hours=1)
    first = served.run(SWEEP, at=later, today=BACK_TO_BACK.isoformat())
    second = served.run(SWEEP, at=later, today=BACK_TO_BACK.isoformat())
    with get_client(sync_client=True) as client:
        now = datetime.now(UTC)
        for run in (first, second):
            client.set_flow_run_state(run.id, Scheduled(scheduled_time=now), force=True)

        def both_final() -> list[Any]:
            runs = [client.read_flow_run(first.id), client.read_flow_run(second.id)]
            assert not all(r.state.is_running() for r in runs), "both sweeps were running"
            return runs if all(r.state.is_final() for r in runs) else []

        runs = wait_for("two sweeps", both_final, limit=2 * RUN_LIMIT, alive=served.processes)

    assert [r.state.type.value for r in runs] == ["COMPLETED", "COMPLETED"]
    never_overlap([(r.start_time, r.end_time) for r in runs])
    # The second waited for the first's slot (Prefect's limit), or found the sweep's lease taken
    # and did nothing (the store's own lock, for sweeps started by other means).
    waited = any("AwaitingConcurrencySlot" in states_of(r.id) for r in runs)
    busy = [sweep_report(r)["busy"] for r in runs]
    assert waited or any(busy), (states_of(first.id), states_of(second.id), busy)
    swept = served.rows("SELECT since FROM sweep_run WHERE day = :d", d=BACK_TO_BACK)
    assert len(swept) == len([b for b in busy if b is None]) >= 1
    spans = served.rows("SELECT started_at, finished_at FROM sweep_run")
    never_overlap([(s["started_at"], s["finished_at"]) for s in spans])


def test_a_served_sweep_does_nothing_while_another_host_holds_the_sweep_lease(served):
    def taken() -> bool:  # once no scheduled sweep holds it
        with served.db.transaction() as tx:
            return leases.take(
                tx, "sweep", holder=ELSEWHERE, now=real_now(), length=timedelta(hours=1)
            ) is None  # fmt: skip

    wait_for("the sweep lease", taken, limit=RUN_LIMIT, alive=served.processes)
    try:
        run = served.completed(SWEEP, today=WHILE_LEASED.isoformat())
    finally:
        with served.db.transaction() as tx:
            leases.give_back(tx, "sweep", holder=ELSEWHERE)

    assert sweep_report(run)["busy"].startswith(f"{ELSEWHERE} until ")
    assert served.rows("SELECT id FROM sweep_run WHERE day = :d", d=WHILE_LEASED) == []


def test_without_prefect_a_held_sweep_lease_makes_vetpro_sweep_say_busy_and_write_nothing(
    sqlite_db, sqlite_url, tmp_path
):
    import_doc(sqlite_db)  # a draft: 2027-01-25 is 7 days before its call's deadline
    with sqlite_db.transaction() as tx:
        leases.take(tx, "sweep", holder=ELSEWHERE, now=real_now(), length=timedelta(hours=1))
    before = snapshot(sqlite_db)

    def sweep() -> dict[str, Any]:
        done = subprocess.run(
            [VETPRO, "sweep", "--json", "--today", "2027-01-25"],
            cwd=tmp_path,
            env=quiet_env(VETPRO_DATABASE_URL=sqlite_url),  # no Prefect server named
            capture_output=True,
            text=True,
            timeout=RUN_LIMIT,
        )
        assert (done.returncode, done.stderr) == (0, "")
        return dict(json.loads(done.stdout))

    report = sweep()
    assert report["busy"].startswith(f"{ELSEWHERE} until ")
    assert (report["reminders"], report["transitions"]) == (0, 0)
    assert snapshot(sqlite_db) == before

    # Once the other sweep is done, the same command sweeps and writes.
    with sqlite_db.transaction() as tx:
        leases.give_back(tx, "sweep", holder=ELSEWHERE)
    report = sweep()
    assert report["busy"] is None
    assert report["by_rule"] == {"call_deadline": 1}
    assert snapshot(sqlite_db) != before


def test_a_sweep_missed_for_days_catches_up_once(served):
    # The last recorded sweep is days back (the scheduled ones sweep the fixed, earlier day).
    with served.db.transaction() as tx:
        tx.execute(
            "INSERT INTO sweep_run (day, since, started_at, finished_at, reminders, transitions,"
            " by_rule) VALUES (:day, :since, :now, :now, 0, 0, :by_rule)",
            {"day": LAST_SWEPT, "since": LAST_SWEPT - timedelta(days=1), "now": real_now(),
             "by_rule": {}},
        )  # fmt: skip
    before = reminder_rows(served, served.draft)

    first = served.completed(SWEEP, today=CAUGHT_UP.isoformat())

    # One run swept the whole window since the last swept day, and reminded the draft of the
    # deadline on the day it fell due in that window (2027-01-25), once.
    report = sweep_report(first)
    assert (report["since"], report["day"], report["busy"]) == (
        LAST_SWEPT.isoformat(), CAUGHT_UP.isoformat(), None
    )  # fmt: skip
    recorded = served.rows("SELECT id, since, reminders FROM sweep_run WHERE day = :d", d=CAUGHT_UP)
    assert [(r["since"], r["reminders"]) for r in recorded] == [(LAST_SWEPT, 1)]
    after = reminder_rows(served, served.draft)
    assert len(after) == len(before) + 1

    # A second sweep over the same window (as after a sweep that died before recording its
    # day) adds no reminder twice.
    with served.db.transaction() as tx:
        tx.execute("DELETE FROM sweep_run WHERE id = :id", {"id": recorded[0]["id"]})
    again = sweep_report(served.completed(SWEEP, today=CAUGHT_UP.isoformat()))
    assert (again["since"], again["reminders"]) == (LAST_SWEPT.isoformat(), 0)
    assert reminder_rows(served, served.draft) == after


def test_scheduled_dispatches_and_sweeps_complete_on_their_own_and_each_mail_arrives_once(
    served,
):
    def scheduled(deployment: str, at_least: int) -> list[Any]:
        runs = [r for r in served.runs(deployment) if r.auto_scheduled]
        done = [r for r in runs if r.state.is_completed()]
        return done if len(done) >= at_least else []

    wait_for("scheduled dispatches", lambda: scheduled(DISPATCH, 2), limit=RUN_LIMIT,
             alive=served.processes)  # fmt: skip
    wait_for("a scheduled sweep", lambda: scheduled(SWEEP, 1), limit=RUN_LIMIT,
             alive=served.processes)  # fmt: skip

    # Every mail queued (the receipt of the submission, the reminders, the staff digests) is
    # sent by the served runs (the dispatches, and each sweep's own dispatch); a dispatch that
    # starts after that sends nothing again.
    def all_sent() -> float:
        pending = served.rows("SELECT id FROM outbox WHERE status <> 'sent'")
        return 0 if pending else time.time()

    sent_by = wait_for("the outbox to be sent", all_sent, limit=RUN_LIMIT, alive=served.processes)

    def dispatched_after() -> bool:
        return any(r.start_time.timestamp() > sent_by for r in scheduled(DISPATCH, 1))

    wait_for("one more dispatch", dispatched_after, limit=RUN_LIMIT, alive=served.processes)

    rows = served.rows("SELECT * FROM outbox ORDER BY id")
    kinds = Counter(r["kind"] for r in rows)
    assert kinds["receipt"] == 1 and kinds["call_deadline_reminder"] >= 1, kinds
    expected = Counter(message_id(r, served.settings.mail_from) for r in rows)
    received = Counter(str(m.message["Message-ID"]) for m in served.sink.messages)
    assert received == expected
    assert set(received.values()) == {1}

    # No served run failed or crashed, and no two sweeps ever ran at the same time.
    for deployment in (SWEEP, DISPATCH, ADVANCE):
        final = [r for r in served.runs(deployment) if r.state.is_final()]
        assert {r.state.type.value for r in final} == {"COMPLETED"}, deployment
    sweeps = [r for r in served.runs(SWEEP) if r.end_time is not None]
    never_overlap([(r.start_time, r.end_time) for r in sweeps])
