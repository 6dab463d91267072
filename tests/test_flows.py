"""The Prefect flows on Prefect's real engine, and the commands that do the same work without it.

The flows run against one temporary Prefect server for the whole session (a session fixture of
this file, so that only these tests pay for it), bound to a test store with
`flows.jobs.build(settings)`. Prefect is imported by the fixtures, never when this file is
collected. The commands run as real subprocesses with no Prefect server named.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from factories import (
    COORDINATOR,
    STAFF_MAIL,
    import_doc,
    snapshot,
    state_of,
    walk,
)
from vetpro_workflow.clock import Clock
from vetpro_workflow.config import Settings
from vetpro_workflow.dev.sink import Sink
from vetpro_workflow.states.deadlines import RULES
from vetpro_workflow.store.database import Database
from vetpro_workflow.sweeps import sweep

DAY = timedelta(days=1)
ROOT = Path(__file__).parents[1]
PARTICIPANT = "markus.leitner@bbz-steyr.example"


# --- Prefect: one temporary server for the session -------------------------------------------


@pytest.fixture(scope="session")
def prefect_home(tmp_path_factory) -> Iterator[None]:
    """Offline, quiet Prefect with its state in a folder of this session, before it is imported
    (the product's own `quiet_prefect`; what it set is taken away after the session)."""
    from vetpro_workflow.flows import quiet_prefect

    before = set(os.environ)
    quiet_prefect(str(tmp_path_factory.mktemp("prefect-home")))
    yield
    for name in set(os.environ) - before:
        del os.environ[name]


@pytest.fixture(scope="session")
def harness(prefect_home) -> Iterator[None]:
    """One temporary Prefect server for every flow test; it records task runs, so that a test
    can see the tasks of a flow run."""
    import prefect.settings as ps
    from prefect.testing.utilities import prefect_test_harness

    recorder = {ps.PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED: True}
    # None: wait as long as quiet_prefect allows (a loaded two-core machine is slow to start it).
    with ps.temporary_settings(updates=recorder), prefect_test_harness(server_startup_timeout=None):
        yield


@dataclass
class Store:
    """A SQLite store and the flows bound to its settings."""

    db: Database
    settings: Settings

    def jobs(self, **changes: Any) -> Any:
        from vetpro_workflow.flows.jobs import build

        return build(self.settings.with_(**changes))


@pytest.fixture
def store(harness, sqlite_db, sqlite_url) -> Store:
    return Store(sqlite_db, Settings(database_url=sqlite_url, staff_email=STAFF_MAIL))


def reminders(db: Database, rule: str | None = None) -> list[tuple[int, str, str]]:
    """The reminder rows of the outbox (case, kind, key), of one rule or all, oldest first."""
    names = {r.name for r in RULES} if rule is None else {rule}
    with db.transaction(write=False) as tx:
        rows = tx.rows("SELECT case_id, kind, key FROM outbox ORDER BY id")
    return [
        (row["case_id"], row["kind"], row["key"])
        for row in rows
        if row["key"].split(":")[1:2] and row["key"].split(":")[1] in names
    ]


def task_runs(state: Any, expected: int) -> list[Any]:
    """The task runs of a finished flow run, once the server has recorded `expected` of them
    as finished (it records them from the events the run sent, a moment after the run)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all()
    only = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    give_up = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=only)
            finished = [r for r in runs if r.state is not None and r.state.is_final()]
            if len(finished) >= expected or time.monotonic() > give_up:
                return runs
            time.sleep(0.1)


# (rule, STORY steps to play first, the day the rule reminds the case of, case index)
CASES = [
    ("call_deadline", 0, date(2027, 1, 25), 0),
    ("grant_agreement", 3, date(2027, 5, 2), 0),
    ("training_agreement", 4, date(2027, 8, 7), 1),
    ("preparation", 5, date(2027, 8, 23), 1),
    ("participant_report", 8, date(2027, 10, 1), 1),
    ("validation_overdue", 10, date(2027, 11, 8), 1),
    ("final_report", 14, date(2029, 5, 31), 0),
]


@pytest.mark.parametrize(("rule", "steps", "day", "index"), CASES, ids=[c[0] for c in CASES])
def test_the_sweep_flow_reminds_on_the_rules_day_and_not_the_day_before_or_after(
    store, rule, steps, day, index
):
    done = import_doc(store.db)
    walk(store.db, done, steps)
    case_id = [done.application, *done.mobilities][index]
    jobs = store.jobs()
    found = {}
    for when in (day - DAY, day, day + DAY):
        report = jobs.deadline_sweep(today=when, since=when - DAY)
        found[when] = [r for r in reminders(store.db, rule) if r[0] == case_id]
        assert report["day"] == when.isoformat()
    assert found[day - DAY] == []
    assert len(found[day]) == 1
    assert found[day + DAY] == found[day]


def test_the_sweep_flow_runs_each_step_of_the_sweep_as_a_task(store):
    import_doc(store.db)
    state = store.jobs().deadline_sweep(
        today=date(2027, 1, 25), since=date(2027, 1, 24), return_state=True
    )
    assert state.is_completed()
    assert state.result()["by_rule"] == {"call_deadline": 1}
    steps = 1 + 1 + len(RULES) + 1  # the window, the returns, each rule, the record
    names = sorted(r.name for r in task_runs(state, steps))
    assert names == sorted(
        [
            "find the days to sweep",
            "return mobilities due by 2027-01-25",
            *(f"remind: {r.name}" for r in RULES),
            "record the sweep of 2027-01-25",
        ]
    )


def test_two_sweeps_on_the_same_day_create_no_duplicate(store):
    import_doc(store.db)
    jobs = store.jobs()
    first = jobs.deadline_sweep(today=date(2027, 1, 25), since=date(2027, 1, 24))
    second = jobs.deadline_sweep(today=date(2027, 1, 25), since=date(2027, 1, 24))
    assert (first["reminders"], second["reminders"]) == (1, 0)
    assert len(reminders(store.db)) == 1


class Interrupted(Exception):
    """The sweep stopped here, as a killed process would."""


def test_a_sweep_interrupted_after_part_of_its_work_completes_it_without_duplicates(store):
    done = import_doc(store.db)
    walk(store.db, done, 10)  # both mobilities back, awaiting validation and reports
    day, since = date(2027, 11, 8), date(2027, 9, 1)

    # The interrupted run got through the rules before validation_overdue, then stopped.
    def until_validation_overdue(name: str, step: Any, *args: Any) -> Any:
        if name == "remind: validation_overdue":
            raise Interrupted(name)
        return step(*args)

    with pytest.raises(Interrupted):
        sweep(store.db, clock=Clock.on(day), staff_email=STAFF_MAIL, since=since,
              run=until_validation_overdue)  # fmt: skip
    partial = reminders(store.db)
    assert partial  # the participant reports were reminded before the stop

    report = store.jobs().deadline_sweep(today=day, since=since)

    complete = reminders(store.db)
    assert set(partial) < set(complete)
    assert len(complete) == len(set(complete)) == len(partial) + report["reminders"]
    assert report["by_rule"] == {"validation_overdue": 1}


def test_a_sweep_after_five_missed_days_catches_up_once(store):
    done = import_doc(store.db)
    walk(store.db, done, 8)  # Markus back on 2027-09-24
    jobs = store.jobs()
    jobs.deadline_sweep(today=date(2027, 9, 30), since=date(2027, 9, 29))
    assert reminders(store.db, "participant_report") == []
    caught = jobs.deadline_sweep(today=date(2027, 10, 6))  # missed 1 to 5 October
    assert caught["since"] == "2027-09-30"
    assert caught["by_rule"] == {"participant_report": 1}  # due 1 October, 7 days after return
    again = jobs.deadline_sweep(today=date(2027, 10, 6))
    assert again["reminders"] == 0
    assert len(reminders(store.db, "participant_report")) == 1


def test_the_sweep_flow_returns_mobilities_on_their_planned_end_date(store):
    done = import_doc(store.db)
    walk(store.db, done, 7)  # Markus abroad until 2027-09-24
    markus = done.mobilities[0]
    jobs = store.jobs()
    before = jobs.deadline_sweep(today=date(2027, 9, 23), since=date(2027, 9, 22))
    assert before["transitions"] == 0 and state_of(store.db, markus) == "abroad"
    on = jobs.deadline_sweep(today=date(2027, 9, 24), since=date(2027, 9, 23))
    assert on["transitions"] == 1 and state_of(store.db, markus) == "validation"
    with store.db.transaction(write=False) as tx:
        returns = tx.rows(
            "SELECT actor, facts FROM history WHERE case_id = :id AND trigger = 'return_home'",
            {"id": markus},
        )
    assert returns == [{"actor": "system", "facts": {"returned_on": "2027-09-24"}}]


def test_a_dry_run_lists_what_would_happen_and_writes_nothing(store):
    done = import_doc(store.db)
    walk(store.db, done, 7)
    before = snapshot(store.db)
    report = store.jobs().deadline_sweep(
        today=date(2027, 9, 24), since=date(2027, 9, 23), dry_run=True
    )
    assert report["transitions"] == 1
    assert {"case_id": done.mobilities[0], "trigger": "return_home", "on": "2027-09-24"} in report[
        "planned"
    ]
    assert snapshot(store.db) == before


def test_the_dispatch_flow_sends_the_due_mail_one_task_per_batch(store):
    done = import_doc(store.db)
    walk(store.db, done, 3)  # submitted and approved: a receipt and a decision to send
    with Sink() as sink:
        jobs = store.jobs(smtp_port=sink.port, mail_batch_size=1)
        state = jobs.dispatch_notifications(return_state=True)
        received = sink.wait_for(2)
    totals = state.result()
    assert {k: totals[k] for k in ("sent", "retrying", "undeliverable", "pending")} == {
        "sent": 2,
        "retrying": 0,
        "undeliverable": 0,
        "pending": 0,
    }
    assert sorted(str(m.message["Subject"]).split(":")[0] for m in received) == [
        "Application approved",
        "Application received",
    ]
    # A batch of one row each, then a batch that found nothing left and ended the run.
    runs = task_runs(state, 3)
    assert sorted(r.name for r in runs) == [f"send mail batch {n}" for n in (1, 2, 3)]
    assert all(r.state.is_completed() for r in runs)


def test_the_advance_flow_fires_a_trigger_through_the_service(store):
    done = import_doc(store.db)
    moves = store.jobs().advance_case(
        done.application, "submit", COORDINATOR, today=date(2027, 1, 15)
    )
    assert moves[0]["case_id"] == done.application
    assert {(m["case_id"], m["source"], m["dest"]) for m in moves} == {
        (done.application, "drafted", "submitted"),
        (done.mobilities[0], "drafted", "submitted"),
        (done.mobilities[1], "drafted", "submitted"),
    }
    assert state_of(store.db, done.mobilities[0]) == "submitted"
    with store.db.transaction(write=False) as tx:
        history = tx.rows(
            "SELECT trigger, actor, source, dest FROM history WHERE case_id = :id "
            "AND trigger = 'submit'",
            {"id": done.application},
        )
    assert history == [
        {"trigger": "submit", "actor": COORDINATOR, "source": "drafted", "dest": "submitted"}
    ]


def test_the_nightly_flow_sweeps_enqueues_the_digest_then_sends(store):
    # Approved, the grant agreement not recorded after the project start (overdue for the
    # digest), Sabine's training agreement due 30 days before her departure on 2027-10-04.
    done = import_doc(store.db)
    walk(store.db, done, 3)
    with Sink() as sink:
        result = store.jobs(smtp_port=sink.port).nightly(today=date(2027, 9, 4))
        received = sink.wait_for(4)
    assert result["sweep"]["day"] == "2027-09-04"
    assert result["sweep"]["by_rule"] == {"training_agreement": 1}
    assert result["digest"] is not None
    assert result["dispatch"]["sent"] == 4  # receipt, decision, reminder, digest
    assert sorted(r for m in received for r in m.recipients) == sorted(
        [COORDINATOR] * 3 + [STAFF_MAIL]
    )
    with store.db.transaction(write=False) as tx:
        digest = tx.row("SELECT key, status FROM outbox WHERE id = :id", {"id": result["digest"]})
    assert digest == {"key": "digest:2027-09-04", "status": "sent"}
    assert done.mobilities[1] in {r[0] for r in reminders(store.db, "training_agreement")}


# --- The deployments ----------------------------------------------------------------------------

MODULE = "vetpro_workflow.flows.jobs"


def test_the_deployments_have_their_schedules_slugs_concurrency_limits_and_module_entrypoints(
    prefect_home,
):
    from prefect.deployments.runner import EntrypointType
    from prefect.flows import load_flow_from_entrypoint

    from vetpro_workflow.flows.deployments import DISPATCH_SECONDS, deployments

    by_name = {d.name: d for d in deployments()}
    assert set(by_name) == {"daily-sweep", "dispatch-every-minute", "advance-case"}
    daily, dispatch, manual = (
        by_name["daily-sweep"],
        by_name["dispatch-every-minute"],
        by_name["advance-case"],
    )
    assert (daily.flow_name, dispatch.flow_name, manual.flow_name) == (
        "nightly",
        "dispatch-notifications",
        "advance-case",
    )
    (sweep_schedule,) = daily.schedules
    assert (sweep_schedule.slug, sweep_schedule.active) == ("daily-sweep-0600", True)
    assert (sweep_schedule.schedule.cron, sweep_schedule.schedule.timezone) == (
        "0 6 * * *",
        "Europe/Brussels",
    )
    (dispatch_schedule,) = dispatch.schedules
    assert dispatch_schedule.slug == "dispatch-every-minute" and dispatch_schedule.active
    assert (
        dispatch_schedule.schedule.interval
        == timedelta(seconds=DISPATCH_SECONDS)
        == timedelta(minutes=1)
    )
    for deployment in (daily, dispatch):
        assert deployment.concurrency_limit == 1
        assert deployment.concurrency_options.collision_strategy == "ENQUEUE"
    assert (manual.schedules, manual.concurrency_limit) == ([], None)  # run by hand

    # Module paths, so that a run imports the installed package from whatever folder.
    assert {d.name: (d.entrypoint, d.entrypoint_type) for d in by_name.values()} == {
        "daily-sweep": (f"{MODULE}.nightly", EntrypointType.MODULE_PATH),
        "dispatch-every-minute": (f"{MODULE}.dispatch_notifications", EntrypointType.MODULE_PATH),
        "advance-case": (f"{MODULE}.advance_case", EntrypointType.MODULE_PATH),
    }
    for deployment in by_name.values():
        assert load_flow_from_entrypoint(deployment.entrypoint).name == deployment.flow_name


def prefect_yaml() -> dict[str, dict[str, Any]]:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return {entry["name"]: entry for entry in spec["deployments"]}


def test_the_worker_deployments_in_prefect_yaml_match_the_served_ones(prefect_home):
    from prefect.flows import load_flow_from_entrypoint

    from vetpro_workflow.flows.deployments import deployments

    written = prefect_yaml()
    served = {d.name: d for d in deployments()}
    assert set(written) == set(served)
    for name, entry in written.items():
        deployment = served[name]
        assert load_flow_from_entrypoint(entry["entrypoint"]).name == deployment.flow_name
        assert (entry.get("description"), entry.get("tags")) == (
            deployment.description,
            deployment.tags,
        )
        schedules = entry.get("schedules", [])
        assert [(s["slug"], s.get("active", True)) for s in schedules] == [
            (s.slug, s.active) for s in deployment.schedules
        ]
        for mine, built in zip(schedules, deployment.schedules, strict=True):
            assert mine["timezone"] == built.schedule.timezone
            if "cron" in mine:
                assert mine["cron"] == built.schedule.cron
            else:
                assert timedelta(seconds=mine["interval"]) == built.schedule.interval
        limit = entry.get("concurrency_limit")
        assert (limit["limit"] if limit else None) == deployment.concurrency_limit
        if limit:
            assert limit["collision_strategy"] == deployment.concurrency_options.collision_strategy


def test_prefect_yaml_names_each_flow_by_its_module_path_as_the_served_deployments_do(
    prefect_home,
):
    from vetpro_workflow.flows.deployments import deployments

    written = {name: entry["entrypoint"] for name, entry in prefect_yaml().items()}
    assert written == {d.name: d.entrypoint for d in deployments()}


# --- The commands, without Prefect ------------------------------------------------------------

# The console script's own function, run in a fresh interpreter that notes, on its way out,
# which modules of Prefect it imported (into the file named by its first argument).
VETPRO = """\
import atexit, json, sys
out = sys.argv.pop(1)
def note():
    with open(out, "w") as f:
        json.dump(sorted(m for m in sys.modules if m.partition(".")[0] == "prefect"), f)
atexit.register(note)
from vetpro_workflow.cli import main
sys.argv[0] = "vetpro"
main()
"""


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str
    prefect: list[str]  # the Prefect modules the command imported


def vetpro(tmp_path: Path, url: str, *args: str, **settings: str) -> Ran:
    """Run `vetpro ARGS` in a subprocess on a store, with no Prefect server named."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VETPRO_", "PREFECT_"))}
    env |= {"VETPRO_DATABASE_URL": url, "VETPRO_STAFF_EMAIL": STAFF_MAIL}
    env |= {f"VETPRO_{name.upper()}": value for name, value in settings.items()}
    noted = tmp_path / "prefect-modules.json"
    done = subprocess.run(
        [sys.executable, "-c", VETPRO, str(noted), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Ran(done.returncode, done.stdout, done.stderr, json.loads(noted.read_text()))


def test_the_sweep_command_runs_without_prefect_and_prints_only_its_json(db, store_url, tmp_path):
    done = import_doc(db)
    walk(db, done, 7)  # Markus abroad until 2027-09-24
    before = snapshot(db)

    ran = vetpro(tmp_path, store_url, "sweep", "--dry-run", "--json", "--today", "2027-09-24")

    assert (ran.code, ran.stderr) == (0, "")
    assert ran.prefect == []
    report = json.loads(ran.stdout)  # the whole output is one JSON document
    assert (report["day"], report["since"], report["transitions"]) == (
        "2027-09-24",
        "2027-09-23",
        1,
    )
    assert report["planned"] == [
        {"case_id": done.mobilities[0], "trigger": "return_home", "on": "2027-09-24"}
    ]
    assert snapshot(db) == before


def test_the_nightly_command_runs_in_process_and_sends_the_mail(db, store_url, tmp_path):
    done = import_doc(db)
    walk(db, done, 3)  # as in the nightly flow's test: a reminder, a digest and two decisions

    with Sink() as sink:
        ran = vetpro(tmp_path, store_url, "nightly", "--today", "2027-09-04", "--json",
                     smtp_port=str(sink.port))  # fmt: skip
        received = sink.wait_for(4)

    assert (ran.code, ran.stderr) == (0, "")
    assert ran.prefect == []
    result = json.loads(ran.stdout)
    assert result["sweep"]["by_rule"] == {"training_agreement": 1}
    assert result["digest"] is not None
    assert (result["dispatch"]["sent"], result["dispatch"]["pending"]) == (4, 0)
    assert "flow_run" not in result
    assert sorted(r for m in received for r in m.recipients) == sorted(
        [COORDINATOR] * 3 + [STAFF_MAIL]
    )
    with db.transaction(write=False) as tx:
        assert str(tx.scalar("SELECT max(day) FROM sweep_run"))[:10] == "2027-09-04"
        assert tx.scalar("SELECT count(*) FROM outbox WHERE status <> 'sent'") == 0
