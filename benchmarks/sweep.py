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
import platform
import pstats
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import chain
from typing import Any

import sqlalchemy
from sqlalchemy import event

from vetpro_workflow.clock import Clock
from vetpro_workflow.db import create_schema, make_engine
from vetpro_workflow.deadlines import RULES, Rule, anchor_window, reminder_context, reminder_key
from vetpro_workflow.states.eligibility import COUNTRIES, ORGANISATION_TYPES, PROFESSIONS
from vetpro_workflow.states.steps import VALIDATION_DAYS
from vetpro_workflow.sweep import SweepReport, sweep

TARGET_GROWTH = 1.5  # sweep(largest store) / sweep(smallest store)
TARGET_RATIO = 3.0  # sweep / hand-written SQL, at each size
TARGET_SECONDS = 30.0  # the sweep of the largest store
DAY = date(2031, 1, 25)  # seven days before the 2031 call's deadline, 1 February 12:00 Brussels
SINCE = DAY - timedelta(days=1)
CLOCK = Clock.on(DAY)
AT = f"{CLOCK.now:%Y-%m-%d %H:%M:%S.%f}"  # how SQLAlchemy stores a timestamp on SQLite
STAFF = "na-staff@agency.example"
FIRST_CALL = 2010
ORGANISATIONS = 2400
CURRENT = {DAY.year - 2: 1100, DAY.year - 1: 1400, DAY.year: 150}  # same in every store
RETURN_SHARE = 0.15  # of the cases due, the mobilities the sweep returns
D = DAY.toordinal()

# ---------------------------------------------------------------- the projects, as plain dates


@dataclass
class Stay:
    """One mobility's plan: the dates on which each of its steps happens (None: never)."""

    start: int
    end: int
    lang: bool
    agreed: int
    cancelled: int | None
    validated: int | None
    completed: int | None


@dataclass
class Project:
    """One application's plan, from which its state and its mobilities' on DAY follow."""

    year: int
    fate: str  # drafted | submitted | rejected | withdrawn | approved
    start: int
    end: int
    grant: int | None
    stays: list[Stay] = field(default_factory=list)
    closed: int | None = None


def deadline(year: int) -> datetime:
    return datetime(year, 2, 1, 11, 0, tzinfo=UTC)  # 12:00 Brussels time


def decided(year: int) -> int:
    return date(year, 5, 15).toordinal()


def stay(
    rng: random.Random, p: Project, *, start: int | None = None, end: int | None = None
) -> Stay:
    """A mobility inside the project's period; pinned dates are kept."""
    days = rng.randint(7, 42)
    if start is None:
        start = (end - days + 1) if end is not None else rng.randint(p.start, p.end - days + 1)
    end = start + days - 1 if end is None else end
    first = (p.grant if p.grant is not None else decided(p.year)) + 1
    agreed = max(first, start - rng.randint(5, 40))
    cancelled = (
        max(decided(p.year) + 1, start - rng.randint(1, 60)) if rng.random() < 0.05 else None
    )
    validated = end + rng.randint(5, 90) if rng.random() > 0.02 else None
    completed = validated + rng.randint(5, 60) if validated is not None else None
    return Stay(start, end, rng.random() < 0.4, agreed, cancelled, validated, completed)


def project(
    rng: random.Random,
    year: int,
    *,
    fate: str | None = None,
    start: int | None = None,
    end: int | None = None,
    stays: int | None = None,
) -> Project:
    """A project of a call, at random where nothing is pinned; its mobilities follow."""
    if fate is None:
        fate = rng.choices(
            ("approved", "rejected", "withdrawn", "drafted"), weights=(82, 12, 3, 3)
        )[0]
    if start is None:
        start = date(year, 6, 1).toordinal() + rng.randint(0, 150)
    if end is None:
        end = start + round(rng.randint(12, 24) * 30.44) - 1
    grant = start - rng.randint(10, min(60, start - decided(year) - 1))
    if fate == "approved" and rng.random() < 0.01:
        grant = None  # never signed: stays approved for good
    p = Project(year, fate, start, end, grant)
    count = (
        stays if stays is not None else rng.choices((1, 2, 3, 4, 5, 6), (20, 25, 25, 15, 10, 5))[0]
    )
    p.stays = [stay(rng, p) for _ in range(count)]
    return p


def close(rng: random.Random, p: Project) -> Project:
    """The day staff close the project, once the final report is in (None: not yet, for good)."""
    completed = [s.completed for s in p.stays if s.cancelled is None]
    if p.fate != "approved" or p.grant is None or None in completed or rng.random() < 0.03:
        p.closed = None
    else:
        p.closed = max([p.end + rng.randint(20, 59), *(c + rng.randint(1, 20) for c in completed)])  # type: ignore[misc]
    return p


@dataclass
class Snapshot:
    """A case's state on DAY and the recorded facts that go with it."""

    state: str
    version: int
    facts: dict[str, int | bool | str | None] = field(default_factory=dict)


def mobility_on(s: Stay, p: Project, under_way: bool) -> Snapshot:
    if p.fate in ("drafted", "submitted"):
        return Snapshot(p.fate, 1 if p.fate == "drafted" else 2)
    if p.fate != "approved" or (s.cancelled is not None and s.cancelled <= D):
        return Snapshot("cancelled", 4)
    if not under_way or s.agreed > D:
        return Snapshot("approved", 3)
    facts: dict[str, int | bool | str | None] = {"agreement_signed_on": s.agreed}
    if s.start > D:
        return Snapshot("preparation", 4, facts)
    facts |= {"departed_on": s.start, "preparation_done": True if s.lang else None}
    if s.end >= D:
        return Snapshot("abroad", 5, facts)
    facts["returned_on"] = s.end
    if s.validated is None or s.validated > D:
        return Snapshot("validation", 6, facts)
    facts |= {"europass_ref": "EP", "participant_report_on": s.validated - 2}
    if s.completed is None or s.completed > D:
        return Snapshot("dissemination", 7, facts)
    return Snapshot("completed", 8, facts | {"dissemination": "shared"})


def application_on(p: Project, stays: list[Snapshot]) -> Snapshot:
    if p.fate != "approved":
        return Snapshot(p.fate, {"drafted": 1, "submitted": 2, "withdrawn": 2}.get(p.fate, 3))
    if p.grant is None or p.grant > D:
        return Snapshot("approved", 3)
    facts: dict[str, int | bool | str | None] = {"grant_agreement_signed_on": p.grant}
    active = [m.state for m in stays if m.state != "cancelled"]
    if p.closed is not None and p.closed <= D:
        return Snapshot("closed", 8, facts | {"final_report_on": p.closed - 1})
    if not active:
        return Snapshot("dissemination", 5, facts)
    if all(state in ("approved", "preparation") for state in active):
        return Snapshot("preparation", 4, facts)
    if any(state in ("approved", "preparation", "abroad") for state in active):
        return Snapshot("abroad", 5, facts)
    if "validation" in active:
        return Snapshot("validation", 6, facts)
    return Snapshot("dissemination", 7, facts)


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


def dues(p: Project, app: Snapshot, stays: list[Snapshot]) -> list[tuple[int, str]]:
    """What falls due on DAY: (-1 for the application or a mobility's index, rule:offset)."""
    found = []
    anchors = {"deadline": deadline(p.year).date().toordinal(), "start": p.start, "end": p.end}
    for i, (s, m) in enumerate(zip(p.stays, stays, strict=True)):
        if m.state == "abroad" and s.end <= D:
            found.append((i, "return"))
    cases = [(-1, "application", app, anchors)]
    cases += [
        (i, "mobility", m, {"start": s.start, "end": s.end, "returned": m.facts.get("returned_on")})
        for i, (s, m) in enumerate(zip(p.stays, stays, strict=True))
    ]
    for index, kind, snap, dates in cases:
        for r in RULES:
            if r.kind != kind or snap.state not in r.states or not _condition(r, p, index, snap):
                continue
            for offset in r.offsets:
                lo, hi = _WINDOWS[r.name, offset]
                anchor = dates[r.anchor]
                if anchor is not None and lo <= anchor <= hi:  # type: ignore[operator]
                    found.append((index, f"{r.name}:{offset}"))
    return found


def _condition(r: Rule, p: Project, index: int, snap: Snapshot) -> bool:
    if r.condition == "preparation_missing":
        return p.stays[index].lang and not snap.facts.get("preparation_done")
    if r.condition == "report_missing":
        return snap.facts.get("participant_report_on") is None
    return True


def targets(due: int) -> list[str]:
    """What each due case falls due for: a share of returns, the rest spread over the rules."""
    reachable = [
        f"{r.name}:{offset}"
        for r in RULES
        for offset in r.offsets
        if r.anchor != "deadline"
        or deadline(DAY.year).date() == DAY - timedelta(days=offset)  # one call a year
    ]
    returns = max(1, round(due * RETURN_SHARE))
    if due < returns + len(reachable):
        raise SystemExit(f"--due must be at least {returns + len(reachable)}")
    share, extra = divmod(due - returns, len(reachable))
    out = ["return"] * returns
    for i, name in enumerate(reachable):
        out += [name] * (share + (i < extra))
    return out


def due_project(rng: random.Random, target: str) -> Project:
    """A current project in which exactly one case falls due on DAY, for `target`."""
    name, _, offset_text = target.partition(":")
    anchor = D - int(offset_text or 0)
    r = next((r for r in RULES if r.name == name), None)
    while True:
        if r is None:  # return: a mobility abroad ends today
            p = project(rng, DAY.year - 1, fate="approved")
            p.stays[0] = stay(rng, p, end=D)
        elif r.anchor == "deadline":
            p = project(rng, DAY.year, fate="drafted")
        elif r.kind == "application" and r.anchor == "start":  # grant agreement not yet signed
            p = project(rng, DAY.year - 1, fate="approved", start=anchor)
            p.grant = rng.randint(D + 1, anchor)
        elif r.kind == "application":  # the project has ended, or is about to, not yet closed
            p = project(rng, DAY.year - 2, fate="approved", end=anchor)
        elif r.anchor == "start":  # the mobility starts soon: approved, or preparing
            p = project(rng, DAY.year - 1, fate="approved")
            p.stays[0] = stay(rng, p, start=anchor)
            if "preparation" not in r.states or rng.random() < 0.5:
                p.stays[0].agreed = rng.randint(D + 1, anchor - 1)
            p.stays[0].lang = p.stays[0].lang or r.condition == "preparation_missing"
        else:  # returned some days ago, not yet validated
            p = project(rng, DAY.year - 1, fate="approved")
            p.stays[0] = stay(rng, p, end=anchor)
            p.stays[0].validated = None if rng.random() < 0.2 else D + rng.randint(1, 40)
        if r is None or r.kind == "mobility":
            p.stays[0].cancelled = None
        close(rng, p)
        if r is not None and r.kind == "application" and r.anchor == "end" and p.closed:
            p.closed = max(p.closed, D + 1)
        if p.stays[0].start < p.start or p.stays[0].end > p.end:
            continue
        app, stays = on_day(p)
        wanted = (-1 if r is not None and r.kind == "application" else 0, target)
        if dues(p, app, stays) == [wanted]:
            return p


def background(rng: random.Random, year: int, *, stays: int | None = None) -> Project:
    """A project of a call on which nothing falls due on DAY."""
    while True:
        fate = "submitted" if year == DAY.year else None  # the open call: sent early
        p = close(rng, project(rng, year, fate=fate, stays=stays))
        if not dues(p, *on_day(p)):
            return p


def current(due: int, seed: int) -> list[Project]:
    """The current calls' projects, the same in every store: the due ones among the rest."""
    rng = random.Random(seed)
    projects = [due_project(rng, t) for t in targets(due)]
    projects += [background(rng, y) for y, n in CURRENT.items() for _ in range(n)]
    rng.shuffle(projects)
    projects.sort(key=lambda p: p.year)
    return projects


def history(rng: random.Random, cases: int) -> Iterator[Project]:
    """Past calls' projects, spread over the years, with exactly `cases` cases in all."""
    years = list(range(FIRST_CALL, min(CURRENT)))
    for i, year in enumerate(years):
        quota = cases // (len(years) - i)
        cases -= quota
        while quota > 0:
            p = background(rng, year)
            if len(p.stays) + 1 > quota:
                p = background(rng, year, stays=quota - 1) if quota > 1 else _lone_draft(year)
            quota -= len(p.stays) + 1
            yield p


def _lone_draft(year: int) -> Project:
    start = date(year, 9, 1).toordinal()
    return Project(year, "drafted", start, start + 364, None)


# ---------------------------------------------------------------- the store, built in bulk

CITIES = ("Steyr", "Tampere", "Valencia", "Lyon", "Gdansk", "Porto", "Graz", "Brno", "Aarhus")
CITIES += ("Ghent", "Bologna", "Cork", "Tartu", "Malmo", "Linz", "Kosice", "Pecs", "Split")
KINDS = ("Vocational College", "Chamber of Crafts", "Training Centre", "Technical School")
FIRST = ("Anna", "Markus", "Sabine", "Lukas", "Elena", "Jonas", "Marta", "Pieter", "Ines", "Tomasz")
LAST = ("Huber", "Leitner", "Gruber", "Laine", "Ferrer", "Novak", "Rossi", "Jansen", "Dubois")
TRADES = ("welding", "carpentry", "nursing", "hospitality", "logistics", "bakery", "horticulture")
TOPICS = ("Digital simulators", "Work-based learning", "Assessment of practical skills")
TOPICS += ("Green skills", "Apprenticeship guidance", "Inclusive training", "Blended learning")


@dataclass
class Rows:
    """Rows waiting for executemany, by table."""

    case: list[tuple[Any, ...]] = field(default_factory=list)
    application: list[tuple[Any, ...]] = field(default_factory=list)
    partner: list[tuple[Any, ...]] = field(default_factory=list)
    mobility: list[tuple[Any, ...]] = field(default_factory=list)
    participant: list[tuple[Any, ...]] = field(default_factory=list)

    def flush(self, conn: sqlite3.Connection) -> None:
        conn.executemany('INSERT INTO "case" VALUES (?, ?, ?, ?, ?, ?, ?, ?)', self.case)
        conn.executemany(
            "INSERT INTO application VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", self.application
        )
        conn.executemany("INSERT INTO applicationpartner VALUES (?, ?)", self.partner)
        conn.executemany("INSERT INTO participant VALUES (?, ?, ?, ?, ?, ?, ?)", self.participant)
        conn.executemany(
            "INSERT INTO mobility VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            self.mobility,
        )
        for rows in (self.case, self.application, self.partner, self.mobility, self.participant):
            rows.clear()


class Writer:
    """Turns projects into rows with ids in order; an application's id is its case's."""

    def __init__(self, countries: list[str]) -> None:
        self.countries = countries
        self.rng = random.Random(7)
        self.next_case = self.next_participant = 1
        self.rows = Rows()
        self._iso: dict[int, str] = {}

    def iso(self, day: int | None) -> str | None:
        if day is None:
            return None
        if (text := self._iso.get(day)) is None:
            text = self._iso[day] = date.fromordinal(day).isoformat()
        return text

    def add(self, p: Project) -> int:
        """Write one project's rows; how many cases it holds."""
        rng, iso = self.rng, self.iso
        app, stays = on_day(p)
        app_id, org = self.next_case, rng.randint(1, ORGANISATIONS)
        self.next_case += 1 + len(p.stays)
        created = f"{iso(deadline(p.year).toordinal() - rng.randint(10, 90))} 09:00:00.000000"
        self.rows.case.append(
            (app_id, "application", app.state, app.version, org, None, created, created)
        )
        trade, topic = rng.choice(TRADES), rng.choice(TOPICS)
        self.rows.application.append(
            (
                app_id,
                p.year - FIRST_CALL + 1,
                org,
                org,
                f"{topic} in {trade} training, project {app_id}",
                f"Trainers in {trade} learn to plan and assess courses that use {topic.lower()}.",
                f"Workshops for the {trade} trainers of the partner schools and a published guide.",
                iso(p.start),
                iso(p.end),
                iso(app.facts.get("grant_agreement_signed_on")),  # type: ignore[arg-type]
                iso(app.facts.get("final_report_on")),  # type: ignore[arg-type]
            )
        )
        partners = sorted({self.partner(org) for _ in range(rng.randint(1, 3))})
        self.rows.partner += [(app_id, host) for host in partners]
        for i, (s, m) in enumerate(zip(p.stays, stays, strict=True)):
            case_id, person = app_id + 1 + i, self.next_participant
            self.next_participant += 1
            first, last = rng.choice(FIRST), rng.choice(LAST)
            self.rows.case.append(
                (case_id, "mobility", m.state, m.version, org, app_id, created, created)
            )
            self.rows.participant.append(
                (
                    person,
                    org,
                    f"{first} {last}",
                    f"{first}.{last}.{person}@org{org}.example".lower(),
                    rng.choice(PROFESSIONS),
                    f"{trade.capitalize()} trainer for apprentices, {rng.randint(2, 30)} years.",
                    f"{topic} in {trade}; assessing apprentices' work with new methods.",
                )
            )
            f = m.facts
            self.rows.mobility.append(
                (
                    case_id,
                    app_id,
                    person,
                    rng.choice(partners),
                    iso(s.start),
                    iso(s.end),
                    f"Design a {trade} module with {topic.lower()} for first-year apprentices.",
                    "Job shadowing in the host's workshops; co-teaching two sessions; assessment.",
                    int(s.lang),
                    iso(f.get("agreement_signed_on")),  # type: ignore[arg-type]
                    None if f.get("preparation_done") is None else int(bool(f["preparation_done"])),
                    iso(f.get("departed_on")),  # type: ignore[arg-type]
                    iso(f.get("returned_on")),  # type: ignore[arg-type]
                    f"EP-{p.year}-{case_id}" if "europass_ref" in f else None,
                    iso(f.get("participant_report_on")),  # type: ignore[arg-type]
                    "Two workshops for colleagues." if "dissemination" in f else None,
                )
            )
        return 1 + len(p.stays)

    def partner(self, applicant: int) -> int:
        """An organisation in another country than the applicant's."""
        while (host := self.rng.randint(1, ORGANISATIONS)) % len(self.countries) == applicant % len(
            self.countries
        ):
            pass
        return host


def _static_rows(conn: sqlite3.Connection, countries: list[str]) -> None:
    conn.executemany(
        "INSERT INTO call VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                year - FIRST_CALL + 1,
                f"LDV-VETPRO-{year}",
                f"Leonardo da Vinci mobility for VET professionals, call {year}",
                f"{deadline(year):%Y-%m-%d %H:%M:%S.%f}",
                f"{year}-06-01",
                24,
                7,
                42,
            )
            for year in range(FIRST_CALL, DAY.year + 1)
        ],
    )
    orgs, users = [], []
    for i in range(1, ORGANISATIONS + 1):
        city, kind = CITIES[i % len(CITIES)], KINDS[i % len(KINDS)]
        first, last = FIRST[i % len(FIRST)], LAST[i % len(LAST)]
        email = f"{first}.{last}@org{i}.example".lower()
        orgs.append(
            (
                i,
                f"{city} {kind} {i}",
                ORGANISATION_TYPES[i % 4],
                countries[i % len(countries)],
                f"{first} {last}",
                email,
            )
        )
        users.append((i, email, f"{first} {last}", "coordinator", i))
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
    """A store of exactly `size` cases: `now` (the current calls) after years of history."""
    started = time.perf_counter()
    engine = make_engine(f"sqlite:///{path}")
    try:
        create_schema(engine)
    finally:
        engine.dispose()
    countries = sorted(COUNTRIES)
    writer = Writer(countries)
    fixed = sum(1 + len(p.stays) for p in now)
    if size <= fixed:
        raise SystemExit(f"a store needs more than the {fixed:,} cases of the current calls")
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        # Build without secondary indexes, then create them exactly as the schema declares them.
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-262144"):
            conn.execute(f"PRAGMA {pragma}")
        conn.execute("BEGIN")
        _static_rows(conn, countries)
        written = 0
        for p in chain(history(random.Random(size), size - fixed), now):
            written += writer.add(p)
            if len(writer.rows.case) >= 100_000:
                writer.rows.flush(conn)
        writer.rows.flush(conn)
        conn.execute("COMMIT")
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("ANALYZE")
        conn.execute("PRAGMA journal_mode=WAL")
    assert written == size, (written, size)
    return Store(path, size, time.perf_counter() - started, path.stat().st_size / 1e6)


# ---------------------------------------------------------------- the two paths


@dataclass
class Run:
    """One timed run of a path on a fresh copy of a store."""

    seconds: float
    statements: int | None = None


@contextmanager
def fresh_copy(store: Store, path: Path) -> Iterator[Path]:
    shutil.copyfile(store.path, path)
    try:
        yield path
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def run_sweep(path: Path, *, count: bool = False) -> tuple[Run, SweepReport]:
    """The sweep as the daily job runs it: a new engine on the store, the sweep, dispose."""
    seen: list[str] = []
    started = time.perf_counter()
    engine = make_engine(f"sqlite:///{path}")
    if count:
        event.listen(engine, "connect", lambda conn, _: conn.set_trace_callback(seen.append))
    try:
        report = sweep(engine, clock=CLOCK, staff_email=STAFF, since=SINCE)
    finally:
        engine.dispose()
    return Run(time.perf_counter() - started, len(seen) if count else None), report


def connect_raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection set up as `db.make_engine` sets up SQLite."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=60)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute("PRAGMA busy_timeout=60000")
    return conn


_PEOPLE = """
    JOIN application a ON a.id = m.application_id
    JOIN organisation applicant ON applicant.id = a.applicant_id
    JOIN user u ON u.id = a.coordinator_id
    JOIN participant p ON p.id = m.participant_id
    JOIN organisation host ON host.id = m.host_id"""
_MOBILITY = """
    c.id, c.state, c.version, m.application_id, a.title, applicant.name, u.name, u.email,
    p.name, p.email, host.name, host.country, m.start_date, m.end_date, m.returned_on"""
RETURNS = f"""
    SELECT {_MOBILITY} FROM "case" c JOIN mobility m ON m.id = c.id {_PEOPLE}
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
HISTORY = (
    "INSERT INTO history (case_id, version, trigger, source, dest, actor, at, note, facts) "
    "VALUES (?, ?, ?, ?, ?, 'system', ?, ?, ?)"
)
OUTBOX = (
    "INSERT OR IGNORE INTO outbox (key, case_id, kind, recipient, cc, context, status, attempts, "
    "next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)"
)
_COLUMNS = {
    ("mobility", "start"): "m.start_date",
    ("mobility", "end"): "m.end_date",
    ("mobility", "returned"): "m.returned_on",
    ("application", "start"): "a.start_date",
    ("application", "end"): "a.end_date",
}
_CONDITIONS = {
    "preparation_missing": " AND m.language_preparation = 1 AND NOT coalesce(m.preparation_done, 0)",
    "report_missing": " AND m.participant_report_on IS NULL",
    None: "",
}


def rule_query(r: Rule) -> tuple[str, list[str]]:
    """One query for all of a rule's offsets: its windows OR-ed, its states, its condition."""
    windows = [anchor_window(offset, SINCE, DAY) for offset in r.offsets]
    states = ", ".join(f"'{s}'" for s in r.states)
    if r.anchor == "deadline":
        where = " OR ".join(
            "(k.application_deadline >= ? AND k.application_deadline < ?)" for _ in windows
        )
        params = [
            f"{d:%Y-%m-%d} 00:00:00.000000"
            for lo, hi in windows
            for d in (lo, hi + timedelta(days=1))
        ]
    else:
        where = " OR ".join(f"{_COLUMNS[r.kind, r.anchor]} BETWEEN ? AND ?" for _ in windows)
        params = [d.isoformat() for window in windows for d in window]
    if r.kind == "mobility":
        return (
            f'SELECT {_MOBILITY} FROM mobility m JOIN "case" c ON c.id = m.id {_PEOPLE} '
            f"WHERE ({where}) AND c.state IN ({states}){_CONDITIONS[r.condition]}",
            params,
        )
    return (
        "SELECT c.id, c.state, a.title, a.start_date, a.end_date, applicant.name, u.name, u.email, "
        'k.application_deadline FROM application a JOIN "case" c ON c.id = a.id '
        "JOIN call k ON k.id = a.call_id JOIN organisation applicant ON applicant.id = a.applicant_id "
        f"JOIN user u ON u.id = a.coordinator_id WHERE ({where}) AND c.state IN ({states})",
        params,
    )


def _facts(r: Rule, row: tuple[Any, ...]) -> dict[str, Any]:
    """The columns a reminder's context is built from, typed as the ORM reads them."""
    if r.kind == "application":
        i, state, title, start, end, applicant, coordinator, email, due = row
        return {
            "id": i,
            "state": state,
            "application_id": i,
            "project_title": title,
            "start_date": date.fromisoformat(start),
            "end_date": date.fromisoformat(end),
            "applicant_name": applicant,
            "coordinator_name": coordinator,
            "coordinator_email": email,
            "deadline": datetime.fromisoformat(due).replace(tzinfo=UTC),
        }
    i, state, _, app, title, applicant, coordinator, email, name, mail, host, country = row[:12]
    return {
        "id": i,
        "state": state,
        "application_id": app,
        "project_title": title,
        "applicant_name": applicant,
        "coordinator_name": coordinator,
        "coordinator_email": email,
        "participant_name": name,
        "participant_email": mail,
        "host_name": host,
        "host_country": country,
        "start_date": date.fromisoformat(row[12]),
        "end_date": date.fromisoformat(row[13]),
        "returned_on": date.fromisoformat(row[14]) if row[14] else None,
    }


def _anchor(r: Rule, facts: dict[str, Any]) -> date:
    if r.anchor == "deadline":
        return facts["deadline"].date()  # type: ignore[no-any-return]
    return facts[{"start": "start_date", "end": "end_date", "returned": "returned_on"}[r.anchor]]  # type: ignore[no-any-return]


def _return_notices(row: tuple[Any, ...], version: int) -> list[tuple[Any, ...]]:
    """The two notices of a return (participant report request, return recorded)."""
    i, _, _, app, title, applicant, coordinator, email, name, mail, host, country = row[:12]
    returned = date.fromisoformat(row[13])
    due = returned + timedelta(days=VALIDATION_DAYS)
    context = json.dumps(
        {
            "case_id": i,
            "case_kind": "mobility",
            "state": "validation",
            "trigger": "return_home",
            "note": None,
            "coordinator_name": coordinator,
            "coordinator_email": email,
            "applicant": applicant,
            "next_step": "The coordinator records the Europass reference and the participant "
            f"report (validate) by {due}.",
            "next_step_due": due.isoformat(),
            "application_id": app,
            "project_title": title,
            "participant_name": name,
            "host": host,
            "host_country": country,
            "start_date": row[12],
            "end_date": row[13],
        }
    )
    return [
        (
            f"case-{i}:participant_report_request:v{version}",
            i,
            "participant_report_request",
            mail,
            None,
            context,
            AT,
            AT,
        ),
        (
            f"case-{i}:return_recorded:v{version}",
            i,
            "return_recorded",
            email,
            None,
            context,
            AT,
            AT,
        ),
    ]


def baseline(path: Path, *, count: bool = False) -> tuple[Run, dict[str, int]]:
    """The sweep's selection and writes by hand, with plain sqlite3, in one transaction."""
    seen: list[str] = []
    started = time.perf_counter()
    with closing(connect_raw(path)) as conn:
        if count:
            conn.set_trace_callback(seen.append)
        conn.execute("BEGIN IMMEDIATE")
        returning = conn.execute(RETURNS, (DAY.isoformat(),)).fetchall()
        before = conn.total_changes
        conn.executemany(MOVE, [("validation", r[2] + 1, AT, r[0], r[2]) for r in returning])
        if conn.total_changes - before != len(returning):
            raise RuntimeError("a returning mobility was changed meanwhile")
        conn.executemany(
            "UPDATE mobility SET returned_on = end_date WHERE id = ?", [(r[0],) for r in returning]
        )
        conn.executemany(
            HISTORY,
            [
                (
                    r[0],
                    r[2] + 1,
                    "return_home",
                    "abroad",
                    "validation",
                    AT,
                    None,
                    json.dumps({"returned_on": r[13]}),
                )
                for r in returning
            ],
        )
        conn.executemany(OUTBOX, [n for r in returning for n in _return_notices(r, r[2] + 1)])
        last = {r[3]: r[0] for r in returning}  # the mobility whose return the project follows
        follows = [
            (app, version, mobility)
            for app, mobility in last.items()
            for _, version in conn.execute(FOLLOWING, (app,)).fetchall()
        ]
        conn.executemany(MOVE, [("validation", v + 1, AT, a, v) for a, v, _ in follows])
        conn.executemany(
            HISTORY,
            [
                (
                    a,
                    v + 1,
                    "mobilities_returned",
                    "abroad",
                    "validation",
                    AT,
                    f"following mobility {m} (return_home)",
                    "{}",
                )
                for a, v, m in follows
            ],
        )
        by_rule: dict[str, int] = {}
        for r in RULES:
            sql, params = rule_query(r)
            notices = []
            for row in conn.execute(sql, params):
                facts = _facts(r, row)
                anchor = _anchor(r, facts)
                for offset in r.offsets:
                    lo, hi = anchor_window(offset, SINCE, DAY)
                    if not lo <= anchor <= hi:
                        continue
                    context = reminder_context(r, facts, anchor=anchor, today=DAY)
                    to = {"participant": facts.get("participant_email"), "staff": STAFF}.get(
                        r.to, facts["coordinator_email"]
                    )
                    key = reminder_key(
                        facts["id"], r, date.fromisoformat(context["due_date"]), offset
                    )
                    cc = facts["coordinator_email"] if offset in r.cc_coordinator_at else None
                    notices.append(
                        (key, facts["id"], r.notice, to, cc, json.dumps(context), AT, AT)
                    )
            before = conn.total_changes
            conn.executemany(OUTBOX, notices)
            if added := conn.total_changes - before:
                by_rule[r.name] = added
        conn.execute(
            "INSERT INTO sweeprun (day, since, started_at, finished_at, reminders, transitions, "
            "by_rule) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                DAY.isoformat(),
                SINCE.isoformat(),
                AT,
                AT,
                sum(by_rule.values()),
                len(returning),
                json.dumps(by_rule),
            ),
        )
        conn.execute("COMMIT")
        conn.set_trace_callback(None)
    counts = {"returns": len(returning), "follows": len(follows), **by_rule}
    return Run(time.perf_counter() - started, len(seen) if count else None), counts


# ---------------------------------------------------------------- checks and figures


def outcome(path: Path) -> dict[str, set[tuple[Any, ...]]]:
    """What a path wrote: outbox rows, history rows and the cases it moved."""
    canonical = lambda text: json.dumps(json.loads(text), sort_keys=True)  # noqa: E731
    with closing(sqlite3.connect(path)) as conn:
        outbox = conn.execute(
            "SELECT key, case_id, kind, recipient, cc, context, status FROM outbox"
        )
        history = conn.execute(
            "SELECT case_id, version, trigger, source, dest, actor, note, facts FROM history"
        )
        moved = conn.execute(
            'SELECT c.id, c.state, c.version, m.returned_on FROM "case" c '
            "LEFT JOIN mobility m ON m.id = c.id WHERE c.updated_at = ?",
            (AT,),
        )
        return {
            "outbox": {(*row[:5], canonical(row[5]), row[6]) for row in outbox},
            "history": {(*row[:7], canonical(row[7])) for row in history},
            "moved": set(moved),
        }


def check(
    swept: Path, by_hand: Path, report: SweepReport, counts: dict[str, int], due: int
) -> dict[str, int]:
    """Both paths wrote the same rows, and exactly the cases due were reminded or returned."""
    ours, theirs = outcome(swept), outcome(by_hand)
    for what in ours:
        if ours[what] != theirs[what]:
            only = sorted(ours[what] ^ theirs[what])[:3]
            raise RuntimeError(
                f"{what} differs between the sweep and the SQL baseline, e.g. {only}"
            )
    reminded = {row[1] for row in ours["outbox"] if row[2] in {r.notice for r in RULES}}
    reminders = sum(n for k, n in counts.items() if k not in ("returns", "follows"))
    if (report.reminders, report.transitions) != (reminders, counts["returns"]):
        raise RuntimeError(
            f"sweep counted {report.reminders} reminders, {report.transitions} moves"
        )
    if len(reminded) + counts["returns"] != due or reminders != len(reminded):
        raise RuntimeError(
            f"{len(reminded)} cases reminded, {counts['returns']} returned; wanted {due}"
        )
    return {
        "outbox": len(ours["outbox"]),
        "history": len(ours["history"]),
        "reminders": reminders,
        **counts,
    }


@dataclass
class Size:
    """One store's figures, round by round."""

    store: Store
    sweep: list[float] = field(default_factory=list)
    sql: list[float] = field(default_factory=list)
    statements: tuple[int, int] = (0, 0)
    written: dict[str, int] = field(default_factory=dict)

    @property
    def ratios(self) -> list[float]:
        return [s / b for s, b in zip(self.sweep, self.sql, strict=True)]


def measure(store: Store, tmp: Path, *, rounds: int, due: int) -> Size:
    """A warm-up round (statements counted), then timed rounds alternating on fresh copies."""
    size = Size(store)
    for n in range(rounds + 1):
        with fresh_copy(store, tmp / "sweep.db") as a, fresh_copy(store, tmp / "sql.db") as b:
            warm = n == 0
            if n % 2:
                swept, report = run_sweep(a, count=warm)
                by_hand, counts = baseline(b, count=warm)
            else:
                by_hand, counts = baseline(b, count=warm)
                swept, report = run_sweep(a, count=warm)
            size.written = check(a, b, report, counts, due)
        if warm:
            size.statements = (swept.statements or 0, by_hand.statements or 0)
        else:
            size.sweep.append(swept.seconds)
            size.sql.append(by_hand.seconds)
    return size


def profile(store: Store, tmp: Path, *, top: int) -> None:
    """cProfile one sweep on a fresh copy, then show how SQLite plans each query it ran."""
    with fresh_copy(store, tmp / "warm.db") as path:
        run_sweep(path)
    with fresh_copy(store, tmp / "profiled.db") as path:
        seen: list[str] = []
        engine = make_engine(f"sqlite:///{path}")
        event.listen(engine, "connect", lambda conn, _: conn.set_trace_callback(seen.append))
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            sweep(engine, clock=CLOCK, staff_email=STAFF, since=SINCE)
        finally:
            profiler.disable()
            engine.dispose()
        print(f"cProfile of one sweep on {store.cases:,} cases, top {top} by cumulative time:")
        pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats("cumulative").print_stats(
            top
        )
        kinds: dict[str, int] = {}
        for sql in seen:
            verb = sql.split(None, 1)[0].upper() if sql.strip() else "?"
            kinds[verb] = kinds.get(verb, 0) + 1
        print(
            f"statements the sweep ran: {len(seen):,} ({', '.join(f'{k} {n:,}' for k, n in sorted(kinds.items()))})"
        )
        print("\nquery plans of the selecting statements run once per sweep (not per case):")
        once = [
            s
            for s in dict.fromkeys(seen)
            if s.lstrip().upper().startswith("SELECT") and seen.count(s) == 1
        ]
        with closing(sqlite3.connect(path)) as conn:
            for sql in once:
                if "JOIN" not in sql and "max(" not in sql:
                    continue
                head = " ".join(sql.split())
                print(f"\n  {head[:150]}{'…' if len(head) > 150 else ''}")
                for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"):
                    print(f"    {row[3]}")


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
    """Print every store's times, the ratios against the targets and what was written."""
    w = sizes[-1].written
    rule_counts = {
        k: n
        for k, n in w.items()
        if k not in ("outbox", "history", "reminders", "returns", "follows")
    }
    print(f"Deadline sweep on SQLite: day {DAY}, since {SINCE}; {due:,} cases due in every store")
    print(
        f"({w['returns']:,} mobilities return, {w['follows']:,} projects follow them; {w['reminders']:,} "
        f"reminders of {len(rule_counts)} rules; {w['outbox']:,} outbox rows, {w['history']:,} history rows)"
    )
    print()
    print(
        f"  {'cases':>10}{'MB':>7}{'build s':>9}{'sweep s':>9}{'SQL s':>8}{'ratio':>7}   statements sweep/SQL"
    )
    for s in sizes:
        print(
            f"  {s.store.cases:>10,}{s.store.megabytes:>7,.0f}{s.store.seconds:>9.1f}"
            f"{statistics.median(s.sweep):>9.3f}{statistics.median(s.sql):>8.3f}"
            f"{statistics.median(s.ratios):>7.2f}   {s.statements[0]:,} / {s.statements[1]:,}"
        )
    print()
    small, large = sizes[0], sizes[-1]
    growth = statistics.median(large.sweep) / statistics.median(small.sweep)
    if len(sizes) > 1:
        print(
            f"  sweep({large.store.cases:,}) / sweep({small.store.cases:,})  {growth:.2f}   "
            f"(target <= {TARGET_GROWTH}: {_verdict(growth <= TARGET_GROWTH)})"
        )
    for s in sizes:
        ratio = statistics.median(s.ratios)
        print(
            f"  sweep / SQL at {s.store.cases:>9,}  {ratio:.2f}   (target <= {TARGET_RATIO}: "
            f"{_verdict(ratio <= TARGET_RATIO)}; rounds {min(s.ratios):.2f}-{max(s.ratios):.2f})"
        )
    seconds = statistics.median(large.sweep)
    print(
        f"  sweep of {large.store.cases:,} cases  {seconds:.3f} s   "
        f"(target < {TARGET_SECONDS:.0f} s: {_verdict(seconds < TARGET_SECONDS)})"
    )
    print()
    print(f"  by rule  {', '.join(f'{k} {n:,}' for k, n in sorted(rule_counts.items()))}")
    print(
        f"  rounds   {rounds} per store, alternating sweep and SQL on fresh copies, after 1 warm-up "
        "(statements counted there); medians shown; times include opening the store"
    )
    print(
        "  stores   built with sqlite3 executemany into db.create_schema's tables and indexes; "
        "ANALYZE run once after each build; the same outcome checked row by row on both paths"
    )
    print(f"  machine  {machine()}")


def main(argv: list[str] | None = None) -> int:
    """Build the stores, time both paths on each and print the figures with their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="100000,1000000", help="cases per store, comma-separated"
    )
    parser.add_argument("--due", type=int, default=2000, help="cases due on the day swept (2000)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per store (default 3)")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the sweep on the largest store instead"
    )
    args = parser.parse_args(argv)
    sizes = sorted({int(n.replace("_", "")) for n in args.sizes.split(",") if n.strip()})
    if not sizes or args.rounds < 1:
        parser.error("--sizes needs at least one size, --rounds at least 1")

    now = current(args.due, seed=2031)
    with tempfile.TemporaryDirectory(prefix="vetpro-sweep-") as name:
        tmp = Path(name)
        if args.profile:
            store = build(tmp / "store.db", sizes[-1], now)
            print(
                f"built {store.cases:,} cases ({store.megabytes:,.0f} MB) in {store.seconds:.1f} s"
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
