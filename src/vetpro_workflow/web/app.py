"""Building the web application: the pages, the JSON API, sessions, headers and error handlers.

`create_app(settings)` does the work; nothing happens at import time. Tests pass their own
settings, store and a cheap password hasher.
"""

from __future__ import annotations

import logging
import secrets
from importlib import resources

from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from .. import __version__
from ..config import Settings
from ..store.auth import SESSION_HOURS
from ..store.database import Database
from . import api, applications, calls, cases, dashboard, problems, signin
from .security import SecurityHeaders
from .templating import environment
from .workspace import Workspace

log = logging.getLogger(__name__)
DESCRIPTION = (
    "Cases (applications and mobilities) of the VETPRO workflow. Authenticate with a personal "
    "token: `Authorization: Bearer TOKEN` (the operator makes one with `vetpro user token "
    "EMAIL`). Refusals are problem JSON (RFC 9457)."
)


def create_app(
    settings: Settings,
    *,
    database: Database | None = None,
    hasher: PasswordHasher | None = None,
) -> FastAPI:
    """The workspace and API on a store (by default the one the settings name)."""
    secret = settings.secret_key
    if not secret:
        log.warning("VETPRO_SECRET_KEY is not set: sessions last as long as this process")
        secret = secrets.token_urlsafe(32)
    space = Workspace(
        settings=settings,
        db=database or Database(settings.database_url, pool_size=8),
        hasher=hasher or PasswordHasher(),
        pages=environment(),
    )
    app = FastAPI(
        title="VETPRO workflow",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        responses={400: {"description": "the request body cannot be read"}},
    )
    app.state.workspace = space
    for module in (signin, dashboard, cases, calls, applications, api):
        app.include_router(module.router)
    static = resources.files("vetpro_workflow.web").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    problems.install(app)
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie="vetpro_session",
        max_age=SESSION_HOURS * 3600,
        same_site="lax",
        https_only=space.secure,
    )
    app.add_middleware(SecurityHeaders, https=space.secure)
    app.add_middleware(problems.HeadAsGet)
    return app
