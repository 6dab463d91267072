"""State changes per second through the service on PostgreSQL, with 1 and with 8 processes,
against raw psycopg doing the same writes, in the same run.

Our path: `cases.advance` on a PostgreSQL store, as a worker runs it: a coordinator cancels a
drafted mobility with a note, which reads the actor, locks and reads the project, and writes one
compare-and-set of the case, one history row and one outbox row, in one transaction.
Baseline: psycopg on the same store: BEGIN, the same UPDATE (rowcount checked), the same two
INSERTs (the outbox context, of the same size, serialised per row), COMMIT. It reads nothing.
Each process (spawned) has its own connection and moves its own cases, of projects no other
process touches. Rounds alternate the paths, on disjoint cases; each ratio is the median of the
rounds'. The store lives in a schema of its own, created for the run and dropped after it.
Usage: python benchmarks/postgres.py [--url URL] [--rounds 5] [--per-process 100] [--processes 8]
"""

from __future__ import annotations

import sys
from pathlib import Path

# This folder holds a script named like a library (transitions.py): keep it off the import path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import cProfile
import multiprocessing
import os
import pstats
import statistics
import tempfile
import time
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import psycopg
from psycopg.types.json import Json

from vetpro_workflow.cases import advance
from vetpro_workflow.clock import Clock
from vetpro_workflow.dev.bench import COORDINATOR, STAFF, STAFF_MAIL, packaged, report, spread
from vetpro_workflow.intake.documents import parse, parse_call
from vetpro_workflow.intake.filing import file_document
from vetpro_workflow.states.actors import Actor
from vetpro_workflow.store import calls, schema
from vetpro_workflow.store.database import Database
from vetpro_workflow.store.users import add_user

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DAY = Clock.on(date(2027, 1, 10))
NOTE = "The participant left the school."
TICK = os.sysconf("SC_CLK_TCK")


def conninfo(url: str) -> dict[str, Any]:
    """psycopg's connection arguments for a store URL (as `Database` reads it)."""
    p = urlsplit(url)
    return {
        "host": p.hostname or None,
        "port": p.port or None,
        "user": unquote(p.username) if p.username else None,
        "password": unquote(p.password) if p.password else None,
        "dbname": p.path.lstrip("/") or None,
        **dict(parse_qsl(p.query)),
    }


def in_schema(url: str, name: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{name}"


def _file(url: str, count: int) -> list[list[int]]:
    """`count` copies of the example filed in one transaction; each project's mobilities."""
    doc = parse(packaged("application.json"))
    clock = Clock.on(date(2026, 12, 1))
    with Database(url) as db, db.transaction() as tx:
        return [
            file_document(tx, doc, clock=clock, source="bench", allow_duplicate=True).mobilities
            for _ in range(count)
        ]


def filled(url: str, projects: int, processes: int = 4, chunk: int = 250) -> list[list[int]]:
    """The agency's staff and call, and `projects` copies of the example filed as drafted
    applications; each project's mobilities. The first copy registers the organisations and
    people; the others, which only add cases, are filed `chunk` to a transaction by `processes`
    processes at once (each filing waits on the server far more than it computes)."""
    schema.create(url)
    clock = Clock.on(date(2026, 12, 1))
    with Database(url) as db, db.transaction() as tx:
        add_user(tx, email=STAFF, role="staff")
        call = parse_call(packaged("call.json"))
        calls.define(tx, call, actor=Actor(STAFF, "staff"), now=clock.now)
    mobilities = _file(url, 1)
    counts = [min(chunk, projects - 1 - start) for start in range(0, projects - 1, chunk)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        for filed in pool.starmap(_file, [(url, count) for count in counts]):
            mobilities += filed
    with Database(url) as db, db.transaction() as tx:  # bulk-loaded: the planner's statistics now
        tx.execute("ANALYZE")
    return mobilities


def ours(db: Database, ids: list[int]) -> None:
    for case_id in ids:
        advance(
            db,
            case_id=case_id,
            trigger="cancel",
            actor=COORDINATOR,
            clock=DAY,
            staff_email=STAFF_MAIL,
            note=NOTE,
        )


def raw(conn: psycopg.Connection, ids: list[int], context: dict[str, Any]) -> None:
    now = DAY.now.astimezone(UTC)
    for case_id in ids:
        sent = datetime.now(UTC)
        with conn.cursor() as cur:  # BEGIN is sent with the first statement
            cur.execute(
                'UPDATE "case" SET state = %s, version = %s, updated_at = %s '
                "WHERE id = %s AND version = %s",
                ("cancelled", 2, now, case_id, 1),
            )
            assert cur.rowcount == 1
            cur.execute(
                "INSERT INTO history (case_id, version, trigger, source, dest, actor, at, note, "
                "facts) VALUES (%s, 2, 'cancel', 'drafted', 'cancelled', %s, %s, %s, %s)",
                (case_id, COORDINATOR, now, NOTE, Json({})),
            )
            cur.execute(
                "INSERT INTO outbox (key, case_id, kind, recipient, context, status, attempts, "
                "next_attempt_at, created_at) VALUES (%s, %s, 'mobility_cancelled', %s, %s, "
                "'pending', 0, %s, %s)",
                (
                    f"case-{case_id}:mobility_cancelled:v2",
                    case_id,
                    COORDINATOR,
                    Json(context),
                    sent,
                    sent,
                ),
            )
        conn.commit()


def _cpu_of(pid: int) -> float:
    """CPU seconds a process on this machine has used (the server's backend; 0 if unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def _worker(url: str, barrier: Any, pipe: Any) -> None:
    """One process with its own Database and its own psycopg connection, moving what it is sent."""
    with Database(url) as db, psycopg.connect(**conninfo(url)) as conn:
        with db.transaction(write=False) as tx:
            ours_backend = tx.scalar("SELECT pg_backend_pid()")
        raw_backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        conn.commit()
        while (job := pipe.recv()) is not None:
            path, ids, context, together = job
            backend = ours_backend if path == "ours" else raw_backend
            if together:
                barrier.wait(600)
            server, client, start = _cpu_of(backend), time.process_time(), time.perf_counter()
            ours(db, ids) if path == "ours" else raw(conn, ids, context)
            end = time.perf_counter()
            pipe.send((start, end, time.process_time() - client, _cpu_of(backend) - server))


class Workers:
    """`n` spawned processes, kept for the whole run (their start and imports are not timed)."""

    def __init__(self, url: str, n: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.barrier = ctx.Barrier(n)
        self.pipes, self.processes = [], []
        for _ in range(n):
            mine, theirs = ctx.Pipe()
            process = ctx.Process(target=_worker, args=(url, self.barrier, theirs), daemon=True)
            process.start()
            self.pipes.append(mine)
            self.processes.append(process)

    def run(self, path: str, shares: list[list[int]], context: dict[str, Any]) -> dict[str, float]:
        """Each share moved by a process of its own, started together; rate and CPU per move."""
        together = len(shares) == len(self.pipes)
        assert together or len(shares) == 1
        for pipe, ids in zip(self.pipes, shares, strict=False):
            pipe.send((path, ids, context, together))
        done = [pipe.recv() for pipe in self.pipes[: len(shares)]]
        moves = sum(len(s) for s in shares)
        elapsed = max(d[1] for d in done) - min(d[0] for d in done)
        return {
            "rate": moves / elapsed,
            "client_ms": sum(d[2] for d in done) / moves * 1000,
            "server_ms": sum(d[3] for d in done) / moves * 1000,
        }

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(None)
        for process in self.processes:
            process.join(60)


class Pool:
    """Whole projects handed out in order, so that no two processes ever touch one project."""

    def __init__(self, projects: list[list[int]]) -> None:
        self.projects = list(projects)
        self.used: list[int] = []

    def take(self, moves: int) -> list[int]:
        ids: list[int] = []
        while len(ids) < moves:
            ids += self.projects.pop(0)
        self.used += ids
        return ids


def statements(db: Database, case_id: int) -> list[str]:
    """The statements one move sends to PostgreSQL (BEGIN and COMMIT included), from libpq's
    trace of the connection it runs on (the pool hands the same idle connection back)."""
    from psycopg import pq

    with db.transaction(write=False) as tx:
        conn = tx.raw
    with tempfile.TemporaryFile("w+") as trace:
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        ours(db, [case_id])
        conn.pgconn.untrace()
        trace.seek(0)
        messages: list[str] = []
        for line in trace.read().splitlines():  # a statement's text may span lines
            if line.startswith(("F\t", "B\t")):
                messages.append(line)
            else:
                messages[-1] += " " + line
    ran, parsed = [], "prepared"
    for message in messages:
        origin, _, kind, *text = message.split("\t", 3)
        words = " ".join(text).replace('"', " ").split()
        if origin != "F":
            continue
        if kind == "Query":
            ran.append(words[0])
        elif kind == "Parse":
            parsed = words[0]  # the statement's name is empty: its first word is the SQL's
        elif kind == "Execute":
            ran.append(parsed)
            parsed = "prepared"
    return ran


def profile(db: Database, ids: list[int]) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    ours(db, ids)
    profiler.disable()
    stats = pstats.Stats(profiler)
    print(f"cProfile over {len(ids)} moves in one process")
    stats.sort_stats("cumulative").print_stats(25)
    stats.sort_stats("tottime").print_stats(25)


def checked(url: str, moved: list[int]) -> None:
    """Every case moved exactly once: cancelled at version 2, with one cancel in its history and
    one letter; and no other case moved."""
    with psycopg.connect(**conninfo(url)) as conn:
        found = conn.execute(
            "SELECT count(*) FROM \"case\" c WHERE c.id = ANY(%(ids)s) AND c.state = 'cancelled' "
            "AND c.version = 2 AND (SELECT count(*) FROM history h WHERE h.case_id = c.id "
            "AND h.trigger = 'cancel') = 1 AND (SELECT count(*) FROM outbox o "
            "WHERE o.case_id = c.id) = 1",
            {"ids": moved},
        ).fetchone()[0]
        cancels = conn.execute("SELECT count(*) FROM history WHERE trigger = 'cancel'")
        cancels = cancels.fetchone()[0]
        letters = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    assert found == cancels == letters == len(moved), (found, cancels, letters, len(moved))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-process", type=int, default=100)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.processes < 2:
        parser.error("--processes: at least 2 (one process is always measured)")
    per, n, rounds = args.per_process + args.per_process % 2, args.processes, args.rounds
    name = f"vetpro_bench_{os.getpid()}"
    with psycopg.connect(**conninfo(args.url), autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {name}")
    url = in_schema(args.url, name)
    try:
        if args.profile:
            pool = Pool(filled(url, 2 * per + 10))  # 20 moves to warm up, then 4 * per
            with Database(url) as db:
                ours(db, pool.take(20))
                profile(db, pool.take(per * 4))
            return
        moves = 2 * (n * args.warmup + rounds * (per + n * per)) + 8
        start = time.perf_counter()
        pool = Pool(filled(url, moves // 2))
        fill_s = time.perf_counter() - start
        with Database(url) as db:
            sample = pool.take(4)
            ours(db, sample[:2])
            ran = statements(db, sample[2])
            ours(db, sample[3:])
            with db.transaction(write=False) as tx:
                context = tx.scalar(
                    "SELECT context FROM outbox WHERE case_id = :id", {"id": sample[0]}
                )
        workers = Workers(url, n)
        try:
            workers.run("ours", [pool.take(args.warmup) for _ in range(n)], context)
            workers.run("raw", [pool.take(args.warmup) for _ in range(n)], context)
            figures: dict[tuple[str, int], list[dict[str, float]]] = {
                (path, k): [] for path in ("ours", "raw") for k in (1, n)
            }
            for r in range(rounds):
                for k in (1, n) if r % 2 == 0 else (n, 1):
                    for path in ("ours", "raw") if (r + (k == n)) % 2 == 0 else ("raw", "ours"):
                        shares = [pool.take(per) for _ in range(k)]
                        figures[(path, k)].append(workers.run(path, shares, context))
        finally:
            workers.close()
        checked(url, pool.used)
    finally:
        with psycopg.connect(**conninfo(args.url), autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    rates = {key: [f["rate"] for f in runs] for key, runs in figures.items()}
    ratios = {
        k: [a / b for a, b in zip(rates[("ours", k)], rates[("raw", k)], strict=True)]
        for k in (1, n)
    }
    ratio = {k: statistics.median(ratios[k]) for k in (1, n)}

    def cpu(path: str, k: int) -> str:
        runs = figures[(path, k)]
        client = statistics.median(f["client_ms"] for f in runs)
        server = statistics.median(f["server_ms"] for f in runs)
        return f"CPU a move: client {client:.2f} ms, server {server:.2f} ms"

    report(
        f"postgres: {rounds} rounds, {per} moves a process, 1 and {n} processes, alternating "
        f"({len(pool.used):,} of {len(pool.used) + sum(map(len, pool.projects)):,} cases moved; "
        f"store filled in {fill_s:.0f} s)",
        [
            *(
                f"{label + ', ' + str(k) + (' process:' if k == 1 else ' processes:'):<30}"
                f"{spread(rates[(path, k)])}; {cpu(path, k)}"
                for k in (1, n)
                for path, label in (("ours", "cases.advance"), ("raw", "raw psycopg"))
            ),
            *(
                f"ratio with {k} process{'es' if k > 1 else ''}: {ratio[k]:.2f} "
                f"(rounds {min(ratios[k]):.2f}-{max(ratios[k]):.2f})"
                for k in (1, n)
            ),
            f"statements per move (ours): {len(ran)}: {', '.join(ran)}",
            "statements per move (raw): 5: BEGIN, UPDATE, INSERT, INSERT, COMMIT",
        ],
        ratio[n],
        f">= 0.2 with {n} processes",
        {
            "rates": {f"{path}_{k}": v for (path, k), v in rates.items()},
            "ratios": {str(k): v for k, v in ratios.items()},
            "ratio_1": ratio[1],
            f"ratio_{n}": ratio[n],
            "statements": ran,
            "cpu_ms": {f"{path}_{k}": runs for (path, k), runs in figures.items()},
        },
    )


if __name__ == "__main__":
    main()
