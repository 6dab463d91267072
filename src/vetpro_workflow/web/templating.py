"""Rendering the workspace's pages: Jinja2 templates on the server, escaped, strict."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from ..states.calendar import BRUSSELS
from .forms import fact_label, trigger_label
from .security import csrf_token, take_flash


def _when(value: Any) -> str:
    """A moment as people read it: its Brussels date and time."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.astimezone(BRUSSELS).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return "" if value is None else str(value)


def _shown(value: Any) -> str:
    """A recorded value as people read it."""
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if value is None:
        return "-"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def environment() -> Environment:
    """The templates of the pages, with their filters."""
    env = Environment(
        loader=PackageLoader("vetpro_workflow.web", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters |= {
        "when": _when,
        "shown": _shown,
        "trigger_label": trigger_label,
        "fact_label": fact_label,
        "words": lambda text: str(text).replace("_", " "),
    }
    return env


def render(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """A page: the template with the person, their CSRF token and any message left for them."""
    space = request.app.state.workspace
    session = "session" in request.scope  # not for an error caught outside the middleware
    page = space.pages.get_template(template).render(
        request=request,
        path=request.url.path,
        account=getattr(request.state, "account", None),
        csrf=csrf_token(request) if session else "",
        flash=take_flash(request) if session else None,
        **context,
    )
    return HTMLResponse(page, status_code=status)
