"""The one place that changes the state of a case.

`apply` checks the actor, records the facts, runs the guards through the shared Machine, moves
the state with a compare-and-set on the version, writes the history and outbox rows, carries the
move to the mobilities or up to the application, and commits once. A refusal changes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlmodel import Session

from . import dossiers
from .actors import SYSTEM, Actor, check_scope, resolve
from .clock import Clock
from .config import Settings
from .errors import ConflictError, NotAllowed, NotFound
from .models import Application, Case, History, Mobility, Outbox
from .notifications.prompts import on_move
from .states import application as application_flow
from .states.dossier import ApplicationFile, Given, MobilityFile
from .states.facts import parse_facts, to_json
from .states.machine import check_role, fire, possible_step, refusals
from .states.workflows import definition

_DEFAULT_STAFF_EMAIL = Settings.model_fields["staff_email"].default

# The statements of every move, built once: a transition runs them on the hot path.
_CASE_HEAD = select(Case.kind, Case.organisation_id).where(Case.id == bindparam("case_id"))
_COMPARE_AND_SET = (
    update(Case.__table__)
    .where(Case.id == bindparam("case_id"), Case.version == bindparam("seen_version"))
    .values(
        state=bindparam("new_state"), version=bindparam("new_version"), updated_at=bindparam("at")
    )
)
_RECORD = insert(History.__table__)
_ENQUEUE = insert(Outbox.__table__)


@dataclass(frozen=True)
class Moved:
    """One state change that was recorded."""

    case_id: int
    kind: str
    trigger: str
    source: str
    dest: str
    version: int
    actor: str


def apply_each(
    *,
    session: Session,
    cases: list[tuple[int, dict[str, object]]],
    trigger: str,
    clock: Clock,
    staff_email: str = _DEFAULT_STAFF_EMAIL,
) -> list[Moved]:
    """The system fires one trigger on many mobilities (each with its facts) and commits once.

    The same moves as `apply` one by one, written with one statement per kind of row: this is
    how the sweep returns a day's mobilities. Any refusal or conflict rolls back all of them.
    """
    step = definition("mobility").step(trigger)
    if step is None or "system" not in step.who:
        raise NotAllowed(f"'{trigger}' is not fired by the system on mobilities")
    snapshots = {m.id: m for m in dossiers.load_mobilities(session, [c for c, _ in cases])}
    missing = [case_id for case_id, _ in cases if case_id not in snapshots]
    if missing:
        raise NotFound(f"mobility {missing[0]} does not exist")
    items = [
        (snapshots[case_id], parse_facts(trigger, step.accepted_facts, facts))
        for case_id, facts in cases
    ]
    work = _Work(session=session, clock=clock, staff_email=staff_email)
    work.move_all(items, trigger, SYSTEM, None, carried=False)  # type: ignore[arg-type]
    session.commit()
    return work.moves


def apply(
    *,
    session: Session,
    case_id: int,
    trigger: str,
    actor: str | Actor,
    clock: Clock,
    facts: Mapping[str, object] | None = None,
    note: str | None = None,
    expected_version: int | None = None,
    staff_email: str = _DEFAULT_STAFF_EMAIL,
) -> list[Moved]:
    """Fire a trigger on a case and commit; the moves made (the case's own first)."""
    who = actor if isinstance(actor, Actor) else resolve(session, actor)
    row = session.connection().execute(_CASE_HEAD, {"case_id": case_id}).one_or_none()
    if row is None:
        raise NotFound(f"case {case_id} does not exist; 'vetpro case list' shows the cases")
    label = f"{row.kind.capitalize()} {case_id}"
    check_scope(session, who, case_label=label, organisation_id=row.organisation_id)
    flow = definition(row.kind)
    check_role(flow, trigger, who.role, who.email)
    subject = dossiers.load(session, case_id, row.kind)
    # The version compared is the one read with the state the guards see; the UPDATE compares
    # it again, so a change committed in between is a conflict, never a silent overwrite.
    if expected_version is not None and subject.version != expected_version:
        raise ConflictError(
            f"{label} changed meanwhile (version {subject.version}, you had {expected_version}); "
            f"reload it with 'vetpro case show {case_id}' and try again"
        )
    step = possible_step(flow, case_id, subject.state, trigger)
    typed = parse_facts(trigger, step.accepted_facts, facts or {})
    note = note.strip() if note and note.strip() else None
    work = _Work(session=session, clock=clock, staff_email=staff_email)
    work.move(subject, trigger, who, typed, note, carried=False)
    session.commit()
    return work.moves


@dataclass
class _Work:
    """One unit of work: the moves of one `apply`, all in one transaction."""

    session: Session
    clock: Clock
    staff_email: str
    moves: list[Moved] = dataclasses.field(default_factory=list)

    def move(
        self,
        subject: ApplicationFile | MobilityFile,
        trigger: str,
        who: Actor,
        facts: dict[str, Any],
        note: str | None,
        *,
        carried: bool,
    ) -> ApplicationFile | MobilityFile:
        """Fire one trigger on a snapshot and write what it changes; the snapshot after."""
        return self.move_all([(subject, facts)], trigger, who, note, carried=carried)[0]

    def move_all(
        self,
        items: list[tuple[ApplicationFile | MobilityFile, dict[str, Any]]],
        trigger: str,
        who: Actor,
        note: str | None,
        *,
        carried: bool,
    ) -> list[ApplicationFile | MobilityFile]:
        """Fire one trigger on snapshots (each with its facts); each write is one statement."""
        now = self.clock.now
        decided = [
            (
                subject,
                facts,
                fire(definition(subject.kind), subject, trigger, self._given(subject, facts, note)),
            )
            for subject, facts in items
        ]
        self._compare_and_set(
            [
                {
                    "case_id": s.id,
                    "seen_version": s.version,
                    "new_state": dest,
                    "new_version": s.version + 1,
                    "at": now,
                }
                for s, _, dest in decided
            ]
        )
        db = self.session.connection()
        for kind, names in {(s.kind, tuple(sorted(f))) for s, f, _ in decided if f}:
            table = (Application if kind == "application" else Mobility).__table__
            db.execute(
                update(table)
                .where(table.c.id == bindparam("case_id"))
                .values({name: bindparam(f"new_{name}") for name in names}),
                [
                    {"case_id": s.id, **{f"new_{k}": v for k, v in f.items()}}
                    for s, f, _ in decided
                    if s.kind == kind and tuple(sorted(f)) == names
                ],
            )
        db.execute(
            _RECORD,
            [
                {
                    "case_id": s.id,
                    "version": s.version + 1,
                    "trigger": trigger,
                    "source": s.state,
                    "dest": dest,
                    "actor": who.email,
                    "at": now,
                    "note": note,
                    "facts": to_json(f),
                }
                for s, f, dest in decided
            ],
        )
        afters: list[ApplicationFile | MobilityFile] = []
        for s, f, dest in decided:
            self.moves.append(Moved(s.id, s.kind, trigger, s.state, dest, s.version + 1, who.email))
            after = dataclasses.replace(
                s, state=dest, version=s.version + 1, facts={**s.facts, **f}
            )
            if isinstance(after, ApplicationFile):
                after = self._carry(after, trigger, note)
            afters.append(after)
        if not carried:
            self._enqueue(afters, trigger, note)
        self._follow([a for a in afters if isinstance(a, MobilityFile)], trigger)
        return afters

    def _compare_and_set(self, rows: list[dict[str, Any]]) -> None:
        """Move the cases only from the versions read; anyone else's change is a conflict."""
        db = self.session.connection()
        if len(rows) == 1 or not db.dialect.supports_sane_multi_rowcount:
            changed = sum(db.execute(_COMPARE_AND_SET, row).rowcount for row in rows)
        else:
            changed = db.execute(_COMPARE_AND_SET, rows).rowcount
        if changed != len(rows):
            ids = ", ".join(str(row["case_id"]) for row in rows[:5])
            raise ConflictError(
                f"case {ids}{'…' if len(rows) > 5 else ''} was changed by someone else meanwhile; "
                f"reload it with 'vetpro case show ID' and try again"
            )

    def _given(self, subject: Any, facts: dict[str, Any], note: str | None) -> Given:
        merged = {**subject.facts, **facts}
        return Given(
            facts=merged,
            note=note,
            today=self.clock.today,
            now=self.clock.now,
            fresh=frozenset(facts),
        )

    def _enqueue(
        self, afters: list[ApplicationFile | MobilityFile], trigger: str, note: str | None
    ) -> None:
        notices = [
            n
            for after in afters
            for n in on_move(after, trigger=trigger, note=note, staff_email=self.staff_email)
        ]
        if notices:
            self.session.connection().execute(
                _ENQUEUE,
                [
                    {
                        "key": n.key,
                        "case_id": n.case_id,
                        "kind": n.kind,
                        "recipient": n.recipient,
                        "cc": n.cc,
                        "context": n.context,
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": self.clock.now,
                        "created_at": self.clock.now,
                    }
                    for n in notices
                ],
            )

    def _carry(self, app: ApplicationFile, trigger: str, note: str | None) -> ApplicationFile:
        """Move the application's mobilities with it (submit, approve, reject…)."""
        carried = application_flow.CARRIES.get(trigger)
        step = definition("mobility").step(carried) if carried else None
        if carried is None or step is None:
            return app
        reason = f"with application {app.id} ({trigger})" + (f": {note}" if note else "")
        going = [
            (dataclasses.replace(m, application_state=app.state), {})
            for m in app.mobilities
            if m.state in step.sources
        ]
        after = {m.id: m for m in self.move_all(going, carried, SYSTEM, reason, carried=True)}
        moved = [after.get(m.id, m) for m in app.mobilities]
        return dataclasses.replace(app, mobilities=tuple(moved))

    def _still_waiting(self, projects: set[int], triggers: list[str]) -> set[int]:
        """The projects that one of their mobilities keeps from every follow trigger."""
        if not projects or any(t not in application_flow.WAITING_ON for t in triggers):
            return set()
        held: set[int] | None = None
        for trigger in triggers:
            query = (
                select(Case.application_id)
                .distinct()
                .where(
                    Case.kind == "mobility",
                    Case.application_id.in_(projects),
                    Case.state.in_(application_flow.WAITING_ON[trigger]),
                )
            )
            waiting = set(self.session.connection().execute(query).scalars())
            held = waiting if held is None else held & waiting
        return held or set()

    def _follow(self, moved: list[MobilityFile], trigger: str) -> None:
        """Move each project whose mobilities have now all departed, returned or validated."""
        app_flow = definition("application")
        steps = [
            step
            for name, causes in application_flow.FOLLOWS.items()
            if trigger in causes and (step := app_flow.step(name)) is not None
        ]
        # Only projects that could move from where they stand are read, all at once, after all
        # of their mobilities have moved.
        why = {
            m.application_id
            for m in moved
            if any(m.application_state in step.sources for step in steps)
        }
        why -= self._still_waiting(why, [step.trigger for step in steps])
        if not why:
            return
        projects: list[ApplicationFile | MobilityFile] = list(
            dossiers.load_applications(self.session, sorted(why))
        )
        progressed = True
        while progressed:  # a cancellation can move a project more than one step
            progressed = False
            for step in steps:
                ready = [
                    p
                    for p in projects
                    if p.state in step.sources
                    and not refusals(step, app_flow, p, self._given(p, {}, None))
                ]
                if not ready:
                    continue
                note = f"following its mobilities ({trigger})"
                moved_on = {
                    p.id: p
                    for p in self.move_all(
                        [(p, {}) for p in ready], step.trigger, SYSTEM, note, carried=False
                    )
                }
                projects = [moved_on.get(p.id, p) for p in projects]
                progressed = True
