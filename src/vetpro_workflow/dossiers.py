"""Reading a case from the store into the frozen snapshot its guards and prompts read."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import aliased
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

AppCase = aliased(Case)
Applicant = aliased(Organisation)
Host = aliased(Organisation)


def recorded_facts(row: Application | Mobility) -> dict[str, Any]:
    """The facts recorded on a case so far."""
    return {name: value for name in FACT_TYPES if (value := getattr(row, name, None)) is not None}


def _mobility_query() -> Any:
    return (
        select(Case, Mobility, AppCase, Application, Participant, Host, Applicant, User)
        .join(Mobility, Mobility.id == Case.id)
        .join(Application, Application.id == Mobility.application_id)
        .join(AppCase, AppCase.id == Application.id)
        .join(Participant, Participant.id == Mobility.participant_id)
        .join(Host, Host.id == Mobility.host_id)
        .join(Applicant, Applicant.id == Application.applicant_id)
        .join(User, User.id == Application.coordinator_id)
        .execution_options(populate_existing=True)
    )


def _mobility_file(row: Any) -> MobilityFile:
    case, m, app_case, app, person, host, applicant, coordinator = row
    return MobilityFile(
        id=case.id,
        state=case.state,
        version=case.version,
        application_id=app.id,
        application_state=app_case.state,
        project_title=app.title,
        project_start=app.start_date,
        project_end=app.end_date,
        applicant_name=applicant.name,
        coordinator_name=coordinator.name,
        coordinator_email=coordinator.email,
        participant_name=person.name,
        participant_email=person.email,
        profession=person.profession,
        professional_background=person.professional_background,
        training_needs=person.training_needs,
        host_name=host.name,
        host_country=host.country,
        start_date=m.start_date,
        end_date=m.end_date,
        objectives=m.objectives,
        content=m.content,
        language_preparation=m.language_preparation,
        facts=recorded_facts(m),
    )


def load_mobility(session: Session, case_id: int) -> MobilityFile:
    """The snapshot of one mobility."""
    row = session.execute(_mobility_query().where(Case.id == case_id)).one_or_none()
    if row is None:
        raise NotFound(f"mobility {case_id} does not exist")
    return _mobility_file(row)


def load_application(session: Session, case_id: int) -> ApplicationFile:
    """The snapshot of one application with its partners and mobilities."""
    row = session.execute(
        select(Case, Application, Call, Organisation, User)
        .join(Application, Application.id == Case.id)
        .join(Call, Call.id == Application.call_id)
        .join(Organisation, Organisation.id == Application.applicant_id)
        .join(User, User.id == Application.coordinator_id)
        .where(Case.id == case_id)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if row is None:
        raise NotFound(f"application {case_id} does not exist")
    case, app, call, applicant, coordinator = row
    partners = session.execute(
        select(Organisation)
        .join(ApplicationPartner, ApplicationPartner.organisation_id == Organisation.id)
        .where(ApplicationPartner.application_id == case_id)
        .order_by(Organisation.name)
    ).scalars()
    mobilities = session.execute(
        _mobility_query().where(Mobility.application_id == case_id).order_by(Case.id)
    ).all()
    return ApplicationFile(
        id=case.id,
        state=case.state,
        version=case.version,
        title=app.title,
        applicant_name=applicant.name,
        applicant_type=applicant.type,
        applicant_country=applicant.country,
        coordinator_name=coordinator.name,
        coordinator_email=coordinator.email,
        call_code=call.code,
        application_deadline=call.application_deadline,
        earliest_start=call.earliest_start,
        max_project_months=call.max_project_months,
        min_days=call.min_days,
        max_days=call.max_days,
        start_date=app.start_date,
        end_date=app.end_date,
        objectives=app.objectives,
        dissemination_plan=app.dissemination_plan,
        partners=tuple(Partner(name=p.name, country=p.country, type=p.type) for p in partners),
        mobilities=tuple(_mobility_file(r) for r in mobilities),
        facts=recorded_facts(app),
    )


def load(session: Session, case_id: int) -> ApplicationFile | MobilityFile:
    """The snapshot of any case by its id."""
    kind = session.execute(select(Case.kind).where(Case.id == case_id)).scalar_one_or_none()
    if kind is None:
        raise NotFound(f"case {case_id} does not exist; 'vetpro case list' shows the cases")
    return (
        load_application(session, case_id)
        if kind == "application"
        else load_mobility(session, case_id)
    )
