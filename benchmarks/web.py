"""Server time of the workspace's case list and case page on a store of a million cases, against
plain SQL returning the same rows, in the same run.

The store: a SQLite file filled with bulk inserts (by default 200,000 applications with four
mobilities each: 1,000,000 cases, with their applications, mobilities, partners, participants,
one history row a case and one mail a project), in states spread as a live agency's would be.
The pages are asked for by NA staff through the real application (sessions, CSRF, templates),
in-process; the time is measured around the ASGI application, from the request's arrival to the
end of its response. The baseline runs the same queries with plain sqlite3 (no rendering).
Measured, alternating ours and the baseline, after a warm-up:
  - the case list filtered by kind and state, page 1 and a deep page (90 % through, by keyset);
  - the case list filtered by call and country (joins), page 1 and a deep page;
  - the JSON API's list, filtered, deep page;
  - the case page of an application and of a mobility.
For comparison it also times skipping rows (OFFSET) to the same deep page, which the list
avoids by reading pages by case id. Target: p95 under 100 ms for each page.
Usage: python benchmarks/web.py [--cases 1000000] [--requests 200] [--store PATH]
"""

from __future__ import annotations

import sys
from pathlib import Path

# This folder holds a script named like a library (transitions.py): keep it off the import path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import random
import re
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from vetpro_workflow.clock import Clock, real_now
from vetpro_workflow.config import get_settings
from vetpro_workflow.intake.documents import parse_call
from vetpro_workflow.states.actors import Actor
from vetpro_workflow.store import auth, calls, schema
from vetpro_workflow.store.database import Database
from vetpro_workflow.store.listing import _LIST
from vetpro_workflow.store.users import add_user
from vetpro_workflow.web.app import create_app

STAFF = "officer@national-agency.example"
PASSWORD = "benchmark-password"
CALLS = ("LDV-VETPRO-2025", "LDV-VETPRO-2026", "LDV-VETPRO-2027")
COUNTRIES = ("AT", "BE", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HU", "IE", "IT",
             "LT", "NL", "NO", "PL", "PT", "SE", "SI")  # fmt: skip
# Application states, how often each is met, and the state of its mobilities then.
STATES = {
    "drafted": (10, "drafted"), "submitted": (10, "submitted"), "approved": (5, "approved"),
    "preparation": (10, "preparation"), "abroad": (10, "abroad"),
    "validation": (10, "validation"), "dissemination": (10, "dissemination"),
    "closed": (25, "completed"), "rejected": (7, "submitted"), "withdrawn": (3, "drafted"),
}  # fmt: skip
APPLICANTS, HOSTS, PER_APPLICATION = 5000, 500, 4
NOW = "2026-12-01 10:00:00.000000"


def _rows(sql: str, batch: Iterator[tuple[Any, ...]], conn: sqlite3.Connection) -> None:
    conn.executemany(sql, batch)


def _people(conn: sqlite3.Connection) -> None:
    """Applicants and their coordinators and participants, and the partner organisations."""
    orgs = [
        (i, f"Applicant school {i}", "vet_provider", COUNTRIES[i % len(COUNTRIES)],
         f"Contact {i}", f"contact{i}@school{i}.example")
        for i in range(1, APPLICANTS + 1)
    ] + [
        (APPLICANTS + j, f"Host {j}", "enterprise", COUNTRIES[(j + 7) % len(COUNTRIES)],
         f"Host contact {j}", f"host{j}@host{j}.example")
        for j in range(1, HOSTS + 1)
    ]  # fmt: skip
    conn.executemany(
        "INSERT INTO organisation (id, name, type, country, contact_name, contact_email) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        orgs,
    )
    conn.executemany(
        "INSERT INTO \"user\" (email, name, role, organisation_id) VALUES (?, ?, 'coordinator', ?)",
        [(f"contact{i}@school{i}.example", f"Contact {i}", i) for i in range(1, APPLICANTS + 1)],
    )
    conn.executemany(
        "INSERT INTO participant (id, organisation_id, name, email, profession, "
        "professional_background, training_needs) VALUES (?, ?, ?, ?, 'trainer', ?, ?)",
        [
            ((i - 1) * PER_APPLICATION + p, i, f"Participant {p} of {i}",
             f"p{p}@school{i}.example", "Welding trainer, 12 years.",
             "Course design with simulators.")
            for i in range(1, APPLICANTS + 1)
            for p in range(1, PER_APPLICATION + 1)
        ],
    )  # fmt: skip


def _project(k: int, rng: random.Random, states: list[str]) -> dict[str, Any]:
    """The rows of the k-th application and its mobilities."""
    state = states[k]
    applicant = k % APPLICANTS + 1
    app_id = k * (PER_APPLICATION + 1) + 1
    start = date(2025, 6, 1) + timedelta(days=k % 700)
    hosts = [APPLICANTS + 1 + (k + h) % HOSTS for h in (0, 1)]
    mobilities = [
        (app_id + m, applicant, start + timedelta(days=90 + 30 * m), hosts[m % 2], m)
        for m in range(1, PER_APPLICATION + 1)
    ]
    return {"state": state, "applicant": applicant, "id": app_id, "start": start,
            "hosts": hosts, "mobilities": mobilities, "call": k % len(CALLS) + 1}  # fmt: skip


def _batch(conn: sqlite3.Connection, projects: list[dict[str, Any]]) -> None:
    mob_state = {s: m for s, (_, m) in STATES.items()}
    cases, apps, partners, mobs, history, mail = [], [], [], [], [], []
    for p in projects:
        cases.append((p["id"], "application", p["state"], p["applicant"], None))
        apps.append((p["id"], p["call"], p["applicant"], p["applicant"],
                     f"Project {p['id']}: digital welding simulators", "Trainers learn.",
                     "Workshops.", p["start"].isoformat(),
                     (p["start"] + timedelta(days=700)).isoformat(),
                     f"{p['id']:064x}"))  # fmt: skip
        partners += [(p["id"], h) for h in p["hosts"]]
        for mob_id, applicant, begin, host, m in p["mobilities"]:
            cases.append((mob_id, "mobility", mob_state[p["state"]], applicant, p["id"]))
            mobs.append((mob_id, p["id"], (applicant - 1) * PER_APPLICATION + m, host,
                         begin.isoformat(), (begin + timedelta(days=18)).isoformat(),
                         "Design a blended module.", "Job shadowing.", m % 2))  # fmt: skip
        for case_id in (p["id"], *(m[0] for m in p["mobilities"])):
            history.append((case_id, "imported from bench.json"))
        mail.append((f"case-{p['id']}:receipt", p["id"], f"contact{p['applicant']}@x.example"))
    conn.executemany(
        'INSERT INTO "case" (id, kind, state, version, organisation_id, application_id, '
        f"created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?, '{NOW}', '{NOW}')",
        cases,
    )
    conn.executemany(
        "INSERT INTO application (id, call_id, applicant_id, coordinator_id, title, objectives, "
        "dissemination_plan, start_date, end_date, digest) VALUES (?,?,?,?,?,?,?,?,?,?)",
        apps,
    )
    conn.executemany("INSERT INTO application_partner VALUES (?, ?)", partners)
    conn.executemany(
        "INSERT INTO mobility (id, application_id, participant_id, host_id, start_date, "
        "end_date, objectives, content, language_preparation) VALUES (?,?,?,?,?,?,?,?,?)",
        mobs,
    )
    conn.executemany(
        "INSERT INTO history (case_id, version, trigger, source, dest, actor, at, note, facts) "
        f"VALUES (?, 1, 'import', NULL, 'drafted', 'system', '{NOW}', ?, '{{}}')",
        history,
    )
    conn.executemany(
        "INSERT INTO outbox (key, case_id, kind, recipient, context, status, attempts, "
        f"next_attempt_at, created_at) VALUES (?, ?, 'receipt', ?, '{{}}', 'sent', 1, "
        f"'{NOW}', '{NOW}')",
        mail,
    )


def build(path: Path, cases: int) -> str:
    """A store of about `cases` cases, filled with bulk inserts; its URL."""
    url = f"sqlite:///{path}"
    schema.create(url)
    with Database(url) as db, db.transaction() as tx:
        add_user(tx, email=STAFF, role="staff")
        auth.set_password(tx, STAFF, PASSWORD, now=real_now(), hasher=CHEAP)
        for year, code in enumerate(CALLS, start=2025):
            doc = json.loads(Path(__file__).parents[1].joinpath(
                "src/vetpro_workflow/examples/call.json").read_text())  # fmt: skip
            doc |= {"code": code, "application_deadline": f"{year}-02-01T12:00:00+01:00",
                    "earliest_start": f"{year}-06-01"}  # fmt: skip
            calls.define(tx, parse_call(json.dumps(doc)), actor=Actor(STAFF, "staff"),
                         now=Clock.on(date(year - 1, 10, 1)).now)  # fmt: skip
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=OFF", "synchronous=OFF", "foreign_keys=OFF"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute("BEGIN")
    _people(conn)
    rng = random.Random(7)
    projects = cases // (PER_APPLICATION + 1)
    names = list(STATES)
    states = rng.choices(names, weights=[STATES[s][0] for s in names], k=projects)
    for start in range(0, projects, 20_000):
        _batch(
            conn, [_project(k, rng, states) for k in range(start, min(projects, start + 20_000))]
        )
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    return url


CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


class Timed:
    """The application, with the server time of each request noted."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.times: list[float] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        start = time.perf_counter()
        await self.app(scope, receive, send)
        if scope["type"] == "http":
            self.times.append(time.perf_counter() - start)


def signed_in(app: Any) -> TestClient:
    client = TestClient(app)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/sign-in").text).group(1)
    client.post("/sign-in", data={"email": STAFF, "password": PASSWORD, "csrf": token})
    return client


_PROJECT = """
SELECT c.id, c.state, c.version, c.organisation_id, a.title, a.objectives,
       a.dissemination_plan, a.start_date, a.end_date, a.scores, a.score, o.name, o.type,
       o.country, u.name AS coordinator, u.email, k.code, k.application_deadline, k.pass_mark,
       k.weights
FROM "case" c JOIN application a ON a.id = c.id JOIN "call" k ON k.id = a.call_id
JOIN organisation o ON o.id = a.applicant_id JOIN "user" u ON u.id = a.coordinator_id
WHERE c.id = (SELECT coalesce(application_id, id) FROM "case" WHERE id = :id)"""
_PARTNERS = (
    "SELECT po.name, po.country, po.type FROM application_partner p "
    "JOIN organisation po ON po.id = p.organisation_id WHERE p.application_id = :app"
)
_MOBILITIES = """
SELECT c.id, c.state, c.version, m.*, pt.name, pt.email, pt.profession, h.name, h.country
FROM mobility m JOIN "case" c ON c.id = m.id JOIN participant pt ON pt.id = m.participant_id
JOIN organisation h ON h.id = m.host_id WHERE m.application_id = :app ORDER BY c.id"""


def plain_case(conn: sqlite3.Connection, case_id: int) -> int:
    """The rows of a case page with plain SQL: its project, partners, mobilities, history and
    mail."""
    project = conn.execute(_PROJECT, {"id": case_id}).fetchone()
    rows = [project]
    rows += conn.execute(_PARTNERS, {"app": project[0]}).fetchall()
    rows += conn.execute(_MOBILITIES, {"app": project[0]}).fetchall()
    rows += conn.execute(
        "SELECT * FROM history WHERE case_id = :id ORDER BY id", {"id": case_id}
    ).fetchall()
    rows += conn.execute(
        "SELECT * FROM outbox WHERE case_id = :id ORDER BY id", {"id": case_id}
    ).fetchall()
    return len(rows)


def plain_list(conn: sqlite3.Connection, filters: dict[str, Any], after: int | None) -> int:
    """The rows of a page of the case list with plain SQL."""
    columns = {"kind": "c.kind", "state": "c.state", "call": "k.code", "country": "o.country"}
    if "state" not in filters:  # as the workspace asks SQLite (store/listing.py)
        columns["kind"] = "+c.kind"
    where = [f"{columns[name]} = :{name}" for name in filters]
    if after is not None:
        where.append("c.id > :after")
    sql = _LIST + " WHERE " + " AND ".join(where) + " ORDER BY c.id LIMIT 51"
    return len(conn.execute(sql, {**filters, "after": after}).fetchall())


def figures(times: list[float]) -> tuple[float, float]:
    """Median and 95th percentile, in milliseconds."""
    ms = sorted(t * 1000 for t in times)
    return statistics.median(ms), statistics.quantiles(ms, n=20)[18]


def measure(
    label: str, ours: Callable[[int], Any], plain: Callable[[int], Any], timed: Timed, n: int
) -> dict[str, Any]:
    """Alternate our request and the plain query n times, after a warm-up."""
    for i in range(10):
        ours(i)
        plain(i)
    timed.times.clear()
    raw: list[float] = []
    for i in range(n):
        response = ours(i)
        assert response.status_code == 200, (label, response.status_code, response.text[:300])
        start = time.perf_counter()
        plain(i)
        raw.append(time.perf_counter() - start)
    server = list(timed.times)
    assert len(server) == n
    (om, op), (bm, bp) = figures(server), figures(raw)
    print(f"  {label:<46} {om:7.1f} {op:7.1f}   {bm:7.2f} {bp:7.2f}   {op / max(bp, 1e-6):6.1f}x"
          f"   {'ok' if op < 100 else 'OVER 100 ms'}")  # fmt: skip
    return {"page": label, "median_ms": om, "p95_ms": op, "sql_median_ms": bm, "sql_p95_ms": bp}


def deep_id(conn: sqlite3.Connection, filters: dict[str, Any]) -> tuple[int, int]:
    """The id after which the page 90 % through a filtered list starts, and its offset."""
    columns = {"kind": "c.kind", "state": "c.state", "call": "k.code", "country": "o.country"}
    where = " AND ".join(f"{columns[n]} = :{n}" for n in filters)
    count = conn.execute(
        f"SELECT count(*) FROM ({_LIST} WHERE {where}) AS found", filters
    ).fetchone()[0]
    offset = int(count * 0.9)
    found = conn.execute(
        f"{_LIST} WHERE {where} ORDER BY c.id LIMIT 1 OFFSET :o", {**filters, "o": offset - 1}
    ).fetchone()
    return found[0], offset


def run(url: str, path: Path, n: int) -> list[dict[str, Any]]:
    """Measure each page against its plain SQL, n times each; the figures."""
    settings = get_settings({}, database_url=url, today=date(2027, 3, 1), secret_key="bench" * 8)
    db = Database(url, pool_size=8)
    timed = Timed(create_app(settings, database=db, hasher=CHEAP))
    client = signed_in(timed)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    total = conn.execute('SELECT count(*) FROM "case"').fetchone()[0]
    print(f"store: {path} ({total:,} cases)")
    by_state = {"kind": "mobility", "state": "abroad"}
    by_call = {"kind": "application", "call": "LDV-VETPRO-2026", "country": "FI"}
    deep_state, offset_state = deep_id(conn, by_state)
    deep_call, _ = deep_id(conn, by_call)
    rng = random.Random(11)
    apps = [1 + (PER_APPLICATION + 1) * rng.randrange(total // 5) for _ in range(50)]
    mobs = [a + 2 for a in apps]

    def page(query: str) -> Callable[[int], Any]:
        return lambda i: client.get(query)

    def listing(filters: dict[str, Any], after: int | None) -> Callable[[int], Any]:
        return lambda i: plain_list(conn, filters, after)

    def query(filters: dict[str, Any], after: int | None = None) -> str:
        return "&".join([*(f"{k}={v}" for k, v in filters.items()), *(
            [f"after={after}"] if after else [])])  # fmt: skip

    print(f"  {'page (server time, ms)':<46} {'median':>7} {'p95':>7}   {'SQL med':>7} "
          f"{'SQL p95':>7}   {'p95 ratio':>7}")  # fmt: skip
    results = [
        measure("case list, kind+state, page 1", page(f"/cases?{query(by_state)}"),
                listing(by_state, None), timed, n),
        measure(f"case list, kind+state, deep (row {offset_state:,})",
                page(f"/cases?{query(by_state, deep_state)}"), listing(by_state, deep_state),
                timed, n),
        measure("case list, call+country, page 1", page(f"/cases?{query(by_call)}"),
                listing(by_call, None), timed, n),
        measure("case list, call+country, deep page", page(f"/cases?{query(by_call, deep_call)}"),
                listing(by_call, deep_call), timed, n),
        measure("API list, kind+state, deep page",
                page(f"/api/cases?{query(by_state, deep_state)}"),
                listing(by_state, deep_state), timed_api(timed, db, client), n),
        measure("case page, an application", lambda i: client.get(f"/cases/{apps[i % 50]}"),
                lambda i: plain_case(conn, apps[i % 50]), timed, n),
        measure("case page, a mobility", lambda i: client.get(f"/cases/{mobs[i % 50]}"),
                lambda i: plain_case(conn, mobs[i % 50]), timed, n),
    ]  # fmt: skip
    skipping(conn, by_state, offset_state)
    return results


def skipping(conn: sqlite3.Connection, filters: dict[str, Any], offset: int) -> None:
    """For comparison: the same deep page found by skipping rows, which the list avoids."""
    columns = {"kind": "c.kind", "state": "c.state", "call": "k.code", "country": "o.country"}
    where = " AND ".join(f"{columns[n]} = :{n}" for n in filters)
    sql = f"{_LIST} WHERE {where} ORDER BY c.id LIMIT 50 OFFSET :o"
    times = []
    for _ in range(5):
        start = time.perf_counter()
        conn.execute(sql, {**filters, "o": offset}).fetchall()
        times.append(time.perf_counter() - start)
    print(
        f"  for comparison, skipping {offset:,} rows (plain SQL with OFFSET): "
        f"median {statistics.median(times) * 1000:.0f} ms"
    )


def timed_api(timed: Timed, db: Database, client: TestClient) -> Timed:
    """The same timer; the API's requests carry a personal token instead of the session."""
    with db.transaction() as tx:
        token = auth.new_token(tx, STAFF, now=real_now())
    client.headers["Authorization"] = f"Bearer {token}"
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--store", type=Path, help="reuse (or make) the store in this file")
    args = parser.parse_args()
    folder = tempfile.TemporaryDirectory(prefix="vetpro-web-bench-")
    path = args.store or Path(folder.name) / "million.db"
    if not path.exists():
        start = time.perf_counter()
        build(path, args.cases)
        print(f"built the store in {time.perf_counter() - start:.0f} s")
    url = f"sqlite:///{path}"
    results = run(url, path, args.requests)
    worst = max(r["p95_ms"] for r in results)
    print(f"worst p95: {worst:.1f} ms (target: under 100 ms) {'ok' if worst < 100 else 'MISSED'}")
    folder.cleanup()


if __name__ == "__main__":
    main()
