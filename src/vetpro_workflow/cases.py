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
from .errors import ConflictError, NotFound
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
    subject = (
        dossiers.load_application(session, case_id)
        if row.kind == "application"
        else dossiers.load_mobility(session, case_id)
    )
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
        given = self._given(subject, facts, note)
        dest = fire(definition(subject.kind), subject, trigger, given)
        version = subject.version + 1
        db = self.session.connection()
        changed = db.execute(
            _COMPARE_AND_SET,
            {
                "case_id": subject.id,
                "seen_version": subject.version,
                "new_state": dest,
                "new_version": version,
                "at": self.clock.now,
            },
        )
        if changed.rowcount != 1:
            raise ConflictError(
                f"{subject.kind.capitalize()} {subject.id} was changed by someone else meanwhile; "
                f"reload it with 'vetpro case show {subject.id}' and try again"
            )
        if facts:
            table = Application if subject.kind == "application" else Mobility
            db.execute(update(table.__table__).where(table.id == subject.id).values(**facts))
        db.execute(
            _RECORD,
            {
                "case_id": subject.id,
                "version": version,
                "trigger": trigger,
                "source": subject.state,
                "dest": dest,
                "actor": who.email,
                "at": self.clock.now,
                "note": note,
                "facts": to_json(facts),
            },
        )
        self.moves.append(
            Moved(subject.id, subject.kind, trigger, subject.state, dest, version, who.email)
        )
        after = dataclasses.replace(
            subject, state=dest, version=version, facts={**subject.facts, **facts}
        )
        if isinstance(after, ApplicationFile):
            after = self._carry(after, trigger, note)
        if not carried:
            self._enqueue(after, trigger, note)
        if isinstance(after, MobilityFile):
            self._follow(after, trigger)
        return after

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
        self, after: ApplicationFile | MobilityFile, trigger: str, note: str | None
    ) -> None:
        notices = on_move(after, trigger=trigger, note=note, staff_email=self.staff_email)
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
        if carried is None:
            return app
        mobility_flow = definition("mobility")
        reason = f"with application {app.id} ({trigger})" + (f": {note}" if note else "")
        moved = []
        for m in app.mobilities:
            step = mobility_flow.step(carried)
            if step is not None and m.state in step.sources:
                m = self.move(
                    dataclasses.replace(m, application_state=app.state),
                    carried,
                    SYSTEM,
                    {},
                    reason,
                    carried=True,
                )
            moved.append(m)
        return dataclasses.replace(app, mobilities=tuple(moved))

    def _follow(self, m: MobilityFile, trigger: str) -> None:
        """Move the application when its mobilities have all departed, returned or validated."""
        app_flow = definition("application")
        steps = [
            step
            for name, causes in application_flow.FOLLOWS.items()
            if trigger in causes and (step := app_flow.step(name)) is not None
        ]
        if not any(m.application_state in step.sources for step in steps):
            return  # nothing the project could do from where it stands: no need to read it
        app: ApplicationFile | MobilityFile = dossiers.load_application(
            self.session, m.application_id
        )
        progressed = True
        while progressed:
            progressed = False
            for step in steps:
                given = self._given(app, {}, None)
                if app.state in step.sources and not refusals(step, app_flow, app, given):
                    note = f"following mobility {m.id} ({trigger})"
                    app = self.move(app, step.trigger, SYSTEM, {}, note, carried=False)
                    progressed = True
