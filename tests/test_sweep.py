"""The daily deadline sweep on a real database: each reminder of DOMAIN.md once, on its date.

Every check runs the service `sweeps.sweep` against the example application walked along the
tests' STORY (factories.py), on a real SQLite file and then on real PostgreSQL.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any, NamedTuple

import pytest

from factories import (
    CALL,
    COORDINATOR,
    IMPORT_DAY,
    STAFF,
    STAFF_MAIL,
    advance,
    call_document,
    document,
    ensure_agency,
    import_doc,
    snapshot,
    state_of,
    walk,
)
from vetpro_workflow.clock import Clock
from vetpro_workflow.intake.filing import Imported
from vetpro_workflow.states.deadlines import RULES
from vetpro_workflow.store.database import Database
from vetpro_workflow.sweeps import SweepReport, sweep

PARTICIPANT = "markus.leitner@bbz-steyr.example"  # the first mobility's participant
DAY = timedelta(days=1)

# An extra move after the STORY's first steps: (case: 0 the application, 1 and 2 its
# mobilities, trigger, actor, day, note, facts), as in factories.STORY.
Move = tuple[int, str, str, date, str | None, dict[str, object]]
CHANGES_REQUESTED: Move = (
    0,
    "request_changes",
    STAFF,
    date(2027, 2, 10),
    "Add the host's letter of intent.",
    {"resubmit_by": "2027-03-01"},
)


def play(db: Database, done: Imported, steps: int, then: Sequence[Move] = ()) -> None:
    """The STORY's first `steps` steps, then some moves of the test's own."""
    walk(db, done, steps)
    ids = ids_of(done)
    for case, trigger, actor, day, note, facts in then:
        advance(db, ids[case], trigger, actor=actor, on=day, note=note, **facts)


def sweep_one_day(db: Database, day: date, **kw: Any) -> SweepReport:
    """A sweep of exactly one day: what fell due on `day` and on no other."""
    return sweep(db, clock=Clock.on(day), staff_email=STAFF_MAIL, since=day - DAY, **kw)


def sweep_on(db: Database, day: date, **kw: Any) -> SweepReport:
    """The daily sweep as scheduled: it catches up from the last recorded sweep."""
    return sweep(db, clock=Clock.on(day), staff_email=STAFF_MAIL, **kw)


def outbox(db: Database) -> dict[str, dict[str, Any]]:
    """Every outbox row by its key."""
    with db.transaction(write=False) as tx:
        rows = tx.rows(
            "SELECT key, case_id, kind, recipient, header_to, cc, context FROM outbox ORDER BY id"
        )
    return {row["key"]: row for row in rows}


def added(before: dict[str, dict[str, Any]], db: Database) -> list[dict[str, Any]]:
    """The outbox rows written since `before` was read."""
    return [row for key, row in outbox(db).items() if key not in before]


def kinds(rows: list[dict[str, Any]]) -> Counter[tuple[int, str]]:
    """How many rows of each kind each case got."""
    return Counter((row["case_id"], row["kind"]) for row in rows)


def history(db: Database, case_id: int) -> list[dict[str, Any]]:
    with db.transaction(write=False) as tx:
        return tx.rows(
            "SELECT * FROM history WHERE case_id = :id ORDER BY version", {"id": case_id}
        )


def last_swept(db: Database) -> date | None:
    """The day of the last recorded sweep."""
    with db.transaction(write=False) as tx:
        day = tx.scalar("SELECT max(day) FROM sweep_run")
    return None if day is None else date.fromisoformat(str(day)[:10])


def without_sweep_runs(rows: dict[str, list[str]]) -> dict[str, list[str]]:
    return {table: found for table, found in rows.items() if table != "sweep_run"}


def ids_of(done: Imported) -> list[int]:
    """The application's id, then its mobilities': the STORY's case numbers 0, 1, 2."""
    return [done.application, *done.mobilities]


class Due(NamedTuple):
    """One reminder of DOMAIN.md on the example: what brings the case to the state the rule
    watches (STORY steps, then moves of its own), which case and notice, the day the reminder
    falls due, its recipient and copies, the date it is about, the days left and words its next
    step must say."""

    rule: str
    offset: int
    steps: int
    then: tuple[Move, ...]
    case: int
    kind: str
    on: date
    to: str
    cc: str | None
    due: str
    days_left: int
    says: tuple[str, ...]


# Coordinator is Anna Huber; Markus Leitner goes to Finland 2027-09-06..24 (language
# preparation planned), Sabine Gruber to Spain 2027-10-04..15. STORY steps: 1 submit,
# 2 evaluate, 3 approve, 4 grant agreement, 5-6 training agreements, 7 Markus departs,
# 8 Markus returns, 9-10 Sabine away and back, 11-12 validations, 13-14 completions, 15 close.
REMINDERS = [
    # call deadline: 2027-02-01 12:00 Brussels, the application still drafted
    Due("call_deadline", -30, 0, (), 0, "call_deadline_reminder", date(2027, 1, 2), COORDINATOR,
        None, "2027-02-01", 30, ("submits the application", "2027-02-01 12:00 Brussels time")),
    Due("call_deadline", -7, 0, (), 0, "call_deadline_reminder", date(2027, 1, 25), COORDINATOR,
        None, "2027-02-01", 7, ("submits the application", "2027-02-01 12:00 Brussels time")),
    Due("call_deadline", -1, 0, (), 0, "call_deadline_reminder", date(2027, 1, 31), COORDINATOR,
        None, "2027-02-01", 1, ("submits the application", "2027-02-01 12:00 Brussels time")),
    # resubmission: staff asked for changes on 2027-02-10, to be resubmitted by 2027-03-01
    Due("resubmission", -7, 1, (CHANGES_REQUESTED,), 0, "resubmission_reminder",
        date(2027, 2, 22), COORDINATOR, None, "2027-03-01", 7,
        ("submits the application again", "2027-03-01")),
    Due("resubmission", -1, 1, (CHANGES_REQUESTED,), 0, "resubmission_reminder",
        date(2027, 2, 28), COORDINATOR, None, "2027-03-01", 1,
        ("submits the application again", "2027-03-01")),
    # grant agreement: approved on 2027-02-20, the project starts on 2027-06-01
    Due("grant_agreement", -30, 3, (), 0, "grant_agreement_to_sign", date(2027, 5, 2),
        COORDINATOR, None, "2027-06-01", 30, ("grant agreement", "2027-06-01")),
    Due("grant_agreement", -7, 3, (), 0, "grant_agreement_to_sign", date(2027, 5, 25),
        COORDINATOR, None, "2027-06-01", 7, ("grant agreement", "2027-06-01")),
    # training agreement: the project in preparation, its mobilities still approved
    Due("training_agreement", -30, 4, (), 1, "training_agreement_reminder", date(2027, 8, 7),
        COORDINATOR, None, "2027-09-06", 30, ("training agreement", "2027-09-06")),
    Due("training_agreement", -7, 4, (), 1, "training_agreement_reminder", date(2027, 8, 30),
        COORDINATOR, None, "2027-09-06", 7, ("training agreement", "2027-09-06")),
    Due("training_agreement", -7, 4, (), 2, "training_agreement_reminder", date(2027, 9, 27),
        COORDINATOR, None, "2027-10-04", 7, ("training agreement", "2027-10-04")),
    # preparation: Markus's training agreement signed, his language preparation not recorded
    Due("preparation", -14, 5, (), 1, "preparation_reminder", date(2027, 8, 23), COORDINATOR,
        None, "2027-09-06", 14, ("language preparation", "2027-09-06")),
    # participant report: Markus back on 2027-09-24, his report not received
    Due("participant_report", 7, 8, (), 1, "participant_report_reminder", date(2027, 10, 1),
        PARTICIPANT, None, "2027-09-24", -7, ("participant report", "2027-09-24")),
    Due("participant_report", 14, 8, (), 1, "participant_report_reminder", date(2027, 10, 8),
        PARTICIPANT, None, "2027-09-24", -14, ("participant report", "2027-09-24")),
    Due("participant_report", 30, 8, (), 1, "participant_report_reminder", date(2027, 10, 24),
        PARTICIPANT, COORDINATOR, "2027-09-24", -30, ("participant report", "2027-09-24")),
    # validation overdue: Markus back on 2027-09-24 and not validated 45 days later
    Due("validation_overdue", 45, 8, (), 1, "validation_overdue", date(2027, 11, 8), STAFF_MAIL,
        None, "2027-11-08", 0, ("validate", "2027-11-08")),
    # final report: the project ends on 2029-05-31, its report is due 60 days later
    Due("final_report", 0, 14, (), 0, "final_report_reminder", date(2029, 5, 31), COORDINATOR,
        None, "2029-07-30", 60, ("final report", "2029-07-30")),
    Due("final_report", 53, 14, (), 0, "final_report_reminder", date(2029, 7, 23), COORDINATOR,
        None, "2029-07-30", 7, ("final report", "2029-07-30")),
]  # fmt: skip


def test_every_reminder_rule_is_checked_here():
    assert {r.name for r in RULES} == {d.rule for d in REMINDERS}
    assert {(r.name, offset) for r in RULES for offset in r.offsets} == {
        (d.rule, d.offset) for d in REMINDERS
    }


@pytest.mark.parametrize(
    "d", REMINDERS, ids=[f"{d.rule}{d.offset:+d}-case{d.case}" for d in REMINDERS]
)
def test_each_reminder_is_enqueued_once_on_its_date_and_not_the_day_before_or_after(db, d):
    done = import_doc(db)
    play(db, done, d.steps, d.then)
    case_id = ids_of(done)[d.case]

    # One-day sweeps whose windows never overlap, the day after swept before the day itself:
    # a reminder wrongly found the day after cannot hide behind the outbox key of the right one.
    found = {}
    for day in (d.on - DAY, d.on + DAY, d.on):
        before = outbox(db)
        report = sweep_one_day(db, day)
        found[day] = [
            r for r in added(before, db) if (r["case_id"], r["kind"]) == (case_id, d.kind)
        ]
        assert report.by_rule.get(d.rule, 0) == len(found[day]), day

    assert found[d.on - DAY] == []
    assert found[d.on + DAY] == []
    reminder, *copies = found[d.on]
    assert (reminder["recipient"], reminder["header_to"], reminder["cc"]) == (d.to, None, d.cc)
    context = reminder["context"]
    assert (context["due_date"], context["days_left"]) == (d.due, d.days_left)
    for words in d.says:
        assert words in context["next_step"]
    if d.cc is None:
        assert copies == []
    else:
        # The coordinator's copy is a message of its own (one envelope recipient each), with
        # the same headers as the participant's.
        [copy] = copies
        assert copy["key"] == reminder["key"] + ":cc"
        assert (copy["recipient"], copy["header_to"], copy["cc"]) == (d.cc, d.to, d.cc)
        assert copy["context"] == context


# Each rule stops once its step is done: (what was done, STORY steps, then moves of the test's
# own, case, notice, the day the reminder would otherwise fall due).
STEP_DONE = [
    ("the application was submitted", 1, (), 0, "call_deadline_reminder", date(2027, 1, 25)),
    ("the changed application was submitted again", 1,
     (CHANGES_REQUESTED, (0, "submit", COORDINATOR, date(2027, 2, 20), None, {})),
     0, "resubmission_reminder", date(2027, 2, 22)),
    ("changes were requested without a resubmission date", 1,
     ((0, "request_changes", STAFF, date(2027, 2, 10), "Add the host's letter.", {}),),
     0, "resubmission_reminder", date(2027, 2, 22)),
    ("the grant agreement was recorded", 4, (), 0, "grant_agreement_to_sign", date(2027, 5, 25)),
    ("the training agreement was recorded", 5, (), 1, "training_agreement_reminder",
     date(2027, 8, 30)),
    ("no preparation was planned", 4, (), 2, "preparation_reminder", date(2027, 9, 20)),
    ("the report was received with the validation", 8,
     ((1, "validate", COORDINATOR, date(2027, 10, 5), None,
       {"europass_ref": "EMD-2027-0001", "participant_report_on": "2027-10-01"}),),
     1, "participant_report_reminder", date(2027, 10, 8)),
    ("the report was recorded on its own", 8,
     ((1, "record_report", COORDINATOR, date(2027, 9, 30), None,
       {"participant_report_on": "2027-09-30"}),),
     1, "participant_report_reminder", date(2027, 10, 1)),
    ("the language preparation was recorded on its own", 5,
     ((1, "record_preparation", COORDINATOR, date(2027, 8, 20), None,
       {"preparation_done": "true"}),),
     1, "preparation_reminder", date(2027, 8, 23)),
    ("the mobility was validated", 11, (), 1, "validation_overdue", date(2027, 11, 8)),
    ("the project was closed", 15, (), 0, "final_report_reminder", date(2029, 7, 23)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("done_step", "steps", "then", "case", "kind", "on"), STEP_DONE, ids=[s[0] for s in STEP_DONE]
)
def test_no_reminder_is_sent_once_its_step_is_done(db, done_step, steps, then, case, kind, on):
    done = import_doc(db)
    play(db, done, steps, then)
    case_id = ids_of(done)[case]
    before = outbox(db)
    sweep_one_day(db, on)
    assert kinds(added(before, db))[(case_id, kind)] == 0


# A decision ends every reminder of what it decided: (the decision, STORY steps, the moves that
# decide, which cases they decided). The same project without those moves is reminded.
DECIDED = [
    ("rejected", 2,
     ((0, "reject", STAFF, date(2027, 2, 20), "Below the call's priorities.", {}),), (0, 1, 2)),
    ("withdrawn-while-drafted", 0,
     ((0, "withdraw", COORDINATOR, date(2026, 12, 20), "We cannot go ahead.", {}),), (0, 1, 2)),
    ("withdrawn-after-changes-were-requested", 1,
     (CHANGES_REQUESTED,
      (0, "withdraw", COORDINATOR, date(2027, 2, 15), "We cannot go ahead.", {})), (0, 1, 2)),
    ("withdrawn-after-approval", 3,
     ((0, "withdraw", COORDINATOR, date(2027, 3, 1), "We cannot go ahead.", {}),), (0, 1, 2)),
    ("one-mobility-cancelled", 4,
     ((1, "cancel", COORDINATOR, date(2027, 4, 1), "Markus changed jobs.", {}),), (1,)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("decision", "steps", "moves", "cases"), DECIDED, ids=[d[0] for d in DECIDED]
)
def test_no_reminder_is_sent_for_a_case_that_was_decided(db, decision, steps, moves, cases):
    decided, control = import_doc(db), import_doc(db)
    play(db, decided, steps, moves)
    # The control goes the same way up to the decision (a rejected project's control is
    # approved instead, so that reminders follow).
    play(db, control, steps + 1 if decision == "rejected" else steps, moves[:-1])
    before = outbox(db)

    # One sweep over every day from the import to long after the project's end.
    report = sweep(db, clock=Clock.on(date(2029, 12, 31)), staff_email=STAFF_MAIL, since=IMPORT_DAY)

    rows = added(before, db)
    decided_ids = {ids_of(decided)[i] for i in cases}
    assert [r for r in rows if r["case_id"] in decided_ids] == []
    # The same cases of the control were reminded: the sweep had work there.
    assert any(r["case_id"] in {ids_of(control)[i] for i in cases} for r in rows)
    assert report.transitions == 0


def test_call_deadline_reminders_count_the_days_in_brussels_time(db):
    # 00:30 in Brussels on 1 February is still 31 January in UTC, and 23:30 UTC on 1 February
    # is already 2 February in Brussels: the day before each deadline is the Brussels one.
    ensure_agency(db)
    for code, deadline in (
        ("EARLY", "2027-02-01T00:30:00+01:00"),
        ("LATE", "2027-02-01T23:30:00+00:00"),
    ):
        ensure_agency(db, call_document(code=f"{CALL}-{code}", application_deadline=deadline))
    early = import_doc(db, document(call=f"{CALL}-EARLY"))
    late = import_doc(db, document(call=f"{CALL}-LATE"))

    found = {}
    for day in (date(2027, 1, 30), date(2027, 1, 31), date(2027, 2, 1)):
        before = outbox(db)
        sweep_one_day(db, day)
        found[day] = {
            r["case_id"]: r for r in added(before, db) if r["kind"] == "call_deadline_reminder"
        }

    assert found[date(2027, 1, 30)] == {}
    assert set(found[date(2027, 1, 31)]) == {early.application}
    assert set(found[date(2027, 2, 1)]) == {late.application}
    early_context = found[date(2027, 1, 31)][early.application]["context"]
    late_context = found[date(2027, 2, 1)][late.application]["context"]
    assert (early_context["due_date"], early_context["days_left"]) == ("2027-02-01", 1)
    assert (late_context["due_date"], late_context["days_left"]) == ("2027-02-02", 1)
    assert "2027-02-01 00:30 Brussels time" in early_context["next_step"]
    assert "2027-02-02 00:30 Brussels time" in late_context["next_step"]


def test_the_sweep_returns_an_abroad_mobility_on_its_planned_end_date_and_not_before(db):
    done = import_doc(db)
    walk(db, done, 7)  # Markus abroad since 2027-09-06, back on 2027-09-24
    markus = done.mobilities[0]

    before = outbox(db)
    report = sweep_one_day(db, date(2027, 9, 23))
    assert (state_of(db, markus), report.transitions) == ("abroad", 0)
    assert added(before, db) == []

    report = sweep_one_day(db, date(2027, 9, 24))
    assert (state_of(db, markus), report.transitions) == ("validation", 1)
    last = history(db, markus)[-1]
    assert (last["trigger"], last["source"], last["dest"], last["actor"]) == (
        "return_home",
        "abroad",
        "validation",
        "system",
    )
    assert last["facts"] == {"returned_on": "2027-09-24"}
    assert last["at"] == Clock.on(date(2027, 9, 24)).now
    with db.transaction(write=False) as tx:
        returned = tx.scalar("SELECT returned_on FROM mobility WHERE id = :id", {"id": markus})
    assert returned == date(2027, 9, 24)
    # The same notices as a return the coordinator records: the participant asked for the
    # report, the coordinator told of the return.
    assert sorted((r["case_id"], r["kind"], r["recipient"]) for r in added(before, db)) == [
        (markus, "participant_report_request", PARTICIPANT),
        (markus, "return_recorded", COORDINATOR),
    ]


def test_the_last_return_by_the_sweep_moves_the_project_to_validation(db):
    done = import_doc(db)
    walk(db, done, 9)  # Markus back; Sabine abroad until 2027-10-15
    report = sweep_one_day(db, date(2027, 10, 15))
    assert report.transitions == 1
    assert state_of(db, done.mobilities[1]) == "validation"
    assert state_of(db, done.application) == "validation"
    last = history(db, done.application)[-1]
    assert (last["dest"], last["actor"]) == ("validation", "system")


@pytest.mark.parametrize(
    ("steps", "day"),
    [(4, date(2027, 8, 7)), (7, date(2027, 9, 24))],
    ids=["a-reminder-due", "a-return-due"],
)
def test_a_second_sweep_on_the_same_day_creates_no_duplicate(db, steps, day):
    done = import_doc(db)
    walk(db, done, steps)
    first = sweep_on(db, day)
    assert first.reminders + first.transitions == 1
    before = snapshot(db)

    second = sweep_on(db, day)

    assert (second.reminders, second.transitions, dict(second.by_rule)) == (0, 0, {})
    assert second.as_json()["reminders"] == 0
    assert without_sweep_runs(snapshot(db)) == without_sweep_runs(before)


BUSY_DAY = date(2027, 9, 24)


def busy_store(db: Database) -> dict[str, int]:
    """Three projects with work for the sweep on BUSY_DAY, last swept the day before.

    Two projects have Markus abroad until BUSY_DAY (two returns); a third, later project has
    Markus's training agreement signed 14 days before a departure with language preparation,
    and Sabine's training agreement unsigned 30 days before hers.
    """
    later = import_doc(
        db,
        document(
            **{
                "mobilities.0.start_date": "2027-10-08",
                "mobilities.0.end_date": "2027-10-22",
                "mobilities.1.start_date": "2027-10-24",
                "mobilities.1.end_date": "2027-11-05",
            }
        ),
    )
    walk(db, later, 4)
    advance(db, later.mobilities[0], "start_preparation", on=date(2027, 9, 1),
            agreement_signed_on="2027-09-01")  # fmt: skip
    first, second = import_doc(db), import_doc(db)
    walk(db, first, 7)
    walk(db, second, 7)
    quiet = sweep_on(db, BUSY_DAY - DAY)
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
def crash_on_insert(db: Database, table: str, when: str) -> Iterator[None]:
    """Make the database refuse an insert into `table` matching `when`, as a crash would."""
    if db.dialect == "sqlite":
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
    with db.transaction() as tx:
        for statement in create:
            tx.execute(statement)
    try:
        yield
    finally:
        with db.transaction() as tx:
            for statement in drop:
                tx.execute(statement)


# Where a sweep can stop: (where, table, the row it dies on, what the run again has left to do:
# returns, reminders). A day's returns are written in one transaction: a crash among them leaves
# all of them to the next run.
INTERRUPTIONS = [
    ("between-two-returns", "history",
     "NEW.\"trigger\" = 'return_home' AND NEW.case_id = {return 2}", 2, 2),
    ("between-two-rules", "outbox", "NEW.kind = 'preparation_reminder'", 0, 1),
    ("before-the-run-was-recorded", "sweep_run", "1 = 1", 0, 0),
]  # fmt: skip


@pytest.mark.parametrize(
    ("where", "table", "when", "returns_left", "reminders_left"),
    INTERRUPTIONS,
    ids=[i[0] for i in INTERRUPTIONS],
)
def test_a_sweep_interrupted_and_run_again_completes_its_work_without_duplicates(
    db, where, table, when, returns_left, reminders_left
):
    cases = busy_store(db)
    before = outbox(db)
    with (
        crash_on_insert(db, table, when.format_map(cases)),
        pytest.raises(Exception, match="sweep interrupted"),
    ):
        sweep_on(db, BUSY_DAY)
    assert last_swept(db) == BUSY_DAY - DAY  # the interrupted run recorded nothing

    again = sweep_on(db, BUSY_DAY)

    assert (again.transitions, again.reminders) == (returns_left, reminders_left)
    assert kinds(added(before, db)) == busy_day_work(cases)
    for mobility in (cases["return 1"], cases["return 2"]):
        assert state_of(db, mobility) == "validation"
        assert [h["trigger"] for h in history(db, mobility)].count("return_home") == 1
    assert last_swept(db) == BUSY_DAY
    third = sweep_on(db, BUSY_DAY)
    assert (third.transitions, third.reminders) == (0, 0)


def test_a_sweep_after_five_missed_days_sends_what_fell_due_meanwhile_once(db):
    # The example in preparation with both mobilities approved: Markus's training agreement is
    # reminded 7 days before 2027-09-06 (08-30), Sabine's 30 days before 2027-10-04 (09-04).
    # A later project, approved, starts 2027-09-28: its grant agreement is reminded on 08-29;
    # its first mobility (from 10-05) on 09-05 and its second (from 10-04) on 09-04.
    example = import_doc(db)
    walk(db, example, 4)
    later = import_doc(
        db,
        document(
            **{
                "project.start_date": "2027-09-28",
                "mobilities.0.start_date": "2027-10-05",
                "mobilities.0.end_date": "2027-10-19",
                "mobilities.0.language_preparation": False,
            }
        ),
    )
    walk(db, later, 3)
    last = date(2027, 8, 29)
    on_last = sweep_on(db, last)
    assert dict(on_last.by_rule) == {"grant_agreement": 1}
    before = outbox(db)

    catch_up = sweep_on(db, last + 6 * DAY)

    assert catch_up.since == last
    assert kinds(added(before, db)) == Counter(
        {
            (example.mobilities[0], "training_agreement_reminder"): 1,
            (example.mobilities[1], "training_agreement_reminder"): 1,
            (later.mobilities[1], "training_agreement_reminder"): 1,
        }
    )
    late = next(r for r in added(before, db) if r["case_id"] == example.mobilities[0])
    assert late["context"]["days_left"] == 2  # sent on 09-04 for a departure on 09-06
    assert sweep_on(db, last + 6 * DAY).reminders == 0
    before = outbox(db)
    assert sweep_on(db, last + 7 * DAY).reminders == 1
    assert kinds(added(before, db)) == Counter(
        {(later.mobilities[0], "training_agreement_reminder"): 1}
    )


def test_a_sweep_after_missed_days_returns_a_mobility_on_its_planned_end_date(db):
    done = import_doc(db)
    walk(db, done, 7)  # Markus abroad, back on 2027-09-24
    markus = done.mobilities[0]
    sweep_on(db, date(2027, 9, 20))

    report = sweep_on(db, date(2027, 9, 26))

    assert (report.since, report.transitions, state_of(db, markus)) == (
        date(2027, 9, 20),
        1,
        "validation",
    )
    last = history(db, markus)[-1]
    assert (last["actor"], last["facts"]) == ("system", {"returned_on": "2027-09-24"})
    assert last["at"] == Clock.on(date(2027, 9, 26)).now  # recorded when the sweep ran
    before = outbox(db)
    sweep_on(db, date(2027, 10, 1))  # 7 days after the return
    assert kinds(added(before, db)) == Counter({(markus, "participant_report_reminder"): 1})


def test_a_dry_run_lists_what_would_be_sent_or_moved_and_writes_nothing(db):
    cases = busy_store(db)
    before = snapshot(db)

    dry = sweep_on(db, BUSY_DAY, dry_run=True)

    assert snapshot(db) == before
    assert (dry.transitions, dry.reminders) == (2, 2)
    assert dict(dry.by_rule) == {"preparation": 1, "training_agreement": 1}
    moves = {(p["case_id"], p["trigger"], p["on"]) for p in dry.planned if "trigger" in p}
    assert moves == {
        (cases["return 1"], "return_home", "2027-09-24"),
        (cases["return 2"], "return_home", "2027-09-24"),
    }
    reminders = {(p["case_id"], p["rule"], p["to"], p["due"]) for p in dry.planned if "rule" in p}
    assert reminders == {
        (cases["preparation"], "preparation", COORDINATOR, "2027-10-08"),
        (cases["training agreement"], "training_agreement", COORDINATOR, "2027-10-24"),
    }
    assert dry.as_json()["planned"] == dry.planned

    queued = outbox(db)
    done = sweep_on(db, BUSY_DAY)
    assert done.transitions == 2
    reminder_keys = {r["key"] for r in added(queued, db) if r["kind"].endswith("_reminder")}
    assert reminder_keys == {p["key"] for p in dry.planned if "rule" in p}


def test_a_dry_run_lists_the_coordinators_copy_of_a_participant_report_reminder(db):
    done = import_doc(db)
    walk(db, done, 8)  # Markus back on 2027-09-24, his report not received
    before = snapshot(db)

    dry = sweep_one_day(db, date(2027, 10, 24), dry_run=True)

    assert snapshot(db) == before
    markus = done.mobilities[0]
    assert sorted((p["case_id"], p["rule"], p["to"], p["due"]) for p in dry.planned) == [
        (markus, "participant_report", COORDINATOR, "2027-09-24"),
        (markus, "participant_report", PARTICIPANT, "2027-09-24"),
    ]


def test_a_dry_run_does_not_list_reminders_already_queued(db):
    cases = busy_store(db)
    sweep_on(db, BUSY_DAY)
    before = snapshot(db)

    dry = sweep_one_day(db, BUSY_DAY, dry_run=True)

    assert (dry.planned, dry.reminders, dry.transitions) == ([], 0, 0)
    assert snapshot(db) == before
    assert state_of(db, cases["return 1"]) == "validation"


def test_a_sweep_on_a_day_with_nothing_due_writes_no_outbox_row(db):
    first, second = import_doc(db), import_doc(db)
    walk(db, first, 4)
    walk(db, second, 14)
    before = snapshot(db)

    report = sweep_one_day(db, date(2027, 7, 15))

    assert (report.reminders, report.transitions, report.planned) == (0, 0, [])
    after = snapshot(db)
    assert after["outbox"] == before["outbox"]
    assert {t for t in after if after[t] != before[t]} == {"sweep_run"}


def test_a_dry_run_after_an_interrupted_sweep_lists_only_what_is_left(db):
    cases = busy_store(db)
    crash = crash_on_insert(db, "outbox", "NEW.kind = 'preparation_reminder'")
    with crash, pytest.raises(Exception, match="sweep interrupted"):
        sweep_on(db, BUSY_DAY)

    dry = sweep_on(db, BUSY_DAY, dry_run=True)

    assert [(p["case_id"], p["rule"]) for p in dry.planned] == [
        (cases["preparation"], "preparation")
    ]
