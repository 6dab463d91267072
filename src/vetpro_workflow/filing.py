"""Filing a validated application document in the store as a drafted application.

Everything is written in one transaction; a clash with what is stored (an organisation registered
in another country, a contact who is already someone else's coordinator) writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlmodel import Session

from .clock import Clock
from .errors import InvalidInput
from .intake import ApplicationDoc, CallDoc, OrganisationDoc, ParticipantDoc
from .models import (
    Application,
    ApplicationPartner,
    Call,
    Case,
    History,
    Mobility,
    Organisation,
    Participant,
    User,
)


@dataclass(frozen=True)
class Imported:
    """The cases an imported document created."""

    application: int
    mobilities: list[int]


def file_document(session: Session, doc: ApplicationDoc, *, clock: Clock, source: str) -> Imported:
    """Write a validated document as a drafted application with its mobilities; commits once."""
    call = _call(session, doc.call)
    applicant = _organisation(session, doc.applicant, "applicant")
    partners = {
        p.name: _organisation(session, p, f"partners[{i}]") for i, p in enumerate(doc.partners)
    }
    coordinator = _coordinator(session, doc.applicant, applicant)
    app_id = _case(session, "application", applicant.id, None, clock, source)
    session.execute(
        insert(Application).values(
            id=app_id,
            call_id=call.id,
            applicant_id=applicant.id,
            coordinator_id=coordinator.id,
            title=doc.project.title,
            objectives=doc.project.objectives,
            dissemination_plan=doc.project.dissemination_plan,
            start_date=doc.project.start_date,
            end_date=doc.project.end_date,
        )
    )
    session.execute(
        insert(ApplicationPartner),
        [{"application_id": app_id, "organisation_id": o.id} for o in partners.values()],
    )
    mobility_ids = []
    for m in doc.mobilities:
        person = _participant(session, m.participant, applicant)
        mobility_id = _case(session, "mobility", applicant.id, app_id, clock, source)
        session.execute(
            insert(Mobility).values(
                id=mobility_id,
                application_id=app_id,
                participant_id=person.id,
                host_id=partners[m.host].id,
                start_date=m.start_date,
                end_date=m.end_date,
                objectives=m.objectives,
                content=m.content,
                language_preparation=m.language_preparation,
            )
        )
        mobility_ids.append(mobility_id)
    session.commit()
    return Imported(application=app_id, mobilities=mobility_ids)


def _case(
    session: Session, kind: str, org_id: int | None, app_id: int | None, clock: Clock, source: str
) -> int:
    case = Case(
        kind=kind,
        state="drafted",
        version=1,
        organisation_id=org_id,
        application_id=app_id,
        created_at=clock.now,
        updated_at=clock.now,
    )
    session.add(case)
    session.flush()
    assert case.id is not None
    session.add(
        History(
            case_id=case.id,
            version=1,
            trigger="import",
            source=None,
            dest="drafted",
            actor="system",
            at=clock.now,
            note=f"imported from {source}",
            facts={},
        )
    )
    return case.id


def _call(session: Session, doc: CallDoc) -> Call:
    call = session.execute(select(Call).where(Call.code == doc.code)).scalar_one_or_none()
    if call is None:
        call = Call(**doc.model_dump())
        session.add(call)
        session.flush()
    return call


def _organisation(session: Session, doc: OrganisationDoc, where: str) -> Organisation:
    org = session.execute(
        select(Organisation).where(Organisation.name == doc.name)
    ).scalar_one_or_none()
    if org is None:
        org = Organisation(**doc.model_dump())
        session.add(org)
        session.flush()
    elif (org.country, org.type) != (doc.country, doc.type):
        field = "country" if org.country != doc.country else "type"
        raise InvalidInput(
            f"{where}.{field}: '{doc.name}' is already registered as {org.type} in {org.country}, "
            f"not {doc.type} in {doc.country}"
        )
    return org


def _coordinator(session: Session, doc: OrganisationDoc, org: Organisation) -> User:
    user = session.execute(select(User).where(User.email == doc.contact_email)).scalar_one_or_none()
    if user is None:
        user = User(
            email=doc.contact_email,
            name=doc.contact_name,
            role="coordinator",
            organisation_id=org.id,
        )
        session.add(user)
        session.flush()
    elif user.role != "coordinator" or user.organisation_id != org.id:
        raise InvalidInput(
            f"applicant.contact_email: {doc.contact_email} is already registered as "
            f"{'NA staff' if user.role == 'staff' else 'coordinator of another organisation'}"
        )
    return user


def _participant(session: Session, doc: ParticipantDoc, org: Organisation) -> Participant:
    person = session.execute(
        select(Participant).where(
            Participant.organisation_id == org.id, Participant.email == doc.email
        )
    ).scalar_one_or_none()
    if person is None:
        person = Participant(organisation_id=org.id, **doc.model_dump())
        session.add(person)
        session.flush()
    return person
