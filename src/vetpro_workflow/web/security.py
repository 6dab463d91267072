"""Who is asking: the signed-in person of a page (session cookie), the owner of an API token,
the CSRF token of every form, and the security headers of every response.

The session cookie is signed (itsdangerous, by Starlette's SessionMiddleware) and holds only a
random session id, whose digest the store keeps: signing out, or disabling the person, ends the
session on every web process. A forged or expired cookie reads as no session at all.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..clock import real_now
from ..errors import NotAllowed, VetproError
from ..store.auth import Account, session_account, token_account
from .workspace import Space

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeaders:
    """Adds the security headers to every response (and HSTS when served over https); pages
    that show a person's cases are not kept in shared caches."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.headers = list(HEADERS)
        if https:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name for name, _ in headers}
                headers += [(k, v) for k, v in self.headers if k not in names]
                if not static and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class SignInRequired(Exception):
    """The request needs a signed-in person and has none: pages redirect to the sign-in form."""


class Unauthorized(VetproError):
    """An API request without a valid personal token."""

    http_status = 401


class CsrfRefused(VetproError):
    """A form posted without the token of the page it came from."""

    http_status = 403


def csrf_token(request: Request) -> str:
    """The CSRF token of a browser's session (made on first use)."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def csrf_protect(request: Request) -> None:
    """Refuse a posted form whose CSRF token is not the session's."""
    if request.method not in UNSAFE:
        return
    form = await request.form()
    given = form.get("csrf")
    expected = request.session.get("csrf")
    if (
        not isinstance(given, str)
        or not isinstance(expected, str)
        or not secrets.compare_digest(given.encode(), expected.encode())
    ):
        raise CsrfRefused(
            "this form was not sent from a page of this workspace, or the page is too old; "
            "reload the page and try again"
        )


def signed_in(request: Request, space: Space) -> Account:
    """The person signed in on this browser; none: to the sign-in form."""
    session_id = request.session.get("sid")
    account = None
    if isinstance(session_id, str):
        with space.db.transaction(write=False) as tx:
            account = session_account(tx, session_id, now=real_now())
    if account is None:
        request.session.pop("sid", None)
        raise SignInRequired()
    request.state.account = account
    return account


Person = Annotated[Account, Depends(signed_in)]


def staff_member(account: Person) -> Account:
    """The signed-in person, who must be NA staff."""
    if account.role != "staff":
        raise NotAllowed("this page is for NA staff")
    return account


def coordinator(account: Person) -> Account:
    """The signed-in person, who must be a coordinator."""
    if account.role != "coordinator":
        raise NotAllowed("this page is for coordinators")
    return account


Staff = Annotated[Account, Depends(staff_member)]
Coordinator = Annotated[Account, Depends(coordinator)]
bearer = HTTPBearer(auto_error=False, description="A personal token: vetpro user token EMAIL")


def token_owner(
    space: Space,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Account:
    """The owner of the request's personal API token."""
    account = None
    if credentials is not None:
        with space.db.transaction(write=False) as tx:
            account = token_account(tx, credentials.credentials)
    if account is None:
        raise Unauthorized(
            "a valid personal token is needed: 'Authorization: Bearer TOKEN' "
            "(the operator makes one with 'vetpro user token EMAIL')"
        )
    return account


Client = Annotated[Account, Depends(token_owner)]


def flash(request: Request, text: str) -> None:
    """A message shown once, on the next page this browser opens."""
    request.session["flash"] = text[:500]


def take_flash(request: Request) -> Any:
    """The message left for this page, if any."""
    return request.session.pop("flash", None)
