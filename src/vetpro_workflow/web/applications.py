"""Coordinators' pages of their applications: amend a drafted application in a form (adding,
changing or removing a mobility), and upload an application document (the same JSON the
command line imports). NA staff may upload documents too; they amend nothing."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Path, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from ..errors import NotAllowed, NotFound, VetproError
from ..intake.amending import amend
from ..intake.documents import MAX_BYTES, ApplicationDoc, parse
from ..intake.filing import Imported, file_document
from ..states.eligibility import PROFESSIONS
from ..store.auth import Account
from ..store.database import Tx
from ..store.listing import MAX_ID, visible
from ..store.snapshots import load_project_of
from . import amendment
from .forms import Posted, number_of
from .security import Coordinator, Person, csrf_protect, flash
from .templating import render
from .workspace import Space, Workspace

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)
CaseId = Annotated[int, Path(ge=1, le=MAX_ID)]


def _amend_form(
    request: Request,
    space: Workspace,
    account: Account,
    case_id: int,
    *,
    posted: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    with space.db.transaction(write=False) as tx:
        visible(tx, case_id, account.actor)
        project = load_project_of(tx, case_id)
    if project.id != case_id:
        raise NotFound(f"case {case_id} is a mobility; amend its application {project.id}")
    values = posted if posted is not None else amendment.form_of(project)
    return render(
        request,
        "amend.html",
        status=status,
        title=f"Amend application {case_id}: {project.title}",
        project=project,
        values=values,
        groups=amendment.groups(values),
        hosts=[p.name for p in project.partners],
        professions=PROFESSIONS,
        error=error,
    )


@router.get("/cases/{case_id}/amend")
def amend_form(request: Request, space: Space, account: Coordinator, case_id: CaseId) -> Response:
    """The form of a drafted application, to change it before it is submitted."""
    return _amend_form(request, space, account, case_id)


def _amended(tx: Tx, space: Workspace, account: Account, case_id: int, form: dict[str, str]) -> Any:
    visible(tx, case_id, account.actor)
    project = load_project_of(tx, case_id, lock=True)
    if project.id != case_id:
        raise NotFound(f"case {case_id} is a mobility; amend its application {project.id}")
    doc = amendment.document_of(
        form,
        project=project,
        applicant=amendment.applicant_of(tx, project),
        partners=amendment.partners_of(tx, case_id),
    )
    return amend(
        tx,
        case_id,
        doc,
        actor=account.actor,
        clock=space.clock(),
        staff_email=space.settings.staff_email,
        expected_version=number_of(form, "if_version"),
    )


@router.post("/cases/{case_id}/amend")
def amend_posted(
    request: Request, space: Space, account: Coordinator, case_id: CaseId, form: Posted
) -> Response:
    """Replace the drafted application's content with the form's; the history says what
    changed."""
    try:
        with space.db.transaction() as tx:
            done = _amended(tx, space, account, case_id, form)
    except NotFound:
        raise
    except VetproError as exc:
        said = " ".join(str(exc).split())
        return _amend_form(
            request, space, account, case_id, posted=form, error=said, status=exc.http_status
        )
    flash(
        request,
        f"Application {case_id} amended (version {done['version']}): "
        f"{len(done['changes'])} change(s). Submit it when it is ready.",
    )
    return RedirectResponse(f"/cases/{case_id}", 303)


@router.get("/applications/new")
def upload_form(request: Request, account: Person) -> Response:
    """The form to upload an application document."""
    return render(request, "upload.html", title="Upload an application", error=None)


def _file(tx: Tx, space: Workspace, account: Account, doc: ApplicationDoc, name: str) -> Imported:
    """File a document as a draft; a coordinator files only their own organisation's."""
    if account.role == "coordinator":
        own = tx.scalar(
            "SELECT name FROM organisation WHERE id = :id", {"id": account.organisation_id}
        )
        if doc.applicant.name != own:
            raise NotAllowed(
                f"applicant.name: you coordinate for {own}; you may upload only its applications"
            )
    return file_document(tx, doc, clock=space.clock(), source=name)


def upload(space: Workspace, account: Account, data: bytes, name: str) -> Imported:
    """Check and file an uploaded application document (the page and the API share this)."""
    doc = parse(data, source=name)
    with space.db.transaction() as tx:
        return _file(tx, space, account, doc, name)


@router.post("/applications")
def upload_posted(
    request: Request,
    space: Space,
    account: Person,
    document: Annotated[UploadFile, File()],
) -> Response:
    """File an uploaded application document as a drafted application."""
    name = (document.filename or "upload.json")[:100]
    try:
        done = upload(space, account, document.file.read(MAX_BYTES + 1), name)
    except VetproError as exc:
        said = " ".join(str(exc).split())
        return render(
            request,
            "upload.html",
            status=exc.http_status,
            title="Upload an application",
            error=said,
        )
    flash(
        request,
        f"Application {done.application} filed as a draft, with mobilities "
        f"{', '.join(map(str, done.mobilities))}.",
    )
    return RedirectResponse(f"/cases/{done.application}", 303)
