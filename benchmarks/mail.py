"""Mail sent per second by `outbox send`, against plain aiosmtplib sending the same messages over
the same number of connections.

Our path: `delivery.send_pending` on a SQLite store holding N pending outbox rows (copies of the
mail the example's story enqueues), as `vetpro outbox send` runs it: claim, render, send over
`mail_concurrency` reused connections, mark each row sent in its own commit.
Baseline: the same N messages, rendered before the clock starts, sent by plain aiosmtplib over
the same number of reused connections, with no database.
Each path sends to a fresh local SMTP sink (the project's aiosmtpd sink) in a process of its
own; rounds alternate the order; the ratio is the median of the rounds'.
Usage: python benchmarks/mail.py [--messages 2000] [--rounds 3] [--connections 4]
"""

from __future__ import annotations

import sys
from pathlib import Path

# This folder holds a script named like a library (transitions.py): keep it off the import path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import multiprocessing
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from vetpro_workflow.config import get_settings
from vetpro_workflow.dev.bench import report, spread
from vetpro_workflow.dev.demo import run_demo
from vetpro_workflow.notifications.delivery import send_pending
from vetpro_workflow.notifications.letters import compose
from vetpro_workflow.store.database import Database


def _sink(port: Any, count: Any, stop: Any) -> None:
    from vetpro_workflow.dev.sink import Sink

    with Sink(on_message=lambda r: None) as sink:
        port.value = sink.port
        stop.wait()
        count.value = len(sink.messages)


class SinkProcess:
    """A local SMTP sink in a process of its own."""

    def __enter__(self) -> SinkProcess:
        ctx = multiprocessing.get_context("spawn")
        self.port, self.count, self.stop = ctx.Value("i", 0), ctx.Value("i", -1), ctx.Event()
        self.process = ctx.Process(target=_sink, args=(self.port, self.count, self.stop))
        self.process.start()
        while not self.port.value:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.process.join(30)
        self.received = self.count.value


def fill(template: Path, target: Path, n: int) -> str:
    """A copy of the demo's store whose outbox holds n pending rows."""
    shutil.copy(template, target)
    url = f"sqlite:///{target}"
    with Database(url) as db, db.transaction() as tx:
        rows = tx.rows("SELECT * FROM outbox ORDER BY id")
        tx.execute("DELETE FROM outbox")
        copies = [
            {**rows[i % len(rows)], "key": f"bench-{i}", "status": "pending", "attempts": 0}
            for i in range(n)
        ]
        columns = [c for c in copies[0] if c != "id"]
        values = ", ".join(":" + c for c in columns)
        tx.executemany(f"INSERT INTO outbox ({', '.join(columns)}) VALUES ({values})", copies)
    return url


def ours(url: str, lanes: int) -> float:
    with SinkProcess() as sink:
        settings = get_settings(
            environ={}, database_url=url, smtp_port=sink.port.value, mail_concurrency=lanes
        )
        with Database(url) as db:
            start = time.perf_counter()
            tally = send_pending(db, settings)
            elapsed = time.perf_counter() - start
    assert tally.sent == sink.received, (tally, sink.received)
    return tally.sent / elapsed


async def _plain(messages: list[Any], port: int, lanes: int) -> None:
    import aiosmtplib

    async def lane(share: list[Any]) -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await smtp.connect()
        for message, recipient in share:
            await smtp.send_message(message, recipients=[recipient])
        await smtp.quit()

    await asyncio.gather(*(lane(messages[i::lanes]) for i in range(lanes)))


def plain(messages: list[Any], lanes: int) -> float:
    with SinkProcess() as sink:
        start = time.perf_counter()
        asyncio.run(_plain(messages, sink.port.value, lanes))
        elapsed = time.perf_counter() - start
    assert sink.received == len(messages)
    return len(messages) / elapsed


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    n, lanes = args.messages, args.connections
    with tempfile.TemporaryDirectory() as folder:
        story = run_demo(Path(folder) / "demo", prefect=False)
        template = Path(story.database)
        settings = get_settings(environ={})
        url = fill(template, Path(folder) / "rows.db", n)
        with Database(url) as db, db.transaction(write=False) as tx:
            rows = tx.rows("SELECT * FROM outbox ORDER BY id")
        start = time.perf_counter()
        messages = [(compose(r, settings), r["recipient"]) for r in rows]
        render_ms = (time.perf_counter() - start) / n * 1000
        kinds = sorted({r["kind"] for r in rows})
        mine, theirs, ratios = [], [], []
        for r in range(args.rounds):
            url = fill(template, Path(folder) / f"round{r}.db", n)
            if r % 2:
                b, a = plain(messages, lanes), ours(url, lanes)
            else:
                a, b = ours(url, lanes), plain(messages, lanes)
            mine.append(a)
            theirs.append(b)
            ratios.append(a / b)
    ratio = statistics.median(ratios)
    report(
        f"mail: {args.rounds} rounds of {n} messages over {lanes} connections each, alternating",
        [
            f"outbox send (claim, render, send, mark sent): {spread(mine)}",
            f"plain aiosmtplib, pre-rendered messages:      {spread(theirs)}",
            f"rendering one message took {render_ms:.2f} ms (untimed for the baseline)",
            f"the {len(kinds)} kinds of mail: {', '.join(kinds)}",
        ],
        ratio,
        ">= 0.8",
        {"ours": mine, "plain": theirs, "ratios": ratios, "ratio": ratio},
    )


if __name__ == "__main__":
    main()
