"""State changes per second through the service, against raw sqlite3 doing the same writes.

Our path: `cases.advance` on a SQLite file, as the command line runs it: a coordinator cancels
a drafted mobility with a note, which reads the actor and the project and writes one
compare-and-set of the case, one history row and one outbox row, in one transaction.
Baseline: plain sqlite3 on a copy of the same store with the same PRAGMAs: BEGIN IMMEDIATE, the
same UPDATE (rowcount checked), the same two INSERTs (the outbox context serialised), COMMIT.
Rounds alternate between the two on disjoint cases; the ratio is the median of the rounds'.
Rounds are long (2,000 moves, about a second of ours): with short ones each round starts cold
after the other path ran, and the ratio falls with the round's length (0.23 with rounds of 50
moves, 0.27-0.34 with 200, 0.30-0.37 (median 0.34 over six runs) with 2,000, on the same
machine and code).
Usage: python benchmarks/transitions.py [--rounds 7] [--per-round 2000]
"""

from __future__ import annotations

import sys
from pathlib import Path

# This folder holds a script named like a library (transitions.py): keep it off the import path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import shutil
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from vetpro_workflow.cases import advance
from vetpro_workflow.clock import Clock
from vetpro_workflow.dev.bench import COORDINATOR, STAFF_MAIL, filled_store, report, spread
from vetpro_workflow.store.database import Database

DAY = Clock.on(date(2027, 1, 10))


def ours(db: Database, ids: list[int]) -> float:
    start = time.perf_counter()
    for case_id in ids:
        advance(
            db,
            case_id=case_id,
            trigger="cancel",
            actor=COORDINATOR,
            clock=DAY,
            staff_email=STAFF_MAIL,
            note="The participant left the school.",
        )
    return len(ids) / (time.perf_counter() - start)


def raw(path: Path, ids: list[int], context: dict) -> float:
    conn = sqlite3.connect(path, isolation_level=None, timeout=60)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    now = DAY.now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    sent = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    start = time.perf_counter()
    for case_id in ids:
        conn.execute("BEGIN IMMEDIATE")
        moved = conn.execute(
            'UPDATE "case" SET state = ?, version = ?, updated_at = ? WHERE id = ? AND version = ?',
            ("cancelled", 2, now, case_id, 1),
        ).rowcount
        assert moved == 1
        conn.execute(
            "INSERT INTO history (case_id, version, trigger, source, dest, actor, at, note, facts) "
            "VALUES (?, 2, 'cancel', 'drafted', 'cancelled', ?, ?, ?, '{}')",
            (case_id, COORDINATOR, now, "The participant left the school."),
        )
        conn.execute(
            "INSERT INTO outbox (key, case_id, kind, recipient, context, status, attempts, "
            "next_attempt_at, created_at) VALUES (?, ?, 'mobility_cancelled', ?, ?, 'pending', 0, "
            "?, ?)",
            (
                f"case-{case_id}:mobility_cancelled:v2",
                case_id,
                COORDINATOR,
                json.dumps(context),
                sent,
                sent,
            ),
        )
        conn.execute("COMMIT")
    rate = len(ids) / (time.perf_counter() - start)
    conn.close()
    return rate


def statements(db: Database, case_id: int) -> list[str]:
    """The SQL statements one move runs (BEGIN and COMMIT included)."""
    seen: list[str] = []
    with db.transaction(write=False) as tx:
        tx.raw.set_trace_callback(seen.append)
    seen.clear()
    advance(
        db,
        case_id=case_id,
        trigger="cancel",
        actor=COORDINATOR,
        clock=DAY,
        staff_email=STAFF_MAIL,
        note="x",
    )
    with db.transaction(write=False) as tx:
        tx.raw.set_trace_callback(None)
    return [_verb(statement) for statement in seen[:-1]]


def _verb(statement: str) -> str:
    """A statement in two words: BEGIN IMMEDIATE, SELECT (what), UPDATE case, INSERT history."""
    words = statement.replace('"', "").replace(",", " ").split()
    if words[0] == "SELECT":
        if "FROM mobility m" in statement:
            return "SELECT mobilities"
        return "SELECT project" if 'FROM "case" c' in statement else "SELECT actor"
    if words[0] in ("INSERT", "UPDATE"):
        return f"{words[0]} {words[2] if words[0] == 'INSERT' else words[1]}"
    return " ".join(words[:2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--per-round", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    per, rounds = args.per_round, args.rounds
    with tempfile.TemporaryDirectory() as folder:
        ours_path, base_path = Path(folder) / "ours.db", Path(folder) / "raw.db"
        url, _, mobilities = filled_store(ours_path, (per * (rounds + 1)) // 2 + 2)
        shutil.copy(ours_path, base_path)
        warm, pool = mobilities[:per], mobilities[per:]
        with Database(url) as db:
            ours(db, warm[: per // 2])
            raw(base_path, warm[per // 2 :], {"warm": True})
            sample = pool[-2:]
            ours(db, sample[:1])
            with db.transaction(write=False) as tx:
                row = tx.row("SELECT context FROM outbox WHERE case_id = :id", {"id": sample[0]})
            context = row["context"] if row else {}
            ran = statements(db, sample[1])
            mine, theirs, ratios = [], [], []
            for r in range(rounds):
                batch = pool[r * per : (r + 1) * per]
                if r % 2:
                    b = raw(base_path, batch, context)
                    a = ours(db, batch)
                else:
                    a = ours(db, batch)
                    b = raw(base_path, batch, context)
                mine.append(a)
                theirs.append(b)
                ratios.append(a / b)
    ratio = statistics.median(ratios)
    report(
        f"transitions: {rounds} rounds of {per} moves each, alternating",
        [
            f"cases.advance (cancel a drafted mobility): {spread(mine)}",
            f"raw sqlite3, same PRAGMAs and writes:      {spread(theirs)}",
            f"statements per move (ours): {len(ran)}: {', '.join(ran)}",
            "statements per move (raw): 5: BEGIN, UPDATE, INSERT, INSERT, COMMIT",
        ],
        ratio,
        ">= 0.3",
        {"ours": mine, "raw": theirs, "ratios": ratios, "ratio": ratio, "statements": ran},
    )


if __name__ == "__main__":
    main()
