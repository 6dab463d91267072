"""Email addresses: what the agency accepts as one, checked strictly wherever one enters.

Plain ASCII `local@domain.tld` only: no display name, no control or bidirectional-formatting
characters, no quoting. Whatever passes here can be given to any SMTP server as it is.
"""

from __future__ import annotations

import re

_LOCAL = r"[A-Za-z0-9!#$%&*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"{_LOCAL}@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}")
MAX_LENGTH = 254


def is_address(text: str) -> bool:
    """Whether a text is a plain email address (local@domain.tld), with nothing around it."""
    return (
        len(text) <= MAX_LENGTH
        and len(text.partition("@")[0]) <= 64
        and _ADDRESS.fullmatch(text) is not None
    )


def address_problem(text: object) -> str | None:
    """Why a value is not an acceptable address (None when it is one)."""
    if not isinstance(text, str):
        return "is not text"
    if not is_address(text):
        return (
            f"{text[:80]!r} is not a valid email address "
            "(plain ASCII local@domain.tld, no spaces or control characters)"
        )
    return None


def normalise(text: str) -> str:
    """The form an address is stored in: trimmed and lower-case."""
    return text.strip().lower()
