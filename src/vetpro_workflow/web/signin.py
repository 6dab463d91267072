"""Signing in and out of the workspace, and the home page that sends each person on."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from ..clock import real_now
from ..store.auth import SignInRefused, Throttled, end_session, sign_in
from .security import Person, csrf_protect, flash
from .templating import render
from .workspace import Space

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)


def local(target: str | None) -> str:
    """A path of this site to go on to after signing in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/")
def home(account: Person) -> Response:
    """Staff start on the dashboard, coordinators on their cases."""
    return RedirectResponse("/dashboard" if account.role == "staff" else "/cases", 303)


@router.get("/sign-in")
def sign_in_form(request: Request, next: str | None = None) -> Response:
    """The sign-in form."""
    return render(request, "sign_in.html", title="Sign in", next=local(next), email="", error=None)


@router.post("/sign-in")
def sign_in_posted(
    request: Request,
    space: Space,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Check the password; on success a new session (the old one, if any, is ended)."""
    address = request.client.host if request.client else "unknown"
    try:
        account, session_id = sign_in(
            space.db, email, password, address=address, now=real_now(), hasher=space.hasher
        )
    except (SignInRefused, Throttled) as exc:
        return render(
            request,
            "sign_in.html",
            status=exc.http_status,
            title="Sign in",
            next=local(next),
            email=email,
            error=str(exc),
        )
    old = request.session.get("sid")
    if isinstance(old, str):
        with space.db.transaction() as tx:
            end_session(tx, old)
    request.session.clear()  # a new session, with a new CSRF token
    request.session["sid"] = session_id
    request.state.account = account
    flash(request, f"Signed in as {account.email}.")
    return RedirectResponse(local(next), 303)


@router.post("/sign-out")
def sign_out(request: Request, space: Space) -> Response:
    """End this browser's session."""
    session_id = request.session.get("sid")
    if isinstance(session_id, str):
        with space.db.transaction() as tx:
            end_session(tx, session_id)
    request.session.clear()
    flash(request, "Signed out.")
    return RedirectResponse("/sign-in", 303)
