"""Sending pending mail from the outbox with aiosmtplib, after the moves that wrote it committed.

Each batch of claimed rows is spread over a few SMTP connections (bounded concurrency), each
reused for all of its rows. A row is marked sent the moment the server accepts it. Connection
errors and 4xx replies are retried with exponential back-off; a 5xx reply, an invalid address or
a message that cannot be rendered makes the row undeliverable, which staff see. The only window
for a duplicate is between the server's acceptance and our commit of it (a crash right then);
the stable Message-ID lets the receiving side recognise such a copy.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import asdict, dataclass
from datetime import UTC, timedelta
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

import aiosmtplib
from sqlalchemy import Connection, Engine

from ..addresses import is_address
from ..clock import Clock
from ..config import Settings
from ..db import reading, writer
from .outbox import (
    Letter,
    claim,
    count_pending,
    holder,
    letter_of,
    mark_failed,
    mark_sent,
    release_dead_claims,
)
from .render import render


@dataclass
class Tally:
    """What one run of the sender did."""

    sent: int = 0
    retrying: int = 0
    undeliverable: int = 0
    pending: int = 0

    def as_json(self) -> dict[str, int]:
        return asdict(self)


def message_id(letter: Any, settings: Settings) -> str:
    """A Message-ID that is the same every time the same row is sent, and only for that row.

    It digests the row's key (unique in this store) with the time it was enqueued (so two stores,
    or one rebuilt from scratch, never give two mails the same id); short, so it never folds.
    """
    stamp = letter.created_at.astimezone(UTC).isoformat()
    digest = hashlib.sha256(f"{letter.key}|{stamp}".encode()).hexdigest()[:24]
    # The sender may carry a display name: 'VETPRO <vetpro@agency.example>'.
    domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "vetpro.invalid"
    return f"<vetpro.{digest}@{domain}>"


def compose(letter: Letter, settings: Settings) -> EmailMessage:
    """The message for a row: rendered from its template and context."""
    return render(
        letter.kind,
        letter.context,
        sender=settings.mail_from,
        recipient=letter.recipient,
        cc=letter.cc,
        agency_email=settings.staff_email,
        message_id=message_id(letter, settings),
    )


class _Courier:
    """Sends letters over one reused SMTP connection and settles each row as it goes."""

    def __init__(self, engine: Engine, settings: Settings, clock: Clock, tally: Tally) -> None:
        self.engine, self.settings, self.clock, self.tally = engine, settings, clock, tally
        self.smtp: aiosmtplib.SMTP | None = None
        self.connection: Connection | None = None

    def _db(self) -> Connection:
        """This courier's database connection: each row is settled and committed on it."""
        if self.connection is None:
            self.connection = writer(self.engine)
        return self.connection

    async def _connect(self) -> aiosmtplib.SMTP:
        if self.smtp is None or not self.smtp.is_connected:
            s = self.settings
            smtp = aiosmtplib.SMTP(
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=s.smtp_password,
                use_tls=s.smtp_tls == "tls",
                start_tls=s.smtp_tls == "starttls",
                timeout=s.smtp_timeout,
            )
            await smtp.connect()
            self.smtp = smtp
        return self.smtp

    def _fail(self, letter: Letter, error: str, *, permanent: bool) -> None:
        outcome = mark_failed(
            self._db(),
            letter,
            now=self.clock.now,
            error=error,
            permanent=permanent,
            max_attempts=self.settings.mail_max_attempts,
            retry_after=timedelta(seconds=self.settings.mail_retry_seconds),
        )
        setattr(self.tally, outcome, getattr(self.tally, outcome) + 1)

    async def deliver(self, letters: list[Letter]) -> None:
        try:
            for letter in letters:
                await self._deliver(letter)
        finally:
            if self.connection is not None:
                self.connection.close()
            if self.smtp is not None and self.smtp.is_connected:
                try:
                    await self.smtp.quit()
                except aiosmtplib.SMTPException:
                    self.smtp.close()

    async def _deliver(self, letter: Letter) -> None:
        addresses = [letter.recipient, *([letter.cc] if letter.cc else [])]
        bad = [a for a in addresses if not is_address(a)]
        if bad:
            self._fail(letter, f"invalid address {bad[0]!r}", permanent=True)
            return
        try:
            message = compose(letter, self.settings)
        except Exception as exc:  # a template bug must reach staff, not stop the batch
            self._fail(letter, f"cannot render {letter.kind}: {exc}", permanent=True)
            return
        try:
            smtp = await self._connect()
            refused, _ = await smtp.send_message(message, recipients=addresses)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            self._fail(letter, f"refused {detail}", permanent=any(c >= 500 for c in codes))
        except aiosmtplib.SMTPResponseException as exc:
            self._fail(letter, f"{exc.code} {exc.message}", permanent=exc.code >= 500)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            if self.smtp is not None:
                self.smtp.close()
            self.smtp = None  # reconnect for the next letter
            self._fail(letter, f"connection: {exc}".strip(), permanent=False)
        else:
            detail = "; ".join(f"{a}: {r.code} {r.message}" for a, r in refused.items())
            if letter.recipient in refused:  # only the copy went out: the reader did not get it
                code = refused[letter.recipient].code
                self._fail(letter, f"refused {detail} (the copy was sent)", permanent=code >= 500)
                return
            mark_sent(self._db(), letter, now=self.clock.now, note=detail or None)
            self.tally.sent += 1


async def drain(
    engine: Engine, settings: Settings, clock: Clock, *, limit: int | None = None
) -> Tally:
    """Send every due row (or at most `limit`), batch by batch; how many went where."""
    release_dead_claims(engine)
    tally, by = Tally(), holder()
    done, started = 0, time.monotonic()
    while limit is None or done < limit:
        size = (
            settings.mail_batch_size
            if limit is None
            else min(settings.mail_batch_size, limit - done)
        )
        elapsed = timedelta(seconds=time.monotonic() - started)
        letters = claim(engine, now=clock.now, size=size, by=by, elapsed=elapsed)
        if not letters:
            break
        done += len(letters)
        lanes = min(settings.mail_concurrency, len(letters))
        await asyncio.gather(
            *(
                _Courier(engine, settings, clock, tally).deliver(letters[lane::lanes])
                for lane in range(lanes)
            )
        )
    with reading(engine) as session:
        tally.pending = count_pending(session)
    return tally


def send_pending(
    engine: Engine, settings: Settings, clock: Clock, *, limit: int | None = None
) -> Tally:
    """Send the due mail now (the synchronous entry point of the CLI and the flows)."""
    return asyncio.run(drain(engine, settings, clock, limit=limit))


def preview(row: Any, settings: Settings) -> EmailMessage:
    """The message an outbox row sends, rendered as it would be."""
    return compose(letter_of(row), settings)


def subject_line(row: Any, settings: Settings) -> str:
    """The subject an outbox row's message has (or why it cannot be rendered)."""
    try:
        return str(preview(row, settings)["Subject"])
    except Exception as exc:  # shown in listings: staff must see the broken row, not a crash
        return f"(cannot render {row.kind}: {exc})"
