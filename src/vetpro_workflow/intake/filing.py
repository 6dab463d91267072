"""Filing application documents in the store as drafted applications, one transaction each.

The call must be the agency's (`vetpro call add`), and whatever else the document says about it
must agree. An organisation already known keeps its coordinators: a document cannot make its
contact one (only NA staff, or one of the organisation's coordinators, add coordinators). A
document identical to one filed already for the same organisation and call is refused, naming
that case. A refusal writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..clock import Clock
from ..errors import InvalidInput, VetproError
from ..states.calendar import brussels_time
from ..store.database import Clash, Contention, Database, Tx
from ..store.schema import optimize
from .documents import (
    ApplicationDoc,
    CallRef,
    MobilityDoc,
    OrganisationDoc,
    digest,
    parse,
    read_bytes,
)


@dataclass(frozen=True)
class Imported:
    """The cases an imported document created."""

    application: int
    mobilities: list[int]


def call_of(tx: Tx, ref: CallRef) -> dict[str, Any]:
    """The agency's call an application names; what the document says of it must agree."""
    call = tx.row('SELECT * FROM "call" WHERE code = :code', {"code": ref.code})
    if call is None:
        raise InvalidInput(
            f"call.code: no call {ref.code!r}; NA staff add calls with 'vetpro call add FILE' "
            "('vetpro call list' shows them)"
        )
    for name, given in ref.model_dump(exclude={"code"}, exclude_none=True).items():
        stored = call[name]
        if name == "application_deadline":
            if given != stored:
                raise InvalidInput(
                    f"call.application_deadline: {brussels_time(given)} is not the deadline of "
                    f"call {ref.code} ({brussels_time(stored)})"
                )
        elif given != stored:
            raise InvalidInput(
                f"call.{name}: {given!r} is not what call {ref.code} says ({stored!r})"
            )
    return call


def organisation(tx: Tx, doc: OrganisationDoc, where: str) -> tuple[int, bool]:
    """The id of a document's organisation (registered when new), and whether it was new."""
    org = tx.row(
        "SELECT id, type, country FROM organisation WHERE name = :name", {"name": doc.name}
    )
    if org is None:
        new_id = tx.scalar(
            "INSERT INTO organisation (name, type, country, contact_name, contact_email) "
            "VALUES (:name, :type, :country, :contact_name, :contact_email) RETURNING id",
            doc.model_dump(),
        )
        return int(new_id), True
    if (org["country"], org["type"]) != (doc.country, doc.type):
        field_ = "country" if org["country"] != doc.country else "type"
        raise InvalidInput(
            f"{where}.{field_}: '{doc.name}' is already registered as {org['type']} in "
            f"{org['country']}, not {doc.type} in {doc.country}"
        )
    return int(org["id"]), False


def coordinator(tx: Tx, doc: OrganisationDoc, org_id: int, *, new_org: bool) -> int:
    """The coordinator a document names: its contact, who must coordinate the organisation
    already, unless the organisation is new (then the contact becomes its first coordinator)."""
    user = tx.row(
        'SELECT id, role, organisation_id FROM "user" WHERE email = :email',
        {"email": doc.contact_email},
    )
    if user is None and new_org:
        return int(
            tx.scalar(
                'INSERT INTO "user" (email, name, role, organisation_id) '
                "VALUES (:email, :name, 'coordinator', :org) RETURNING id",
                {"email": doc.contact_email, "name": doc.contact_name, "org": org_id},
            )
        )
    if user is not None and user["role"] == "coordinator" and user["organisation_id"] == org_id:
        return int(user["id"])
    if user is not None:
        who = "NA staff" if user["role"] == "staff" else "coordinator of another organisation"
        raise InvalidInput(f"applicant.contact_email: {doc.contact_email} is registered as {who}")
    current = tx.scalars(
        "SELECT email FROM \"user\" WHERE organisation_id = :org AND role = 'coordinator' "
        "ORDER BY id",
        {"org": org_id},
    )
    raise InvalidInput(
        f"applicant.contact_email: {doc.contact_email} is not a coordinator of '{doc.name}'; "
        f"NA staff or one of its coordinators ({', '.join(current) or 'none yet'}) can add them: "
        f"vetpro user add {doc.contact_email} --role coordinator --org '{doc.name}'"
    )


def new_case(tx: Tx, kind: str, org_id: int, app_id: int | None, clock: Clock, note: str) -> int:
    """A new drafted case, with the history entry of its filing."""
    case_id = int(
        tx.scalar(
            'INSERT INTO "case" (kind, state, version, organisation_id, application_id, '
            "created_at, updated_at) VALUES (:kind, 'drafted', 1, :org, :app, :now, :now) "
            "RETURNING id",
            {"kind": kind, "org": org_id, "app": app_id, "now": clock.now},
        )
    )
    tx.execute(
        "INSERT INTO history (case_id, version, trigger, source, dest, actor, at, note, facts) "
        "VALUES (:id, 1, 'import', NULL, 'drafted', 'system', :now, :note, :facts)",
        {"id": case_id, "now": clock.now, "note": note, "facts": {}},
    )
    return case_id


def participant(tx: Tx, m: MobilityDoc, org_id: int) -> int:
    """The participant of a mobility, registered with the applicant on first mention."""
    found = tx.scalar(
        "SELECT id FROM participant WHERE organisation_id = :org AND email = :email",
        {"org": org_id, "email": m.participant.email},
    )
    if found is not None:
        return int(found)
    return int(
        tx.scalar(
            "INSERT INTO participant (organisation_id, name, email, profession, "
            "professional_background, training_needs) VALUES (:org, :name, :email, :profession, "
            ":professional_background, :training_needs) RETURNING id",
            {"org": org_id, **m.participant.model_dump()},
        )
    )


def insert_mobility(
    tx: Tx,
    m: MobilityDoc,
    *,
    app_id: int,
    org_id: int,
    hosts: dict[str, int],
    clock: Clock,
    note: str,
) -> int:
    """A mobility of an application, drafted."""
    mobility_id = new_case(tx, "mobility", org_id, app_id, clock, note)
    tx.execute(
        "INSERT INTO mobility (id, application_id, participant_id, host_id, start_date, end_date, "
        "objectives, content, language_preparation) VALUES (:id, :app, :person, :host, :start, "
        ":end, :objectives, :content, :language)",
        {
            "id": mobility_id,
            "app": app_id,
            "person": participant(tx, m, org_id),
            "host": hosts[m.host],
            "start": m.start_date,
            "end": m.end_date,
            "objectives": m.objectives,
            "content": m.content,
            "language": m.language_preparation,
        },
    )
    return mobility_id


def file_document(
    tx: Tx, doc: ApplicationDoc, *, clock: Clock, source: str, allow_duplicate: bool = False
) -> Imported:
    """Write a validated document as a drafted application with its mobilities."""
    call = call_of(tx, doc.call)
    applicant, new_org = organisation(tx, doc.applicant, "applicant")
    hosts = {p.name: organisation(tx, p, f"partners[{i}]")[0] for i, p in enumerate(doc.partners)}
    coordinator_id = coordinator(tx, doc.applicant, applicant, new_org=new_org)
    fingerprint = digest(doc)
    if not allow_duplicate:
        same = tx.scalar(
            "SELECT min(id) FROM application WHERE applicant_id = :org AND call_id = :call "
            "AND digest = :digest",
            {"org": applicant, "call": call["id"], "digest": fingerprint},
        )
        if same is not None:
            raise InvalidInput(
                f"this document was filed already as application {same} for the same "
                "organisation and call; amend that one, or import with --allow-duplicate"
            )
    note = f"imported from {source}"
    app_id = new_case(tx, "application", applicant, None, clock, note)
    tx.execute(
        "INSERT INTO application (id, call_id, applicant_id, coordinator_id, title, objectives, "
        "dissemination_plan, start_date, end_date, digest) VALUES (:id, :call, :org, :coord, "
        ":title, :objectives, :plan, :start, :end, :digest)",
        {
            "id": app_id,
            "call": call["id"],
            "org": applicant,
            "coord": coordinator_id,
            "title": doc.project.title,
            "objectives": doc.project.objectives,
            "plan": doc.project.dissemination_plan,
            "start": doc.project.start_date,
            "end": doc.project.end_date,
            "digest": fingerprint,
        },
    )
    tx.executemany(
        "INSERT INTO application_partner (application_id, organisation_id) VALUES (:app, :org)",
        [{"app": app_id, "org": org} for org in hosts.values()],
    )
    mobilities = [
        insert_mobility(tx, m, app_id=app_id, org_id=applicant, hosts=hosts, clock=clock, note=note)
        for m in doc.mobilities
    ]
    return Imported(application=app_id, mobilities=mobilities)


@dataclass
class Outcome:
    """What an import of many files did: the cases each created, or why it was refused."""

    imported: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)


def import_one(
    db: Database, path: Path, *, clock: Clock, allow_duplicate: bool = False, attempts: int = 3
) -> dict[str, Any]:
    """Import one document in one transaction; a refused one writes nothing.

    A race lost to another import filing the same new organisation at the same moment is
    retried: the second try finds the organisation.
    """
    doc = parse(read_bytes(path), source=str(path))
    for attempt in range(1, attempts + 1):
        try:
            with db.transaction() as tx:
                done = file_document(
                    tx, doc, clock=clock, source=path.name, allow_duplicate=allow_duplicate
                )
            return {"application": done.application, "mobilities": done.mobilities}
        except InvalidInput as exc:  # a clash with the organisations, users or calls stored
            raise InvalidInput(f"{path}: {exc}") from None
        except (Clash, Contention):
            if attempt == attempts:
                raise
    return {}


def documents(paths: list[Path]) -> list[Path]:
    """The document files named; a folder stands for its *.json files."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix == ".json")
        else:
            files.append(path)
    return files


def import_many(
    db: Database,
    files: list[Path],
    *,
    clock: Clock,
    allow_duplicate: bool = False,
    advance: Any = None,
) -> Outcome:
    """Import documents one by one: each is judged on its own, and every one is reported."""
    outcome = Outcome()
    for path in files:
        try:
            done = import_one(db, path, clock=clock, allow_duplicate=allow_duplicate)
            outcome.imported.append({"file": str(path), **done})
        except VetproError as exc:
            message = str(exc).removeprefix(f"{path}: ")
            outcome.refused.append({"file": str(path), "error": message})
        except Exception as exc:  # one file's surprise must not leave the others unread
            outcome.refused.append({"file": str(path), "error": f"{type(exc).__name__}: {exc}"})
        if advance is not None:
            advance()
    optimize(db)
    return outcome
