"""The daily sweep on stores of 100,000 and 1,000,000 cases, against hand-written SQL.

Each store is built in bulk with plain sqlite3 into the product's schema: years of finished
projects, which grow with the store, and the current projects, the same in every store, among
which `--due` cases fall due on the day swept (training agreements and grant agreements 30 days
ahead, participant reports 7 days after a return, and returns on the planned end date). The store
is then analysed the way the product leaves it (`schema.optimize`, which imports and sweeps run).
`sweeps.sweep` runs on a fresh copy of each store; the baseline, in the same run and on another
fresh copy, does the same selections (the same windows) with plain sqlite3 and inserts the same
number of outbox rows. What matters is the growth from the small store to the large one, as a
ratio to the baseline's growth: a sweep whose cost follows what is due, not the store, stays near 1.
Usage: python benchmarks/sweep.py [--sizes 100000,1000000] [--due 2000] [--rounds 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

# This folder holds a script named like a library (transitions.py): keep it off the import path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import shutil
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta

from vetpro_workflow.clock import Clock
from vetpro_workflow.dev.bench import STAFF_MAIL, filled_store, report
from vetpro_workflow.store.database import Database
from vetpro_workflow.store.schema import optimize
from vetpro_workflow.sweeps import sweep

DAY = date(2027, 6, 15)
STAMP = datetime(2026, 12, 1, tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _case(conn: sqlite3.Connection, kind: str, state: str, app: int | None) -> int:
    return int(
        conn.execute(
            'INSERT INTO "case" (kind, state, version, organisation_id, application_id, '
            "created_at, updated_at) VALUES (?, ?, 1, 1, ?, ?, ?)",
            (kind, state, app, STAMP, STAMP),
        ).lastrowid
    )


def _project(
    conn: sqlite3.Connection, state: str, start: date, end: date, mobilities: list[tuple]
) -> None:
    app = _case(conn, "application", state, None)
    conn.execute(
        "INSERT INTO application (id, call_id, applicant_id, coordinator_id, title, objectives, "
        "dissemination_plan, start_date, end_date, digest) VALUES (?, 1, 1, 2, 'Bulk project', "
        "'Objectives', 'Plan', ?, ?, ?)",
        (app, start.isoformat(), end.isoformat(), f"bulk-{app}"),
    )
    conn.execute("INSERT INTO application_partner VALUES (?, 2)", (app,))
    for m_state, m_start, m_end, returned in mobilities:
        m = _case(conn, "mobility", m_state, app)
        conn.execute(
            "INSERT INTO mobility (id, application_id, participant_id, host_id, start_date, "
            "end_date, objectives, content, language_preparation, returned_on) "
            "VALUES (?, ?, 1, 2, ?, ?, 'Objectives', 'Content', 0, ?)",
            (m, app, m_start.isoformat(), m_end.isoformat(), returned and returned.isoformat()),
        )


def build(template: Path, path: Path, size: int, due: int) -> None:
    """A store of `size` cases, `due` of which fall due on DAY."""
    shutil.copy(template, path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    quarter = due // 4
    for _ in range(quarter):  # training agreement (30 days ahead) and a return today
        _project(
            conn,
            "preparation",
            DAY - timedelta(days=60),
            DAY + timedelta(days=400),
            [
                ("approved", DAY + timedelta(days=30), DAY + timedelta(days=50), None),
                ("abroad", DAY - timedelta(days=10), DAY, None),
            ],
        )
    for _ in range(quarter):  # grant agreement (30 days ahead); participant report (7 days after)
        _project(
            conn,
            "approved",
            DAY + timedelta(days=30),
            DAY + timedelta(days=500),
            [("approved", DAY + timedelta(days=200), DAY + timedelta(days=220), None)],
        )
        _project(
            conn,
            "validation",
            DAY - timedelta(days=90),
            DAY + timedelta(days=300),
            [
                (
                    "validation",
                    DAY - timedelta(days=30),
                    DAY - timedelta(days=7),
                    DAY - timedelta(days=7),
                )
            ],
        )
    done = conn.execute('SELECT count(*) FROM "case"').fetchone()[0]
    year = 0
    while done < size:  # finished projects of past years, three cases each
        start = date(2015 + year % 8, 1 + year % 12, 1)
        _project(
            conn,
            "closed",
            start,
            start + timedelta(days=600),
            [
                (
                    "completed",
                    start + timedelta(days=100),
                    start + timedelta(days=120),
                    start + timedelta(days=120),
                ),
                ("cancelled", start + timedelta(days=150), start + timedelta(days=170), None),
            ],
        )
        done, year = done + 3, year + 1
    conn.execute("COMMIT")
    conn.close()
    with Database(f"sqlite:///{path}") as db:
        optimize(db)


def ours(path: Path) -> tuple[float, int]:
    with Database(f"sqlite:///{path}") as db:
        start = time.perf_counter()
        done = sweep(db, clock=Clock.on(DAY), staff_email=STAFF_MAIL, since=DAY - timedelta(days=1))
        return time.perf_counter() - start, done.reminders + done.transitions


SELECTIONS = [
    """SELECT c.id FROM mobility m JOIN "case" c ON c.id = m.id WHERE c.state = 'approved'
       AND m.start_date BETWEEN ? AND ?""",
    """SELECT c.id FROM application a JOIN "case" c ON c.id = a.id WHERE c.state = 'approved'
       AND a.start_date BETWEEN ? AND ?""",
    """SELECT c.id FROM mobility m JOIN "case" c ON c.id = m.id WHERE c.state = 'validation'
       AND m.returned_on BETWEEN ? AND ? AND m.participant_report_on IS NULL""",
    """SELECT c.id FROM mobility m JOIN "case" c ON c.id = m.id WHERE c.state = 'abroad'
       AND m.end_date BETWEEN ? AND ?""",
]


def baseline(path: Path) -> tuple[float, int]:
    conn = sqlite3.connect(path, isolation_level=None)
    ahead, back = (DAY + timedelta(days=30)).isoformat(), (DAY - timedelta(days=7)).isoformat()
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    found: list[int] = []
    for sql, day in zip(SELECTIONS, (ahead, ahead, back, DAY.isoformat()), strict=True):
        found += [row[0] for row in conn.execute(sql, (day, day))]
    conn.executemany(
        "INSERT INTO outbox (key, case_id, kind, recipient, context, status, attempts, "
        "next_attempt_at, created_at) VALUES (?, ?, 'reminder', 'a@b.example', '{}', 'pending', "
        "0, ?, ?) ON CONFLICT (key) DO NOTHING",
        [(f"base-{case}", case, STAMP, STAMP) for case in found],
    )
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed, len(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--due", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        filled_store(root / "template.db", 1)  # the schema, the agency, its call, one project
        for size in sizes:
            built = root / f"store-{size}.db"
            started = time.perf_counter()
            build(root / "template.db", built, size, args.due)
            print(f"  built a store of {size:,} cases in {time.perf_counter() - started:.0f} s")
            mine, theirs, counts = [], [], set()
            for _ in range(args.rounds):
                shutil.copy(built, root / "ours.db")
                shutil.copy(built, root / "base.db")
                a, n = ours(root / "ours.db")
                b, m = baseline(root / "base.db")
                mine.append(a)
                theirs.append(b)
                counts |= {n, m}
            results[size] = {
                "sweep": statistics.median(mine),
                "sql": statistics.median(theirs),
                "due": sorted(counts),
            }
    small, large = results[sizes[0]], results[sizes[-1]]
    growth = large["sweep"] / small["sweep"]
    base_growth = large["sql"] / small["sql"]
    report(
        f"sweep: {args.due} cases due, stores of {', '.join(f'{s:,}' for s in sizes)} cases, "
        f"median of {args.rounds}",
        [
            *(
                f"{size:>9,} cases: sweep {r['sweep']:.2f} s, hand-written SQL {r['sql']:.3f} s "
                f"(due: {r['due']})"
                for size, r in results.items()
            ),
            f"growth {sizes[0]:,} -> {sizes[-1]:,}: sweep x{growth:.2f}, SQL x{base_growth:.2f}",
        ],
        growth / base_growth,
        "near 1: the sweep grows as the SQL does",
        {"results": results, "growth": growth, "sql_growth": base_growth},
    )


if __name__ == "__main__":
    main()
