"""The daily deadline sweep on a real database: each reminder of DOMAIN.md once, on its date.

Every check runs the service `sweep` against the example application walked along its story.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError

from factories import COORDINATOR, advance, document, import_doc, snapshot, state_of, walk
from vetpro_workflow.clock import Clock
from vetpro_workflow.db import reading
from vetpro_workflow.models import History, Mobility, Outbox
from vetpro_workflow.sweep import SweepReport, last_swept, sweep

STAFF_EMAIL = "staff@na.example"
PARTICIPANT = "markus.leitner@bbz-steyr.example"  # the first mobility's participant
DAY = timedelta(days=1)


def sweep_one_day(engine: Engine, day: date, **kw: Any) -> SweepReport:
    """A sweep of exactly one day: what fell due on `day` and on no other."""
    return sweep(engine, clock=Clock.on(day), staff_email=STAFF_EMAIL, since=day - DAY, **kw)


def sweep_on(engine: Engine, day: date, **kw: Any) -> SweepReport:
    """The daily sweep as scheduled: it catches up from the last recorded sweep."""
    return sweep(engine, clock=Clock.on(day), staff_email=STAFF_EMAIL, **kw)


def outbox(engine: Engine) -> dict[str, dict[str, Any]]:
    """Every outbox row by its key."""
    with reading(engine) as session:
        rows = session.execute(
            select(
                Outbox.key, Outbox.case_id, Outbox.kind, Outbox.recipient, Outbox.cc, Outbox.context
            )
        ).mappings()
        return {row["key"]: dict(row) for row in rows}


def added(before: dict[str, dict[str, Any]], engine: Engine) -> list[dict[str, Any]]:
    """The outbox rows written since `before` was read."""
    return [row for key, row in outbox(engine).items() if key not in before]


def kinds(rows: list[dict[str, Any]]) -> Counter[tuple[int, str]]:
    """How many rows of each kind each case got."""
    return Counter((row["case_id"], row["kind"]) for row in rows)


def history(engine: Engine, case_id: int) -> list[History]:
    with reading(engine) as session:
        return list(
            session.execute(
                select(History).where(History.case_id == case_id).order_by(History.version)
            ).scalars()
        )


def ids_of(done: Any) -> list[int]:
    """The application's id, then its mobilities': the STORY's case numbers 0, 1, 2."""
    return [done.application, *done.mobilities]


# One row per (rule, offset) of DOMAIN.md, on the example application: how many STORY steps bring
# it to the state the rule watches, which case (0 the application, 1 and 2 its mobilities) and
# notice, the day the reminder falls due, to whom and with what copy, the date it is about, the
# days left and words its next step must say. Coordinator is Anna Huber; Markus Leitner goes to
# Finland 2027-09-06..24 (language preparation planned), Sabine Gruber to Spain 2027-10-04..15.
REMINDERS = [
    # call deadline: 2027-02-01 12:00 Brussels, the application still drafted
    ("call_deadline", -30, 0, 0, "call_deadline_reminder", date(2027, 1, 2), COORDINATOR, None,
     "2027-02-01", 30, ("submits the application", "2027-02-01 12:00 Brussels time")),
    ("call_deadline", -7, 0, 0, "call_deadline_reminder", date(2027, 1, 25), COORDINATOR, None,
     "2027-02-01", 7, ("submits the application", "2027-02-01 12:00 Brussels time")),
    ("call_deadline", -1, 0, 0, "call_deadline_reminder", date(2027, 1, 31), COORDINATOR, None,
     "2027-02-01", 1, ("submits the application", "2027-02-01 12:00 Brussels time")),
    # grant agreement: approved on 2027-02-20, the project starts on 2027-06-01
    ("grant_agreement", -30, 2, 0, "grant_agreement_to_sign", date(2027, 5, 2), COORDINATOR, None,
     "2027-06-01", 30, ("grant agreement", "2027-06-01")),
    ("grant_agreement", -7, 2, 0, "grant_agreement_to_sign", date(2027, 5, 25), COORDINATOR, None,
     "2027-06-01", 7, ("grant agreement", "2027-06-01")),
    # training agreement: the project in preparation, its mobilities still approved
    ("training_agreement", -30, 3, 1, "training_agreement_reminder", date(2027, 8, 7),
     COORDINATOR, None, "2027-09-06", 30, ("training agreement", "2027-09-06")),
    ("training_agreement", -7, 3, 1, "training_agreement_reminder", date(2027, 8, 30),
     COORDINATOR, None, "2027-09-06", 7, ("training agreement", "2027-09-06")),
    ("training_agreement", -7, 3, 2, "training_agreement_reminder", date(2027, 9, 27),
     COORDINATOR, None, "2027-10-04", 7, ("training agreement", "2027-10-04")),
    # preparation: Markus's training agreement signed, his language preparation not recorded
    ("preparation", -14, 4, 1, "preparation_reminder", date(2027, 8, 23), COORDINATOR, None,
     "2027-09-06", 14, ("language preparation", "2027-09-06")),
    # participant report: Markus back on 2027-09-24, his report not received
    ("participant_report", 7, 7, 1, "participant_report_reminder", date(2027, 10, 1),
     PARTICIPANT, None, "2027-09-24", -7, ("participant report", "2027-09-24")),
    ("participant_report", 14, 7, 1, "participant_report_reminder", date(2027, 10, 8),
     PARTICIPANT, None, "2027-09-24", -14, ("participant report", "2027-09-24")),
    ("participant_report", 30, 7, 1, "participant_report_reminder", date(2027, 10, 24),
     PARTICIPANT, COORDINATOR, "2027-09-24", -30, ("participant report", "2027-09-24")),
    # validation overdue: Markus back on 2027-09-24 and not validated 45 days later
    ("validation_overdue", 45, 7, 1, "validation_overdue", date(2027, 11, 8), STAFF_EMAIL, None,
     "2027-11-08", 0, ("validate", "2027-11-08")),
    # final report: the project ends on 2029-05-31, its report is due 60 days later
    ("final_report", 0, 13, 0, "final_report_reminder", date(2029, 5, 31), COORDINATOR, None,
     "2029-07-30", 60, ("final report", "2029-07-30")),
    ("final_report", 53, 13, 0, "final_report_reminder", date(2029, 7, 23), COORDINATOR, None,
     "2029-07-30", 7, ("final report", "2029-07-30")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "offset", "steps", "case", "kind", "on", "to", "cc", "due", "days_left", "says"),
    REMINDERS,
    ids=[f"{r[0]}{r[1]:+d}-case{r[3]}" for r in REMINDERS],
)
def test_each_reminder_is_enqueued_once_on_its_date_and_not_the_day_before_or_after(
    engine, rule, offset, steps, case, kind, on, to, cc, due, days_left, says
):
    done = import_doc(engine)
    walk(engine, done, steps)
    case_id = ids_of(done)[case]

    # One-day sweeps whose windows never overlap, the day after swept before the day itself:
    # a reminder wrongly found the day after cannot hide behind the outbox key of the right one.
    found = {}
    for day in (on - DAY, on + DAY, on):
        before = outbox(engine)
        report = sweep_one_day(engine, day)
        found[day] = [
            r for r in added(before, engine) if (r["case_id"], r["kind"]) == (case_id, kind)
        ]
        assert report.by_rule.get(rule, 0) == (1 if day == on else 0), day

    assert found[on - DAY] == []
    assert found[on + DAY] == []
    [reminder] = found[on]
    assert (reminder["recipient"], reminder["cc"]) == (to, cc)
    context = reminder["context"]
    assert (context["due_date"], context["days_left"]) == (due, days_left)
    for words in says:
        assert words in context["next_step"]


# Each rule stops once its step is done: (what was done, STORY steps, then by hand, case, notice,
# the day the reminder would otherwise fall due).
STEP_DONE = [
    ("the application was submitted", 1, None, 0, "call_deadline_reminder", date(2027, 1, 25)),
    ("the grant agreement was recorded", 3, None, 0, "grant_agreement_to_sign", date(2027, 5, 25)),
    ("the training agreement was recorded", 4, None, 1, "training_agreement_reminder",
     date(2027, 8, 30)),
    ("no preparation was planned", 3, None, 2, "preparation_reminder", date(2027, 9, 20)),
    ("the report was received with the validation", 7,
     ("validate", date(2027, 10, 5),
      {"europass_ref": "EMD-2027-0001", "participant_report_on": "2027-10-01"}),
     1, "participant_report_reminder", date(2027, 10, 8)),
    ("the mobility was validated", 10, None, 1, "validation_overdue", date(2027, 11, 8)),
    ("the project was closed", 14, None, 0, "final_report_reminder", date(2029, 7, 23)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("done_step", "steps", "then", "case", "kind", "on"), STEP_DONE, ids=[s[0] for s in STEP_DONE]
)
def test_no_reminder_is_sent_once_its_step_is_done(engine, done_step, steps, then, case, kind, on):
    done = import_doc(engine)
    walk(engine, done, steps)
    case_id = ids_of(done)[case]
    if then is not None:
        trigger, day, facts = then
        advance(engine, case_id, trigger, on=day, **facts)
    before = outbox(engine)
    sweep_one_day(engine, on)
    assert kinds(added(before, engine))[(case_id, kind)] == 0


def test_call_deadline_reminders_count_the_days_in_brussels_time(engine):
    # 00:30 in Brussels on 1 February is still 31 January in UTC: the day before the deadline
    # is 31 January for the coordinator and the agency.
    done = import_doc(
        engine, document(**{"call.application_deadline": "2027-02-01T00:30:00+01:00"})
    )
    before = outbox(engine)
    sweep_one_day(engine, date(2027, 1, 30))
    assert added(before, engine) == []
    sweep_one_day(engine, date(2027, 1, 31))
    [reminder] = added(before, engine)
    assert (reminder["case_id"], reminder["kind"]) == (done.application, "call_deadline_reminder")
    assert (reminder["context"]["due_date"], reminder["context"]["days_left"]) == ("2027-02-01", 1)


def test_the_sweep_returns_an_abroad_mobility_on_its_planned_end_date_and_not_before(engine):
    done = import_doc(engine)
    walk(engine, done, 6)  # Markus abroad since 2027-09-06, back on 2027-09-24
    markus = done.mobilities[0]

    before = outbox(engine)
    report = sweep_one_day(engine, date(2027, 9, 23))
    assert (state_of(engine, markus), report.transitions) == ("abroad", 0)
    assert added(before, engine) == []

    report = sweep_one_day(engine, date(2027, 9, 24))
    assert (state_of(engine, markus), report.transitions) == ("validation", 1)
    last = history(engine, markus)[-1]
    assert (last.trigger, last.source, last.dest, last.actor) == (
        "return_home",
        "abroad",
        "validation",
        "system",
    )
    assert last.facts == {"returned_on": "2027-09-24"}
    with reading(engine) as session:
        assert session.get(Mobility, markus).returned_on == date(2027, 9, 24)
    requests = [r for r in added(before, engine) if r["kind"] == "participant_report_request"]
    assert [(r["case_id"], r["recipient"]) for r in requests] == [(markus, PARTICIPANT)]


def test_the_last_return_by_the_sweep_moves_the_project_to_validation(engine):
    done = import_doc(engine)
    walk(engine, done, 8)  # Markus back; Sabine abroad until 2027-10-15
    report = sweep_one_day(engine, date(2027, 10, 15))
    assert report.transitions == 1
    assert state_of(engine, done.mobilities[1]) == "validation"
    assert state_of(engine, done.application) == "validation"
    last = history(engine, done.application)[-1]
    assert (last.dest, last.actor) == ("validation", "system")


@pytest.mark.parametrize(
    ("steps", "day"),
    [(3, date(2027, 8, 7)), (6, date(2027, 9, 24))],
    ids=["a-reminder-due", "a-return-due"],
)
def test_a_second_sweep_on_the_same_day_creates_no_duplicate(engine, steps, day):
    done = import_doc(engine)
    walk(engine, done, steps)
    first = sweep_on(engine, day)
    assert first.reminders + first.transitions == 1
    before = snapshot(engine)

    second = sweep_on(engine, day)

    assert (second.reminders, second.transitions, dict(second.by_rule)) == (0, 0, {})
    assert second.as_json()["reminders"] == 0
    after = snapshot(engine)
    assert {t: rows for t, rows in after.items() if t != "sweeprun"} == {
        t: rows for t, rows in before.items() if t != "sweeprun"
    }


BUSY_DAY = date(2027, 9, 24)


def busy_store(engine: Engine) -> dict[str, int]:
    """Three projects with work for the sweep on BUSY_DAY, last swept the day before.

    Two projects have Markus abroad until BUSY_DAY (two returns); a third, later project has
    Markus's training agreement signed 14 days before a departure with language preparation,
    and Sabine's training agreement unsigned 30 days before hers.
    """
    later = import_doc(
        engine,
        document(
            **{
                "mobilities.0.start_date": "2027-10-08",
                "mobilities.0.end_date": "2027-10-22",
                "mobilities.1.start_date": "2027-10-24",
                "mobilities.1.end_date": "2027-11-05",
            }
        ),
    )
    walk(engine, later, 3)
    advance(engine, later.mobilities[0], "start_preparation", on=date(2027, 9, 1),
            agreement_signed_on="2027-09-01")  # fmt: skip
    first, second = import_doc(engine), import_doc(engine)
    walk(engine, first, 6)
    walk(engine, second, 6)
    quiet = sweep_on(engine, BUSY_DAY - DAY)
    assert (quiet.reminders, quiet.transitions) == (0, 0)
    return {
        "return 1": first.mobilities[0],
        "return 2": second.mobilities[0],
        "preparation": later.mobilities[0],
        "training agreement": later.mobilities[1],
    }


def busy_day_work(cases: dict[str, int]) -> Counter[tuple[int, str]]:
    """The outbox rows the sweep on BUSY_DAY owes."""
    return Counter(
        {
            (cases["return 1"], "participant_report_request"): 1,
            (cases["return 1"], "return_recorded"): 1,
            (cases["return 2"], "participant_report_request"): 1,
            (cases["return 2"], "return_recorded"): 1,
            (cases["preparation"], "preparation_reminder"): 1,
            (cases["training agreement"], "training_agreement_reminder"): 1,
        }
    )


@contextmanager
def crash_on_insert(engine: Engine, table: str, when: str) -> Iterator[None]:
    """Make the database refuse an insert into `table` matching `when`, as a crash would."""
    if engine.dialect.name == "sqlite":
        create = [
            f'CREATE TRIGGER crash BEFORE INSERT ON "{table}" WHEN {when} '
            "BEGIN SELECT RAISE(ABORT, 'sweep interrupted'); END"
        ]
        drop = ["DROP TRIGGER crash"]
    else:
        create = [
            "CREATE FUNCTION crash() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'sweep interrupted'; END $$",
            f'CREATE TRIGGER crash BEFORE INSERT ON "{table}" FOR EACH ROW WHEN ({when}) '
            "EXECUTE FUNCTION crash()",
        ]
        drop = [f'DROP TRIGGER crash ON "{table}"', "DROP FUNCTION crash()"]
    with engine.begin() as conn:
        for statement in create:
            conn.exec_driver_sql(statement)
    try:
        yield
    finally:
        with engine.begin() as conn:
            for statement in drop:
                conn.exec_driver_sql(statement)


# Where a sweep can stop: (where, table, the row it dies on, what the run again has left to do:
# returns, reminders). A day's returns are written in one transaction: a crash among them leaves
# all of them to the next run.
INTERRUPTIONS = [
    ("between-two-returns", "history",
     "NEW.\"trigger\" = 'return_home' AND NEW.case_id = {return 2}", 2, 2),
    ("between-two-rules", "outbox", "NEW.kind = 'preparation_reminder'", 0, 1),
    ("before-the-run-was-recorded", "sweeprun", "1 = 1", 0, 0),
]  # fmt: skip


@pytest.mark.parametrize(
    ("where", "table", "when", "returns_left", "reminders_left"),
    INTERRUPTIONS,
    ids=[i[0] for i in INTERRUPTIONS],
)
def test_a_sweep_interrupted_and_run_again_completes_its_work_without_duplicates(
    engine, where, table, when, returns_left, reminders_left
):
    cases = busy_store(engine)
    before = outbox(engine)
    with crash_on_insert(engine, table, when.format_map(cases)), pytest.raises(DBAPIError):
        sweep_on(engine, BUSY_DAY)
    assert last_swept(engine) == BUSY_DAY - DAY  # the interrupted run recorded nothing

    again = sweep_on(engine, BUSY_DAY)

    assert (again.transitions, again.reminders) == (returns_left, reminders_left)
    assert kinds(added(before, engine)) == busy_day_work(cases)
    for mobility in (cases["return 1"], cases["return 2"]):
        assert state_of(engine, mobility) == "validation"
        assert [h.trigger for h in history(engine, mobility)].count("return_home") == 1
    assert last_swept(engine) == BUSY_DAY
    third = sweep_on(engine, BUSY_DAY)
    assert (third.transitions, third.reminders) == (0, 0)


def test_a_sweep_after_five_missed_days_sends_what_fell_due_meanwhile_once(engine):
    # The example in preparation with both mobilities approved: Markus's training agreement is
    # reminded 7 days before 2027-09-06 (08-30), Sabine's 30 days before 2027-10-04 (09-04).
    # A later project, approved, starts 2027-09-28: its grant agreement is reminded on 08-29;
    # its first mobility (from 10-05) on 09-05 and its second (from 10-04) on 09-04.
    example = import_doc(engine)
    walk(engine, example, 3)
    later = import_doc(
        engine,
        document(
            **{
                "project.start_date": "2027-09-28",
                "mobilities.0.start_date": "2027-10-05",
                "mobilities.0.end_date": "2027-10-19",
                "mobilities.0.language_preparation": False,
            }
        ),
    )
    walk(engine, later, 2)
    last = date(2027, 8, 29)
    on_last = sweep_on(engine, last)
    assert dict(on_last.by_rule) == {"grant_agreement": 1}
    before = outbox(engine)

    catch_up = sweep_on(engine, last + 6 * DAY)

    assert catch_up.since == last
    assert kinds(added(before, engine)) == Counter(
        {
            (example.mobilities[0], "training_agreement_reminder"): 1,
            (example.mobilities[1], "training_agreement_reminder"): 1,
            (later.mobilities[1], "training_agreement_reminder"): 1,
        }
    )
    late = next(r for r in added(before, engine) if r["case_id"] == example.mobilities[0])
    assert late["context"]["days_left"] == 2  # sent on 09-04 for a departure on 09-06
    assert sweep_on(engine, last + 6 * DAY).reminders == 0
    before = outbox(engine)
    assert sweep_on(engine, last + 7 * DAY).reminders == 1
    assert kinds(added(before, engine)) == Counter(
        {(later.mobilities[0], "training_agreement_reminder"): 1}
    )


def test_a_sweep_after_missed_days_returns_a_mobility_on_its_planned_end_date(engine):
    done = import_doc(engine)
    walk(engine, done, 6)  # Markus abroad, back on 2027-09-24
    markus = done.mobilities[0]
    sweep_on(engine, date(2027, 9, 20))

    report = sweep_on(engine, date(2027, 9, 26))

    assert (report.transitions, state_of(engine, markus)) == (1, "validation")
    last = history(engine, markus)[-1]
    assert (last.actor, last.facts) == ("system", {"returned_on": "2027-09-24"})
    assert last.at == datetime(2027, 9, 26, tzinfo=UTC)
    before = outbox(engine)
    sweep_on(engine, date(2027, 10, 1))  # 7 days after the return
    assert kinds(added(before, engine)) == Counter({(markus, "participant_report_reminder"): 1})


def test_a_dry_run_lists_what_would_be_sent_or_moved_and_writes_nothing(engine):
    cases = busy_store(engine)
    before = snapshot(engine)

    dry = sweep_on(engine, BUSY_DAY, dry_run=True)

    assert snapshot(engine) == before
    assert (dry.transitions, dry.reminders) == (2, 2)
    assert dict(dry.by_rule) == {"preparation": 1, "training_agreement": 1}
    moves = {(p["case_id"], p["trigger"]) for p in dry.planned if "trigger" in p}
    assert moves == {(cases["return 1"], "return_home"), (cases["return 2"], "return_home")}
    reminders = {(p["case_id"], p["rule"], p["to"]) for p in dry.planned if "rule" in p}
    assert reminders == {
        (cases["preparation"], "preparation", COORDINATOR),
        (cases["training agreement"], "training_agreement", COORDINATOR),
    }
    assert dry.as_json()["planned"] == dry.planned

    queued = outbox(engine)
    done = sweep_on(engine, BUSY_DAY)
    assert done.transitions == 2
    reminder_keys = {r["key"] for r in added(queued, engine) if r["kind"].endswith("_reminder")}
    assert reminder_keys == {p["key"] for p in dry.planned if "rule" in p}


def test_a_dry_run_does_not_list_reminders_already_queued(engine):
    cases = busy_store(engine)
    sweep_on(engine, BUSY_DAY)
    before = snapshot(engine)

    dry = sweep_one_day(engine, BUSY_DAY, dry_run=True)

    assert (dry.planned, dry.reminders, dry.transitions) == ([], 0, 0)
    assert snapshot(engine) == before
    assert state_of(engine, cases["return 1"]) == "validation"


def test_a_sweep_on_a_day_with_nothing_due_writes_no_outbox_row(engine):
    first, second = import_doc(engine), import_doc(engine)
    walk(engine, first, 3)
    walk(engine, second, 13)
    before = snapshot(engine)

    report = sweep_one_day(engine, date(2027, 7, 15))

    assert (report.reminders, report.transitions, report.planned) == (0, 0, [])
    after = snapshot(engine)
    assert after["outbox"] == before["outbox"]
    assert {t for t in after if after[t] != before[t]} == {"sweeprun"}


def test_a_dry_run_after_an_interrupted_sweep_lists_only_what_is_left(engine):
    cases = busy_store(engine)
    crash = crash_on_insert(engine, "outbox", "NEW.kind = 'preparation_reminder'")
    with crash, pytest.raises(DBAPIError):
        sweep_on(engine, BUSY_DAY)

    dry = sweep_on(engine, BUSY_DAY, dry_run=True)

    assert [(p["case_id"], p["rule"]) for p in dry.planned] == [
        (cases["preparation"], "preparation")
    ]


def test_a_recorded_participant_report_stops_its_reminders(engine):
    done = import_doc(engine)
    walk(engine, done, 7)  # the first mobility returned on 2027-09-24
    advance(
        engine,
        done.mobilities[0],
        "record_report",
        on=date(2027, 9, 30),
        participant_report_on="2027-09-30",
    )
    before = outbox(engine)
    sweep_one_day(engine, date(2027, 10, 1))
    assert kinds(added(before, engine))[(done.mobilities[0], "participant_report_reminder")] == 0


def test_recorded_language_preparation_stops_its_reminder(engine):
    done = import_doc(engine)
    walk(engine, done, 4)  # the first mobility, with language preparation, is in preparation
    advance(
        engine,
        done.mobilities[0],
        "record_preparation",
        on=date(2027, 8, 20),
        preparation_done="true",
    )
    before = outbox(engine)
    sweep_one_day(engine, date(2027, 8, 23))
    assert kinds(added(before, engine))[(done.mobilities[0], "preparation_reminder")] == 0
