"""Writing a text-and-HTML email straight to bytes, as it goes on the wire.

The standard library's message objects parse every header value and generate the message by
walking a tree; for the few shapes of mail we send that was most of the cost of a message. Here
plain short ASCII headers are written as they are, others are folded (and encoded) by the email
package's own policy, once per distinct value; the bodies are quoted-printable UTF-8.
"""

from __future__ import annotations

import binascii
import hashlib
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate
from functools import lru_cache

_SMTP = policy.SMTP  # CRLF line ends, 78-character lines


@lru_cache(maxsize=4096)
def _encoded(name: str, value: str) -> bytes:
    """A header with non-ASCII text, encoded (RFC 2047) and folded by the email package."""
    parsed_name, parsed = _SMTP.header_store_parse(name, value)
    return _SMTP.fold_binary(parsed_name, parsed)


def _folded(name: str, value: str) -> bytes:
    """A long ASCII header folded at spaces into lines of at most 78 characters."""
    lines, line = [], f"{name}:"
    for word in value.split(" "):
        if len(line) + 1 + len(word) > 78 and line.strip() != f"{name}:":
            lines.append(line)
            line = ""
        line += f" {word}"
    lines.append(line)
    return "\r\n".join(lines).encode("ascii") + b"\r\n"


def header(name: str, value: str) -> bytes:
    """One header line (or folded lines), CRLF-terminated."""
    if not (value.isascii() and value.isprintable()):
        return _encoded(name, value)
    if len(name) + len(value) < 76:
        return f"{name}: {value}\r\n".encode("ascii")
    return _folded(name, value)


def _quoted_printable(text: str) -> bytes:
    """Text as quoted-printable UTF-8 lines ending in CRLF."""
    lines = text.replace("\r\n", "\n").split("\n")
    encoded = (binascii.b2a_qp(line.encode("utf-8"), istext=False) for line in lines)
    return b"\r\n".join(encoded)


def alternative(headers: list[tuple[str, str]], text: str, html: str) -> bytes:
    """A multipart/alternative message: the headers, a text part and an HTML part."""
    body_text, body_html = _quoted_printable(text), _quoted_printable(html)
    seed = hashlib.sha256(body_text + body_html).hexdigest()[:32]
    boundary = f"==vetpro-{seed}=="
    dash = b"--" + boundary.encode()
    part = (
        b'Content-Type: text/%s; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    )
    return b"".join(
        [
            *(header(name, value) for name, value in headers),
            header("Date", formatdate(localtime=False, usegmt=True)),
            b"MIME-Version: 1.0\r\n",
            header("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
            b"\r\n",
            dash,
            b"\r\n",
            part % b"plain",
            body_text,
            b"\r\n",
            dash,
            b"\r\n",
            part % b"html",
            body_html,
            b"\r\n",
            dash,
            b"--\r\n",
        ]
    )


def parse_message(raw: bytes) -> EmailMessage:
    """A message read back from its bytes (for previews and tests)."""
    # The wire's CRLF line ends become Python's LF, as a mail reader shows them.
    parsed = BytesParser(policy=policy.default).parsebytes(raw.replace(b"\r\n", b"\n"))
    assert isinstance(parsed, EmailMessage)
    return parsed
