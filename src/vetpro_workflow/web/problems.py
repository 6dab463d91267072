"""The one place where errors become HTTP answers: problem JSON (RFC 9457) under /api, an
error page elsewhere, and a redirect to the sign-in form for a page that needs a person.

Every `VetproError` carries its status (`http_status`): 400 bad request, 401 no valid token,
403 not allowed, 404 not found (also a coordinator naming another organisation's case),
409 refused or changed meanwhile, 422 invalid input, 429 too many sign-ins.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import VetproError
from ..states.cascade import OutOfScope
from ..store.database import StoreUnavailable
from ..store.listing import HIDDEN
from .security import SignInRequired
from .templating import render

PROBLEM = "application/problem+json"
log = logging.getLogger(__name__)


def is_api(request: Request) -> bool:
    """Whether a request is for the JSON API (else: a page)."""
    return request.url.path.startswith("/api/")


def problem(request: Request, status: int, detail: str, **headers: str) -> Response:
    """The answer to a refused request: problem JSON for the API, an error page otherwise."""
    title = HTTPStatus(status).phrase
    if is_api(request):
        body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
        return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)
    response = render(request, "error.html", status=status, title=title, detail=detail)
    response.headers.update(headers)
    return response


def _vetpro(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, VetproError)
    if isinstance(exc, OutOfScope):
        return problem(request, 404, HIDDEN)
    if isinstance(exc, StoreUnavailable):  # not the user's doing: the store is down
        return problem(request, 503, "the store cannot be reached now; try again in a moment")
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 and is_api(request) else {}
    return problem(request, exc.http_status, " ".join(str(exc).split()), **headers)


def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    said = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        said.append(f"{where}: {error.get('msg', 'invalid')}")
    return problem(request, 422, "; ".join(said) or "the request is not valid")


def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404:
        detail = "there is no such page; the menu shows what there is"
    return problem(request, exc.status_code, detail, **(exc.headers or {}))


def _sign_in(request: Request, exc: Exception) -> Response:
    if is_api(request):
        return problem(request, 401, "sign in first", **{"WWW-Authenticate": "Bearer"})
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    if request.method != "GET":
        target = "/"
    return RedirectResponse(f"/sign-in?next={quote(target, safe='')}", status_code=303)


class Unexpected:
    """Answers an unexpected error with a 500 page or problem, logged, from inside the other
    middleware, so that the answer carries the security headers like every other (Starlette
    answers errors outside all middleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            log.exception("unexpected error answering %s %s", scope["method"], scope["path"])
            if started:  # half an answer went out: the connection can only be dropped
                raise
            detail = "something went wrong on our side; the error is logged"
            await problem(Request(scope), 500, detail)(scope, receive, send)


class HeadAsGet:
    """Answers HEAD as GET without the body (FastAPI's routes take GET only)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headless(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body"):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headless)


def install(app: FastAPI) -> None:
    """Register the error handlers of the workspace."""
    handlers: dict[Any, Any] = {
        VetproError: _vetpro,
        RequestValidationError: _validation,
        HTTPException: _http,
        SignInRequired: _sign_in,
    }
    for kind, handler in handlers.items():
        app.add_exception_handler(kind, handler)
    app.add_middleware(Unexpected)
