"""What every request of the workspace shares: the settings, the store, the password hasher,
the business clock and the page templates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from argon2 import PasswordHasher
from fastapi import Depends, Request
from jinja2 import Environment

from ..clock import Clock
from ..config import Settings
from ..store.database import Database


@dataclass(frozen=True)
class Workspace:
    """One web application's collaborators, built once by `create_app`."""

    settings: Settings
    db: Database
    hasher: PasswordHasher
    pages: Environment

    def clock(self) -> Clock:
        """The business clock: VETPRO_TODAY when rehearsing, else the real one."""
        today = self.settings.today
        return Clock.on(today) if today is not None else Clock.real()

    @property
    def secure(self) -> bool:
        """Whether people reach the workspace over https (cookies are then Secure only)."""
        return self.settings.web_url.startswith("https://")


def workspace(request: Request) -> Workspace:
    """The workspace of the application serving a request."""
    found: Any = request.app.state.workspace
    return found  # type: ignore[no-any-return]


Space = Annotated[Workspace, Depends(workspace)]
