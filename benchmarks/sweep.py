"""The daily deadline sweep on stores of 100,000 and 1,000,000 cases, against hand-written SQL.

Each store is built in bulk with plain sqlite3 into the schema `db.create_schema` makes: years of
finished projects, which grow with the store, and the projects of the current calls, the same in
every store, among which exactly `--due` cases fall due on the day swept (a reminder of one rule
of `deadlines.RULES` at one offset each, or a mobility returning on its planned end date).
`sweep.sweep` runs on a fresh copy of each store. The baseline, in the same run, does the same
selection (the same rule windows) and the same writes with plain sqlite3 on another fresh copy:
the returns (compare-and-set, the return date, history, the two outbox rows, the project that
follows), then `INSERT OR IGNORE` of every reminder into the outbox, in one transaction.

    .venv/bin/python benchmarks/sweep.py [--sizes 100000,1000000] [--due N] [--rounds N] [--profile]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Keep this script's folder off the import path, so that its name shadows no module (see
# transitions.py, whose name is the `transitions` library's).
if (_here := str(Path(__file__).resolve().parent)) in sys.path:
    sys.path.remove(_here)

import argparse
import cProfile
import json
import os
import platform
import pstats
import random
import re
import shutil
import sqlite3
import statistics
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import chain
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import sqlalchemy
from sqlalchemy import event

from vetpro_workflow.clock import Clock
from vetpro_workflow.db import create_schema, make_engine
from vetpro_workflow.deadlines import RULES, Rule, anchor_window, reminder_context, reminder_key
from vetpro_workflow.states.eligibility import COUNTRIES, ORGANISATION_TYPES, PROFESSIONS
from vetpro_workflow.states.steps import VALIDATION_DAYS
from vetpro_workflow.sweep import SweepReport, sweep

T = TypeVar("T")
TARGET_GROWTH = 1.5  # sweep(largest store) / sweep(smallest store)
TARGET_RATIO = 3.0  # sweep / hand-written SQL, at each size
TARGET_SECONDS = 30.0  # the sweep of the largest store
DAY = date(2031, 1, 25)  # seven days before the 2031 call's deadline, 1 February 12:00 Brussels
SINCE = DAY - timedelta(days=1)
CLOCK = Clock.on(DAY)
AT = f"{CLOCK.now:%Y-%m-%d %H:%M:%S.%f}"  # how SQLAlchemy stores a timestamp on SQLite
STAFF = "na-staff@agency.example"
BRUSSELS = ZoneInfo("Europe/Brussels")  # the programme's deadlines are days in Brussels
FIRST_CALL = 2010
ORGANISATIONS = 2400
CURRENT = {DAY.year - 2: 1100, DAY.year - 1: 1400, DAY.year: 150}  # the same in every store
RETURN_SHARE = 0.15  # of the cases due, the mobilities the sweep returns
D = DAY.toordinal()
FATES = ("approved",) * 82 + ("rejected",) * 12 + ("withdrawn",) * 3 + ("drafted",) * 3
STAYS = (1,) * 4 + (2,) * 5 + (3,) * 5 + (4,) * 3 + (5,) * 2 + (6,)  # mobilities per project

# ---------------------------------------------------------------- projects as plain dates


class Dice:
    """Uniform draws; `random.randint` would be most of the build's time at a million cases."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed).random

    def between(self, lo: int, hi: int) -> int:
        return lo + int(self.random() * (hi - lo + 1))

    def pick(self, items: Sequence[T]) -> T:
        return items[int(self.random() * len(items))]


@dataclass
class Stay:
    """One mobility's plan: the day (a date ordinal) each of its steps happens; None: never."""

    start: int
    end: int
    lang: bool
    agreed: int
    cancelled: int | None
    validated: int | None
    completed: int | None


@dataclass
class Project:
    """One application's plan; its state on DAY, and its mobilities', follow from the dates."""

    year: int
    fate: str  # drafted | submitted | rejected | withdrawn | approved
    start: int
    end: int
    grant: int | None
    stays: list[Stay] = field(default_factory=list)
    closed: int | None = None


def deadline(year: int) -> datetime:
    return datetime(year, 2, 1, 12, 0, tzinfo=BRUSSELS).astimezone(UTC)


def deadline_day(year: int) -> date:
    """The day of the call's deadline, a day in Brussels as the sweep counts it."""
    return deadline(year).astimezone(BRUSSELS).date()


def decided(year: int) -> int:
    return date(year, 5, 15).toordinal()


def stay(dice: Dice, p: Project, *, start: int | None = None, end: int | None = None) -> Stay:
    """A mobility inside the project's period; a pinned start or end is kept."""
    days, r = dice.between(7, 42), dice.random
    if start is None:
        start = end - days + 1 if end is not None else dice.between(p.start, p.end - days + 1)
    end = start + days - 1 if end is None else end
    agreed = max((p.grant or decided(p.year)) + 1, start - dice.between(5, 40))
    cancelled = max(decided(p.year) + 1, start - dice.between(1, 60)) if r() < 0.05 else None
    validated = end + dice.between(5, 90) if r() > 0.02 else None  # 2% never validated
    completed = validated + dice.between(5, 60) if validated is not None else None
    return Stay(start, end, r() < 0.4, agreed, cancelled, validated, completed)


def project(
    dice: Dice, year: int, *, fate: str | None = None, start: int | None = None,
    end: int | None = None, stays: int | None = None,
) -> Project:  # fmt: skip
    """A project of a call, drawn at random where nothing is pinned; it is closed in the end."""
    start = date(year, 6, 1).toordinal() + dice.between(0, 150) if start is None else start
    end = start + round(dice.between(12, 24) * 30.44) - 1 if end is None else end
    grant = start - dice.between(10, min(60, start - decided(year) - 1))
    p = Project(year, fate or dice.pick(FATES), start, end, grant)
    if p.fate == "approved" and dice.random() < 0.01:
        p.grant = None  # never signed: approved for good
    p.stays = [stay(dice, p) for _ in range(stays if stays is not None else dice.pick(STAYS))]
    return close(dice, p)


def close(dice: Dice, p: Project) -> Project:
    """The day staff close the project, after the final report (None: not yet, for good)."""
    completed = [s.completed for s in p.stays if s.cancelled is None]
    p.closed = None
    if p.fate == "approved" and p.grant and None not in completed and dice.random() > 0.03:
        last = max((c for c in completed if c is not None), default=p.end)
        p.closed = max(p.end + dice.between(20, 59), last + dice.between(1, 20))
    return p


@dataclass
class Snapshot:
    """A case's state and version on DAY, and the facts recorded by then."""

    state: str
    version: int
    facts: dict[str, Any] = field(default_factory=dict)


def mobility_on(s: Stay, p: Project, under_way: bool) -> Snapshot:
    if p.fate in ("drafted", "submitted"):
        return Snapshot(p.fate, 1 if p.fate == "drafted" else 2)
    if p.fate != "approved" or (s.cancelled is not None and s.cancelled <= D):
        return Snapshot("cancelled", 4)
    if not under_way or s.agreed > D:
        return Snapshot("approved", 3)
    facts: dict[str, Any] = {"agreement_signed_on": s.agreed}
    if s.start > D:
        return Snapshot("preparation", 4, facts)
    facts |= {"departed_on": s.start, "preparation_done": True if s.lang else None}
    if s.end >= D:  # on its end date the sweep returns it
        return Snapshot("abroad", 5, facts)
    facts["returned_on"] = s.end
    if s.validated is None or s.validated > D:
        return Snapshot("validation", 6, facts)
    facts |= {"europass_ref": True, "participant_report_on": s.validated - 2}
    if s.completed is None or s.completed > D:
        return Snapshot("dissemination", 7, facts)
    return Snapshot("completed", 8, facts | {"dissemination": True})


def application_on(p: Project, stays: list[Snapshot]) -> Snapshot:
    if p.fate != "approved":
        return Snapshot(p.fate, {"drafted": 1, "submitted": 2, "withdrawn": 2}.get(p.fate, 3))
    if p.grant is None or p.grant > D:
        return Snapshot("approved", 3)
    facts: dict[str, Any] = {"grant_agreement_signed_on": p.grant}
    active = [m.state for m in stays if m.state != "cancelled"]
    if p.closed is not None and p.closed <= D:
        return Snapshot("closed", 8, facts | {"final_report_on": p.closed - 1})
    if not active:
        return Snapshot("dissemination", 5, facts)
    if all(state in ("approved", "preparation") for state in active):
        return Snapshot("preparation", 4, facts)
    if any(state in ("approved", "preparation", "abroad") for state in active):
        return Snapshot("abroad", 5, facts)
    return Snapshot("validation" if "validation" in active else "dissemination", 6, facts)


def on_day(p: Project) -> tuple[Snapshot, list[Snapshot]]:
    """The project's and its mobilities' states on DAY."""
    under_way = p.fate == "approved" and p.grant is not None and p.grant <= D
    stays = [mobility_on(s, p, under_way) for s in p.stays]
    return application_on(p, stays), stays


_WINDOWS = {
    (r.name, offset): tuple(d.toordinal() for d in anchor_window(offset, SINCE, DAY))
    for r in RULES
    for offset in r.offsets
}
# Every date a rule or a return looks at is on or after this day: a project that ended before
# it has nothing due (its dates all lie within its period, its call's deadline before it).
_EARLIEST = min(lo for lo, _ in _WINDOWS.values())


def dues(p: Project, app: Snapshot, stays: list[Snapshot]) -> list[tuple[int, str]]:
    """What falls due on DAY: (-1 for the application or a mobility's index, what for)."""
    found = [
        (i, "return") for i, m in enumerate(stays) if m.state == "abroad" and p.stays[i].end <= D
    ]
    cases: list[tuple[int, str, Snapshot, dict[str, int | None]]] = [
        (-1, "application", app,
         {"deadline": deadline_day(p.year).toordinal(), "start": p.start, "end": p.end}),
    ]  # fmt: skip
    cases += [
        (i, "mobility", m, {"start": s.start, "end": s.end, "returned": m.facts.get("returned_on")})
        for i, (s, m) in enumerate(zip(p.stays, stays, strict=True))
    ]
    for index, kind, snap, anchors in cases:
        for r in RULES:
            if r.kind != kind or snap.state not in r.states:
                continue
            if r.condition == "preparation_missing" and (
                not p.stays[index].lang or snap.facts.get("preparation_done")
            ):
                continue
            if r.condition == "report_missing" and snap.facts.get("participant_report_on"):
                continue
            for offset in r.offsets:
                lo, hi = _WINDOWS[r.name, offset]
                if (anchor := anchors[r.anchor]) is not None and lo <= anchor <= hi:
                    found.append((index, f"{r.name}:{offset}"))
    return found


def targets(due: int) -> list[str]:
    """What each due case is due for: a share of returns, the rest spread over the rules."""
    reachable = [
        f"{r.name}:{offset}"
        for r in RULES
        for offset in r.offsets  # one call a year: only one deadline offset can fall on DAY
        if r.anchor != "deadline" or deadline_day(DAY.year) == DAY - timedelta(days=offset)
    ]
    returns = max(1, round(due * RETURN_SHARE))
    if due < returns + len(reachable):
        raise SystemExit(f"--due must be at least {returns + len(reachable)}")
    share, extra = divmod(due - returns, len(reachable))
    return ["return"] * returns + [
        name for i, name in enumerate(reachable) for _ in range(share + (i < extra))
    ]


def due_project(dice: Dice, target: str) -> Project:
    """A current project in which exactly one case falls due on DAY, for `target`."""
    name, _, offset = target.partition(":")
    anchor = D - int(offset or 0)
    r = next((r for r in RULES if r.name == name), None)
    while True:
        if r is None:  # a mobility abroad ends today
            p = project(dice, DAY.year - 1, fate="approved")
            p.stays[0] = stay(dice, p, end=D)
        elif r.anchor == "deadline":  # drafted for the open call
            p = project(dice, DAY.year, fate="drafted")
        elif r.kind == "application" and r.anchor == "start":  # agreement not signed yet
            p = project(dice, DAY.year - 1, fate="approved", start=anchor)
            p.grant = dice.between(D + 1, anchor)
        elif r.kind == "application":  # ended, or about to, and not closed
            p = project(dice, DAY.year - 2, fate="approved", end=anchor)
            p.closed = p.closed and max(p.closed, D + 1)
        elif r.anchor == "start":  # starts soon: approved, or in preparation
            p = project(dice, DAY.year - 1, fate="approved")
            p.stays[0] = stay(dice, p, start=anchor)
            if "preparation" not in r.states or dice.random() < 0.5:
                p.stays[0].agreed = dice.between(D + 1, anchor - 1)
            p.stays[0].lang |= r.condition == "preparation_missing"
        else:  # returned some days ago, not validated yet
            p = project(dice, DAY.year - 1, fate="approved")
            p.stays[0] = stay(dice, p, end=anchor)
            p.stays[0].validated = D + dice.between(1, 40) if dice.random() < 0.8 else None
        if r is None or r.kind == "mobility":
            p.stays[0].cancelled = None
            close(dice, p)
        inside = p.start <= p.stays[0].start and p.stays[0].end <= p.end if p.stays else True
        wanted = (-1 if r is not None and r.kind == "application" else 0, target)
        if inside and dues(p, *on_day(p)) == [wanted]:
            return p


def background(
    dice: Dice, year: int, *, stays: int | None = None, fate: str | None = None
) -> Project:
    """A project of a call on which nothing falls due on DAY."""
    fate = fate or ("submitted" if year == DAY.year else None)  # the open call: sent early
    while True:
        p = project(dice, year, fate=fate, stays=stays)
        if p.end < _EARLIEST or not dues(p, *on_day(p)):
            return p


def current(due: int) -> list[Project]:
    """The current calls' projects, the same in every store: the due ones among the rest."""
    dice = Dice(DAY.year)
    projects = [due_project(dice, t) for t in targets(due)]
    projects += [background(dice, year) for year, n in CURRENT.items() for _ in range(n)]
    random.Random(DAY.year).shuffle(projects)
    return sorted(projects, key=lambda p: p.year)


def history(dice: Dice, cases: int) -> Iterator[Project]:
    """Past calls' projects, spread evenly over the years, with exactly `cases` cases in all."""
    years = range(FIRST_CALL, min(CURRENT))
    for i, year in enumerate(years):
        quota = cases // (len(years) - i)
        cases -= quota
        while quota > 0:
            p = background(dice, year)
            if len(p.stays) >= quota:  # the year's last project: as many mobilities as fit
                p = background(dice, year, stays=quota - 1, fate="drafted" if quota == 1 else None)
            quota -= 1 + len(p.stays)
            yield p


# ---------------------------------------------------------------- the store, built in bulk

CITIES = ("Steyr", "Tampere", "Valencia", "Lyon", "Gdansk", "Porto", "Graz", "Brno", "Aarhus")
KINDS = ("Vocational College", "Chamber of Crafts", "Training Centre", "Technical School")
FIRST = ("Anna", "Markus", "Sabine", "Lukas", "Elena", "Jonas", "Marta", "Pieter", "Ines")
LAST = ("Huber", "Leitner", "Gruber", "Laine", "Ferrer", "Novak", "Rossi", "Jansen", "Dubois")
NAMES = tuple((f"{f} {last}", f"{f}.{last}".lower()) for f in FIRST for last in LAST)
TRADES = ("welding", "carpentry", "nursing", "hospitality", "logistics", "bakery", "horticulture")
TOPICS: tuple[str, ...] = ("Digital simulators", "Work-based learning")
TOPICS += ("Assessment of practical skills",)
TOPICS += ("Green skills", "Apprenticeship guidance", "Inclusive training", "Blended learning")
TEXTS = tuple(
    (
        f"{topic} in {trade} training",
        f"Trainers in {trade} learn to plan and assess courses that use {topic.lower()}.",
        f"Workshops for the {trade} trainers of the partner schools and a published guide.",
        f"Design a {trade} module with {topic.lower()} for first-year apprentices.",
        f"{topic} in {trade}; assessing apprentices' work with new methods.",
        tuple(f"{trade.capitalize()} trainer for apprentices, {n} years." for n in range(2, 31)),
    )
    for trade in TRADES
    for topic in TOPICS
)
CONTENT = "Job shadowing in the host's workshops; co-teaching two sessions; an assessment workshop."
INSERTS = {
    "case": 'INSERT INTO "case" VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    "application": "INSERT INTO application VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "applicationpartner": "INSERT INTO applicationpartner VALUES (?, ?)",
    "participant": "INSERT INTO participant VALUES (?, ?, ?, ?, ?, ?, ?)",
    "mobility": "INSERT INTO mobility VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
}


class Writer:
    """Turns projects into rows, numbered in order; an application's id is its case's."""

    def __init__(self) -> None:
        self.dice = Dice(1)
        self.next_case = self.next_participant = 1
        self.rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in INSERTS}
        self._iso: dict[int, str] = {}

    def iso(self, day: int | None) -> str | None:
        if day is None:
            return None
        if (text := self._iso.get(day)) is None:
            text = self._iso[day] = date.fromordinal(day).isoformat()
        return text

    def take(self) -> dict[str, list[tuple[Any, ...]]]:
        """The rows so far, for executemany; the writer starts afresh."""
        rows, self.rows = self.rows, {table: [] for table in INSERTS}
        return rows

    def add(self, p: Project) -> int:
        """Add one project's rows; how many cases it holds."""
        dice, iso, rows = self.dice, self.iso, self.rows
        app, stays = on_day(p)
        app_id, org = self.next_case, dice.between(1, ORGANISATIONS)
        self.next_case += 1 + len(p.stays)
        created = f"{iso(deadline(p.year).toordinal() - dice.between(10, 90))} 09:00:00.000000"
        rows["case"].append(
            (app_id, "application", app.state, app.version, org, None, created, created)
        )
        title, objectives, plan, aims, needs, backgrounds = dice.pick(TEXTS)
        rows["application"].append((
            app_id, p.year - FIRST_CALL + 1, org, org, f"{title}, project {app_id}", objectives,
            plan, iso(p.start), iso(p.end), iso(app.facts.get("grant_agreement_signed_on")),
            iso(app.facts.get("final_report_on")),
        ))  # fmt: skip
        partners = sorted({self.partner(org) for _ in range(dice.between(1, 3))})
        rows["applicationpartner"] += [(app_id, host) for host in partners]
        for case_id, s, m in zip(range(app_id + 1, self.next_case), p.stays, stays, strict=True):
            person, f = self.next_participant, m.facts
            self.next_participant += 1
            name, mail = dice.pick(NAMES)
            rows["case"].append(
                (case_id, "mobility", m.state, m.version, org, app_id, created, created)
            )
            rows["participant"].append((
                person, org, name, f"{mail}.{person}@org{org}.example", dice.pick(PROFESSIONS),
                dice.pick(backgrounds), needs,
            ))  # fmt: skip
            done = f.get("preparation_done")
            rows["mobility"].append((
                case_id, app_id, person, dice.pick(partners), iso(s.start), iso(s.end), aims,
                CONTENT, int(s.lang), iso(f.get("agreement_signed_on")),
                None if done is None else int(done), iso(f.get("departed_on")),
                iso(f.get("returned_on")),
                f"EP-{p.year}-{case_id}" if "europass_ref" in f else None,
                iso(f.get("participant_report_on")),
                "Two workshops for the colleagues at home." if "dissemination" in f else None,
            ))  # fmt: skip
        return 1 + len(p.stays)

    def partner(self, applicant: int) -> int:
        """An organisation in another country than the applicant's (countries go round by id)."""
        home = applicant % len(COUNTRIES)
        while (host := self.dice.between(1, ORGANISATIONS)) % len(COUNTRIES) == home:
            pass
        return host


def insert(conn: sqlite3.Connection, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    for table, sql in INSERTS.items():
        conn.executemany(sql, rows[table])


def _directory(conn: sqlite3.Connection) -> None:
    """The calls, one a year, the organisations, their coordinators and one NA staff user."""
    countries = sorted(COUNTRIES)
    conn.executemany(
        "INSERT INTO call VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (year - FIRST_CALL + 1, f"LDV-VETPRO-{year}",
             f"Leonardo da Vinci mobility for VET professionals, call {year}",
             f"{deadline(year):%Y-%m-%d %H:%M:%S.%f}", f"{year}-06-01", 24, 7, 42)
            for year in range(FIRST_CALL, DAY.year + 1)
        ],
    )  # fmt: skip
    orgs: list[tuple[Any, ...]] = []
    users: list[tuple[Any, ...]] = []
    for i in range(1, ORGANISATIONS + 1):
        name, mail = NAMES[i % len(NAMES)]
        email = f"{mail}@org{i}.example"
        kind = f"{CITIES[i % len(CITIES)]} {KINDS[i % len(KINDS)]} {i}"
        orgs.append(
            (i, kind, ORGANISATION_TYPES[i % 4], countries[i % len(countries)], name, email)
        )
        users.append((i, email, name, "coordinator", i))
    users.append((ORGANISATIONS + 1, STAFF, "NA Staff", "staff", None))
    conn.executemany("INSERT INTO organisation VALUES (?, ?, ?, ?, ?, ?)", orgs)
    conn.executemany("INSERT INTO user VALUES (?, ?, ?, ?, ?)", users)


@dataclass(frozen=True)
class Store:
    """A built store file and what it holds."""

    path: Path
    cases: int
    seconds: float
    megabytes: float


def build(path: Path, size: int, now: list[Project]) -> Store:
    """A store of exactly `size` cases: years of history, then `now` (the current calls)."""
    started = time.perf_counter()
    engine = make_engine(f"sqlite:///{path}")
    try:
        create_schema(engine)
    finally:
        engine.dispose()
    fixed = sum(1 + len(p.stays) for p in now)
    if size <= fixed + 1000:
        raise SystemExit(f"a store needs more than the {fixed:,} cases of the current calls")
    writer = Writer()
    with closing(sqlite3.connect(path, isolation_level=None, check_same_thread=False)) as conn:
        # Fill the tables without their secondary indexes, then create those as the schema did.
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-262144", "temp_store=2"):
            conn.execute(f"PRAGMA {pragma}")
        conn.execute("BEGIN")
        _directory(conn)
        # SQLite releases the GIL while it inserts: one thread inserts while this one draws.
        with ThreadPoolExecutor(max_workers=1) as inserter:
            pending: Future[None] | None = None
            for p in chain(history(Dice(size), size - fixed), now):
                writer.add(p)
                if len(writer.rows["case"]) >= 50_000:
                    if pending is not None:
                        pending.result()
                    pending = inserter.submit(insert, conn, writer.take())
            if pending is not None:
                pending.result()
        insert(conn, writer.take())
        conn.execute("COMMIT")
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("ANALYZE")
        conn.execute("PRAGMA journal_mode=WAL")
    if writer.next_case - 1 != size:
        raise RuntimeError(f"built {writer.next_case - 1:,} cases, wanted {size:,}")
    return Store(path, size, time.perf_counter() - started, path.stat().st_size / 1e6)


# ---------------------------------------------------------------- the two paths


@dataclass
class Run:
    """One timed run of a path on a fresh copy of a store."""

    seconds: float
    statements: int = 0  # SQL statements SQLite ran (each row of an executemany counts)


@contextmanager
def fresh_copy(store: Store, path: Path) -> Iterator[Path]:
    """A copy of the store for one run, removed afterwards."""
    shutil.copyfile(store.path, path)
    os.sync()  # so that writing the copy back to disk does not slow the timed run down
    try:
        yield path
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def run_sweep(path: Path, *, count: bool = False) -> tuple[Run, SweepReport]:
    """The sweep as the daily job runs it: an engine on the store, the sweep, dispose."""
    seen: list[str] = []
    started = time.perf_counter()
    engine = make_engine(f"sqlite:///{path}")
    if count:
        event.listen(engine, "connect", lambda conn, _: conn.set_trace_callback(seen.append))
    try:
        report = sweep(engine, clock=CLOCK, staff_email=STAFF, since=SINCE)
    finally:
        engine.dispose()
    return Run(time.perf_counter() - started, len(seen)), report


def connect_raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection set up as `db.make_engine` sets up SQLite."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=60)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute("PRAGMA busy_timeout=60000")
    return conn


_MOBILITY = """
    SELECT c.id, c.state, c.version, m.application_id, a.title, applicant.name, u.name, u.email,
        p.name, p.email, host.name, host.country, m.start_date, m.end_date, m.returned_on
    FROM "case" c
    JOIN mobility m ON m.id = c.id
    JOIN application a ON a.id = m.application_id
    JOIN organisation applicant ON applicant.id = a.applicant_id
    JOIN user u ON u.id = a.coordinator_id
    JOIN participant p ON p.id = m.participant_id
    JOIN organisation host ON host.id = m.host_id"""
_APPLICATION = """
    SELECT c.id, c.state, a.title, a.start_date, a.end_date, applicant.name, u.name, u.email,
        k.application_deadline
    FROM {source}
    JOIN organisation applicant ON applicant.id = a.applicant_id
    JOIN user u ON u.id = a.coordinator_id"""
_BY_DATE = '"case" c JOIN application a ON a.id = c.id JOIN call k ON k.id = a.call_id'
# CROSS JOIN makes SQLite read the calls first: the applications of the call whose deadline is
# near, not every draft ever left behind, which its statistics would have it scan.
_BY_DEADLINE = 'call k CROSS JOIN application a ON a.call_id = k.id JOIN "case" c ON c.id = a.id'
RETURNS = f"""{_MOBILITY}
    WHERE c.kind = 'mobility' AND c.state = 'abroad' AND m.end_date <= ?
        AND (m.departed_on IS NULL OR m.departed_on <= m.end_date)
    ORDER BY m.end_date, c.id"""
FOLLOWING = """
    SELECT c.id, c.version FROM "case" c
    WHERE c.id = ? AND c.state = 'abroad'
        AND EXISTS (SELECT 1 FROM "case" x WHERE x.application_id = c.id AND x.state != 'cancelled')
        AND NOT EXISTS (SELECT 1 FROM "case" x WHERE x.application_id = c.id
            AND x.state NOT IN ('cancelled', 'validation', 'dissemination', 'completed'))"""
MOVE = 'UPDATE "case" SET state = ?, version = ?, updated_at = ? WHERE id = ? AND version = ?'
RETURNED = "UPDATE mobility SET returned_on = end_date WHERE id = ?"
HISTORY = """
    INSERT INTO history (case_id, version, trigger, source, dest, actor, at, note, facts)
    VALUES (?, ?, ?, ?, ?, 'system', ?, ?, ?)"""
OUTBOX = """
    INSERT OR IGNORE INTO outbox (key, case_id, kind, recipient, cc, context, status, attempts,
        next_attempt_at, created_at)
    VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)"""
SWEPT = """
    INSERT INTO sweeprun (day, since, started_at, finished_at, reminders, transitions, by_rule)
    VALUES (?, ?, ?, ?, ?, ?, ?)"""
_COLUMNS = {"start": "start_date", "end": "end_date", "returned": "returned_on"}
_CONDITIONS = {
    "preparation_missing": "m.language_preparation AND NOT coalesce(m.preparation_done, 0)",
    "report_missing": "m.participant_report_on IS NULL",
}


def _midnight(day: date) -> str:
    """The instant a day begins in Brussels, as SQLAlchemy stores timestamps on SQLite."""
    start = datetime(day.year, day.month, day.day, tzinfo=BRUSSELS).astimezone(UTC)
    return f"{start:%Y-%m-%d %H:%M:%S.%f}"


def rule_query(r: Rule) -> tuple[str, list[str]]:
    """One query for all of a rule's offsets: its windows OR-ed, its states, its condition."""
    windows = [anchor_window(offset, SINCE, DAY) for offset in r.offsets]
    states = ", ".join(f"'{state}'" for state in r.states)
    if r.anchor == "deadline":
        within = "k.application_deadline >= ? AND k.application_deadline < ?"
        params = [_midnight(d) for lo, hi in windows for d in (lo, hi + timedelta(days=1))]
        where = f"c.state IN ({states})"
    else:
        within = f"{'m' if r.kind == 'mobility' else 'a'}.{_COLUMNS[r.anchor]} BETWEEN ? AND ?"
        params = [d.isoformat() for window in windows for d in window]
        where = f"c.kind = '{r.kind}' AND c.state IN ({states})"
    if r.condition:
        where += f" AND {_CONDITIONS[r.condition]}"
    source = (
        _MOBILITY
        if r.kind == "mobility"
        else _APPLICATION.format(source=_BY_DEADLINE if r.anchor == "deadline" else _BY_DATE)
    )
    return f"{source} WHERE ({' OR '.join([f'({within})'] * len(windows))}) AND {where}", params


def _facts(r: Rule, row: tuple[Any, ...]) -> dict[str, Any]:
    """The columns a reminder's context is made of, typed as the ORM reads them."""
    if r.kind == "application":
        i, state, title, start, end, applicant, coordinator, email, due = row
        return {
            "id": i, "state": state, "application_id": i, "project_title": title,
            "start_date": date.fromisoformat(start), "end_date": date.fromisoformat(end),
            "applicant_name": applicant, "coordinator_name": coordinator,
            "coordinator_email": email, "deadline": datetime.fromisoformat(due).replace(tzinfo=UTC),
        }  # fmt: skip
    i, state, _, app, title, applicant, coordinator, email, name, mail, host, country = row[:12]
    return {
        "id": i, "state": state, "application_id": app, "project_title": title,
        "applicant_name": applicant, "coordinator_name": coordinator, "coordinator_email": email,
        "participant_name": name, "participant_email": mail, "host_name": host,
        "host_country": country, "start_date": date.fromisoformat(row[12]),
        "end_date": date.fromisoformat(row[13]),
        "returned_on": date.fromisoformat(row[14]) if row[14] else None,
    }  # fmt: skip


def reminders(r: Rule, rows: Iterator[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Outbox rows for a rule's selected cases, one per offset whose window holds the anchor."""
    notices = []
    for row in rows:
        facts = _facts(r, row)
        anchor = (
            facts["deadline"].astimezone(BRUSSELS).date()
            if r.anchor == "deadline"
            else facts[_COLUMNS[r.anchor]]
        )
        for offset in r.offsets:
            lo, hi = anchor_window(offset, SINCE, DAY)
            if not lo <= anchor <= hi:
                continue
            context = reminder_context(r, facts, anchor=anchor, today=DAY)
            to = {"participant": facts.get("participant_email"), "staff": STAFF}.get(r.to)
            cc = facts["coordinator_email"] if offset in r.cc_coordinator_at else None
            due = date.fromisoformat(context["due_date"])
            notices.append((
                reminder_key(facts["id"], r, due, offset), facts["id"], r.notice,
                to or facts["coordinator_email"], cc, json.dumps(context), AT, AT,
            ))  # fmt: skip
    return notices


def return_notices(row: tuple[Any, ...], version: int) -> list[tuple[Any, ...]]:
    """The two notices of a return: the participant report request and the return recorded."""
    i, _, _, app, title, applicant, coordinator, email, name, mail, host, country = row[:12]
    due = date.fromisoformat(row[13]) + timedelta(days=VALIDATION_DAYS)
    context = json.dumps({
        "case_id": i, "case_kind": "mobility", "state": "validation", "trigger": "return_home",
        "note": None, "coordinator_name": coordinator, "coordinator_email": email,
        "applicant": applicant,
        "next_step": "The coordinator records the Europass reference and the participant "
        f"report (validate) by {due}.",
        "next_step_due": due.isoformat(), "application_id": app, "project_title": title,
        "participant_name": name, "host": host, "host_country": country,
        "start_date": row[12], "end_date": row[13],
    })  # fmt: skip
    return [
        (f"case-{i}:{kind}:v{version}", i, kind, to, None, context, AT, AT)
        for kind, to in (("participant_report_request", mail), ("return_recorded", email))
    ]


def baseline(path: Path, *, count: bool = False) -> tuple[Run, dict[str, int]]:
    """The sweep's selection and writes by hand with plain sqlite3, in one transaction."""
    seen: list[str] = []
    started = time.perf_counter()
    with closing(connect_raw(path)) as conn:
        conn.set_trace_callback(seen.append if count else None)
        conn.execute("BEGIN IMMEDIATE")
        back = conn.execute(RETURNS, (DAY.isoformat(),)).fetchall()
        before = conn.total_changes
        conn.executemany(MOVE, [("validation", r[2] + 1, AT, r[0], r[2]) for r in back])
        if conn.total_changes - before != len(back):
            raise RuntimeError("a returning mobility was changed meanwhile")
        conn.executemany(RETURNED, [(r[0],) for r in back])
        facts = [json.dumps({"returned_on": r[13]}) for r in back]
        conn.executemany(
            HISTORY,
            [(r[0], r[2] + 1, "return_home", "abroad", "validation", AT, None, f)
             for r, f in zip(back, facts, strict=True)],
        )  # fmt: skip
        conn.executemany(OUTBOX, [n for r in back for n in return_notices(r, r[2] + 1)])
        last = {r[3]: r[0] for r in back}  # the mobility whose return a project follows
        follows = [
            (app, version, mobility)
            for app, mobility in last.items()
            for _, version in conn.execute(FOLLOWING, (app,))
        ]
        conn.executemany(MOVE, [("validation", v + 1, AT, a, v) for a, v, _ in follows])
        conn.executemany(
            HISTORY,
            [(a, v + 1, "mobilities_returned", "abroad", "validation", AT,
              "following its mobilities (return_home)", "{}") for a, v, m in follows],
        )  # fmt: skip
        by_rule: dict[str, int] = {}
        for r in RULES:
            sql, params = rule_query(r)
            before = conn.total_changes
            conn.executemany(OUTBOX, reminders(r, conn.execute(sql, params)))
            if added := conn.total_changes - before:
                by_rule[r.name] = added
        conn.execute(
            SWEPT,
            (DAY.isoformat(), SINCE.isoformat(), AT, AT, sum(by_rule.values()), len(back),
             json.dumps(by_rule)),
        )  # fmt: skip
        conn.execute("COMMIT")
        conn.set_trace_callback(None)
    counts = {"returns": len(back), "follows": len(follows), **by_rule}
    return Run(time.perf_counter() - started, len(seen)), counts


# ---------------------------------------------------------------- checks and figures


def outcome(path: Path) -> dict[str, set[tuple[Any, ...]]]:
    """What a path wrote: its outbox rows, its history rows and the cases it moved."""

    def canonical(text: str) -> str:
        return json.dumps(json.loads(text), sort_keys=True)

    with closing(sqlite3.connect(path)) as conn:
        outbox = conn.execute("SELECT key, case_id, kind, recipient, cc, context FROM outbox")
        history = conn.execute(
            "SELECT case_id, version, trigger, source, dest, actor, note, facts FROM history"
        )
        moved = conn.execute(
            'SELECT c.id, c.state, c.version, m.returned_on FROM "case" c '
            "LEFT JOIN mobility m ON m.id = c.id WHERE c.updated_at = ?",
            (AT,),
        )
        return {
            "outbox": {(*row[:5], canonical(row[5])) for row in outbox},
            "history": {(*row[:7], canonical(row[7])) for row in history},
            "moved": set(moved),
        }


def check(
    paths: tuple[Path, Path], report: SweepReport, counts: dict[str, int], due: int
) -> dict[str, int]:
    """Both paths wrote the same rows, and exactly the cases due were reminded or returned."""
    ours, theirs = outcome(paths[0]), outcome(paths[1])
    for what, rows in ours.items():
        if rows != theirs[what]:
            differ = sorted(rows ^ theirs[what])[:2]
            raise RuntimeError(f"{what} differ between the sweep and the baseline: {differ}")
    notices = {r.notice for r in RULES}
    reminded = {row[1] for row in ours["outbox"] if row[2] in notices}
    sent = sum(1 for row in ours["outbox"] if row[2] in notices)
    if (report.reminders, report.transitions) != (sent, counts["returns"]):
        raise RuntimeError(f"the sweep reported {report.reminders} reminders, {report}")
    if len(reminded) + counts["returns"] != due or sent != len(reminded):
        raise RuntimeError(f"{sent} reminders to {len(reminded)} cases, {counts['returns']} back")
    return {"outbox": len(ours["outbox"]), "history": len(ours["history"]), "reminders": sent}


@dataclass
class Size:
    """One store's figures, round by round."""

    store: Store
    sweep: list[float] = field(default_factory=list)
    sql: list[float] = field(default_factory=list)
    statements: tuple[int, int] = (0, 0)
    written: dict[str, int] = field(default_factory=dict)
    by_rule: dict[str, int] = field(default_factory=dict)

    @property
    def ratios(self) -> list[float]:
        return [s / b for s, b in zip(self.sweep, self.sql, strict=True)]


def measure(store: Store, tmp: Path, *, rounds: int, due: int) -> Size:
    """A warm-up round (statements counted), then timed rounds, alternating, on fresh copies."""
    size = Size(store)
    for n in range(rounds + 1):
        with fresh_copy(store, tmp / "sweep.db") as ours, fresh_copy(store, tmp / "sql.db") as raw:
            if n % 2:
                swept, report = run_sweep(ours, count=n == 0)
                by_hand, counts = baseline(raw, count=n == 0)
            else:
                by_hand, counts = baseline(raw, count=n == 0)
                swept, report = run_sweep(ours, count=n == 0)
            size.written = check((ours, raw), report, counts, due) | counts
        if n == 0:
            size.statements = (swept.statements, by_hand.statements)
            size.by_rule = dict(report.by_rule)
        else:
            size.sweep.append(swept.seconds)
            size.sql.append(by_hand.seconds)
    return size


_LITERAL = re.compile(r"'[^']*'|\b\d+(?:\.\d+)?\b")


def _form(sql: str) -> str:
    """A statement with its values taken out, so that the per-case ones group together."""
    return " ".join(_LITERAL.sub("?", sql).split())


def _plan(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> list[str]:
    return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]


def profile(store: Store, tmp: Path, *, top: int) -> None:
    """cProfile one sweep on a fresh copy; its statements grouped; how SQLite plans its queries."""
    with fresh_copy(store, tmp / "warm.db") as path:
        run_sweep(path)
    with fresh_copy(store, tmp / "profiled.db") as path:
        seen: list[str] = []
        engine = make_engine(f"sqlite:///{path}")
        event.listen(engine, "connect", lambda conn, _: conn.set_trace_callback(seen.append))
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        try:
            sweep(engine, clock=CLOCK, staff_email=STAFF, since=SINCE)
        finally:
            profiler.disable()
            engine.dispose()
        took = time.perf_counter() - started
        print(f"cProfile of one sweep on {store.cases:,} cases ({took:.2f} s under the profiler),")
        print(f"top {top} by cumulative time:")
        stats = pstats.Stats(profiler, stream=sys.stdout)
        stats.strip_dirs().sort_stats("cumulative").print_stats(top)
        forms = Counter(_form(sql) for sql in seen)
        print(f"The {len(seen):,} statements the sweep ran, by form, the most frequent first:")
        for form, n in forms.most_common(12):
            print(f"  {n:>6,}  {form[:108]}{'...' if len(form) > 108 else ''}")
        print()
        print("How SQLite plans the set-based queries, timed alone on the store as it was:")
    with fresh_copy(store, tmp / "plans.db") as path, closing(sqlite3.connect(path)) as conn:
        queries = [
            sql
            for sql in dict.fromkeys(seen)
            if forms[_form(sql)] <= 3 and sql.startswith("SELECT") and " JOIN " in sql
        ]
        queries.append(RETURNS.replace("?", f"'{DAY}'"))  # the baseline's, for comparison
        for sql in queries:
            started = time.perf_counter()
            found = len(conn.execute(sql).fetchall())
            took = time.perf_counter() - started
            where = " ".join(sql[sql.index("WHERE") :].split())
            print(f"  {took * 1000:7.1f} ms {found:>5} rows  {where[:92]}")
            for step in _plan(conn, sql):
                print(f"{'':28}{step}")


def machine() -> str:
    """The interpreter and libraries the figures were measured with."""
    return (
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}, SQLite {sqlite3.sqlite_version}, "
        f"SQLAlchemy {sqlalchemy.__version__}"
    )


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(sizes: list[Size], *, due: int, rounds: int) -> None:
    """Print each store's times, the ratios against the targets and what both paths wrote."""
    w, small, large = sizes[-1].written, sizes[0], sizes[-1]
    print(f"Deadline sweep on SQLite: day {DAY}, since {SINCE}; {due:,} cases due in every store")
    print(
        f"({w['returns']:,} mobilities return and {w['follows']:,} projects follow; "
        f"{w['reminders']:,} reminders; {w['outbox']:,} outbox rows, {w['history']:,} history rows)"
    )
    print()
    print(f"  {'cases':>10}{'MB':>6}{'build s':>9}{'sweep s':>9}{'SQL s':>8}{'ratio':>7}   SQL run")
    for s in sizes:
        print(
            f"  {s.store.cases:>10,}{s.store.megabytes:>6,.0f}{s.store.seconds:>9.1f}"
            f"{statistics.median(s.sweep):>9.3f}{statistics.median(s.sql):>8.3f}"
            f"{statistics.median(s.ratios):>7.2f}   {s.statements[0]:,} / {s.statements[1]:,}"
        )
    print()
    if len(sizes) > 1:
        growth = statistics.median(large.sweep) / statistics.median(small.sweep)
        print(
            f"  sweep({large.store.cases:,}) / sweep({small.store.cases:,})   {growth:5.2f}   "
            f"(target <= {TARGET_GROWTH}: {_verdict(growth <= TARGET_GROWTH)})"
        )
    for s in sizes:
        ratio = statistics.median(s.ratios)
        print(
            f"  sweep / SQL at {s.store.cases:>9,}   {ratio:5.2f}   (target <= {TARGET_RATIO:.0f}: "
            f"{_verdict(ratio <= TARGET_RATIO)}; rounds {min(s.ratios):.2f}-{max(s.ratios):.2f})"
        )
    seconds = statistics.median(large.sweep)
    print(
        f"  sweep of {large.store.cases:,} cases  {seconds:5.2f} s "
        f"(target < {TARGET_SECONDS:.0f} s: {_verdict(seconds < TARGET_SECONDS)})"
    )
    print()
    rules = ", ".join(f"{name} {n:,}" for name, n in sorted(large.by_rule.items()))
    print(textwrap.fill(rules, 98, initial_indent="  by rule  ", subsequent_indent=" " * 11))
    print(
        f"  rounds   {rounds} per store after a warm-up, sweep and SQL alternating on fresh copies;"
    )
    print("           medians; each time includes opening the store (the sweep: a new engine)")
    print(
        "  stores   sqlite3 executemany into db.create_schema's tables and indexes, ANALYZE once;"
    )
    print("           both paths' outbox, history and moved cases compared row by row each round")
    print(
        "  SQL run  statements SQLite ran in the warm-up, sweep / baseline (executemany: per row)"
    )
    print(f"  machine  {machine()}")


def main(argv: list[str] | None = None) -> int:
    """Build the stores, time both paths on each and print the figures with their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="cases per store (comma list)")
    parser.add_argument("--due", type=int, default=2000, help="cases due on the day (2000)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per store (3)")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the sweep on the largest store instead"
    )
    args = parser.parse_args(argv)
    sizes = sorted({int(n) for n in args.sizes.replace("_", "").split(",") if n.strip()})
    if not sizes or args.rounds < 1:
        parser.error("--sizes needs at least one size, --rounds at least 1")

    now = current(args.due)
    with tempfile.TemporaryDirectory(prefix="vetpro-sweep-") as name:
        tmp = Path(name)
        if args.profile:
            store = build(tmp / "store.db", sizes[-1], now)
            print(
                f"Built {store.cases:,} cases ({store.megabytes:,.0f} MB) in {store.seconds:.1f} s"
            )
            profile(store, tmp, top=30)
            return 0
        measured = []
        for size in sizes:
            store = build(tmp / f"store-{size}.db", size, now)
            measured.append(measure(store, tmp, rounds=args.rounds, due=args.due))
            store.path.unlink()
    report(measured, due=args.due, rounds=args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
