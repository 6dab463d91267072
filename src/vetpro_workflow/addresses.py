"""Email addresses: what the agency accepts as one."""

from __future__ import annotations

import re

_EMAIL = re.compile(r"^[^@\s<>,;\"'()\[\]\\]+@[^@\s<>,;\"'()\[\]\\]+\.[A-Za-z]{2,}$")


def is_address(text: str) -> bool:
    """Whether a text is a plain email address (local@domain.tld), with nothing around it."""
    return len(text) <= 254 and _EMAIL.match(text) is not None
