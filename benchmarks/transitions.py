"""Transitions per second through the service on SQLite, against raw sqlite3 doing the same writes.

The transition timed is a coordinator cancelling a drafted mobility with a note: `cases.apply`
updates the case with a compare-and-set on its version, writes one history row and one outbox row
('mobility_cancelled') and commits, in one `db.writing` session per transition as the CLI does.
The baseline, in the same run, starts from a copy of the same store and does those writes with
plain sqlite3: `UPDATE ... WHERE id = ? AND version = ?` (rowcount checked), the history insert
and the outbox insert, in one `BEGIN IMMEDIATE ... COMMIT` per case.

    .venv/bin/python benchmarks/transitions.py [--cases N] [--warmup N] [--profile]
"""

from __future__ import annotations

import sys
from pathlib import Path

# This script is named like the `transitions` library the workflows import; keep its own folder
# off the import path so that `import transitions` finds the library, not this file.
if (_here := str(Path(__file__).resolve().parent)) in sys.path:
    sys.path.remove(_here)

import argparse
import cProfile
import json
import platform
import pstats
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import date
from importlib import resources

import sqlalchemy
from sqlalchemy import Engine, func, select

from vetpro_workflow.cases import apply
from vetpro_workflow.clock import Clock
from vetpro_workflow.db import create_schema, make_engine, writing
from vetpro_workflow.intake import file_document, parse
from vetpro_workflow.models import Case, History, Outbox

TARGET = 0.05  # the acceptance: service rate / raw rate
COORDINATOR = "anna.huber@bbz-steyr.example"
NOTE = "The participant withdrew before the application was sent."
FILED = Clock.on(date(2026, 12, 1))
CLOCK = Clock.on(date(2027, 1, 20))
AT = f"{CLOCK.now:%Y-%m-%d %H:%M:%S.%f}"  # how SQLAlchemy stores a timestamp on SQLite


@dataclass(frozen=True)
class Measured:
    """One path's rate and the SQL statements SQLite saw per transition."""

    rate: float
    statements: float


def seed(engine: Engine, cases: int) -> list[int]:
    """File the example document until `cases` drafted mobilities exist; their ids."""
    text = resources.files("vetpro_workflow").joinpath("examples/application.json").read_text()
    doc = parse(text, source="application.json")
    ids: list[int] = []
    while len(ids) < cases:
        with writing(engine) as session:
            ids += file_document(session, doc, clock=FILED, source="application.json").mobilities
    return ids[:cases]


def copy_store(source: Path, target: Path) -> None:
    """A page-for-page copy of a SQLite file, so both paths start from the same store."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def cancel_through_service(engine: Engine, case_id: int) -> None:
    """One transition the way the CLI fires it: its own write session, one commit."""
    with writing(engine) as session:
        moves = apply(
            session=session,
            case_id=case_id,
            trigger="cancel",
            actor=COORDINATOR,
            clock=CLOCK,
            note=NOTE,
        )
    if len(moves) != 1:
        raise RuntimeError(f"case {case_id}: expected one move, got {moves}")


def connect_raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection set up as `db.make_engine` sets up SQLite."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=60, check_same_thread=False)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute("PRAGMA busy_timeout=60000")
    return conn


def cancel_raw(conn: sqlite3.Connection, case_id: int) -> None:
    """The service's writes by hand: compare-and-set, history row, outbox row, one commit."""
    context = {  # the outbox context has the service's keys and is serialised per row as well
        "case_id": case_id,
        "case_kind": "mobility",
        "state": "cancelled",
        "trigger": "cancel",
        "note": NOTE,
        "coordinator_name": "Anna Huber",
        "applicant": "Berufsbildungszentrum Steyr",
        "next_step": "Nothing: the mobility is cancelled.",
        "next_step_due": None,
        "application_id": case_id - 1,
        "project_title": "Digital welding simulators in vocational training",
        "participant_name": "Markus Leitner",
        "host": "Omnia Vocational College",
        "host_country": "FI",
        "start_date": "2027-09-06",
        "end_date": "2027-09-24",
    }
    conn.execute("BEGIN IMMEDIATE")
    try:
        changed = conn.execute(
            'UPDATE "case" SET state = ?, version = version + 1, updated_at = ? '
            "WHERE id = ? AND version = ?",
            ("cancelled", AT, case_id, 1),
        )
        if changed.rowcount != 1:
            raise RuntimeError(f"case {case_id} was changed meanwhile")
        conn.execute(
            "INSERT INTO history (case_id, version, trigger, source, dest, actor, at, note, facts) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (case_id, 2, "cancel", "drafted", "cancelled", COORDINATOR, AT, NOTE, "{}"),
        )
        conn.execute(
            "INSERT INTO outbox (key, case_id, kind, recipient, context, status, attempts, "
            "next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                f"case-{case_id}:mobility_cancelled:v2",
                case_id,
                "mobility_cancelled",
                COORDINATOR,
                json.dumps(context),
                "pending",
                0,
                AT,
                AT,
            ),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


@contextmanager
def counting(conn: sqlite3.Connection) -> Iterator[list[str]]:
    """Every statement SQLite runs on a connection meanwhile (BEGIN and COMMIT included)."""
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        conn.set_trace_callback(None)


def timed(fire: Callable[[int], None], ids: list[int]) -> float:
    """Transitions per second over the given cases."""
    start = time.perf_counter()
    for case_id in ids:
        fire(case_id)
    return len(ids) / (time.perf_counter() - start)


def measure_service(engine: Engine, warm: list[int], cases: list[int]) -> Measured:
    """Warm up (counting statements), then time the service path."""
    # Transitions run one after another, so the pool hands every session this same connection.
    with closing(engine.raw_connection()) as pooled:
        driver = pooled.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    with counting(driver) as seen:
        for case_id in warm:
            cancel_through_service(engine, case_id)
    rate = timed(lambda case_id: cancel_through_service(engine, case_id), cases)
    with engine.connect() as conn:
        moved = conn.scalar(select(func.count()).where(Case.state == "cancelled"))
        history = conn.scalar(select(func.count()).where(History.trigger == "cancel"))
        outbox = conn.scalar(select(func.count()).where(Outbox.kind == "mobility_cancelled"))
    expected = len(warm) + len(cases)
    if not moved == history == outbox == expected:
        raise RuntimeError(f"service wrote {moved} moves, {history} history, {outbox} outbox rows")
    return Measured(rate, len(seen) / len(warm))


def measure_raw(path: Path, warm: list[int], cases: list[int]) -> Measured:
    """Warm up (counting statements), then time the raw sqlite3 baseline."""
    with closing(connect_raw(path)) as conn:
        with counting(conn) as seen:
            for case_id in warm:
                cancel_raw(conn, case_id)
        rate = timed(lambda case_id: cancel_raw(conn, case_id), cases)
        sql = "SELECT count(*) FROM outbox WHERE kind = 'mobility_cancelled'"
        if conn.execute(sql).fetchone()[0] != len(warm) + len(cases):
            raise RuntimeError("the baseline did not write one outbox row per case")
    return Measured(rate, len(seen) / len(warm))


def profile(engine: Engine, warm: list[int], cases: list[int], *, top: int) -> None:
    """Run the service path under cProfile and print the top entries by cumulative time."""
    for case_id in warm:
        cancel_through_service(engine, case_id)
    profiler = cProfile.Profile()
    profiler.enable()
    for case_id in cases:
        cancel_through_service(engine, case_id)
    profiler.disable()
    print(f"cProfile of {len(cases):,} service transitions, top {top} by cumulative time:")
    pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats("cumulative").print_stats(top)


def machine() -> str:
    """The interpreter and libraries the figures were measured with."""
    return (
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}, SQLite {sqlite3.sqlite_version}, "
        f"SQLAlchemy {sqlalchemy.__version__}"
    )


def report(service: Measured, raw: Measured, *, cases: int, warmup: int) -> None:
    """Print both paths, their ratio and what they were measured on."""
    ratio = service.rate / raw.rate
    print("Transitions on SQLite: a coordinator cancels a drafted mobility, with a note")
    print("(per transaction: 1 case update with version check, 1 history row, 1 outbox row)")
    print()
    print(f"  {'path':<24}{'transitions/s':>14}{'ms each':>10}{'SQL statements':>16}")
    for name, m in (("service (cases.apply)", service), ("raw sqlite3 baseline", raw)):
        print(f"  {name:<24}{m.rate:>14,.0f}{1000 / m.rate:>10.3f}{m.statements:>16.1f}")
    print()
    print(
        f"  ratio    {ratio:.3f}  (target >= {TARGET}: {'met' if ratio >= TARGET else 'NOT met'})"
    )
    print(f"  cases    {cases:,} timed per path, after {warmup:,} warm-up")
    print(f"  machine  {machine()}")


def main(argv: list[str] | None = None) -> int:
    """Measure both paths in one run and print them with their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000, help="transitions timed (default 2000)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed transitions first")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the service path instead of comparing"
    )
    args = parser.parse_args(argv)
    if args.cases < 1 or args.warmup < 1:
        parser.error("--cases and --warmup must be at least 1")

    with tempfile.TemporaryDirectory(prefix="vetpro-bench-") as tmp:
        service_db, raw_db = Path(tmp) / "service.db", Path(tmp) / "raw.db"
        engine = make_engine(f"sqlite:///{service_db}")
        try:
            create_schema(engine)
            ids = seed(engine, args.warmup + args.cases)
            warm, cases = ids[: args.warmup], ids[args.warmup :]
            if args.profile:
                profile(engine, warm, cases, top=25)
                return 0
            copy_store(service_db, raw_db)
            service = measure_service(engine, warm, cases)
        finally:
            engine.dispose()
        raw = measure_raw(raw_db, warm, cases)
    report(service, raw, cases=args.cases, warmup=args.warmup)
    return 0


if __name__ == "__main__":
    sys.exit(main())
