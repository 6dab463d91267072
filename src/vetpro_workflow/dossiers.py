"""Reading a case from the store into the frozen snapshot its guards and prompts read.

The queries select plain columns (no ORM objects, so nothing is cached stale in the session) and
are built once, with bound parameters: reading a case is on the path of every transition.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, Table, bindparam, select
from sqlmodel import Session

from .errors import NotFound
from .models import (
    Application,
    ApplicationPartner,
    Call,
    Case,
    Mobility,
    Organisation,
    Participant,
    User,
)
from .states.dossier import ApplicationFile, MobilityFile, Partner
from .states.facts import FACT_TYPES


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


_case, _app_case = _table(Case), _table(Case).alias("app_case")
_app, _mob, _call = _table(Application), _table(Mobility), _table(Call)
_org, _applicant, _host = (
    _table(Organisation),
    _table(Organisation).alias("applicant"),
    _table(Organisation).alias("host"),
)
_person, _user, _partner = _table(Participant), _table(User), _table(ApplicationPartner)

_MOBILITY_FACTS = [name for name in FACT_TYPES if name in _mob.c]
_APPLICATION_FACTS = [name for name in FACT_TYPES if name in _app.c]


def _facts(row: Any, names: list[str]) -> dict[str, Any]:
    return {name: row[f"fact_{name}"] for name in names if row[f"fact_{name}"] is not None}


def mobility_rows() -> Select[Any]:
    """The columns of a mobility snapshot, joined, for any filter."""
    columns = [
        _case.c.id,
        _case.c.state,
        _case.c.version,
        _app.c.id.label("application_id"),
        _app_case.c.state.label("application_state"),
        _app.c.title.label("project_title"),
        _app.c.start_date.label("project_start"),
        _app.c.end_date.label("project_end"),
        _applicant.c.name.label("applicant_name"),
        _user.c.name.label("coordinator_name"),
        _user.c.email.label("coordinator_email"),
        _person.c.name.label("participant_name"),
        _person.c.email.label("participant_email"),
        _person.c.profession,
        _person.c.professional_background,
        _person.c.training_needs,
        _host.c.name.label("host_name"),
        _host.c.country.label("host_country"),
        _mob.c.start_date,
        _mob.c.end_date,
        _mob.c.objectives,
        _mob.c.content,
        _mob.c.language_preparation,
        *(_mob.c[name].label(f"fact_{name}") for name in _MOBILITY_FACTS),
    ]
    return (
        select(*columns)
        .join(_mob, _mob.c.id == _case.c.id)
        .join(_app, _app.c.id == _mob.c.application_id)
        .join(_app_case, _app_case.c.id == _app.c.id)
        .join(_person, _person.c.id == _mob.c.participant_id)
        .join(_host, _host.c.id == _mob.c.host_id)
        .join(_applicant, _applicant.c.id == _app.c.applicant_id)
        .join(_user, _user.c.id == _app.c.coordinator_id)
    )


_MOBILITY_BY_ID = mobility_rows().where(_case.c.id == bindparam("case_id"))
_MOBILITIES = mobility_rows().order_by(_case.c.id)
_APPLICATIONS = (
    select(
        _case.c.id,
        _case.c.state,
        _case.c.version,
        _app.c.title,
        _org.c.name.label("applicant_name"),
        _org.c.type.label("applicant_type"),
        _org.c.country.label("applicant_country"),
        _user.c.name.label("coordinator_name"),
        _user.c.email.label("coordinator_email"),
        _call.c.code.label("call_code"),
        _call.c.application_deadline,
        _call.c.earliest_start,
        _call.c.max_project_months,
        _call.c.min_days,
        _call.c.max_days,
        _app.c.start_date,
        _app.c.end_date,
        _app.c.objectives,
        _app.c.dissemination_plan,
        *(_app.c[name].label(f"fact_{name}") for name in _APPLICATION_FACTS),
    )
    .join(_app, _app.c.id == _case.c.id)
    .join(_call, _call.c.id == _app.c.call_id)
    .join(_org, _org.c.id == _app.c.applicant_id)
    .join(_user, _user.c.id == _app.c.coordinator_id)
    .order_by(_case.c.id)
)
_PARTNERS = (
    select(_partner.c.application_id, _org.c.name, _org.c.country, _org.c.type)
    .join(_partner, _partner.c.organisation_id == _org.c.id)
    .order_by(_org.c.name)
)
_KIND_OF = select(_case.c.kind).where(_case.c.id == bindparam("case_id"))


def _mobility_file(row: Any) -> MobilityFile:
    fields = {k: v for k, v in row.items() if not k.startswith("fact_")}
    return MobilityFile(**fields, facts=_facts(row, _MOBILITY_FACTS))


def load_mobility(session: Session, case_id: int) -> MobilityFile:
    """The snapshot of one mobility."""
    row = session.connection().execute(_MOBILITY_BY_ID, {"case_id": case_id}).mappings().first()
    if row is None:
        raise NotFound(f"mobility {case_id} does not exist")
    return _mobility_file(row)


def load_mobilities(session: Session, case_ids: list[int]) -> list[MobilityFile]:
    """The snapshots of many mobilities, read with one query."""
    rows = session.connection().execute(
        mobility_rows().where(_case.c.id.in_(case_ids)).order_by(_case.c.id)
    )
    return [_mobility_file(row) for row in rows.mappings()]


def load_application(session: Session, case_id: int) -> ApplicationFile:
    """The snapshot of one application with its partners and mobilities."""
    found = load_applications(session, [case_id])
    if not found:
        raise NotFound(f"application {case_id} does not exist")
    return found[0]


def load_applications(session: Session, case_ids: list[int]) -> list[ApplicationFile]:
    """The snapshots of applications with their partners and mobilities: three queries in all."""
    connection = session.connection()
    rows = connection.execute(_APPLICATIONS.where(_case.c.id.in_(case_ids))).mappings().all()
    partners: dict[int, list[Partner]] = {}
    for p in connection.execute(_PARTNERS.where(_partner.c.application_id.in_(case_ids))):
        partners.setdefault(p.application_id, []).append(Partner(p.name, p.country, p.type))
    mobilities: dict[int, list[MobilityFile]] = {}
    for m in connection.execute(_MOBILITIES.where(_mob.c.application_id.in_(case_ids))).mappings():
        mobilities.setdefault(m["application_id"], []).append(_mobility_file(m))
    return [
        ApplicationFile(
            **{k: v for k, v in row.items() if not k.startswith("fact_")},
            partners=tuple(partners.get(row["id"], ())),
            mobilities=tuple(mobilities.get(row["id"], ())),
            facts=_facts(row, _APPLICATION_FACTS),
        )
        for row in rows
    ]


def load(session: Session, case_id: int, kind: str | None = None) -> ApplicationFile | MobilityFile:
    """The snapshot of any case by its id (its kind, when the caller knows it, saves a query)."""
    if kind is None:
        kind = session.connection().execute(_KIND_OF, {"case_id": case_id}).scalar_one_or_none()
    if kind is None:
        raise NotFound(f"case {case_id} does not exist; 'vetpro case list' shows the cases")
    if kind == "application":
        return load_application(session, case_id)
    return load_mobility(session, case_id)
