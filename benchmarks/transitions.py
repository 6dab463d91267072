"""Transitions per second through the service on SQLite, against raw sqlite3 doing the same writes.

The transition timed is a coordinator cancelling a drafted mobility with a note: `cases.apply`
updates the case with a compare-and-set on its version, writes one history row and one outbox row
('mobility_cancelled') and commits, in one `db.writing` session per transition as the CLI does.
The baseline, in the same run, starts from a copy of the same store and does those writes with
plain sqlite3: `UPDATE ... WHERE id = ? AND version = ?` (rowcount checked), the history insert
and the outbox insert, in one `BEGIN IMMEDIATE ... COMMIT` per case.

    .venv/bin/python benchmarks/transitions.py [--cases N] [--rounds N] [--warmup N] [--profile]
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
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import date
from importlib import resources

import sqlalchemy
from sqlalchemy import Engine

from vetpro_workflow.cases import apply
from vetpro_workflow.clock import Clock
from vetpro_workflow.db import create_schema, make_engine, writing
from vetpro_workflow.filing import file_document
from vetpro_workflow.intake import parse

TARGET = 0.05  # the acceptance: service rate / raw rate
COORDINATOR = "anna.huber@bbz-steyr.example"
NOTE = "The participant withdrew before the application was sent."
FILED = Clock.on(date(2026, 12, 1))
CLOCK = Clock.on(date(2027, 1, 20))
AT = f"{CLOCK.now:%Y-%m-%d %H:%M:%S.%f}"  # how SQLAlchemy stores a timestamp on SQLite


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
    # The service's outbox context for this move: its keys and size, representative values.
    context = {
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


def warm_up(fire: Callable[[int], None], conn: sqlite3.Connection, ids: list[int]) -> float:
    """Fire the untimed transitions; the SQL statements SQLite ran per transition meanwhile."""
    with counting(conn) as seen:
        for case_id in ids:
            fire(case_id)
    return len(seen) / len(ids)


def check_writes(conn: sqlite3.Connection, expected: int, path: str) -> None:
    """Each case moved once and got exactly one history row and one outbox row."""
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM \"case\" WHERE state = 'cancelled'), "
        "(SELECT count(*) FROM history WHERE trigger = 'cancel'), "
        "(SELECT count(*) FROM outbox WHERE kind = 'mobility_cancelled')"
    ).fetchone()
    if counts != (expected, expected, expected):
        raise RuntimeError(f"{path}: {counts} moves, history and outbox rows; wanted {expected}")


@dataclass(frozen=True)
class Comparison:
    """Both paths' rates, round by round, and the statements each sends per transition."""

    service: list[float]
    raw: list[float]
    service_statements: float
    raw_statements: float

    @property
    def ratios(self) -> list[float]:
        return [s / r for s, r in zip(self.service, self.raw, strict=True)]


def compare(
    engine: Engine, stores: tuple[Path, Path], warm: list[int], rounds: list[list[int]]
) -> Comparison:
    """Warm both paths up, then time them round by round, alternating, on the same cases."""
    service_db, raw_db = stores
    with closing(connect_raw(raw_db)) as conn:
        # Transitions run one after another, so the pool hands every session this connection.
        with closing(engine.raw_connection()) as pooled:
            driver = pooled.driver_connection
        assert isinstance(driver, sqlite3.Connection)

        def service(case_id: int) -> None:
            cancel_through_service(engine, case_id)

        def raw(case_id: int) -> None:
            cancel_raw(conn, case_id)

        comparison = Comparison([], [], warm_up(service, driver, warm), warm_up(raw, conn, warm))
        # Alternating keeps a busy moment on the machine from landing on one path only.
        for ids in rounds:
            comparison.service.append(timed(service, ids))
            comparison.raw.append(timed(raw, ids))
        expected = len(warm) + sum(map(len, rounds))
        check_writes(conn, expected, "raw sqlite3 baseline")
    with closing(sqlite3.connect(service_db)) as check:
        check_writes(check, expected, "service")
    return comparison


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


def report(comparison: Comparison, *, cases: int, warmup: int) -> None:
    """Print both paths, their ratio and what they were measured on."""
    ratio = statistics.median(comparison.ratios)
    rows = (
        ("service (cases.apply)", comparison.service, comparison.service_statements),
        ("raw sqlite3 baseline", comparison.raw, comparison.raw_statements),
    )
    verdict = "met" if ratio >= TARGET else "NOT met"
    print("Transitions on SQLite: a coordinator cancels a drafted mobility, with a note")
    print("(per transaction: 1 case update with version check, 1 history row, 1 outbox row)")
    print()
    print(f"  {'path':<23}{'transitions/s':>14}{'ms each':>9}{'statements':>12}   range/s")
    for name, rates, statements in rows:
        rate = statistics.median(rates)
        spread = f"{min(rates):,.0f}-{max(rates):,.0f}"
        print(f"  {name:<23}{rate:>14,.0f}{1000 / rate:>9.3f}{statements:>12.1f}   {spread}")
    print()
    print(
        f"  ratio    {ratio:.4f}   (target >= {TARGET}: {verdict}; rounds: "
        f"{min(comparison.ratios):.4f}-{max(comparison.ratios):.4f})"
    )
    print(
        f"  cases    {cases:,} per path in {len(comparison.ratios)} alternating rounds, "
        f"after {warmup:,} warm-up; medians shown"
    )
    print(f"  machine  {machine()}")


def main(argv: list[str] | None = None) -> int:
    """Measure both paths in one run and print them with their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000, help="transitions timed per path")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds (default 10)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed transitions per path")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the service path instead of comparing"
    )
    args = parser.parse_args(argv)
    if min(args.cases, args.rounds, args.warmup) < 1 or args.rounds > args.cases:
        parser.error("--cases, --rounds and --warmup must be at least 1, --rounds at most --cases")

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
            rounds = [cases[i :: args.rounds] for i in range(args.rounds)]
            comparison = compare(engine, (service_db, raw_db), warm, rounds)
        finally:
            engine.dispose()
    report(comparison, cases=args.cases, warmup=args.warmup)
    return 0


if __name__ == "__main__":
    sys.exit(main())
