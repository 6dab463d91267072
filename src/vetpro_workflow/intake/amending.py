"""Amending a drafted application: its content replaced by a new document, in one transaction.

Project fields, partners and mobilities may change; mobilities are matched by their
participant's email: a new one is added (drafted), a changed one updated, one no longer in the
document cancelled (its history stays). The application's version goes up (so a stale form is
refused), and its history records what changed, field by field. Amending is not a move: the
application stays drafted.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

from ..cases import write
from ..clock import Clock
from ..errors import ConflictError, InvalidInput, NotAllowed, TransitionRefused
from ..states.actors import SYSTEM, Actor
from ..states.cascade import decide
from ..states.snapshots import ApplicationSnapshot, MobilitySnapshot
from ..store.database import Tx
from ..store.snapshots import load_project_of
from .documents import ApplicationDoc, MobilityDoc, digest
from .filing import call_of, coordinator, insert_mobility, organisation, participant

_PROJECT = ("title", "objectives", "dissemination_plan", "start_date", "end_date")
_MOBILITY = ("start_date", "end_date", "objectives", "content", "language_preparation")


def _shown(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _check(project: ApplicationSnapshot, case_id: int, actor: Actor, expected: int | None) -> None:
    if case_id != project.id:
        raise InvalidInput(f"case {case_id} is a mobility; amend its application {project.id}")
    if actor.role != "coordinator" or not actor.may_act_for(project.organisation_id):
        raise NotAllowed(f"an application is amended by its coordinator; {actor.email} is not one")
    if project.state != "drafted":
        raise TransitionRefused(
            f"Application {case_id} is in '{project.state}'; 'amend' is only possible from "
            "drafted (NA staff can request changes on a submitted application)"
        )
    if expected is not None and project.version != expected:
        raise ConflictError(
            f"Application {case_id} changed meanwhile (version {project.version}, you had "
            f"{expected}); reload it with 'vetpro case show {case_id}' and try again"
        )


def _project_changes(project: ApplicationSnapshot, doc: ApplicationDoc) -> dict[str, list[Any]]:
    new = doc.project.model_dump()
    return {
        f"project.{name}": [_shown(getattr(project, name)), _shown(new[name])]
        for name in _PROJECT
        if getattr(project, name) != new[name]
    }


def _mobility_changes(m: MobilitySnapshot, doc: MobilityDoc) -> dict[str, list[Any]]:
    new = doc.model_dump()
    changes = {
        name: [_shown(getattr(m, name)), _shown(new[name])]
        for name in _MOBILITY
        if getattr(m, name) != new[name]
    }
    if m.host_name != doc.host:
        changes["host"] = [m.host_name, doc.host]
    return changes


def amend(
    tx: Tx,
    case_id: int,
    doc: ApplicationDoc,
    *,
    actor: Actor,
    clock: Clock,
    staff_email: str,
    expected_version: int | None = None,
) -> dict[str, Any]:
    """Replace a drafted application's content with a document's; what changed."""
    project = load_project_of(tx, case_id, lock=True)
    _check(project, case_id, actor, expected_version)
    call = call_of(tx, doc.call)
    if doc.call.code != project.call.code:
        raise InvalidInput(f"call.code: application {case_id} belongs to call {project.call.code}")
    if doc.applicant.name != project.applicant_name:
        raise InvalidInput(f"applicant.name: application {case_id} is {project.applicant_name}'s")
    coordinator_id = coordinator(tx, doc.applicant, project.organisation_id, new_org=False)
    changes = _project_changes(project, doc)
    if doc.applicant.contact_email != project.coordinator_email:
        changes["coordinator"] = [project.coordinator_email, doc.applicant.contact_email]
    hosts, partner_changes = _partners(tx, project, doc)
    changes |= partner_changes
    changes |= _mobilities(tx, project, doc, hosts=hosts, clock=clock, staff_email=staff_email)
    if not changes:
        raise InvalidInput(f"the document says what application {case_id} says already")
    moved = tx.execute(
        'UPDATE "case" SET version = version + 1, updated_at = :at WHERE id = :id AND version = :v',
        {"at": clock.now, "id": case_id, "v": project.version},
    )
    if moved != 1:
        raise ConflictError(f"Application {case_id} changed meanwhile; reload it and try again")
    tx.execute(
        "UPDATE application SET title = :title, objectives = :objectives, "
        "dissemination_plan = :dissemination_plan, start_date = :start_date, "
        "end_date = :end_date, coordinator_id = :coordinator, digest = :digest, call_id = :call "
        "WHERE id = :id",
        {
            **doc.project.model_dump(),
            "coordinator": coordinator_id,
            "digest": digest(doc),
            "call": call["id"],
            "id": case_id,
        },
    )
    _history(tx, case_id, project.version + 1, actor.email, clock, changes)
    return {"application": case_id, "version": project.version + 1, "changes": changes}


def _partners(
    tx: Tx, project: ApplicationSnapshot, doc: ApplicationDoc
) -> tuple[dict[str, int], dict[str, list[Any]]]:
    """The document's partners, in place of the application's: their ids by name, and what
    changed."""
    hosts = {p.name: organisation(tx, p, f"partners[{i}]")[0] for i, p in enumerate(doc.partners)}
    old = {p.name for p in project.partners}
    changes: dict[str, list[Any]] = {
        f"partner {n}": [None, "added"] for n in sorted(set(hosts) - old)
    }
    changes |= {f"partner {n}": ["listed", None] for n in sorted(old - set(hosts))}
    tx.execute("DELETE FROM application_partner WHERE application_id = :id", {"id": project.id})
    tx.executemany(
        "INSERT INTO application_partner (application_id, organisation_id) VALUES (:app, :org)",
        [{"app": project.id, "org": org} for org in hosts.values()],
    )
    return hosts, changes


def _history(tx: Tx, case_id: int, version: int, actor: str, clock: Clock, changes: Any) -> None:
    tx.execute(
        "INSERT INTO history (case_id, version, trigger, source, dest, actor, at, note, facts) "
        "VALUES (:id, :version, 'amend', 'drafted', 'drafted', :actor, :at, NULL, :facts)",
        {
            "id": case_id,
            "version": version,
            "actor": actor,
            "at": clock.now,
            "facts": {"changes": changes},
        },
    )


def _mobilities(
    tx: Tx,
    project: ApplicationSnapshot,
    doc: ApplicationDoc,
    *,
    hosts: dict[str, int],
    clock: Clock,
    staff_email: str,
) -> dict[str, list[Any]]:
    """Add, change and cancel mobilities to match the document; what changed."""
    live = {m.participant_email: m for m in project.mobilities if m.state == "drafted"}
    changes: dict[str, list[Any]] = {}
    for m in doc.mobilities:
        old = live.pop(m.participant.email, None)
        if old is None:
            new_id = insert_mobility(
                tx,
                m,
                app_id=project.id,
                org_id=project.organisation_id,
                hosts=hosts,
                clock=clock,
                note=f"added by an amendment of application {project.id}",
            )
            changes[f"mobility {new_id}"] = [None, f"added: {m.participant.name} at {m.host}"]
        else:
            changes |= _changed(tx, project, old, m, hosts=hosts, clock=clock)
    for gone in live.values():
        changes[f"mobility {gone.id}"] = [
            f"{gone.participant_name} at {gone.host_name}",
            "cancelled",
        ]
        removed = decide(
            project,
            gone.id,
            "cancel",
            actor=SYSTEM,
            today=clock.today,
            now=clock.now,
            staff_email=staff_email,
            note=f"removed by an amendment of application {project.id}",
        )
        write(tx, replace(removed, notices=()), at=clock.now)
    return changes


def _changed(
    tx: Tx,
    project: ApplicationSnapshot,
    old: MobilitySnapshot,
    m: MobilityDoc,
    *,
    hosts: dict[str, int],
    clock: Clock,
) -> dict[str, list[Any]]:
    """Update a mobility to what the document says of it; what changed (recorded on it too)."""
    found = _mobility_changes(old, m)
    if not found:
        return {}
    tx.execute(
        "UPDATE mobility SET host_id = :host, start_date = :start_date, end_date = :end_date, "
        "objectives = :objectives, content = :content, "
        "language_preparation = :language_preparation, participant_id = :person WHERE id = :id",
        {
            **m.model_dump(exclude={"participant", "host"}),
            "host": hosts[m.host],
            "person": participant(tx, m, project.organisation_id),
            "id": old.id,
        },
    )
    tx.execute(
        'UPDATE "case" SET version = version + 1, updated_at = :at WHERE id = :id',
        {"at": clock.now, "id": old.id},
    )
    _history(tx, old.id, old.version + 1, SYSTEM.email, clock, found)
    return {f"mobility {old.id}.{k}": v for k, v in found.items()}
