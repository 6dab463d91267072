"""Render a notification as an email: one Jinja2 template per kind, a text and an HTML part.

Pure: no I/O except loading the packaged templates, through two environments built once on first
use over the same files (text: not escaped; HTML: autoescaped), both with `StrictUndefined` so a
missing value fails in tests, not in an inbox. Sending is someone else's job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Template, pass_eval_context
from jinja2.nodes import EvalContext
from markupsafe import Markup, escape

from .mime import alternative, parse_message

# Every kind that has a template `<kind>.j2` extending `layout.j2`.
NOTIFICATION_KINDS: tuple[str, ...] = (
    # moves of an application (to the coordinator)
    "receipt",
    "changes_requested",
    "decision_approved",
    "decision_rejected",
    "withdrawal_confirmed",
    "grant_agreement_recorded",
    "final_report_due",
    "closure",
    # moves of a mobility
    "departure_confirmation",
    "return_recorded",
    "stay_interrupted",
    "participant_report_request",
    "mobility_cancelled",
    # deadline reminders of the daily sweep
    "call_deadline_reminder",
    "resubmission_reminder",
    "grant_agreement_to_sign",
    "training_agreement_reminder",
    "preparation_reminder",
    "participant_report_reminder",
    "validation_overdue",
    "final_report_reminder",
    # the daily mail to NA staff
    "staff_digest",
)

SUBJECT_MAX = 200
# Context values that may span lines; every other string is one line.
MULTILINE_KEYS = frozenset({"note"})


_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_CONTROLS_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n{3,}")


def one_line(value: object, *, limit: int | None = None) -> str:
    """A value made safe for a header: control characters and runs of space become one space."""
    text = _SPACES.sub(" ", _CONTROLS.sub(" ", str(value))).strip()
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _lines(value: str) -> str:
    """A multi-line value with its line breaks kept as \\n and every other control made a space."""
    unified = value.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROLS_BUT_NEWLINE.sub(" ", unified).strip()


def _clean(value: Any, key: str | None = None) -> Any:
    """A context value with no control character where a template could print it."""
    if isinstance(value, str):
        return _lines(value) if key in MULTILINE_KEYS else one_line(value)
    if isinstance(value, Mapping):
        return {k: _clean(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def in_days(days: int) -> str:
    """A number of days from today said in words: 'in 7 days', 'today', '3 days ago'."""
    match days:
        case 0:
            return "today"
        case 1:
            return "tomorrow"
        case -1:
            return "yesterday"
    return f"in {days} days" if days > 0 else f"{-days} days ago"


def due(due_date: str, days_left: int) -> str:
    """A deadline said in words: 'is due on D (in 7 days)', 'is due today', 'was due on D'."""
    if days_left > 0:
        return f"is due on {due_date} ({in_days(days_left)})"
    if days_left == 0:
        return f"is due today, {due_date}"
    return f"was due on {due_date} ({in_days(days_left)})"


@pass_eval_context
def paragraphs(eval_ctx: EvalContext, value: str) -> str:
    """Prose split on blank lines, each paragraph on one line (text) or in a <p> (HTML)."""
    parts = [" ".join(p.split()) for p in re.split(r"\n\s*\n", str(value)) if p.strip()]
    if not eval_ctx.autoescape:
        return "\n\n".join(parts)
    if not isinstance(value, Markup):
        parts = [str(escape(p)) for p in parts]
    # Each part is escaped markup now (a block renders autoescaped), so it is safe to wrap.
    return Markup("\n").join(Markup("<p>{}</p>").format(Markup(p)) for p in parts)


@cache
def _environment(html: bool) -> Environment:
    """The text or the HTML environment over the packaged templates, built once."""
    env = Environment(
        loader=PackageLoader("vetpro_workflow", "notifications/templates"),
        undefined=StrictUndefined,
        autoescape=html,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,  # packaged templates never change under a running process
    )
    env.filters["in_days"] = in_days
    env.filters["due"] = due
    env.filters["paragraphs"] = paragraphs
    return env


def _template(kind: str, *, html: bool) -> Template:
    """The template of a notification kind."""
    if kind not in NOTIFICATION_KINDS:
        known = ", ".join(NOTIFICATION_KINDS)
        raise ValueError(f"unknown notification kind {kind!r}; known kinds: {known}")
    return _environment(html).get_template(f"{kind}.j2")


def _case_url(web_url: str | None, case_id: object) -> str | None:
    if not web_url or not isinstance(case_id, int):
        return None
    return f"{web_url.rstrip('/')}/cases/{case_id}"


def _tidy_text(text: str) -> str:
    """Plain text without trailing spaces or runs of blank lines."""
    lines = "\n".join(line.rstrip() for line in text.strip().splitlines())
    return _BLANK_LINES.sub("\n\n", lines) + "\n"


def _subject(kind: str, values: Mapping[str, Any]) -> str:
    """The subject block of a kind: one trimmed line of at most SUBJECT_MAX characters."""
    template = _template(kind, html=False)
    block = template.blocks["subject"](template.new_context(dict(values)))
    return one_line("".join(block), limit=SUBJECT_MAX)


@dataclass(frozen=True)
class Rendered:
    """A notification in words: its subject, its text and its HTML."""

    subject: str
    text: str
    html: str


def words(
    kind: str, context: Mapping[str, Any], *, agency_email: str, web_url: str | None = None
) -> Rendered:
    """The subject, text and HTML of a notification. With `web_url`, the next step links to
    the page of the case where it is taken."""
    values = dict(_clean(context)) | {
        "agency_email": one_line(agency_email),
        "case_url": _case_url(web_url, context.get("case_id")),
        "web_url": web_url.rstrip("/") if web_url else None,
    }
    text = _template(kind, html=False).render(values | {"html": False})
    html = _template(kind, html=True).render(values | {"html": True})
    return Rendered(_subject(kind, values | {"html": False}), _tidy_text(text), html.strip() + "\n")


def render_bytes(
    kind: str,
    context: Mapping[str, Any],
    *,
    sender: str,
    recipient: str,
    agency_email: str,
    message_id: str,
    cc: str | None = None,
    web_url: str | None = None,
) -> bytes:
    """The email of a notification as it goes on the wire: text/plain then text/html."""
    said = words(kind, context, agency_email=agency_email, web_url=web_url)
    headers = [
        ("From", one_line(sender)),
        ("To", one_line(recipient)),
        *([("Cc", one_line(cc))] if cc else []),
        ("Reply-To", one_line(agency_email)),
        ("Subject", said.subject),
        ("Message-ID", one_line(message_id)),
        ("Auto-Submitted", "auto-generated"),  # RFC 3834: no out-of-office replies to a robot
    ]
    return alternative(headers, said.text, said.html)


def render(kind: str, context: Mapping[str, Any], **addressed: Any) -> EmailMessage:
    """The email of a notification, parsed back from the bytes that would be sent."""
    return parse_message(render_bytes(kind, context, **addressed))
