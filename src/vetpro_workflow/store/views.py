"""What people read about cases: the case object, lists of cases and their history.

The same objects feed `vetpro case show/list/history --json`, the web pages and the JSON API.
"""

from __future__ import annotations

from typing import Any

from ..clock import real_now
from ..errors import NotFound
from ..states.actors import Actor
from ..states.calendar import business_day
from ..states.facts import to_json
from ..states.snapshots import ApplicationSnapshot, Given, MobilitySnapshot, Snapshot
from ..states.steps import next_step
from ..states.workflows import definition
from .database import Tx
from .snapshots import load_project_of


def allowed(
    case: Snapshot, project: ApplicationSnapshot, actor: Actor | None
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The triggers a person may fire on a case now, each with the facts it asks for, and those
    of theirs that wait for something else to change first, each with what it waits for.

    Without a person: what anyone may fire. A coordinator of another organisation may fire
    nothing.
    """
    flow = definition(case.kind)
    if actor is not None and not actor.may_act_for(project.organisation_id):
        return [], []
    now = real_now()  # the guards that make a step wait read the store, not the day
    stored = Given(facts=case.facts, note=None, today=business_day(now), now=now, project=project)
    ready, waiting = [], []
    for s in flow.available(case.state, actor.role if actor else None):
        if reason := flow.waiting(s, case, stored):
            waiting.append({"trigger": s.trigger, "reason": reason})
        else:
            ready.append(
                {"trigger": s.trigger, "who": list(s.who), "facts": s.asks(), "note": s.note}
            )
    return ready, waiting


def case_object(
    project: ApplicationSnapshot, case: Snapshot, *, actor: Actor | None = None
) -> dict[str, Any]:
    """A case as people and scripts see it: state, version, what may be done and what is next."""
    step = next_step(project, case)
    actions, waiting = allowed(case, project, actor)
    common: dict[str, Any] = {
        "id": case.id,
        "kind": case.kind,
        "state": case.state,
        "version": case.version,
        "title": project.title if case.kind == "application" else case.title,
        "allowed_triggers": [a["trigger"] for a in actions],
        "allowed": actions,
        "waiting": waiting,
        "next_step": step.text,
        "next_step_by": step.who,
        "next_step_due": step.due.isoformat() if step.due else None,
        "facts": to_json(case.facts),
        "applicant": project.applicant_name,
        "applicant_country": project.applicant_country,
        "coordinator": project.coordinator_email,
        "call": project.call.code,
        "application_id": project.id,
    }
    if isinstance(case, ApplicationSnapshot):
        return common | _application(case)
    return common | _mobility(project, case)


def _application(case: ApplicationSnapshot) -> dict[str, Any]:
    return {
        "start_date": case.start_date.isoformat(),
        "end_date": case.end_date.isoformat(),
        "objectives": case.objectives,
        "dissemination_plan": case.dissemination_plan,
        "partners": [{"name": p.name, "country": p.country} for p in case.partners],
        "mobilities": [
            {
                "id": m.id,
                "state": m.state,
                "version": m.version,
                "participant": m.participant_name,
                "host": m.host_name,
                "start_date": m.start_date.isoformat(),
                "end_date": m.end_date.isoformat(),
            }
            for m in case.mobilities
        ],
    }


def _mobility(project: ApplicationSnapshot, case: MobilitySnapshot) -> dict[str, Any]:
    return {
        "application_state": project.state,
        "participant": case.participant_name,
        "participant_email": case.participant_email,
        "profession": case.profession,
        "host": case.host_name,
        "host_country": case.host_country,
        "start_date": case.start_date.isoformat(),
        "end_date": case.end_date.isoformat(),
        "objectives": case.objectives,
        "content": case.content,
        "language_preparation": case.language_preparation,
        "stay_note": case.facts.get("stay_note"),
    }


def show(tx: Tx, case_id: int, *, actor: Actor | None = None) -> dict[str, Any]:
    """The case object of one case, with the mail about it that could not be delivered."""
    project = load_project_of(tx, case_id)
    case = project.case(case_id)
    assert case is not None
    if actor is not None and not actor.may_act_for(project.organisation_id):
        raise NotFound(f"case {case_id} does not exist or is not one of your organisation's")
    shown = case_object(project, case, actor=actor)
    shown["undeliverable_mail"] = tx.rows(
        'SELECT id, recipient AS "to", kind, last_error FROM outbox '
        "WHERE case_id = :id AND status = 'undeliverable' ORDER BY id",
        {"id": case_id},
    )
    return shown


def history(tx: Tx, case_id: int) -> list[dict[str, Any]]:
    """Every move of a case, oldest first."""
    if not 0 < case_id < 2**63 or not tx.scalar(
        'SELECT 1 FROM "case" WHERE id = :id', {"id": case_id}
    ):
        raise NotFound(f"case {case_id} does not exist; 'vetpro case list' shows the cases")
    return [
        {**row, "at": row["at"].isoformat(), "day": business_day(row["at"]).isoformat()}
        for row in tx.rows(
            "SELECT version, trigger, source, dest, actor, at, note, facts FROM history "
            "WHERE case_id = :id ORDER BY id",
            {"id": case_id},
        )
    ]
