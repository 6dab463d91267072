"""The whole decision of a move, as plain data: no database, no mail, no clock of its own.

Given the snapshot of a project, `decide` fires the trigger on the case, carries the move to the
application's mobilities where the application's trigger moves them too, makes the application
follow its mobilities (first departure, last return, last validation, every one cancelled), and
says which notices go out. The service writes the result; nothing here reads or writes a store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from ..errors import InvalidInput, NotAllowed, NotFound
from .actors import SYSTEM, Actor
from .application import CARRIES
from .facts import MAX_TEXT, clean_text, parse_facts
from .machine import fire
from .notices import Notice, on_move
from .rules import possible_step, refusals
from .snapshots import ApplicationSnapshot, Given, Snapshot, evolve
from .workflows import definition


@dataclass(frozen=True)
class Change:
    """One case moved by one trigger (or, for a step that keeps the state, facts recorded)."""

    case_id: int
    kind: str
    trigger: str
    source: str
    dest: str
    seen_version: int
    actor: str
    note: str | None
    facts: Mapping[str, Any]  # as given, for the history
    sets: Mapping[str, Any]  # the case's own columns this move writes
    carried: bool = False  # moved along by its application's trigger

    @property
    def version(self) -> int:
        return self.seen_version + 1


@dataclass(frozen=True)
class Decision:
    """Everything one move changes: the cases, in order (the one fired first), and the mail."""

    project: ApplicationSnapshot  # after the move
    changes: tuple[Change, ...]
    notices: tuple[Notice, ...]


class OutOfScope(NotAllowed):
    """A coordinator named a case of another organisation (the web answers 404)."""

    http_status = 404


@dataclass
class _Move:
    project: ApplicationSnapshot
    today: date
    now: datetime
    changes: list[Change] = dataclasses.field(default_factory=list)

    def fire(
        self,
        case_id: int,
        trigger: str,
        actor: Actor,
        facts: Mapping[str, Any],
        note: str | None,
        *,
        carried: bool = False,
    ) -> None:
        subject = self.project.case(case_id)
        assert subject is not None
        flow = definition(subject.kind)
        given = Given(
            facts={**subject.facts, **facts},
            note=note,
            today=self.today,
            now=self.now,
            project=self.project,
            fresh=frozenset(facts),
        )
        dest = fire(flow, subject, trigger, given, actor.role)
        sets = flow.record(subject, trigger, facts, given)
        self.changes.append(
            Change(
                case_id=subject.id,
                kind=subject.kind,
                trigger=trigger,
                source=subject.state,
                dest=dest,
                seen_version=subject.version,
                actor=actor.email,
                note=note,
                facts=dict(facts),
                sets=sets,
                carried=carried,
            )
        )
        self._replace(subject, dest, sets)

    def _replace(self, subject: Snapshot, dest: str, sets: Mapping[str, Any]) -> None:
        facts = {k: v for k, v in {**subject.facts, **sets}.items() if v is not None}
        after = evolve(subject, state=dest, version=subject.version + 1, facts=facts)
        if isinstance(after, ApplicationSnapshot):
            self.project = evolve(after, mobilities=self.project.mobilities)
        else:
            mobilities = tuple(after if m.id == after.id else m for m in self.project.mobilities)
            self.project = evolve(self.project, mobilities=mobilities)

    def decision(self, staff_email: str) -> Decision:
        """The changes made, with the notices of those not carried along, after the move."""
        notices = tuple(
            notice
            for change in self.changes
            if not change.carried
            for notice in on_move(self.project, change, staff_email=staff_email, now=self.now)
        )
        return Decision(project=self.project, changes=tuple(self.changes), notices=notices)

    def carry(self, trigger: str, note: str | None) -> None:
        """Move the application's mobilities with it (submit, approve, reject…)."""
        carried = CARRIES.get(trigger)
        step = definition("mobility").step(carried) if carried else None
        if carried is None or step is None:
            return
        reason = f"with application {self.project.id} ({trigger})" + (f": {note}" if note else "")
        for m in self.project.mobilities:
            if m.state in step.sources:
                self.fire(m.id, carried, SYSTEM, {}, reason, carried=True)

    def follow(self, cause: str) -> None:
        """Move the application on while its mobilities allow (one move can allow two)."""
        flow = definition("application")
        note = f"following its mobilities ({cause})"
        while True:
            ready = [
                step
                for step in flow.available(self.project.state, "system")
                if _admits(step.trigger, self.project, self.today, self.now)
            ]
            if not ready:
                return
            self.fire(self.project.id, ready[0].trigger, SYSTEM, {}, note)


def _admits(trigger: str, project: ApplicationSnapshot, today: date, now: datetime) -> bool:
    flow = definition("application")
    step = flow.step(trigger)
    assert step is not None
    given = Given(facts=project.facts, note=None, today=today, now=now, project=project)
    return not refusals(step, flow, project, given)


def in_scope(project: ApplicationSnapshot, case_id: int, actor: Actor) -> Snapshot:
    """The case an actor names, if it is theirs to act on (a coordinator: their organisation's)."""
    subject = project.case(case_id)
    if subject is None:
        raise NotFound(f"case {case_id} is not part of application {project.id}")
    if not actor.may_act_for(project.organisation_id):
        raise OutOfScope(
            f"{actor.email} may act only on the cases of their own organisation; "
            f"{subject.kind} {case_id} is not one of them"
        )
    return subject


def checked_note(note: str | None) -> str | None:
    """A note as it is recorded: trimmed, plain text, of a readable length (None when empty)."""
    if note is None or not note.strip():
        return None
    if len(note) > MAX_TEXT:
        raise InvalidInput(f"--note: is {len(note)} characters long; at most {MAX_TEXT}")
    return clean_text("--note", note.strip())


def decide(
    project: ApplicationSnapshot,
    case_id: int,
    trigger: str,
    *,
    actor: Actor,
    today: date,
    now: datetime,
    staff_email: str,
    facts: Mapping[str, object] | None = None,
    note: str | None = None,
) -> Decision:
    """The whole of a move: the case's own step, what it carries and what follows, and mail."""
    subject = in_scope(project, case_id, actor)
    flow = definition(subject.kind)
    stored = Given(facts=subject.facts, note=None, today=today, now=now, project=project)
    step = possible_step(flow, subject, trigger, actor.role, stored)
    typed = parse_facts(subject.kind, trigger, step.accepted_facts, facts or {})
    note = checked_note(note)
    move = _Move(project=project, today=today, now=now)
    move.fire(case_id, trigger, actor, typed, note)
    if subject.kind == "application":
        move.carry(trigger, note)
    move.follow(trigger)
    return move.decision(staff_email)


def rederive(
    project: ApplicationSnapshot, *, actor: Actor, today: date, now: datetime, staff_email: str
) -> Decision:
    """The moves that bring an application's phase back in line with its mobilities (for a store
    that holds a project left behind); no change when it already is."""
    move = _Move(project=project, today=today, now=now)
    move.follow(f"re-derived by {actor.email}")
    return move.decision(staff_email)
