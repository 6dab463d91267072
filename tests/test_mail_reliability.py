"""Issue 7, the mail: nothing lost, nothing sent twice that need not be.

Each test reproduces one defect of issue 7 on a real store (a SQLite file, then PostgreSQL)
against a real SMTP server: the project's `Sink`, or an aiosmtpd server this file scripts to
refuse a login, refuse one recipient for now, hold, hang or drop a message. Senders are real
`vetpro` processes where the defect was between processes. What is guaranteed, and checked
here: every message is delivered at least once, with a Message-ID that is the same on every
attempt, and no message is ever lost (a row stays pending until it is sent or shown to staff
as undeliverable).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from click.testing import CliRunner, Result

from factories import COORDINATOR, STAFF_MAIL, import_doc, step_of, walk
from test_delivery import (
    QUIET,
    VETPRO,
    between,
    counts,
    each_once,
    enqueue,
    retry_time_comes,
    row,
    settings_for,
    stored,
    submitted,
)
from vetpro_workflow.cli import app
from vetpro_workflow.clock import Clock, real_now
from vetpro_workflow.dev.sink import Received, Sink
from vetpro_workflow.errors import DeliveryError
from vetpro_workflow.notifications import outbox
from vetpro_workflow.notifications.delivery import drain, send_pending
from vetpro_workflow.notifications.letters import compose, message_id
from vetpro_workflow.states.calendar import business_day
from vetpro_workflow.store.database import Database
from vetpro_workflow.sweeps import sweep

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

ANNA = COORDINATOR
MARKUS = "markus.leitner@bbz-steyr.example"
PASSWORD = "s3cret-Pa55word"
LANES = 4  # SMTP connections per sender in the two-clock test
WAIT = 60.0  # seconds: generous bounds on waiting for a condition, never a delay


# --- a real SMTP server a test scripts ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """An aiosmtpd server on a thread of its own, answering as a test tells it to.

    - `busy`: recipients refused for now (451 at RCPT) until the test changes the set;
    - `refuse_sender`: the reply to MAIL FROM (e.g. 553), instead of accepting it;
    - `data_replies`: replies to the next DATA commands (None accepts), as the Sink's;
    - `drop`: close the connection instead of answering the next N DATA commands;
    - `hang`: never answer DATA;
    - `hold_first`: hold the first DATA until `release` is set (`holding` is set meanwhile);
    - `gate`: hold every DATA until this many connections have sent one;
    - `login`: require AUTH and refuse every password (535).
    Every message accepted is in `messages`; every DATA received, answered or not, in `attempts`.
    """

    def __init__(
        self,
        *,
        busy: Iterable[str] = (),
        refuse_sender: str | None = None,
        data_replies: Iterable[str | None] = (),
        drop: int = 0,
        hang: bool = False,
        hold_first: bool = False,
        gate: int = 0,
        login: bool = False,
    ) -> None:
        self.busy = {a.casefold() for a in busy}
        self.refuse_sender = refuse_sender
        self._replies = iter(data_replies)
        self.drop = drop
        self.hang = hang
        self.hold_first = hold_first
        self.holding = threading.Event()
        self.release = threading.Event()
        self.gate = gate
        self._gate_sessions: set[int] = set()
        self._gate_open: asyncio.Event | None = None
        self.gated_sessions = 0
        self._received: list[Received] = []
        self.attempts: list[bytes] = []
        self._arrived = threading.Condition()
        self.port = free_port()
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        options: dict[str, Any] = {}
        if login:
            options = {
                "auth_required": True,
                "auth_require_tls": False,
                "authenticator": lambda *_: AuthResult(success=False, handled=False),
            }
        self._controller = Controller(
            self, hostname="127.0.0.1", port=self.port, server_hostname="localhost", **options
        )

    @property
    def messages(self) -> list[Received]:
        with self._arrived:
            return list(self._received)

    def wait_for(self, count: int, timeout: float = WAIT) -> list[Received]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._received) >= count, timeout):
                raise TimeoutError(f"received {len(self._received)} message(s); expected {count}")
            return list(self._received)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.refuse_sender is not None:
            return self.refuse_sender
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.casefold() in self.busy:
            return f"451 4.2.1 <{address}>: mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = bytes(envelope.original_content or b"")
        self.attempts.append(raw)
        if self.gate:
            await self._pass_gate(session)
        if self.hold_first and not self.holding.is_set():
            self.holding.set()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self.release.wait, WAIT)
        if self.hang:
            await asyncio.Event().wait()
        if self.drop:
            self.drop -= 1
            server.transport.abort()
            return "421 4.4.2 connection dropped"
        reply = next(self._replies, None)
        if reply is not None:
            return reply
        received = Received(
            sender=envelope.mail_from or "",
            recipients=tuple(envelope.rcpt_tos),
            raw=raw,
            received_at=datetime.now().astimezone(),
        )
        with self._arrived:
            self._received.append(received)
            self._arrived.notify_all()
        return "250 OK"

    async def _pass_gate(self, session: Any) -> None:
        if self._gate_open is None:
            self._gate_open = asyncio.Event()
        self._gate_sessions.add(id(session))
        if len(self._gate_sessions) >= self.gate and not self._gate_open.is_set():
            self.gated_sessions = len(self._gate_sessions)  # connections when it opened
            self._gate_open.set()
        try:
            await asyncio.wait_for(self._gate_open.wait(), WAIT)
        except TimeoutError:
            self._gate_open.set()  # open anyway: the test then fails on what it checks

    def __enter__(self) -> Server:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._controller.stop()


def arrivals(server: Server | Sink) -> Counter[str]:
    """How many times each Message-ID arrived."""
    return Counter(str(r.message["Message-ID"]) for r in server.messages)


def header(raw: bytes, name: str) -> str:
    return str(BytesParser(policy=default_policy).parsebytes(raw.replace(b"\r\n", b"\n"))[name])


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll a condition until it holds (a generous bound; the condition, not time, decides)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


def settings_env(url: str, port: int, **settings: str) -> dict[str, str]:
    """The VETPRO_* variables of a run on a store, sending to a local server."""
    return {
        "VETPRO_DATABASE_URL": url,
        "VETPRO_SMTP_HOST": "127.0.0.1",
        "VETPRO_SMTP_PORT": str(port),
        "VETPRO_SMTP_TLS": "none",
        "VETPRO_STAFF_EMAIL": STAFF_MAIL,
        **{f"VETPRO_{k.upper()}": v for k, v in settings.items()},
    }


def environment(url: str, port: int, **settings: str) -> dict[str, str]:
    """The whole environment of a `vetpro` process (no other VETPRO_* or Prefect server)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VETPRO_", "PREFECT_API"))}
    return env | settings_env(url, port, **settings)


def cli(url: str, port: int, *args: str, **settings: str) -> Result:
    """`vetpro ARGS…` in-process (click's runner) on a store, sending to a local server."""
    ours: dict[str, str | None] = dict(settings_env(url, port, **settings))
    stale = {k: None for k in os.environ if k.startswith(("VETPRO_", "PREFECT_API"))}
    result = CliRunner().invoke(app, list(args), env=stale | ours)
    assert "Traceback" not in result.stdout + result.stderr
    return result


def refused(result: Result) -> str:
    """The one `error:` line of a refused command (exit 1, nothing on stdout)."""
    assert result.exit_code == 1, result.stdout + result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ")
    return line


def untried(db: Database) -> set[tuple[Any, ...]]:
    """(status, attempts, last_error, claimed_by) of every row."""
    return {(r["status"], r["attempts"], r["last_error"], r["claimed_by"]) for r in stored(db)}


# --- 2. two clocks ------------------------------------------------------------------------------


def test_dispatch_on_a_past_day_and_outbox_send_draining_at_once_send_each_message_once(
    db, store_url
):
    case_id, context = submitted(db)
    enqueue(db, 2000, case_id=case_id, context=context)
    rehearsed = (business_day(real_now()) - timedelta(days=30)).isoformat()  # a day in the past
    # The server holds every message until more connections are open than one sender opens
    # (LANES): both senders are certainly draining the same outbox at the same time.
    with Server(gate=LANES + 1) as server:
        env = environment(
            store_url,
            server.port,
            mail_concurrency=str(LANES),
            mail_batch_size="100",
            smtp_timeout="120",
        )
        commands = [
            [str(VETPRO), "dispatch", "--today", rehearsed, "--json"],
            [str(VETPRO), "outbox", "send", "--json"],
        ]
        senders = [
            subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for c in commands
        ]
        outputs = [s.communicate(timeout=600) for s in senders]
        for sender, (_, err) in zip(senders, outputs, strict=True):
            assert sender.returncode == 0, err.decode()
            assert b"Traceback" not in err
        tallies = [json.loads(out) for out, _ in outputs]
        server.wait_for(2001)

    assert server.gated_sessions == LANES + 1
    assert all(t["sent"] > 0 for t in tallies), tallies  # both sent: they really overlapped
    assert sum(t["sent"] for t in tallies) == 2001
    assert sum(t["lost"] + t["retrying"] + t["undeliverable"] for t in tallies) == 0
    mail = stored(db)
    assert arrivals(server) == each_once(mail, settings_for(server.port))
    assert len(server.messages) == 2001
    assert {(r["status"], r["attempts"]) for r in mail} == {("sent", 1)}


@pytest.mark.parametrize("command", ["dispatch", "nightly"])
def test_dispatch_on_a_rehearsed_day_sends_the_mail_queued_after_its_midnight(
    db, store_url, command
):
    case_id, context = submitted(db)
    enqueue(db, 20, case_id=case_id, context=context)
    today = business_day(real_now())  # the rows were queued after this day's midnight
    with Sink() as sink:
        before = real_now()
        result = cli(store_url, sink.port, command, "--today", today.isoformat(), "--json")
        after = real_now()
        sink.wait_for(21)

    assert result.exit_code == 0, result.stderr
    said = json.loads(result.stdout)
    tally = said if command == "dispatch" else said["dispatch"]
    assert (tally["sent"], tally["pending"]) == (21, 0)
    mail = stored(db)
    assert arrivals(sink) == each_once(mail, settings_for(sink.port))
    # Send times are real time, never the rehearsed day.
    assert all(r["status"] == "sent" and between(before, r["sent_at"], after) for r in mail)


def test_a_sender_on_a_rehearsed_day_long_past_claims_for_a_lease_of_real_time(db, store_url):
    case_id, context = submitted(db)
    enqueue(db, 3, case_id=case_id, context=context)
    with Server(hold_first=True) as server:
        env = environment(store_url, server.port, mail_concurrency="1", smtp_timeout="120")
        past = (business_day(real_now()) - timedelta(days=400)).isoformat()
        command = [str(VETPRO), "dispatch", "--today", past, "--json"]
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert server.holding.wait(WAIT), "the dispatch never sent its first message"
            now = real_now()
            claims = {(r["claimed_by"], r["claimed_until"]) for r in stored(db)}
            # While it works, a real-clock sender finds nothing it may take.
            assert counts(send_pending(db, settings_for(server.port))) == QUIET | {
                "pending": 4,
                "due": 4,
            }
        finally:
            server.release.set()
            out, err = child.communicate(timeout=WAIT)
        server.wait_for(4)

    assert child.returncode == 0, err.decode()
    assert len(claims) == 1
    ((holder, until),) = claims
    assert holder.split(":")[1] == str(child.pid)
    assert until > now + timedelta(minutes=5)  # a lease counted from real time, not from 00:00
    assert json.loads(out)["sent"] == 4
    assert arrivals(server) == each_once(stored(db), settings_for(server.port))


# --- 5. the server refuses us: stop with one clear error, leave every row pending -----------------


def test_a_wrong_smtp_password_stops_the_run_with_one_error_and_leaves_every_row_pending_untried(
    db, store_url
):
    done = import_doc(db)
    walk(db, done, step_of("start_preparation"))
    count = len(stored(db))
    with Server(login=True) as server:
        settings = settings_for(server.port, smtp_username="vetpro", smtp_password=PASSWORD)
        with pytest.raises(DeliveryError) as stopped:
            send_pending(db, settings)
        after_run = untried(db)
        result = cli(
            store_url, server.port, "outbox", "send", smtp_username="vetpro", smtp_password=PASSWORD
        )

    assert "refused our login (535" in str(stopped.value)
    assert "check VETPRO_SMTP_USERNAME and VETPRO_SMTP_PASSWORD" in str(stopped.value)
    assert f"{count} message(s) wait, sent 0 before it stopped" in str(stopped.value)
    assert after_run == {("pending", 0, None, None)}
    line = refused(result)
    assert "refused our login (535" in line and "VETPRO_SMTP_PASSWORD" in line
    assert PASSWORD not in result.stdout + result.stderr
    assert untried(db) == {("pending", 0, None, None)}
    assert server.messages == []


def test_a_server_that_requires_a_login_we_do_not_give_says_to_set_one(db):
    submitted(db)
    with Server(login=True) as server, pytest.raises(DeliveryError) as stopped:
        send_pending(db, settings_for(server.port))

    assert "530" in str(stopped.value)
    # The server wants a login: the advice is to configure one, not to change the sender.
    assert "VETPRO_SMTP_USERNAME" in str(stopped.value)
    assert "VETPRO_MAIL_FROM" not in str(stopped.value)
    assert untried(db) == {("pending", 0, None, None)}


def test_a_sender_address_the_server_refuses_stops_the_run_and_names_the_setting(db):
    case_id, context = submitted(db)
    enqueue(db, 3, case_id=case_id, context=context)
    with (
        Server(refuse_sender="553 5.7.1 sender not allowed") as server,
        pytest.raises(DeliveryError) as stopped,
    ):
        send_pending(db, settings_for(server.port))

    assert "refused the sender vetpro@national-agency.example (553" in str(stopped.value)
    assert "VETPRO_MAIL_FROM" in str(stopped.value)
    assert untried(db) == {("pending", 0, None, None)}


def test_a_server_going_away_with_421_stops_the_run_and_leaves_the_rows_pending_untried(db):
    case_id, context = submitted(db)
    enqueue(db, 4, case_id=case_id, context=context)
    with Sink(data_replies=["421 4.3.2 service shutting down"]) as sink:
        with pytest.raises(DeliveryError) as stopped:
            send_pending(db, settings_for(sink.port, mail_concurrency=1))
        back = send_pending(db, settings_for(sink.port))
        sink.wait_for(5)

    assert "(421 4.3.2 service shutting down)" in str(stopped.value)
    assert "5 message(s) wait, sent 0 before it stopped" in str(stopped.value)
    assert counts(back) == QUIET | {"sent": 5}
    assert {(r["status"], r["attempts"]) for r in stored(db)} == {("sent", 1)}


def test_a_server_that_never_greets_stops_the_run_and_leaves_the_rows_pending_untried(db):
    submitted(db)
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        with pytest.raises(DeliveryError) as stopped:
            send_pending(db, settings_for(silent.getsockname()[1], smtp_timeout=1))

    assert "cannot be reached" in str(stopped.value)
    assert untried(db) == {("pending", 0, None, None)}


def test_retry_with_status_undeliverable_since_a_day_puts_many_rows_back_at_once(db, store_url):
    case_id, context = submitted(db)
    bounced = [f"gone{n}@school{n}.example" for n in range(30)]
    ids = enqueue(db, 30, case_id=case_id, context=context, recipient=lambda n: bounced[n])
    day = business_day(real_now())
    with Sink(reject_recipients=set(bounced)) as refusing:
        assert counts(send_pending(db, settings_for(refusing.port))) == QUIET | {
            "sent": 1,
            "undeliverable": 30,
        }
    # Two of them were given up on long ago (as an old store could hold them).
    old = ids[:2]
    with db.transaction() as tx:
        tx.execute(
            "UPDATE outbox SET next_attempt_at = :long_ago WHERE id IN (:old)",
            {"long_ago": real_now() - timedelta(days=90), "old": old},
        )

    since = cli(
        store_url, 1, "outbox", "retry", "--status", "undeliverable", "--since", str(day), "--json"
    )
    after_since = {r["id"]: (r["status"], r["attempts"]) for r in stored(db) if r["id"] in ids}
    rest = cli(store_url, 1, "outbox", "retry", "--status", "undeliverable", "--json")
    human = cli(store_url, 1, "outbox", "retry", "--status", "undeliverable")
    with Sink() as sink:
        sent = send_pending(db, settings_for(sink.port))
        sink.wait_for(30)

    assert (since.exit_code, json.loads(since.stdout)) == (0, {"retried": 28})
    assert after_since == {i: ("undeliverable", 1) for i in old} | {
        i: ("pending", 0) for i in ids[2:]
    }
    assert (rest.exit_code, json.loads(rest.stdout)) == (0, {"retried": 2})
    assert human.stdout.strip() == "0 message(s) pending again"
    assert counts(sent) == QUIET | {"sent": 30}
    assert arrivals(sink) == each_once([row(db, i) for i in ids], settings_for(sink.port))


# --- 6. claims renewed while working, and settled only under one's own claim --------------------


def _drain_in_thread(
    db: Database, settings: Any, lease: timedelta, tallies: list[Any], failures: list[BaseException]
) -> threading.Thread:
    def run() -> None:
        try:
            tallies.append(asyncio.run(drain(db, settings, lease=lease)))
        except BaseException as exc:  # pragma: no cover - shown by the assertions
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_sender_renews_its_claims_while_a_slow_server_holds_it_so_a_second_sender_takes_none(
    db,
):
    case_id, context = submitted(db)
    enqueue(db, 4, case_id=case_id, context=context)
    lease = timedelta(seconds=5)
    tallies: list[Any] = []
    failures: list[BaseException] = []
    with Server(hold_first=True) as server:
        settings = settings_for(server.port, mail_concurrency=1, smtp_timeout=120)
        first = _drain_in_thread(db, settings, lease, tallies, failures)
        assert server.holding.wait(WAIT), "the first sender never sent a message"
        claimed = {r["id"]: r["claimed_until"] for r in stored(db)}
        first_lease_ends = max(claimed.values())

        def renewed_past_the_first_lease() -> bool:
            rows = stored(db)
            return real_now() > first_lease_ends and all(
                r["claimed_until"] > first_lease_ends for r in rows
            )

        # Without renewal the claims would have run out by now (real time passes here).
        wait_until(renewed_past_the_first_lease, "the first lease ran out and was renewed")
        second = send_pending(db, settings)
        server.release.set()
        first.join(WAIT)
        server.wait_for(5)

    assert failures == []
    assert counts(second) == QUIET | {"pending": 5, "due": 5}
    assert [counts(t) for t in tallies] == [QUIET | {"sent": 5}]
    assert arrivals(server) == each_once(stored(db), settings)
    assert len(server.attempts) == 5


def test_a_row_whose_claim_another_sender_took_is_not_settled_by_the_first(db):
    submitted(db)
    first, second = "host-a:1:aaaaaaaa", "host-b:2:bbbbbbbb"
    with db.transaction() as tx:
        (theirs,) = outbox.claim(tx, now=real_now(), size=1, by=first)
        # The first sender's lease runs out (rehearsed in the store), and the second takes the row.
        tx.execute(
            "UPDATE outbox SET claimed_until = :past WHERE id = :id",
            {"past": real_now() - timedelta(seconds=1), "id": theirs.id},
        )
        (mine,) = outbox.claim(tx, now=real_now(), size=1, by=second)
    assert theirs.id == mine.id

    with db.transaction() as tx:
        assert not outbox.mark_sent(tx, theirs, by=first, now=real_now(), note=None)
        outbox.mark_failed(
            tx,
            theirs,
            by=first,
            now=real_now(),
            error="451 late",
            permanent=False,
            max_attempts=8,
            retry_after=timedelta(seconds=60),
        )
        assert outbox.renew(tx, by=first, now=real_now()) == 0
    held = row(db, mine.id)
    assert (held["status"], held["attempts"], held["last_error"], held["claimed_by"]) == (
        "pending",
        0,
        None,
        second,
    )
    with db.transaction() as tx:
        assert outbox.mark_sent(tx, mine, by=second, now=real_now(), note=None)
    assert (row(db, mine.id)["status"], row(db, mine.id)["claimed_by"]) == ("sent", None)


@pytest.mark.parametrize(
    "reply", [None, "451 4.3.0 busy", "554 5.6.0 refused"], ids=["accepted", "451", "554"]
)
def test_a_sender_whose_row_was_taken_over_while_the_server_was_slow_does_not_settle_it(db, reply):
    submitted(db)
    (receipt,) = stored(db)
    other = "other-host:4242:0badf00d"
    tallies: list[Any] = []
    failures: list[BaseException] = []
    with Server(hold_first=True, data_replies=[reply]) as server:
        settings = settings_for(server.port, mail_concurrency=1, smtp_timeout=120)
        first = _drain_in_thread(db, settings, timedelta(minutes=10), tallies, failures)
        assert server.holding.wait(WAIT)
        # While the server holds the message, another sender takes the row over (as it could
        # if the first stalled past its lease).
        with db.transaction() as tx:
            tx.execute(
                "UPDATE outbox SET claimed_by = :other, claimed_until = :until WHERE id = :id",
                {"other": other, "until": real_now() + timedelta(minutes=10), "id": receipt["id"]},
            )
        server.release.set()
        first.join(WAIT)

    assert failures == []
    assert len(server.messages) == (1 if reply is None else 0)
    after = row(db, receipt["id"])
    assert (after["status"], after["attempts"], after["sent_at"], after["claimed_by"]) == (
        "pending",
        0,
        None,
        other,
    )
    assert after["last_error"] is None
    # Whatever the server answered, the row is the new holder's: this run neither settles it
    # nor counts it as sent, retrying or undeliverable, only as taken over.
    assert counts(tallies[0]) == QUIET | {"lost": 1, "pending": 1, "due": 1}


# --- 11. one message per recipient; stable ids; a hanging or dropping server ---------------------


def report_reminders(db: Database) -> tuple[list[int], dict[str, dict[str, Any]]]:
    """Markus back on 2027-09-24 without a report; his earlier mail sent; the sweep of day 30.
    The mobility's ids and the two reminder rows, by envelope recipient."""
    done = import_doc(db)
    walk(db, done, step_of("return_home", 1))
    with Sink() as sink:
        send_pending(db, settings_for(sink.port))
    sweep(db, clock=Clock.on(date(2027, 10, 24)), staff_email=STAFF_MAIL)
    pending = [r for r in stored(db) if r["status"] == "pending"]
    assert {r["kind"] for r in pending} == {"participant_report_reminder"}
    return done.mobilities, {r["recipient"]: r for r in pending}


def test_the_day_30_participant_report_reminder_copies_the_coordinator_as_a_row_of_its_own(db):
    (markus, _), rows = report_reminders(db)

    assert set(rows) == {MARKUS, ANNA}
    main, copy = rows[MARKUS], rows[ANNA]
    assert (main["case_id"], main["header_to"], main["cc"]) == (markus, None, ANNA)
    assert (copy["case_id"], copy["header_to"], copy["cc"]) == (markus, MARKUS, ANNA)
    assert copy["key"] == main["key"] + ":cc"
    with Sink() as sink:
        settings = settings_for(sink.port)
        assert counts(send_pending(db, settings)) == QUIET | {"sent": 2}
        received = {r.recipients: r for r in sink.wait_for(2)}

    assert set(received) == {(MARKUS,), (ANNA,)}  # one envelope recipient per message
    for r in received.values():
        assert (str(r.message["To"]), str(r.message["Cc"])) == (MARKUS, ANNA)
        assert str(r.message["Subject"]).startswith("Reminder: your participant report")
    ids = {str(r.message["Message-ID"]) for r in received.values()}
    assert ids == {message_id(main, settings.mail_from), message_id(copy, settings.mail_from)}
    assert len(ids) == 2


@pytest.mark.parametrize("busy", [MARKUS, ANNA], ids=["participant busy", "coordinator busy"])
def test_a_recipient_refused_for_now_gets_its_message_later_and_the_other_gets_it_once(db, busy):
    _, rows = report_reminders(db)
    other = ANNA if busy == MARKUS else MARKUS
    with Server(busy={busy}) as server:
        settings = settings_for(server.port)
        first = send_pending(db, settings)
        after_first = {r: row(db, rows[r]["id"]) for r in rows}
        retry_time_comes(db)
        still = send_pending(db, settings)  # the server still refuses it
        server.busy.clear()
        retry_time_comes(db)
        second = send_pending(db, settings)
        retry_time_comes(db)
        third = send_pending(db, settings)
        server.wait_for(2)

    assert counts(first) == QUIET | {"sent": 1, "retrying": 1, "pending": 1}
    assert (after_first[other]["status"], after_first[other]["attempts"]) == ("sent", 1)
    refused_row = after_first[busy]
    assert (refused_row["status"], refused_row["attempts"]) == ("pending", 1)
    assert refused_row["last_error"].startswith(f"refused {busy}: 451")
    assert counts(still) == QUIET | {"retrying": 1, "pending": 1}
    assert counts(second) == QUIET | {"sent": 1}
    assert counts(third) == QUIET
    # Each recipient received its message exactly once; the accepted copy was never resent.
    assert Counter(r.recipients for r in server.messages) == Counter({(MARKUS,): 1, (ANNA,): 1})
    reminders = [row(db, r["id"]) for r in rows.values()]
    assert arrivals(server) == each_once(reminders, settings)
    assert {(r["recipient"], r["status"], r["attempts"]) for r in reminders} == {
        (other, "sent", 1),
        (busy, "sent", 3),
    }


def test_a_message_keeps_its_message_id_on_every_attempt_and_in_the_preview(db, store_url):
    submitted(db)
    (receipt,) = stored(db)
    preview = cli(store_url, 1, "outbox", "preview", str(receipt["id"]), "--json")
    shown = json.loads(preview.stdout)["headers"]["Message-ID"]
    with Server(data_replies=["451 4.3.0 busy", "451 4.3.0 busy"]) as server:
        settings = settings_for(server.port)
        for _ in range(3):
            retry_time_comes(db)
            send_pending(db, settings)
        server.wait_for(1)

    assert [header(raw, "Message-ID") for raw in server.attempts] == [shown] * 3
    assert (
        shown
        == message_id(receipt, settings.mail_from)
        == str(compose(receipt, settings)["Message-ID"])
    )
    # The id depends on the row and the sender's domain only: other settings leave it alone.
    other = settings_for(
        9, smtp_host="mail.example", mail_concurrency=1, web_url="https://x.example"
    )
    assert message_id(receipt, other.mail_from) == shown


def test_two_rows_never_share_a_message_id_even_with_the_same_key_in_two_stores(db):
    case_id, context = submitted(db)
    ids = enqueue(db, 50, case_id=case_id, context=context)
    rows = [row(db, i) for i in ids]
    mail_from = "vetpro@national-agency.example"

    assert len({message_id(r, mail_from) for r in rows}) == 50
    # The same key enqueued in a store rebuilt later (another enqueue time) gets another id.
    rebuilt = rows[0] | {"created_at": rows[0]["created_at"] + timedelta(microseconds=1)}
    assert message_id(rebuilt, mail_from) != message_id(rows[0], mail_from)
    assert message_id(dict(rows[0]), mail_from) == message_id(rows[0], mail_from)


def test_a_server_that_hangs_mid_message_leaves_the_row_retrying_and_it_is_delivered_later(db):
    submitted(db)
    with Server(hang=True) as hanging:
        settings = settings_for(hanging.port, smtp_timeout=1)
        hung = send_pending(db, settings)
    (after,) = stored(db)
    with Sink() as sink:
        retry_time_comes(db)
        later = send_pending(db, settings_for(sink.port))
        sink.wait_for(1)

    assert counts(hung) == QUIET | {"retrying": 1, "pending": 1}
    assert (after["status"], after["attempts"], after["claimed_by"]) == ("pending", 1, None)
    assert after["last_error"].startswith("connection: ")
    assert counts(later) == QUIET | {"sent": 1}
    assert arrivals(sink) == each_once(stored(db), settings)


def test_a_server_that_drops_the_connection_mid_message_leaves_that_row_retrying_and_sends_the_rest(
    db,
):
    case_id, context = submitted(db)
    enqueue(db, 5, case_id=case_id, context=context)
    with Server(drop=1) as server:
        settings = settings_for(server.port, mail_concurrency=1)
        first = send_pending(db, settings)
        dropped = [r for r in stored(db) if r["status"] == "pending"]
        retry_time_comes(db)
        second = send_pending(db, settings)
        server.wait_for(6)

    assert counts(first) == QUIET | {"sent": 5, "retrying": 1, "pending": 1}
    (lost_row,) = dropped
    assert (lost_row["attempts"], lost_row["claimed_by"]) == (1, None)
    assert lost_row["last_error"].startswith("connection: ")
    assert counts(second) == QUIET | {"sent": 1}
    assert arrivals(server) == each_once(stored(db), settings)
    assert {r["status"] for r in stored(db)} == {"sent"}
