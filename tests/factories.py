"""Building cases for tests: the example application, changed as a test needs, and moves.

The story below is the tests' own (the demo has its own), so that changing the demo never
changes what the tests check.
"""

from __future__ import annotations

import copy
import json
from datetime import date
from importlib import resources
from typing import Any

from vetpro_workflow.cases import advance as service_advance
from vetpro_workflow.clock import Clock
from vetpro_workflow.intake.documents import parse, parse_call
from vetpro_workflow.intake.filing import Imported, file_document
from vetpro_workflow.states.actors import Actor
from vetpro_workflow.states.cascade import Decision
from vetpro_workflow.store import calls
from vetpro_workflow.store.database import Database
from vetpro_workflow.store.users import add_user

COORDINATOR = "anna.huber@bbz-steyr.example"
STAFF = "officer@national-agency.example"
STAFF_MAIL = "vetpro-staff@national-agency.example"
CALL = "LDV-VETPRO-2027"
IMPORT_DAY = date(2026, 12, 1)
SUBMIT_DAY = date(2027, 1, 15)
SCORES = {
    "objectives": 8,
    "match": 7,
    "preparation": 7,
    "validation": 6,
    "organisation": 8,
    "dissemination": 7,
}

# The example's story: (case: 0 the application, 1 and 2 its mobilities), trigger, actor, day,
# note, facts. Stays in September and October 2027, the project runs to 2029.
STORY: list[tuple[int, str, str, date, str | None, dict[str, object]]] = [
    (0, "submit", COORDINATOR, SUBMIT_DAY, None, {}),
    (0, "evaluate", STAFF, date(2027, 2, 10), "Clear objectives.", SCORES),
    (0, "approve", STAFF, date(2027, 2, 20), "Clear objectives, sound budget.", {}),
    (0, "start_preparation", COORDINATOR, date(2027, 3, 10), None,
     {"grant_agreement_signed_on": "2027-03-10"}),
    (1, "start_preparation", COORDINATOR, date(2027, 5, 10), None,
     {"agreement_signed_on": "2027-05-10"}),
    (2, "start_preparation", COORDINATOR, date(2027, 5, 10), None,
     {"agreement_signed_on": "2027-05-10"}),
    (1, "depart", COORDINATOR, date(2027, 9, 6), None,
     {"departed_on": "2027-09-06", "preparation_done": "true"}),
    (1, "return_home", COORDINATOR, date(2027, 9, 24), None, {"returned_on": "2027-09-24"}),
    (2, "depart", COORDINATOR, date(2027, 10, 4), None, {"departed_on": "2027-10-04"}),
    (2, "return_home", COORDINATOR, date(2027, 10, 15), None, {"returned_on": "2027-10-15"}),
    (1, "validate", COORDINATOR, date(2027, 11, 2), None,
     {"europass_ref": "EMD-2027-0001", "participant_report_on": "2027-09-30"}),
    (2, "validate", COORDINATOR, date(2027, 11, 2), None,
     {"europass_ref": "EMD-2027-0002", "participant_report_on": "2027-10-20"}),
    (1, "complete", COORDINATOR, date(2027, 12, 1), None,
     {"dissemination": "Workshop for 12 welding trainers"}),
    (2, "complete", COORDINATOR, date(2027, 12, 1), None,
     {"dissemination": "Talk at the school's staff day"}),
    (0, "close", STAFF, date(2029, 7, 1), None, {"final_report_on": "2029-06-20"}),
]  # fmt: skip


def packaged(name: str) -> str:
    """A document shipped in the package's examples folder."""
    return resources.files("vetpro_workflow").joinpath(f"examples/{name}").read_text()


def example() -> dict[str, Any]:
    """The example application document, as a fresh dict."""
    return json.loads(packaged("application.json"))


def call_document(**changes: Any) -> dict[str, Any]:
    """The example call document, with changes."""
    return json.loads(packaged("call.json")) | changes


def document(**changes: Any) -> dict[str, Any]:
    """The example with changes given as dotted paths: `mobilities.0.start_date="2027-09-01"`."""
    doc = copy.deepcopy(example())
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return doc


def ensure_agency(db: Database, call: dict[str, Any] | None = None) -> None:
    """NA staff and the example's call, registered once."""
    with db.transaction() as tx:
        if not tx.scalar('SELECT 1 FROM "user" WHERE email = :e', {"e": STAFF}):
            add_user(tx, email=STAFF, role="staff")
        doc = parse_call(json.dumps(call or call_document()))
        if not tx.scalar('SELECT 1 FROM "call" WHERE code = :c', {"c": doc.code}):
            calls.define(tx, doc, actor=Actor(STAFF, "staff"), now=Clock.on(IMPORT_DAY).now)


def import_doc(db: Database, doc: dict[str, Any] | None = None) -> Imported:
    """File a document (the example by default), with the agency's staff and call in place."""
    ensure_agency(db)
    parsed = parse(json.dumps(doc or example()))
    with db.transaction() as tx:
        return file_document(
            tx, parsed, clock=Clock.on(IMPORT_DAY), source="test.json", allow_duplicate=True
        )


def advance(
    db: Database,
    case_id: int,
    trigger: str,
    *,
    actor: str = COORDINATOR,
    on: date,
    note: str | None = None,
    expected_version: int | None = None,
    **facts: object,
) -> Decision:
    """Fire a trigger through the service on a given day."""
    return service_advance(
        db,
        case_id=case_id,
        trigger=trigger,
        actor=actor,
        clock=Clock.on(on),
        staff_email=STAFF_MAIL,
        facts=facts,
        note=note,
        expected_version=expected_version,
    )


def walk(db: Database, done: Imported, steps: int, start: int = 0) -> None:
    """Play the example's story up to step `steps` (from step `start`, the first by default)."""
    ids = [done.application, *done.mobilities]
    for index, trigger, actor, day, note, facts in STORY[start:steps]:
        advance(db, ids[index], trigger, actor=actor, on=day, note=note, **facts)


def step_of(trigger: str, case: int = 0) -> int:
    """How many steps of the story lead up to and include a trigger on a case."""
    return next(i for i, s in enumerate(STORY) if s[0] == case and s[1] == trigger) + 1


def state_of(db: Database, case_id: int) -> str:
    """The stored state of a case."""
    with db.transaction(write=False) as tx:
        return str(tx.scalar('SELECT state FROM "case" WHERE id = :id', {"id": case_id}))


def tables(db: Database) -> list[str]:
    """Every table of the store."""
    from vetpro_workflow.store.tables import SQLModel

    return [t.name for t in SQLModel.metadata.sorted_tables]


def snapshot(db: Database) -> dict[str, list[str]]:
    """Every row of every table, to compare a store before and after."""
    with db.transaction(write=False) as tx:
        return {
            name: sorted(repr(sorted(row.items())) for row in tx.rows(f'SELECT * FROM "{name}"'))
            for name in tables(db)
        }
