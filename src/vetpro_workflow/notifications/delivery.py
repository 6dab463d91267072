"""Sending pending mail from the outbox with aiosmtplib, after the moves that wrote it committed.

A run claims batches of due rows and spreads each over a few SMTP connections, each reused for
all of its rows; a row is marked sent the moment the server accepts it, and only while this run
still holds it (the claim is renewed while the run works). What fails is told apart:
- the server cannot be reached, refuses our login or our sender, or says it is unavailable: the
  run stops with one clear error and leaves its rows pending, untried (`DeliveryError`);
- a recipient or a message is refused for now (4xx), or the connection drops mid-message: that
  row is retried later, with a doubling back-off;
- a recipient or a message is refused for good (5xx), an address is invalid, or the message
  cannot be rendered: that row becomes undeliverable, shown to staff, and the rest goes on.
The only window for a duplicate is between the server's acceptance and our commit of it (a
crash right then); the stable Message-ID lets the receiving side recognise such a copy.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

import aiosmtplib

from ..clock import real_now
from ..config import Settings
from ..errors import DeliveryError
from ..states.addresses import is_address
from ..store.database import Database
from . import outbox
from .letters import compose_bytes
from .outbox import Letter


@dataclass
class Tally:
    """What one run of the sender did, and what is left waiting."""

    sent: int = 0
    retrying: int = 0
    undeliverable: int = 0
    pending: int = 0
    due: int = 0
    next_attempt_at: datetime | None = None
    lost: int = 0  # rows another sender took over while this one was slow (not marked)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["next_attempt_at"] = self.next_attempt_at.isoformat() if self.next_attempt_at else None
        return out


class _Stop(Exception):
    """The server cannot be used for any message: stop the run."""


@dataclass
class _Run:
    db: Database
    settings: Settings
    by: str
    tally: Tally = field(default_factory=Tally)
    stopped: DeliveryError | None = None
    outstanding: int = 0  # rows claimed and not settled yet

    def settle_sent(self, letter: Letter, note: str | None) -> None:
        self.outstanding -= 1
        with self.db.transaction() as tx:
            if outbox.mark_sent(tx, letter, by=self.by, now=real_now(), note=note):
                self.tally.sent += 1
            else:
                self.tally.lost += 1

    def settle_failed(self, letter: Letter, error: str, *, permanent: bool) -> None:
        self.outstanding -= 1
        with self.db.transaction() as tx:
            outcome = outbox.mark_failed(
                tx,
                letter,
                by=self.by,
                now=real_now(),
                error=error,
                permanent=permanent,
                max_attempts=self.settings.mail_max_attempts,
                retry_after=timedelta(seconds=self.settings.mail_retry_seconds),
            )
        setattr(self.tally, outcome, getattr(self.tally, outcome) + 1)


def _server(settings: Settings) -> str:
    return f"the mail server {settings.smtp_host}:{settings.smtp_port}"


class _Courier:
    """Sends letters over one reused SMTP connection and settles each row as it goes."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.smtp: aiosmtplib.SMTP | None = None

    async def _connect(self) -> aiosmtplib.SMTP:
        if self.smtp is not None and self.smtp.is_connected:
            return self.smtp
        s = self.run.settings
        smtp = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            use_tls=s.smtp_tls == "tls",
            start_tls=s.smtp_tls == "starttls",
            timeout=s.smtp_timeout,
        )
        try:
            await smtp.connect()
            if s.smtp_username:
                await smtp.login(s.smtp_username, s.smtp_password or "")
        except aiosmtplib.SMTPAuthenticationError as exc:
            smtp.close()
            raise _Stop(
                f"{_server(s)} refused our login ({exc.code} {exc.message}); check "
                "VETPRO_SMTP_USERNAME and VETPRO_SMTP_PASSWORD"
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            smtp.close()
            raise _Stop(f"{_server(s)} refused us ({exc.code} {exc.message})") from None
        except (TimeoutError, OSError, aiosmtplib.SMTPException) as exc:
            smtp.close()
            detail = str(exc).strip() or type(exc).__name__
            raise _Stop(f"{_server(s)} cannot be reached ({detail})") from None
        self.smtp = smtp
        return smtp

    async def deliver(self, letters: list[Letter]) -> None:
        try:
            for letter in letters:
                if self.run.stopped is not None:
                    return
                try:
                    await self._deliver(letter)
                except _Stop as stop:
                    self.run.stopped = DeliveryError(str(stop))
                    return
        finally:
            await self._quit()

    async def _quit(self) -> None:
        if self.smtp is not None and self.smtp.is_connected:
            try:
                await self.smtp.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                self.smtp.close()

    async def _deliver(self, letter: Letter) -> None:
        run, s = self.run, self.run.settings
        if not is_address(letter.recipient):
            run.settle_failed(letter, f"invalid address {letter.recipient[:80]!r}", permanent=True)
            return
        try:
            message = compose_bytes(letter, s)
        except Exception as exc:  # a template bug must reach staff, not stop the batch
            run.settle_failed(letter, f"cannot render {letter.kind}: {exc}", permanent=True)
            return
        smtp = await self._connect()
        try:
            await smtp.sendmail(parseaddr(s.mail_from)[1], [letter.recipient], message)
        except aiosmtplib.SMTPRecipientsRefused as exc:  # not a response exception: a list of them
            refusal = exc.recipients[0]
            if refusal.code in (421, 530, 535):
                self._refused(letter, refusal)
            error = f"refused {refusal.recipient}: {refusal.code} {refusal.message}"
            run.settle_failed(letter, error, permanent=refusal.code >= 500)
        except aiosmtplib.SMTPResponseException as exc:
            self._refused(letter, exc)
        except (TimeoutError, OSError, aiosmtplib.SMTPException) as exc:
            self._drop()  # reconnect for the next letter
            detail = str(exc).strip() or type(exc).__name__
            run.settle_failed(letter, f"connection: {detail}", permanent=False)
        except ValueError as exc:  # what the client refuses to put on the wire
            run.settle_failed(letter, f"cannot send: {exc}", permanent=True)
        else:
            run.settle_sent(letter, None)

    def _refused(self, letter: Letter, exc: aiosmtplib.SMTPResponseException) -> None:
        """What a refusal means: the server's trouble (stop the run), or this letter's."""
        s = self.run.settings
        if exc.code in (421, 530, 535):  # going away, or it wants a login we do not give
            self._drop()
            advice = (
                "; check VETPRO_SMTP_USERNAME and VETPRO_SMTP_PASSWORD" if exc.code != 421 else ""
            )
            raise _Stop(f"{_server(s)} refused us ({exc.code} {exc.message}){advice}") from None
        if isinstance(exc, aiosmtplib.SMTPSenderRefused):
            raise _Stop(
                f"{_server(s)} refused the sender {exc.sender} ({exc.code} {exc.message}); "
                "check VETPRO_MAIL_FROM"
            ) from None
        self.run.settle_failed(letter, f"{exc.code} {exc.message}", permanent=exc.code >= 500)

    def _drop(self) -> None:
        if self.smtp is not None:
            self.smtp.close()
        self.smtp = None


async def _renew(run: _Run, lease: timedelta) -> None:
    """Keep this run's claims alive while it works; if another sender took some over (this
    run was stalled past its lease), stop before sending any of them again."""
    while True:
        await asyncio.sleep(lease.total_seconds() / 3)
        with run.db.transaction() as tx:
            held = outbox.renew(tx, by=run.by, now=real_now(), lease=lease)
        if held < run.outstanding and run.stopped is None:
            run.stopped = DeliveryError(
                f"another sender took over {run.outstanding - held} message(s) while this one "
                "was stalled past its lease; stopped so as not to send them twice"
            )


async def drain(
    db: Database, settings: Settings, *, limit: int | None = None, lease: timedelta = outbox.LEASE
) -> Tally:
    """Send every due row (or at most `limit`), batch by batch; how many went where."""
    with db.transaction() as tx:
        outbox.release_dead_claims(tx)
    run = _Run(db=db, settings=settings, by=outbox.holder())
    renewal = asyncio.create_task(_renew(run, lease))
    try:
        done = 0
        while run.stopped is None and (limit is None or done < limit):
            size = (
                settings.mail_batch_size
                if limit is None
                else min(settings.mail_batch_size, limit - done)
            )
            with db.transaction() as tx:
                letters = outbox.claim(tx, now=real_now(), size=size, by=run.by, lease=lease)
            if not letters:
                break
            done += len(letters)
            run.outstanding = len(letters)
            lanes = min(settings.mail_concurrency, len(letters))
            await asyncio.gather(
                *(_Courier(run).deliver(letters[lane::lanes]) for lane in range(lanes))
            )
    finally:
        renewal.cancel()
        with db.transaction() as tx:
            outbox.release(tx, by=run.by)
            left = outbox.waiting(tx, now=real_now())
    run.tally.pending, run.tally.due = left["pending"], left["due"]
    run.tally.next_attempt_at = left["next_attempt_at"]
    if run.stopped is not None:
        waiting = f"{left['pending']} message(s) wait"
        raise DeliveryError(f"{run.stopped}; {waiting}, sent {run.tally.sent} before it stopped")
    return run.tally


def send_pending(db: Database, settings: Settings, *, limit: int | None = None) -> Tally:
    """Send the due mail now (the synchronous entry point of the command line and the flows)."""
    return asyncio.run(drain(db, settings, limit=limit))
