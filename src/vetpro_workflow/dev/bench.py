"""What the benchmark scripts (benchmarks/) share: a store filled with the example's projects,
and how figures are printed. Not part of the product."""

from __future__ import annotations

import json
import statistics
import sys
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from ..clock import Clock
from ..intake.documents import parse, parse_call
from ..intake.filing import file_document
from ..states.actors import Actor
from ..store import calls, schema
from ..store.database import Database
from ..store.users import add_user

STAFF = "officer@national-agency.example"
COORDINATOR = "anna.huber@bbz-steyr.example"
STAFF_MAIL = "vetpro-staff@national-agency.example"


def packaged(name: str) -> str:
    return resources.files("vetpro_workflow").joinpath(f"examples/{name}").read_text()


def filled_store(path: Path, projects: int) -> tuple[str, list[int], list[int]]:
    """A SQLite store holding the agency's call and `projects` copies of the example; its URL,
    the applications' ids and the mobilities' ids."""
    url = f"sqlite:///{path}"
    schema.create(url)
    doc = parse(packaged("application.json"))
    clock = Clock.on(date(2026, 12, 1))
    apps: list[int] = []
    mobilities: list[int] = []
    with Database(url) as db, db.transaction() as tx:
        add_user(tx, email=STAFF, role="staff")
        call = parse_call(packaged("call.json"))
        calls.define(tx, call, actor=Actor(STAFF, "staff"), now=clock.now)
        for _ in range(projects):
            done = file_document(tx, doc, clock=clock, source="bench", allow_duplicate=True)
            apps.append(done.application)
            mobilities += done.mobilities
    return url, apps, mobilities


def spread(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"median {statistics.median(values):,.0f}/s (range {low:,.0f}-{high:,.0f})"


def report(title: str, lines: list[str], ratio: float, target: str, data: dict[str, Any]) -> None:
    print(title)
    for line in lines:
        print(f"  {line}")
    print(f"  ratio {ratio:.2f} (target {target})")
    if "--json" in sys.argv:
        print(json.dumps(data, default=str))
