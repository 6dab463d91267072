"""Render a notification as an email: one Jinja2 template per kind, a text and an HTML part.

Pure: no I/O except loading the packaged templates, through two environments built once on first
use over the same files (text: not escaped; HTML: autoescaped), both with `StrictUndefined` so a
missing value fails in tests, not in an inbox. Sending is someone else's job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import formatdate
from functools import cache, lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Template, pass_eval_context
from jinja2.nodes import EvalContext
from markupsafe import Markup, escape

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
    "participant_report_request",
    "mobility_cancelled",
    # deadline reminders of the daily sweep
    "call_deadline_reminder",
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


class _HeaderClasses(HeaderRegistry):
    """The standard header registry, building each header class once rather than per header."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        if key not in self._made:
            self._made[key] = super().__getitem__(name)
        return self._made[key]


class _CachingPolicy(EmailPolicy):
    """The default policy, parsing each one-line header value once: parsed headers are immutable,
    and parsing them was most of the cost of a message (the same To, From, Subject recur)."""

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        if isinstance(value, str) and "\n" not in value and "\r" not in value:
            return _parsed_header(self, name, value)
        return super().header_store_parse(name, value)

    def fold_binary(self, name: str, value: Any) -> bytes:
        # Folding walks the parse tree again; the same header folds the same way under the same
        # settings (the sender flattens with a clone of this policy, so the settings are the key).
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            return super().fold_binary(name, value)
        key = (self.linesep, self.utf8, self.max_line_length, self.cte_type, name, str(value))
        folded = _FOLDED.get(key)
        if folded is None:
            if len(_FOLDED) >= 8192:
                _FOLDED.clear()
            folded = _FOLDED[key] = super().fold_binary(name, value)
        return folded


_FOLDED: dict[tuple[Any, ...], bytes] = {}


@lru_cache(maxsize=8192)
def _parsed_header(policy: EmailPolicy, name: str, value: str) -> tuple[str, Any]:
    return EmailPolicy.header_store_parse(policy, name, value)


# The default policy; the stdlib registry makes a new class for every header it parses, which was
# a third of the cost of a message.
POLICY = _CachingPolicy(header_factory=_HeaderClasses())

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


def _tidy_text(text: str) -> str:
    """Plain text without trailing spaces or runs of blank lines."""
    lines = "\n".join(line.rstrip() for line in text.strip().splitlines())
    return _BLANK_LINES.sub("\n\n", lines) + "\n"


def _subject(kind: str, values: Mapping[str, Any]) -> str:
    """The subject block of a kind: one trimmed line of at most SUBJECT_MAX characters."""
    template = _template(kind, html=False)
    block = template.blocks["subject"](template.new_context(dict(values)))
    return one_line("".join(block), limit=SUBJECT_MAX)


def render(
    kind: str,
    context: Mapping[str, Any],
    *,
    sender: str,
    recipient: str,
    agency_email: str,
    message_id: str,
    cc: str | None = None,
) -> EmailMessage:
    """The email of a notification: text/plain then text/html, with safe one-line headers."""
    values = dict(_clean(context)) | {"agency_email": one_line(agency_email)}
    text = _template(kind, html=False).render(values | {"html": False})
    html = _template(kind, html=True).render(values | {"html": True})

    msg = EmailMessage(policy=POLICY)
    msg["Subject"] = _subject(kind, values | {"html": False})
    msg["From"] = one_line(sender)
    msg["To"] = one_line(recipient)
    if cc:
        msg["Cc"] = one_line(cc)
    msg["Reply-To"] = one_line(agency_email)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = one_line(message_id)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies to a robot
    msg.set_content(_tidy_text(text))
    msg.add_alternative(html.strip() + "\n", subtype="html")
    return msg
