"""What staff read about cases: the case object, lists of cases and their history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from . import dossiers
from .errors import InvalidInput, NotFound
from .models import Case, History
from .notifications.outbox import rows
from .states.dossier import ApplicationFile, MobilityFile
from .states.facts import to_json
from .states.steps import next_step
from .states.workflows import DEFINITIONS, definition


def case_object(case: ApplicationFile | MobilityFile) -> dict[str, Any]:
    """A case as staff and scripts see it: state, version, allowed triggers and next step."""
    step = next_step(case)
    common: dict[str, Any] = {
        "id": case.id,
        "kind": case.kind,
        "state": case.state,
        "version": case.version,
        "allowed_triggers": definition(case.kind).triggers_from(case.state),
        "next_step": step.text,
        "next_step_by": step.who,
        "next_step_due": step.due.isoformat() if step.due else None,
        "facts": to_json(case.facts),
        "applicant": case.applicant_name,
        "coordinator": case.coordinator_email,
    }
    if isinstance(case, ApplicationFile):
        return common | {
            "title": case.title,
            "call": case.call_code,
            "start_date": case.start_date.isoformat(),
            "end_date": case.end_date.isoformat(),
            "partners": [{"name": p.name, "country": p.country} for p in case.partners],
            "mobilities": [
                {
                    "id": m.id,
                    "state": m.state,
                    "participant": m.participant_name,
                    "host": m.host_name,
                    "start_date": m.start_date.isoformat(),
                    "end_date": m.end_date.isoformat(),
                }
                for m in case.mobilities
            ],
        }
    return common | {
        "title": f"{case.participant_name} at {case.host_name}",
        "application_id": case.application_id,
        "application_state": case.application_state,
        "participant": case.participant_name,
        "participant_email": case.participant_email,
        "profession": case.profession,
        "host": case.host_name,
        "host_country": case.host_country,
        "start_date": case.start_date.isoformat(),
        "end_date": case.end_date.isoformat(),
        "language_preparation": case.language_preparation,
    }


def show(session: Session, case_id: int) -> dict[str, Any]:
    """The case object of one case, with the mail about it that could not be delivered."""
    case = case_object(dossiers.load(session, case_id))
    failed = rows(session, status="undeliverable", case_id=case_id)
    case["undeliverable_mail"] = [
        {"id": r.id, "to": r.recipient, "kind": r.kind, "last_error": r.last_error} for r in failed
    ]
    return case


def list_cases(
    session: Session, *, kind: str | None = None, state: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """The cases of a kind and/or in a state, oldest first."""
    if kind is not None and kind not in DEFINITIONS:
        raise InvalidInput(f"--kind: {kind!r} is not a kind of case; use application or mobility")
    if state is not None:
        known = {s for d in DEFINITIONS.values() for s in d.states if kind in (None, d.kind)}
        if state not in known:
            raise InvalidInput(
                f"--state: {state!r} is not a state; use one of {', '.join(sorted(known))}"
            )
    query = select(Case.id, Case.kind, Case.application_id).order_by(Case.id)
    if kind is not None:
        query = query.where(Case.kind == kind)
    if state is not None:
        query = query.where(Case.state == state)
    if limit is not None:
        query = query.limit(limit)
    found = session.execute(query).all()
    # Every case is read with its application: one batch of three queries for the whole list.
    projects = {c if k == "application" else a for c, k, a in found}
    files = {a.id: a for a in dossiers.load_applications(session, sorted(projects))}
    mobilities = {m.id: m for a in files.values() for m in a.mobilities}
    return [case_object(files[c] if k == "application" else mobilities[c]) for c, k, _ in found]


def history(session: Session, case_id: int) -> list[dict[str, Any]]:
    """Every move of a case, oldest first."""
    if session.get(Case, case_id) is None:
        raise NotFound(f"case {case_id} does not exist; 'vetpro case list' shows the cases")
    rows = session.execute(
        select(History).where(History.case_id == case_id).order_by(History.id)
    ).scalars()
    return [
        {
            "trigger": h.trigger,
            "source": h.source,
            "dest": h.dest,
            "actor": h.actor,
            "at": h.at.isoformat(),
            "note": h.note,
            "facts": h.facts,
            "version": h.version,
        }
        for h in rows
    ]
