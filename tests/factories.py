"""Building cases for tests: the example application, changed as a test needs, and moves."""

from __future__ import annotations

import copy
import json
from datetime import date
from importlib import resources
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session

from vetpro_workflow.cases import Moved, apply
from vetpro_workflow.clock import Clock
from vetpro_workflow.db import reading, writing
from vetpro_workflow.demo import COORDINATOR, STAFF, STORY
from vetpro_workflow.filing import Imported, file_document
from vetpro_workflow.intake import parse
from vetpro_workflow.models import SQLModel
from vetpro_workflow.users import add_user

SUBMIT_DAY = date(2027, 1, 15)


def example() -> dict[str, Any]:
    """The example application document, as a fresh dict."""
    text = resources.files("vetpro_workflow").joinpath("examples/application.json").read_text()
    return json.loads(text)


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


def import_doc(
    engine: Engine, doc: dict[str, Any] | None = None, *, staff: bool = True
) -> Imported:
    """File a document (the example by default) and register NA staff."""
    parsed = parse(json.dumps(doc or example()))
    with writing(engine) as session:
        done = file_document(session, parsed, clock=Clock.on(date(2026, 12, 1)), source="test.json")
    if staff:
        with writing(engine) as session:
            if not session.execute(
                select(SQLModel.metadata.tables["user"].c.id).where(
                    SQLModel.metadata.tables["user"].c.email == STAFF
                )
            ).first():
                add_user(session, email=STAFF, role="staff")
    return done


def advance(
    engine: Engine,
    case_id: int,
    trigger: str,
    *,
    actor: str = COORDINATOR,
    on: date,
    note: str | None = None,
    expected_version: int | None = None,
    **facts: object,
) -> list[Moved]:
    """Fire a trigger through the service on a given day."""
    with writing(engine) as session:
        return apply(
            session=session,
            case_id=case_id,
            trigger=trigger,
            actor=actor,
            clock=Clock.on(on),
            facts=facts,
            note=note,
            expected_version=expected_version,
        )


def walk(engine: Engine, done: Imported, steps: int) -> None:
    """Play the first `steps` steps of the example's story (the demo's)."""
    ids = [done.application, *done.mobilities]
    for index, trigger, actor, day, note, facts in STORY[:steps]:
        advance(engine, ids[index], trigger, actor=actor, on=day, note=note, **facts)


def state_of(engine: Engine, case_id: int) -> str:
    """The stored state of a case."""
    with reading(engine) as session:
        table = SQLModel.metadata.tables["case"]
        return str(session.execute(select(table.c.state).where(table.c.id == case_id)).scalar_one())


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to compare a store before and after."""
    with Session(engine) as session:
        return {
            t.name: sorted(tuple(map(repr, row)) for row in session.execute(select(t)).all())
            for t in SQLModel.metadata.sorted_tables
        }
