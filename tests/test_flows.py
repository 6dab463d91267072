"""The Prefect flows on Prefect's real engine (one temporary server for the whole session)."""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import Session

from factories import import_doc, snapshot, state_of, walk
from vetpro_workflow.clock import Clock
from vetpro_workflow.deadlines import RULES
from vetpro_workflow.flows import quiet_prefect
from vetpro_workflow.models import History, Outbox
from vetpro_workflow.sweep import sweep_rule

quiet_prefect(Path(os.environ.get("PYTEST_PREFECT_HOME", "/tmp")) / f"vetpro-prefect-{os.getpid()}")

from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from vetpro_workflow.flows import jobs  # noqa: E402
from vetpro_workflow.flows.deployments import DISPATCH_SECONDS, deployments  # noqa: E402
from vetpro_workflow.notifications.sink import Sink  # noqa: E402

STAFF_MAIL = "staff@na.example"


@pytest.fixture(scope="session")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def store(harness, sqlite_engine, sqlite_url, monkeypatch):
    monkeypatch.setenv("VETPRO_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("VETPRO_STAFF_EMAIL", STAFF_MAIL)
    monkeypatch.delenv("VETPRO_TODAY", raising=False)
    return sqlite_engine


def reminders(engine, rule_name: str | None = None) -> list[tuple[int, str, str]]:
    with Session(engine) as session:
        query = select(Outbox.case_id, Outbox.kind, Outbox.key).where(Outbox.key.contains(":"))
        rows = session.execute(query.order_by(Outbox.id)).all()
    return [
        tuple(r)
        for r in rows
        if r.key.count(":") == 3 and (rule_name is None or f":{rule_name}:" in r.key)
    ]


# (rule, steps of the demo story to play first, the day the rule reminds of case index)
CASES = [
    ("call_deadline", 0, date(2027, 1, 25), 0),
    ("grant_agreement", 2, date(2027, 5, 2), 0),
    ("training_agreement", 3, date(2027, 8, 7), 1),
    ("preparation", 4, date(2027, 8, 23), 1),
    ("participant_report", 7, date(2027, 10, 1), 1),
    ("validation_overdue", 9, date(2027, 11, 8), 1),
    ("final_report", 13, date(2029, 5, 31), 0),
]


@pytest.mark.parametrize(("rule", "steps", "day", "index"), CASES, ids=[c[0] for c in CASES])
def test_the_sweep_flow_reminds_on_the_rules_day_and_not_the_day_before_or_after(
    store, rule, steps, day, index
):
    done = import_doc(store)
    walk(store, done, steps)
    case_id = [done.application, *done.mobilities][index]
    found = {}
    for when in (day - timedelta(days=1), day, day + timedelta(days=1)):
        report = jobs.deadline_sweep(today=when, since=when - timedelta(days=1))
        found[when] = [r for r in reminders(store, rule) if r[0] == case_id]
        assert report["day"] == when.isoformat()
    assert found[day - timedelta(days=1)] == []
    assert len(found[day]) == 1
    assert found[day + timedelta(days=1)] == found[day]


def test_two_sweeps_on_the_same_day_create_no_duplicate(store):
    import_doc(store)
    first = jobs.deadline_sweep(today=date(2027, 1, 25), since=date(2027, 1, 24))
    second = jobs.deadline_sweep(today=date(2027, 1, 25), since=date(2027, 1, 24))
    assert (first["reminders"], second["reminders"]) == (1, 0)
    assert len(reminders(store)) == 1


def test_a_sweep_interrupted_after_part_of_its_work_completes_it_without_duplicates(store):
    done = import_doc(store)
    walk(store, done, 9)  # both mobilities back, awaiting validation and reports
    day, since = date(2027, 11, 8), date(2027, 9, 1)
    # The interrupted run got through the first rules before it stopped.
    for r in RULES[:5]:
        sweep_rule(store, r, since=since, clock=Clock.on(day), staff_email=STAFF_MAIL)
    partial = reminders(store)
    report = jobs.deadline_sweep(today=day, since=since)
    complete = reminders(store)
    assert set(partial) < set(complete)
    assert len(complete) == len(set(complete)) == len(partial) + report["reminders"]
    assert report["by_rule"] == {"validation_overdue": 1}


def test_a_sweep_after_five_missed_days_catches_up_once(store):
    done = import_doc(store)
    walk(store, done, 7)
    jobs.deadline_sweep(today=date(2027, 9, 30), since=date(2027, 9, 29))
    assert reminders(store, "participant_report") == []
    caught = jobs.deadline_sweep(today=date(2027, 10, 6))  # missed 1 to 5 October
    assert caught["since"] == "2027-09-30"
    assert caught["by_rule"] == {"participant_report": 1}  # due 1 October, 7 days after return
    again = jobs.deadline_sweep(today=date(2027, 10, 6))
    assert again["reminders"] == 0
    assert len(reminders(store, "participant_report")) == 1


def test_the_sweep_flow_returns_mobilities_on_their_planned_end_date(store):
    done = import_doc(store)
    walk(store, done, 6)
    before = jobs.deadline_sweep(today=date(2027, 9, 23), since=date(2027, 9, 22))
    assert before["transitions"] == 0 and state_of(store, done.mobilities[0]) == "abroad"
    on = jobs.deadline_sweep(today=date(2027, 9, 24), since=date(2027, 9, 23))
    assert on["transitions"] == 1 and state_of(store, done.mobilities[0]) == "validation"
    with Session(store) as session:
        actor = session.execute(
            select(History.actor).where(
                History.case_id == done.mobilities[0], History.trigger == "return_home"
            )
        ).scalar_one()
    assert actor == "system"


def test_a_dry_run_lists_what_would_happen_and_writes_nothing(store):
    done = import_doc(store)
    walk(store, done, 6)
    before = snapshot(store)
    report = jobs.deadline_sweep(today=date(2027, 9, 24), since=date(2027, 9, 23), dry_run=True)
    assert report["transitions"] == 1
    assert {"case_id": done.mobilities[0], "trigger": "return_home", "on": "2027-09-24"} in report[
        "planned"
    ]
    assert snapshot(store) == before


def test_the_dispatch_flow_sends_the_due_mail_in_batches(store, monkeypatch):
    done = import_doc(store)
    walk(store, done, 2)
    with Sink() as sink:
        monkeypatch.setenv("VETPRO_SMTP_PORT", str(sink.port))
        monkeypatch.setenv("VETPRO_MAIL_BATCH_SIZE", "1")
        totals = jobs.dispatch_notifications(today=date(2027, 3, 1))
        received = sink.wait_for(2)
    assert totals == {"sent": 2, "retrying": 0, "undeliverable": 0, "pending": 0}
    assert sorted(str(m.message["Subject"]).split(":")[0] for m in received) == [
        "Application approved",
        "Application received",
    ]


def test_the_advance_flow_fires_a_trigger_through_the_service(store):
    done = import_doc(store)
    moves = jobs.advance_case(
        done.application, "submit", "anna.huber@bbz-steyr.example", today=date(2027, 1, 15)
    )
    assert next((m["case_id"], m["dest"]) for m in moves) == (done.application, "submitted")
    assert state_of(store, done.mobilities[0]) == "submitted"


def test_the_nightly_flow_sweeps_then_sends(store, monkeypatch):
    import_doc(store)
    with Sink() as sink:
        monkeypatch.setenv("VETPRO_SMTP_PORT", str(sink.port))
        result = jobs.nightly(today=date(2027, 1, 25))
        sink.wait_for(1)
    assert result["sweep"]["by_rule"] == {"call_deadline": 1}
    assert result["dispatch"]["sent"] == 1


def test_the_deployments_have_their_schedules_slugs_and_concurrency_limits():
    by_name = {d.name: d for d in deployments()}
    daily, dispatch = by_name["daily-sweep"], by_name["dispatch-every-minute"]
    assert daily.flow_name == "nightly" and dispatch.flow_name == "dispatch-notifications"
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


def test_the_worker_deployments_in_prefect_yaml_match_the_served_ones():
    import importlib

    import yaml

    spec = yaml.safe_load((Path(__file__).parents[1] / "prefect.yaml").read_text())
    served = {d.name: d for d in deployments()}
    assert {d["name"] for d in spec["deployments"]} == set(served)
    for entry in spec["deployments"]:
        module, _, name = entry["entrypoint"].partition(":")
        flow = getattr(importlib.import_module(module), name)
        deployment = served[entry["name"]]
        assert flow.name == deployment.flow_name
        schedules = entry.get("schedules", [])
        assert [s["slug"] for s in schedules] == [s.slug for s in deployment.schedules]
        for written, built in zip(schedules, deployment.schedules, strict=True):
            if "cron" in written:
                assert (written["cron"], written["timezone"]) == (
                    built.schedule.cron,
                    built.schedule.timezone,
                )
            else:
                assert timedelta(seconds=written["interval"]) == built.schedule.interval
        limit = entry.get("concurrency_limit")
        assert (limit["limit"] if limit else None) == deployment.concurrency_limit
