"""A local SMTP server that keeps what it receives: for the demo, for trying the system, for tests.

It accepts every message (unless told to refuse some, to rehearse faults), keeps it in memory and,
when given a folder, in a Maildir there too. It never relays anything anywhere.
"""

from __future__ import annotations

import logging
import mailbox
import signal
import socket
import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from functools import cached_property
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from ..errors import InvalidInput


@dataclass(frozen=True)
class Received:
    """One message as the sink accepted it: the envelope and the bytes after DATA."""

    sender: str
    recipients: tuple[str, ...]
    raw: bytes
    received_at: datetime

    @cached_property
    def message(self) -> EmailMessage:
        """The message parsed with the modern email policy and LF line ends, on first use."""
        return BytesParser(policy=default_policy).parsebytes(_unix_lines(self.raw))


class _Handler:
    """The aiosmtpd handler: refuses what the sink was told to refuse, hands the rest over."""

    def __init__(
        self,
        *,
        accept: Callable[[Received], None],
        reject_recipients: Collection[str],
        data_replies: Iterable[str | None],
    ) -> None:
        self._accept = accept
        self._rejected = {address.casefold() for address in reject_recipients}
        self._data_replies = iter(data_replies)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address.casefold() in self._rejected:
            return f"550 5.1.1 <{address}>: no such user here"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = next(self._data_replies, None)
        if reply is not None:
            return reply
        received = Received(
            sender=envelope.mail_from or "",
            recipients=tuple(envelope.rcpt_tos),
            raw=bytes(envelope.original_content or b""),
            received_at=datetime.now().astimezone(),
        )
        try:
            self._accept(received)
        except OSError as exc:
            # A full disk or an unwritable folder is the sink's trouble, not the sender's: a
            # temporary failure lets the sender try again later instead of giving up on the mail.
            return f"451 4.3.0 the sink could not store the message: {exc.strerror or exc}"
        return "250 OK"


class Sink:
    """A local SMTP server on a thread of its own; use it as a context manager."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        maildir: Path | None = None,
        reject_recipients: Collection[str] = (),
        data_replies: Iterable[str | None] = (),
        on_message: Callable[[Received], None] | None = None,
    ) -> None:
        """Port 0 picks a free port; each `data_replies` item answers one DATA (None accepts it)."""
        self.host = host
        self.port = port
        self.maildir = maildir
        self._on_message = on_message
        self._handler = _Handler(
            accept=self._store,
            reject_recipients=reject_recipients,
            data_replies=data_replies,
        )
        self._received: list[Received] = []
        self._arrived = threading.Condition()
        self._mailbox: mailbox.Maildir | None = None
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[Received]:
        """A copy of every message accepted so far, oldest first."""
        with self._arrived:
            return list(self._received)

    def start(self) -> Sink:
        """Listen on the host and port (the same port again after a stop); return self."""
        if self._controller is not None:
            return self
        _quiet_aiosmtpd()
        if self.maildir is not None:
            self._mailbox = _open_maildir(self.maildir)
        self.port = _free_port(self.host, self.port)
        # A fixed server name: without one, aiosmtpd asks DNS for this machine's name on start.
        controller = Controller(
            self._handler, hostname=self.host, port=self.port, server_hostname="localhost"
        )
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        """Stop listening and end the server's thread; what was received stays readable."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until at least `count` messages arrived, then return them all."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._received) >= count, timeout):
                raise TimeoutError(
                    f"the mail sink on {self.host}:{self.port} received "
                    f"{len(self._received)} message(s) in {timeout:g} s; expected {count}"
                )
            return list(self._received)

    def _store(self, received: Received) -> None:
        if self._mailbox is not None:
            self._mailbox.add(_with_envelope(received))
        with self._arrived:
            self._received.append(received)
            self._arrived.notify_all()
        if self._on_message is not None:
            self._on_message(received)


def serve(
    *,
    host: str,
    port: int,
    maildir: Path | None,
    on_message: Callable[[Received], None] | None = None,
    on_ready: Callable[[Sink], None] | None = None,
) -> None:
    """Run a sink in the foreground until Ctrl-C or SIGTERM, then return quietly."""
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous: dict[signal.Signals, Any] = {}
    # Signal handlers can only be set from the main thread; elsewhere Ctrl-C is the caller's.
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, stop)
    try:
        with Sink(host=host, port=port, maildir=maildir, on_message=on_message) as sink:
            if on_ready is not None:
                on_ready(sink)
            stopping.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _free_port(host: str, port: int) -> int:
    """The port itself when it can be bound now, or a free one for port 0; else say why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # The same option the server uses, so a port left in TIME_WAIT counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InvalidInput(
                f"the mail sink cannot listen on {host}:{port} ({exc.strerror or exc}); "
                "choose another port, or 0 for any free one"
            ) from None
        return int(probe.getsockname()[1])


def _open_maildir(folder: Path) -> mailbox.Maildir:
    """The Maildir at the folder, created with its parents when missing; else say why not."""
    try:
        for sub in ("tmp", "new", "cur"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        box = mailbox.Maildir(folder, create=False)
    except OSError as exc:
        raise InvalidInput(
            f"the mail sink cannot keep mail in {folder} ({exc.strerror or exc}); "
            "choose a folder it can write"
        ) from None
    return box


def _quiet_aiosmtpd() -> None:
    """Keep aiosmtpd's per-connection chatter off the terminal; its errors still show."""
    log = logging.getLogger("mail.log")
    if log.level == logging.NOTSET:
        log.setLevel(logging.ERROR)


def _with_envelope(received: Received) -> bytes:
    """The message as a mail server files it: Return-Path and Delivered-To in front, LF endings."""
    lines = [f"Return-Path: <{received.sender}>"]
    lines += [f"Delivered-To: {recipient}" for recipient in received.recipients]
    return "\n".join(lines).encode() + b"\n" + _unix_lines(received.raw)


def _unix_lines(raw: bytes) -> bytes:
    """SMTP carries CRLF line ends; local files and Python strings use LF."""
    return raw.replace(b"\r\n", b"\n")
