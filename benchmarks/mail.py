"""Outbox drain rate to a local SMTP sink, against plain aiosmtplib sending the same messages.

Our path is `delivery.send_pending` on a SQLite store holding N pending outbox rows: it claims
them batch by batch, renders each message from its template and context, sends it over
`mail_concurrency` reused connections and marks each row sent in a commit of its own. It is timed
with the default settings and with one connection, like the baseline. The rows are copies, under
keys of their own, of the mail the demo's story enqueues (its kinds, recipients and contexts), so
the mix of templates is the one a real project produces.

The baseline, in the same run, sends the same N messages, rendered by the same code before the
clock starts, with plain aiosmtplib over one reused connection, and touches no database. Each path
sends to a fresh sink (`notifications.sink.serve`) in a child process of its own, so the server's
work does not share this interpreter's GIL, and the sink must have received exactly N messages.

    .venv/bin/python benchmarks/mail.py [--messages N] [--rounds N] [--warmup N] [--profile]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Keep this script's folder off the import path, so that its name shadows no module (see
# transitions.py, whose name is the `transitions` library's).
if (_here := str(Path(__file__).resolve().parent)) in sys.path:
    sys.path.remove(_here)

import argparse
import asyncio
import cProfile
import multiprocessing
import os
import platform
import pstats
import queue
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import EmailMessage
from functools import partial
from importlib.metadata import version
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import Synchronized
from typing import Any

import aiosmtplib
from sqlalchemy import Engine, delete, insert, select

from vetpro_workflow.cases import apply
from vetpro_workflow.clock import Clock
from vetpro_workflow.config import Settings, get_settings
from vetpro_workflow.db import create_schema, make_engine, writing
from vetpro_workflow.demo import IMPORT_DAY, SECOND, STAFF, STORY, example_document
from vetpro_workflow.filing import file_document
from vetpro_workflow.intake import parse
from vetpro_workflow.models import Outbox
from vetpro_workflow.notifications.delivery import compose, send_pending
from vetpro_workflow.notifications.outbox import letter_of
from vetpro_workflow.notifications.sink import Received, Sink, serve
from vetpro_workflow.users import add_user

TARGET = 0.7  # the acceptance: our drain rate / plain aiosmtplib's rate
HOST = "127.0.0.1"
DUE = datetime(2027, 1, 1, tzinfo=UTC)  # when every benchmark row became due
CLOCK = Clock.on(date(2029, 8, 1))
DEFAULTS = {
    name: Settings.model_fields[name].default for name in ("mail_concurrency", "mail_batch_size")
}
_OUTBOX = Outbox.__table__  # type: ignore[attr-defined]
PLAIN = "plain aiosmtplib, 1 conn."


def seed(path: Path, messages: int) -> list[str]:
    """A store where the demo's story was played, then `messages` copies of its mail, pending.

    Returns the kinds of the story's mail, in the order the copies cycle through them.
    """
    engine = make_engine(f"sqlite:///{path}")
    try:
        create_schema(engine)
        with writing(engine) as session:
            first, second = (
                file_document(
                    session, parse(example_document()), clock=Clock.on(IMPORT_DAY), source="x.json"
                )
                for _ in range(2)
            )
            add_user(session, email=STAFF, role="staff", name="Programme officer")
            session.commit()
        for steps, done in ((STORY, first), (SECOND, second)):
            ids = [done.application, *done.mobilities]
            for index, trigger, actor, day, note, facts in steps:
                with writing(engine) as session:
                    apply(
                        session=session,
                        case_id=ids[index],
                        trigger=trigger,
                        actor=actor,
                        clock=Clock.on(day),
                        facts=facts,
                        note=note,
                    )
        with writing(engine) as session:
            story = session.execute(select(_OUTBOX).order_by(_OUTBOX.c.id)).mappings().all()
            session.execute(delete(_OUTBOX))
            copies = [story[i % len(story)] for i in range(messages)]
            session.execute(
                insert(_OUTBOX),
                [
                    {
                        "key": f"{row['key']}:bench-{i}",
                        "case_id": row["case_id"],
                        "kind": row["kind"],
                        "recipient": row["recipient"],
                        "cc": row["cc"],
                        "context": row["context"],
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": DUE,
                        "created_at": DUE,
                    }
                    for i, row in enumerate(copies)
                ],
            )
            session.commit()
    finally:
        engine.dispose()
    return [row["kind"] for row in story]


def prerender(engine: Engine, settings: Settings) -> list[tuple[EmailMessage, list[str]]]:
    """Every pending row's message as the sender renders it, with its envelope recipients."""
    with engine.connect() as db:
        rows = db.execute(
            select(_OUTBOX).where(_OUTBOX.c.status == "pending").order_by(_OUTBOX.c.id)
        ).mappings()
        letters = [letter_of(r) for r in rows]
    return [
        (compose(letter, settings), [letter.recipient, *([letter.cc] if letter.cc else [])])
        for letter in letters
    ]


def _run_sink(ready: Any, count: Synchronized[int]) -> None:
    """The child process: a sink on a free port that counts what it accepts, until SIGTERM."""

    def counted(received: Received) -> None:
        with count.get_lock():
            count.value += 1

    def announce(sink: Sink) -> None:
        ready.put(sink.port)

    serve(host=HOST, port=0, maildir=None, on_message=counted, on_ready=announce)


@contextmanager
def sink_process() -> Iterator[tuple[int, Callable[[], int]]]:
    """A fresh sink in a child process: its port and a way to read how many messages it accepted."""
    ctx = multiprocessing.get_context("spawn")
    ready, count = ctx.Queue(), ctx.Value("i", 0)
    child = ctx.Process(target=_run_sink, args=(ready, count), daemon=True)
    child.start()
    try:
        port = _port_of(child, ready)
        yield port, lambda: int(count.value)
    finally:
        child.terminate()
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
            child.join()


def _port_of(child: BaseProcess, ready: Any) -> int:
    """The port the child's sink listens on, once its Controller has answered a test connection."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            return int(ready.get(timeout=0.1))
        except queue.Empty:
            if not child.is_alive():
                raise RuntimeError(f"the sink process ended with code {child.exitcode}") from None
    raise RuntimeError("the sink process did not start listening within 60 s")


@dataclass
class Timing:
    """How long a drain took: on the wall, and on this process's CPU (the sink's not counted)."""

    wall: float = 0.0
    cpu: float = 0.0


@contextmanager
def timing() -> Iterator[Timing]:
    """Time the block, on the wall and on this process's CPU."""
    took, wall, cpu = Timing(), time.perf_counter(), time.process_time()
    yield took
    took.wall, took.cpu = time.perf_counter() - wall, time.process_time() - cpu


def copy_store(source: Path, target: Path) -> None:
    """A page-for-page copy of a SQLite file, so each run of our path starts from one store."""
    target.unlink(missing_ok=True)
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def settings_for(store: Path, port: int, concurrency: int) -> Settings:
    """The settings our path runs with: the local sink, no TLS, no login, the defaults otherwise."""
    return get_settings(
        database_url=f"sqlite:///{store}",
        smtp_host=HOST,
        smtp_port=port,
        smtp_tls="none",
        smtp_username=None,
        smtp_password=None,
        mail_batch_size=DEFAULTS["mail_batch_size"],
        mail_concurrency=concurrency,
    )


def drain_ours(seeded: Path, work: Path, concurrency: int, *, limit: int | None = None) -> Timing:
    """Seconds `send_pending` takes to send every row of a fresh copy of the store (or `limit`)."""
    store = work / f"ours-{concurrency}.db"
    copy_store(seeded, store)
    wanted = limit if limit is not None else count_rows(store, status="pending")
    with sink_process() as (port, received):
        engine = make_engine(f"sqlite:///{store}")
        try:
            with timing() as took:
                tally = send_pending(
                    engine, settings_for(store, port, concurrency), CLOCK, limit=limit
                )
        finally:
            engine.dispose()
        path = f"ours, {concurrency} connection(s)"
        check(path, tally.sent, received(), wanted)
        check(f"{path}, rows marked sent", count_rows(store, status="sent"), received(), wanted)
    return took


def count_rows(store: Path, *, status: str) -> int:
    """How many outbox rows of a store have a status."""
    with closing(sqlite3.connect(store)) as conn:
        query = "SELECT count(*) FROM outbox WHERE status = ?"
        return int(conn.execute(query, (status,)).fetchone()[0])


async def _send_plain(messages: list[tuple[EmailMessage, list[str]]], port: int) -> int:
    smtp = aiosmtplib.SMTP(hostname=HOST, port=port, timeout=30)
    await smtp.connect()
    sent = 0
    for message, recipients in messages:
        refused, _ = await smtp.send_message(message, recipients=recipients)
        sent += not refused
    await smtp.quit()
    return sent


def drain_plain(
    messages: list[tuple[EmailMessage, list[str]]], *, limit: int | None = None
) -> Timing:
    """Seconds plain aiosmtplib takes to send the messages (or `limit`) over one connection."""
    messages = messages[:limit]
    with sink_process() as (port, received):
        with timing() as took:
            sent = asyncio.run(_send_plain(messages, port))
        check("plain aiosmtplib", sent, received(), len(messages))
    return took


def check(path: str, sent: int, received: int, wanted: int) -> None:
    """Every message sent once and received once, or the figures mean nothing."""
    if not sent == received == wanted:
        raise RuntimeError(f"{path}: {sent} sent, {received} received by the sink; wanted {wanted}")


def profile(seeded: Path, work: Path, *, messages: int, warmup: int, top: int) -> None:
    """Run our path (default settings) under cProfile; the top entries by cumulative, own time."""
    drain_ours(seeded, work, DEFAULTS["mail_concurrency"], limit=warmup)
    profiler = cProfile.Profile()
    profiler.enable()
    drain_ours(seeded, work, DEFAULTS["mail_concurrency"])
    profiler.disable()
    for order in ("cumulative", "tottime"):
        print(
            f"cProfile of our path ({DEFAULTS['mail_concurrency']} connections), "
            f"{messages:,} messages, top {top} by {order}:"
        )
        stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats(order)
        stats.print_stats(top)


def machine() -> str:
    """The interpreter, machine and libraries the figures were measured with."""
    libraries = ", ".join(
        f"{name} {version(name)}" for name in ("aiosmtplib", "aiosmtpd", "SQLAlchemy")
    )
    return (
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"SQLite {sqlite3.sqlite_version}, {libraries}"
    )


@dataclass(frozen=True)
class Run:
    """What the figures were measured on."""

    messages: int
    warmup: int
    kinds: list[str]
    render_ms: float


def report(times: dict[str, list[Timing]], *, run: Run) -> None:
    """Print each path's rate, each of ours against the baseline, and what they ran on."""
    rates = {name: [run.messages / t.wall for t in ts] for name, ts in times.items()}
    baseline = rates[PLAIN]
    print("Outbox drain to a local SMTP sink (aiosmtpd in a child process) on 127.0.0.1")
    print("(ours: claim, render, send, one commit per row sent; plain: pre-rendered, no database)")
    print()
    print(f"  {'path':<30}{'messages/s':>11}{'ms each':>9}{'CPU ms':>8}   range/s")
    for name, rs in rates.items():
        rate = statistics.median(rs)
        cpu = statistics.median(t.cpu for t in times[name]) * 1000 / run.messages
        spread = f"{min(rs):,.0f}-{max(rs):,.0f}"
        print(f"  {name:<30}{rate:>11,.0f}{1000 / rate:>9.3f}{cpu:>8.3f}   {spread}")
    print()
    for name, rs in rates.items():
        if name == PLAIN:
            continue
        ratios = [ours / plain for ours, plain in zip(rs, baseline, strict=True)]
        ratio = statistics.median(ratios)
        verdict = "met" if ratio >= TARGET else "NOT met"
        print(
            f"  ratio  {name:<24}{ratio:.3f}   (target >= {TARGET}: {verdict}; rounds: "
            f"{min(ratios):.3f}-{max(ratios):.3f})"
        )
    print(
        f"  messages  {run.messages:,} per path per round, {len(baseline)} round(s) in rotating "
        f"order, after {run.warmup:,} warm-up; medians shown"
    )
    kinds = Counter(run.kinds)
    print(
        f"  mix       the story's {len(run.kinds)} mails, cycled: "
        + ", ".join(f"{kind} x{n}" if n > 1 else kind for kind, n in kinds.items())
    )
    print("  CPU ms    the sending process's CPU time a message (the sink's is not counted)")
    print(
        f"  render    {run.render_ms:.2f} ms a message, measured while rendering the baseline's "
        "messages (untimed there, part of ours)"
    )
    print(f"  machine   {machine()}")


def main(argv: list[str] | None = None) -> int:
    """Measure our path and the baseline in one run and print them with their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000, help="messages per path per round")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every path (default 1)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed messages per path")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile our path instead of comparing"
    )
    args = parser.parse_args(argv)
    if min(args.messages, args.rounds, args.warmup) < 1 or args.warmup > args.messages:
        parser.error(
            "--messages, --rounds and --warmup must be at least 1, --warmup at most --messages"
        )

    with tempfile.TemporaryDirectory(prefix="vetpro-bench-") as tmp:
        work = Path(tmp)
        seeded = work / "seeded.db"
        kinds = seed(seeded, args.messages)
        if args.profile:
            profile(seeded, work, messages=args.messages, warmup=args.warmup, top=25)
            return 0
        default = DEFAULTS["mail_concurrency"]
        engine = make_engine(f"sqlite:///{seeded}")
        try:
            start = time.perf_counter()
            messages = prerender(engine, settings_for(seeded, 0, default))
            render_ms = (time.perf_counter() - start) * 1000 / len(messages)
        finally:
            engine.dispose()
        paths: dict[str, Callable[..., Timing]] = {
            f"ours, {default} conn. (default)": partial(drain_ours, seeded, work, default),
            "ours, 1 conn.": partial(drain_ours, seeded, work, 1),
            PLAIN: partial(drain_plain, messages),
        }
        for drain in paths.values():
            drain(limit=args.warmup)
        times: dict[str, list[Timing]] = {name: [] for name in paths}
        names = list(paths)
        for number in range(args.rounds):
            # Rotating the order keeps a busy moment on the machine from landing on one path only.
            for name in names[number % len(names) :] + names[: number % len(names)]:
                times[name].append(paths[name]())
    report(times, run=Run(args.messages, args.warmup, kinds, render_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
