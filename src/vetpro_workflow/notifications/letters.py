"""The message an outbox row sends: rendered from its template and context, with a
Message-ID that is the same every time the same row is sent."""

from __future__ import annotations

import hashlib
from datetime import UTC
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

from ..config import Settings
from .mime import parse_message
from .render import render_bytes


def message_id(letter: Any, mail_from: str) -> str:
    """A Message-ID that is the same every time the same row is sent, and only for that row.

    It digests the row's key (unique in this store) with the time it was enqueued (so two stores,
    or one rebuilt from scratch, never give two mails the same id); short, so it never folds.
    """
    created = letter["created_at"] if isinstance(letter, dict) else letter.created_at
    key = letter["key"] if isinstance(letter, dict) else letter.key
    digest = hashlib.sha256(f"{key}|{created.astimezone(UTC).isoformat()}".encode()).hexdigest()
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "vetpro.invalid"
    return f"<vetpro.{digest[:24]}@{domain}>"


def compose_bytes(letter: Any, settings: Settings) -> bytes:
    """The message of an outbox row (a Letter or a stored row) as it goes on the wire."""
    get = letter.get if isinstance(letter, dict) else lambda name: getattr(letter, name)
    return render_bytes(
        get("kind"),
        get("context"),
        sender=settings.mail_from,
        recipient=get("header_to") or get("recipient"),
        cc=get("cc"),
        agency_email=settings.staff_email,
        message_id=message_id(letter, settings.mail_from),
        web_url=settings.web_url,
    )


def compose(letter: Any, settings: Settings) -> EmailMessage:
    """The message of an outbox row, as a message object (for previews and listings)."""
    return parse_message(compose_bytes(letter, settings))


def subject_line(row: dict[str, Any], settings: Settings) -> str:
    """The subject an outbox row's message has (or why it cannot be rendered)."""
    try:
        return str(compose(row, settings)["Subject"])
    except Exception as exc:  # shown in listings: staff must see the broken row, not a crash
        return f"(cannot render {row['kind']}: {exc})"
