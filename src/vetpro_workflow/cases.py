"""The one place that changes the state of a case.

Every move loads the snapshot of the case's project (locking it against a concurrent move of any
of its cases), asks the domain for the whole decision (`states.cascade`), and writes it in the
same transaction: one compare-and-set on the version of each case that changes, the facts, the
history rows and the outbox rows. A refusal raises before anything is written.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from .clock import Clock, real_now
from .errors import ConflictError, NotAllowed, TransitionRefused
from .notifications.outbox import enqueue
from .states.actors import SYSTEM, Actor
from .states.cascade import Change, Decision, decide, in_scope, rederive
from .states.facts import to_json
from .store import snapshots, users
from .store.database import Database, Tx
from .store.snapshots import FACT_COLUMNS

_COMPARE_AND_SET = (
    'UPDATE "case" SET state = :dest, version = :version, updated_at = :at '
    "WHERE id = :id AND version = :seen"
)
_HISTORY = (
    "INSERT INTO history (case_id, version, trigger, source, dest, actor, at, note, facts) "
    "VALUES (:id, :version, :trigger, :source, :dest, :actor, :at, :note, :facts)"
)


@lru_cache(maxsize=64)
def _set_facts(kind: str, columns: tuple[str, ...]) -> str:
    table = "application" if kind == "application" else "mobility"
    return f"UPDATE {table} SET {', '.join(f'{c} = :{c}' for c in columns)} WHERE id = :id"


def write(tx: Tx, decision: Decision, *, at: datetime) -> None:
    """Write a decision: the cases' new states (compare-and-set), facts, history and mail."""
    changes = decision.changes
    moved = tx.executemany(
        _COMPARE_AND_SET,
        [
            {
                "dest": c.dest,
                "version": c.version,
                "at": at,
                "id": c.case_id,
                "seen": c.seen_version,
            }
            for c in changes
        ],
    )
    if moved != len(changes):
        raise ConflictError(
            f"{changes[0].kind} {changes[0].case_id} was changed by someone else meanwhile; "
            f"reload it ('vetpro case show {changes[0].case_id}') and try again"
        )
    by_columns: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = defaultdict(list)
    for c in changes:
        if c.sets:
            columns = tuple(sorted(c.sets))
            unknown = set(columns) - set(FACT_COLUMNS[c.kind])
            assert not unknown, f"{c.kind} has no fact columns {unknown}"
            by_columns[(c.kind, columns)].append({"id": c.case_id, **c.sets})
    for (kind, columns), rows in by_columns.items():
        tx.executemany(_set_facts(kind, columns), rows)
    tx.executemany(_HISTORY, [_history_row(c, at) for c in changes])
    enqueue(tx, decision.notices, now=real_now())


def _history_row(c: Change, at: datetime) -> dict[str, Any]:
    return {
        "id": c.case_id,
        "version": c.version,
        "trigger": c.trigger,
        "source": c.source,
        "dest": c.dest,
        "actor": c.actor,
        "at": at,
        "note": c.note,
        "facts": to_json(c.facts),
    }


def advance_in(
    tx: Tx,
    *,
    case_id: int,
    trigger: str,
    actor: str | Actor,
    clock: Clock,
    staff_email: str,
    facts: Mapping[str, object] | None = None,
    note: str | None = None,
    expected_version: int | None = None,
) -> Decision:
    """Fire a trigger on a case inside a transaction the caller holds."""
    who = actor if isinstance(actor, Actor) else users.resolve(tx, actor)
    project = snapshots.load_project_of(tx, case_id, lock=True)
    case = in_scope(project, case_id, who)  # before saying anything of the case's version
    if expected_version is not None and case.version != expected_version:
        raise ConflictError(
            f"{case.kind.capitalize()} {case_id} changed meanwhile (version {case.version}, you "
            f"had {expected_version}); reload it with 'vetpro case show {case_id}' and try again"
        )
    decision = decide(
        project,
        case_id,
        trigger,
        actor=who,
        today=clock.today,
        now=clock.now,
        staff_email=staff_email,
        facts=facts,
        note=note,
    )
    write(tx, decision, at=clock.now)
    return decision


def advance(db: Database, **kw: Any) -> Decision:
    """Fire a trigger on a case and commit; the decision that was written."""
    with db.transaction() as tx:
        return advance_in(tx, **kw)


@dataclass
class Batch:
    """What one trigger fired on many cases did: the decisions written, the cases passed over."""

    decisions: list[Decision] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)


def advance_each(
    tx: Tx,
    items: Sequence[tuple[int, Mapping[str, object]]],
    *,
    trigger: str,
    clock: Clock,
    staff_email: str,
    note: str | None = None,
    actor: Actor = SYSTEM,
) -> Batch:
    """Fire one trigger on many cases (each with its facts), reading their projects at once.

    A case the trigger no longer fits (someone moved it first) is passed over and named.
    """
    pairs = tx.rows(
        'SELECT id, coalesce(application_id, id) AS project FROM "case" WHERE id IN (:ids)',
        {"ids": [case_id for case_id, _ in items]},
    )
    project_of = {row["id"]: row["project"] for row in pairs}
    projects = {p.id: p for p in snapshots.load_projects(tx, project_of.values(), lock=True)}
    batch = Batch()
    for case_id, facts in items:
        project = projects.get(project_of.get(case_id, -1))
        if project is None:
            batch.skipped.append((case_id, "does not exist"))
            continue
        try:
            decision = decide(
                project,
                case_id,
                trigger,
                actor=actor,
                today=clock.today,
                now=clock.now,
                staff_email=staff_email,
                facts=facts,
                note=note,
            )
        except (TransitionRefused, NotAllowed) as exc:
            batch.skipped.append((case_id, str(exc)))
            continue
        projects[project.id] = decision.project
        batch.decisions.append(decision)
    for decision in batch.decisions:
        write(tx, decision, at=clock.now)
    return batch


def rederive_phase(
    db: Database, *, case_id: int, actor: str, clock: Clock, staff_email: str
) -> Decision:
    """Bring a project's phase back in line with its mobilities (staff only)."""
    with db.transaction() as tx:
        who = users.resolve(tx, actor)
        if who.role != "staff":
            raise NotAllowed(
                f"re-deriving a project's phase is for NA staff; {who.email} is {who.role}"
            )
        project = snapshots.load_project_of(tx, case_id, lock=True)
        decision = rederive(
            project, actor=who, today=clock.today, now=clock.now, staff_email=staff_email
        )
        if decision.changes:
            write(tx, decision, at=clock.now)
        return decision
