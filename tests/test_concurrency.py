"""Eight people advancing the same case at once: exactly one wins, the others get a conflict."""

from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import date

from sqlalchemy import func, select
from sqlmodel import Session

from factories import STAFF, import_doc, walk
from vetpro_workflow.cases import apply
from vetpro_workflow.clock import Clock
from vetpro_workflow.db import make_engine, writing
from vetpro_workflow.errors import ConflictError
from vetpro_workflow.models import Case, History

WORKERS = 8
DAY = date(2027, 2, 20)


def _approve(url_or_engine, case_id: int, version: int, start: float) -> str:
    """One worker: wait for the common start, then approve at the version it saw."""
    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    time.sleep(max(0.0, start - time.time()))
    try:
        with writing(engine) as session:
            apply(
                session=session,
                case_id=case_id,
                trigger="approve",
                actor=STAFF,
                clock=Clock.on(DAY),
                note="Approved by the committee.",
                expected_version=version,
            )
        return "moved"
    except ConflictError:
        return "conflict"
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()


def _submitted(engine) -> tuple[int, int]:
    done = import_doc(engine)
    walk(engine, done, 1)
    with Session(engine) as session:
        version = session.get(Case, done.application).version
    return done.application, version


def _outcome(engine, case_id: int, results: list[str]) -> None:
    assert sorted(results) == ["conflict"] * (WORKERS - 1) + ["moved"]
    with Session(engine) as session:
        approvals = session.execute(
            select(func.count())
            .select_from(History)
            .where(History.case_id == case_id, History.trigger == "approve")
        ).scalar_one()
        case = session.get(Case, case_id)
    assert approvals == 1
    assert case.state == "approved"


def test_eight_threads_approving_at_once_yield_one_move_and_seven_conflicts(engine):
    case_id, version = _submitted(engine)
    start = time.time() + 0.3
    results: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        outcome = _approve(engine, case_id, version, start)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    _outcome(engine, case_id, results)


def test_eight_processes_approving_at_once_on_the_file_database_yield_one_move(sqlite_engine):
    case_id, version = _submitted(sqlite_engine)
    url = sqlite_engine.url.render_as_string(hide_password=False)
    start = time.time() + 3.0  # spawned interpreters need a moment to import
    with multiprocessing.get_context("spawn").Pool(WORKERS) as pool:
        results = pool.starmap(_approve, [(url, case_id, version, start)] * WORKERS)
    _outcome(sqlite_engine, case_id, results)
