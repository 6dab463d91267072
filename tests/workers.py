"""Running test workers in spawned processes that start their work together.

Each job is `work(*args, ready=...)`: the worker connects, calls `ready()`, and waits there until
every worker is ready, so that all race from the same point (no clock decides when). What each
returns comes back in job order; a worker that raised fails the test with its traceback.
"""

from __future__ import annotations

import multiprocessing
import queue
import traceback
from collections.abc import Callable
from typing import Any

PATIENCE = 900  # seconds a silent worker is given before the test gives up on it (never a delay)


def _child(index: int, work: Callable[..., Any], args: tuple, go: Any, events: Any) -> None:
    """A spawned process: run `work(*args, ready=...)` and report what it returned."""

    def ready() -> None:
        events.put(("ready", index, None))
        go.wait(PATIENCE)

    try:
        events.put(("done", index, work(*args, ready=ready)))
    except BaseException:
        events.put(("error", index, traceback.format_exc()))


def in_processes(jobs: list[tuple[Callable[..., Any], tuple]]) -> list[Any]:
    """Run each job in a spawned process; all start working once all are connected."""
    ctx = multiprocessing.get_context("spawn")
    go, events = ctx.Event(), ctx.Queue()
    processes = [
        ctx.Process(target=_child, args=(i, work, args, go, events), daemon=True)
        for i, (work, args) in enumerate(jobs)
    ]
    for p in processes:
        p.start()
    ready: set[int] = set()
    results: dict[int, Any] = {}
    errors: dict[int, str] = {}
    idle = 0
    try:
        while len(results) + len(errors) < len(jobs):
            if len(ready | results.keys() | errors.keys()) == len(jobs):
                go.set()
            try:
                kind, index, value = events.get(timeout=1)
                idle = 0
            except queue.Empty:
                idle += 1
                gone = [
                    i
                    for i, p in enumerate(processes)
                    if not p.is_alive() and i not in results and i not in errors
                ]
                # A process that died without a word (its last message had time to arrive).
                assert not (gone and idle > 30), f"worker(s) {gone} died without reporting"
                assert idle < PATIENCE, "the workers stopped reporting"
                continue
            if kind == "ready":
                ready.add(index)
            elif kind == "done":
                results[index] = value
            else:
                errors[index] = value
    finally:
        go.set()
        for p in processes:
            p.join(PATIENCE)
            if p.is_alive():
                p.terminate()
    assert not errors, "\n".join(errors.values())
    return [results[i] for i in range(len(jobs))]
