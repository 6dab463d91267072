"""Reading projects from the store into the frozen snapshots the domain decides on.

A project is read with two queries whatever its size (the application with its call, applicant,
coordinator and partners; its mobilities), and many projects with the same two. A writer
locks the projects it reads (PostgreSQL: their case rows, in id order), so that two moves of one
project never decide on the same snapshot; SQLite writers already hold the file's write lock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from ..errors import NotFound
from ..states.snapshots import (
    DEFAULT_WEIGHTS,
    ApplicationSnapshot,
    CallRules,
    MobilitySnapshot,
    Partner,
    made,
)
from .database import Tx, chunks

# The columns of a case's own row that hold its recorded facts (what moves write).
FACT_COLUMNS: dict[str, tuple[str, ...]] = {
    "application": (
        "grant_agreement_signed_on",
        "final_report_on",
        "approved_on",
        "resubmit_by",
        "scores",
        "score",
        "evaluated_on",
    ),
    "mobility": (
        "agreement_signed_on",
        "preparation_done",
        "departed_on",
        "returned_on",
        "interruption_reason",
        "europass_ref",
        "participant_report_on",
        "dissemination",
        "stay_note",
    ),
}
CALL_COLUMNS = (
    "k.code AS call_code, k.title AS call_title, k.application_deadline, k.earliest_start, "
    "k.max_project_months, k.min_days, k.max_days, k.scale, k.weights, k.pass_mark"
)
_APPLICATIONS = f"""
SELECT c.id, c.state, c.version, c.organisation_id, a.title, o.name AS applicant_name,
       o.type AS applicant_type, o.country AS applicant_country, u.name AS coordinator_name,
       u.email AS coordinator_email, k.id AS call_id, k.version AS call_version,
       a.start_date, a.end_date, a.objectives,
       a.dissemination_plan, {", ".join("a." + c for c in FACT_COLUMNS["application"])},
       (SELECT {{partners}} FROM application_partner p
        JOIN organisation po ON po.id = p.organisation_id WHERE p.application_id = c.id) AS partners
FROM "case" c
JOIN application a ON a.id = c.id
JOIN "call" k ON k.id = a.call_id
JOIN organisation o ON o.id = a.applicant_id
JOIN "user" u ON u.id = a.coordinator_id
WHERE {{where}}"""
# The partners of an application, as one JSON list in its row.
_PARTNER_LIST = {
    "sqlite": "json_group_array(json_array(po.name, po.country, po.type))",
    "postgresql": "json_agg(json_build_array(po.name, po.country, po.type))",
}
# A mobility's own columns (every field of MobilitySnapshot but its facts), then its facts.
_MOBILITY_OWN = {
    "id": "c.id",
    "state": "c.state",
    "version": "c.version",
    "application_id": "m.application_id",
    "participant_name": "pt.name",
    "participant_email": "pt.email",
    "profession": "pt.profession",
    "professional_background": "pt.professional_background",
    "training_needs": "pt.training_needs",
    "host_name": "h.name",
    "host_country": "h.country",
    "start_date": "m.start_date",
    "end_date": "m.end_date",
    "objectives": "m.objectives",
    "content": "m.content",
    "language_preparation": "m.language_preparation",
}
assert {*_MOBILITY_OWN, "facts"} == {f.name for f in fields(MobilitySnapshot)}
_MOBILITY_ROWS = f"""
SELECT {", ".join(f"{column} AS {name}" for name, column in _MOBILITY_OWN.items())},
       {", ".join("m." + c for c in FACT_COLUMNS["mobility"])}
FROM mobility m
JOIN "case" c ON c.id = m.id
JOIN participant pt ON pt.id = m.participant_id
JOIN organisation h ON h.id = m.host_id
WHERE {{where}}
ORDER BY c.id"""
_PROJECT_OF = 'SELECT coalesce(application_id, id) FROM "case" WHERE id = :id'
_MOBILITIES = _MOBILITY_ROWS.format(where="m.application_id IN (:ids)")
_MOBILITIES_OF = _MOBILITY_ROWS.format(where="m.application_id = :id")
# Per dialect: many applications by id, and the project of any of its cases (found in the same
# query that reads the application).
_BY_IDS = {
    d: _APPLICATIONS.format(where="c.id IN (:ids)", partners=p) + " ORDER BY c.id"
    for d, p in _PARTNER_LIST.items()
}
_OF_CASE = {
    d: _APPLICATIONS.format(where=f"c.id = ({_PROJECT_OF})", partners=p)
    for d, p in _PARTNER_LIST.items()
}


def _call(tx: Tx, call_id: int, version: int) -> CallRules:
    """A call's rules at a version: read once, since a change makes a new version."""
    key = ("call", call_id, version)
    if key not in tx.memo:
        row = tx.row(f'SELECT {CALL_COLUMNS} FROM "call" k WHERE k.id = :id', {"id": call_id})
        assert row is not None
        tx.memo[key] = call_rules(row)
    rules: CallRules = tx.memo[key]
    return rules


def call_rules(row: dict[str, Any]) -> CallRules:
    """The rules of a call, from a row holding the CALL_COLUMNS."""
    return CallRules(
        code=row["call_code"],
        title=row["call_title"],
        deadline=row["application_deadline"],
        earliest_start=row["earliest_start"],
        max_project_months=row["max_project_months"],
        min_days=row["min_days"],
        max_days=row["max_days"],
        scale=row["scale"],
        weights=row["weights"] or dict(DEFAULT_WEIGHTS),
        pass_mark=row["pass_mark"],
    )


def _facts(row: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: row[name] for name in FACT_COLUMNS[kind] if row[name] is not None}


def _mobility(row: dict[str, Any]) -> MobilitySnapshot:
    """A mobility's snapshot from its row (which it takes over: the facts leave it)."""
    facts = _facts(row, "mobility")
    for name in FACT_COLUMNS["mobility"]:
        del row[name]
    row["language_preparation"] = bool(row["language_preparation"])
    row["facts"] = facts
    return made(MobilitySnapshot, row)


def load_projects(tx: Tx, ids: Iterable[int], *, lock: bool = False) -> list[ApplicationSnapshot]:
    """The snapshots of applications with their partners and mobilities, in id order."""
    projects: list[ApplicationSnapshot] = []
    for batch in chunks(sorted(set(ids))):
        rows = tx.rows(_locked(_BY_IDS[tx.dialect], tx, lock), {"ids": batch})
        projects += _assemble(tx, rows, batch)
    return projects


def _locked(query: str, tx: Tx, lock: bool) -> str:
    # PostgreSQL: the application rows, in id order, so that two movers never deadlock.
    return query + (" FOR UPDATE OF c" if lock and tx.dialect == "postgresql" else "")


def _assemble(tx: Tx, rows: list[dict[str, Any]], batch: list[int]) -> list[ApplicationSnapshot]:
    """Snapshots from the application rows read, with their partners and mobilities."""
    if not rows:
        return []
    mobilities: dict[int, list[MobilitySnapshot]] = {}
    found = (
        tx.rows(_MOBILITIES_OF, {"id": batch[0]})
        if len(batch) == 1
        else tx.rows(_MOBILITIES, {"ids": batch})
    )
    for m in found:
        mobilities.setdefault(m["application_id"], []).append(_mobility(m))
    return [
        ApplicationSnapshot(
            id=row["id"],
            state=row["state"],
            version=row["version"],
            organisation_id=row["organisation_id"],
            title=row["title"],
            applicant_name=row["applicant_name"],
            applicant_type=row["applicant_type"],
            applicant_country=row["applicant_country"],
            coordinator_name=row["coordinator_name"],
            coordinator_email=row["coordinator_email"],
            call=_call(tx, row["call_id"], row["call_version"]),
            start_date=row["start_date"],
            end_date=row["end_date"],
            objectives=row["objectives"],
            dissemination_plan=row["dissemination_plan"],
            partners=_partners(row["partners"]),
            mobilities=tuple(mobilities.get(row["id"], ())),
            facts=_facts(row, "application"),
        )
        for row in rows
    ]


def _partners(listed: str | list[list[str]] | None) -> tuple[Partner, ...]:
    found = json.loads(listed) if isinstance(listed, str) else listed or []
    return tuple(Partner(*p) for p in sorted(found))


def project_id_of(tx: Tx, case_id: int) -> int:
    """The application a case belongs to (an application belongs to itself)."""
    found = tx.scalar(_PROJECT_OF, {"id": case_id}) if _storable_id(case_id) else None
    if found is None:
        raise NotFound(f"case {case_id} does not exist; 'vetpro case list' shows the cases")
    return int(found)


def load_project_of(tx: Tx, case_id: int, *, lock: bool = False) -> ApplicationSnapshot:
    """The snapshot of the project a case belongs to: three queries."""
    query = _locked(_OF_CASE[tx.dialect], tx, lock)
    rows = tx.rows(query, {"id": case_id}) if _storable_id(case_id) else []
    if not rows:
        raise NotFound(f"case {case_id} does not exist; 'vetpro case list' shows the cases")
    return _assemble(tx, rows, [rows[0]["id"]])[0]


def _storable_id(case_id: int) -> bool:
    """Whether an id can name a row at all (the databases' integers have 64 bits)."""
    return 0 < case_id < 2**63
