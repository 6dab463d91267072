"""Delivering the outbox over real SMTP: what arrives, and what happens when sending goes wrong.

Every test sends to the project's aiosmtpd `Sink` on a free local port and keeps its rows in a real
store (a SQLite file, then PostgreSQL); a crash is rehearsed by killing a real sender process.
"""

from __future__ import annotations

import html
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from factories import STORY, SUBMIT_DAY, import_doc, walk
from vetpro_workflow import records
from vetpro_workflow.clock import Clock
from vetpro_workflow.config import Settings, get_settings
from vetpro_workflow.db import reading, writing
from vetpro_workflow.demo import COORDINATOR
from vetpro_workflow.models import Outbox
from vetpro_workflow.notifications import outbox
from vetpro_workflow.notifications.delivery import message_id, preview, send_pending, subject_line
from vetpro_workflow.notifications.digest import enqueue_digest
from vetpro_workflow.notifications.sink import Received, Sink

SUBMITTED = Clock.on(SUBMIT_DAY)  # the story's first move: its receipt is due from then
LAST = Clock.on(STORY[-1][3])  # the story's last move: all of its mail is due
RETRY = 60
STAFF_MAIL = "vetpro-staff@national-agency.example"
TITLE = "Digital welding simulators in vocational training"
ANNA = COORDINATOR
MARKUS = "markus.leitner@bbz-steyr.example"
SABINE = "sabine.gruber@bbz-steyr.example"
OMNIA = "Omnia Vocational College"
VALENCIA = "Camara de Comercio de Valencia"
# The story's mail, by (0 the application, 1 and 2 its mobilities; kind): reader, subject start.
STORY_MAIL: dict[tuple[int, str], tuple[str, str]] = {
    (0, "receipt"): (ANNA, "Application received: "),
    (0, "decision_approved"): (ANNA, "Application approved: "),
    (0, "grant_agreement_recorded"): (ANNA, "Grant agreement recorded: "),
    (1, "departure_confirmation"): (ANNA, f"Departure recorded: Markus Leitner to {OMNIA}, "),
    (1, "participant_report_request"): (MARKUS, f"Your participant report: stay at {OMNIA}, "),
    (1, "return_recorded"): (ANNA, f"Return recorded: Markus Leitner back from {OMNIA}, "),
    (2, "departure_confirmation"): (ANNA, f"Departure recorded: Sabine Gruber to {VALENCIA}, "),
    (2, "participant_report_request"): (SABINE, f"Your participant report: stay at {VALENCIA}, "),
    (2, "return_recorded"): (ANNA, f"Return recorded: Sabine Gruber back from {VALENCIA}, "),
    (0, "final_report_due"): (ANNA, "Final report due: "),
    (0, "closure"): (ANNA, "Project closed: "),
}
# The date of the next step each mail names (DOMAIN.md), None where the step has none.
STORY_DUE: dict[tuple[int, str], str | None] = {
    (0, "receipt"): None,
    (0, "decision_approved"): "2027-06-01",  # the project's start
    (0, "grant_agreement_recorded"): "2027-09-06",  # the first departure
    (1, "departure_confirmation"): "2027-09-24",  # the planned return
    (1, "participant_report_request"): "2027-11-08",  # validation, 45 days after the return
    (1, "return_recorded"): "2027-11-08",
    (2, "departure_confirmation"): "2027-10-15",
    (2, "participant_report_request"): "2027-11-29",
    (2, "return_recorded"): "2027-11-29",
    (0, "final_report_due"): "2029-07-30",  # 60 days after the project's end
    (0, "closure"): None,
}
QUIET = {"sent": 0, "retrying": 0, "undeliverable": 0, "pending": 0}


def settings_for(port: int, **changes: Any) -> Settings:
    """Settings that send to a local server without TLS, retrying after RETRY seconds."""
    return get_settings(
        **{
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_tls": "none",
            "smtp_username": None,
            "smtp_password": None,
            "smtp_timeout": 5,
            "staff_email": STAFF_MAIL,
            "mail_retry_seconds": RETRY,
        }
        | changes
    )


def later(clock: Clock, seconds: float) -> Clock:
    return Clock.at(clock.now + timedelta(seconds=seconds))


def stopped_sink() -> Sink:
    """A sink that was listening and is not any more: its port refuses connections."""
    sink = Sink().start()
    sink.stop()
    return sink


def stored(engine: Engine) -> list[Outbox]:
    with reading(engine) as session:
        return outbox.rows(session)


def row(engine: Engine, row_id: int) -> Outbox:
    (found,) = [r for r in stored(engine) if r.id == row_id]
    return found


def submitted(engine: Engine) -> tuple[int, dict[str, Any]]:
    """The example filed and submitted: its application id and the context of its receipt."""
    done = import_doc(engine)
    walk(engine, done, 1)
    (receipt,) = stored(engine)
    return done.application, receipt.context


def enqueue(
    engine: Engine,
    count: int,
    *,
    case_id: int | None,
    context: dict[str, Any],
    recipient: Callable[[int], str] = lambda n: f"coordinator{n}@school{n}.example",
    kind: str = "receipt",
    prefix: str = "bulk",
) -> list[int]:
    """Put `count` pending rows in the outbox, due when the story's receipt is; their ids."""
    with writing(engine) as session:
        ids = [
            session.execute(
                insert(Outbox).values(
                    key=f"{prefix}:{n}",
                    case_id=case_id,
                    kind=kind,
                    recipient=recipient(n),
                    context=context,
                    status="pending",
                    attempts=0,
                    next_attempt_at=SUBMITTED.now,
                    created_at=SUBMITTED.now,
                )
            ).inserted_primary_key[0]
            for n in range(count)
        ]
        session.commit()
    return ids


def arrivals(sink: Sink) -> Counter[str]:
    """How many times the sink received each Message-ID."""
    return Counter(str(r.message["Message-ID"]) for r in sink.messages)


def each_once(rows: list[Outbox], settings: Settings) -> Counter[str]:
    return Counter({message_id(r, settings): 1 for r in rows})


def squash(text: str) -> str:
    return " ".join(text.split())


def visible(page: str) -> str:
    """What a reader sees of an HTML part: the text without tags, unescaped, on one line."""
    return squash(html.unescape(re.sub(r"<[^>]+>", " ", page)))


def test_every_mail_of_the_story_reaches_its_reader_with_the_next_step_and_its_date(engine):
    done = import_doc(engine)
    walk(engine, done, len(STORY))
    ids = [done.application, *done.mobilities]
    with Sink() as sink:
        settings = settings_for(sink.port)
        tally = send_pending(engine, settings, LAST)
        received = {str(r.message["Message-ID"]): r for r in sink.wait_for(len(STORY_MAIL))}

    mail = stored(engine)
    assert tally.as_json() == QUIET | {"sent": len(STORY_MAIL)}
    assert sorted((ids.index(r.case_id), r.kind) for r in mail) == sorted(STORY_MAIL)
    assert len(received) == len(mail) == len(sink.messages)
    for r in mail:
        reader, start = STORY_MAIL[(ids.index(r.case_id), r.kind)]
        due = STORY_DUE[(ids.index(r.case_id), r.kind)]
        noun = "case" if r.case_id == done.application else "mobility"
        # The Message-ID is made from the row's key: the same on every attempt and every preview.
        assert message_id(r, settings) == str(preview(r, settings)["Message-ID"])
        assert message_id(r, settings).endswith("@national-agency.example>")
        got = received[message_id(r, settings)]
        message = got.message
        assert (got.sender, got.recipients) == (settings.mail_from, (reader,))
        assert str(message["To"]) == reader
        assert str(message["Reply-To"]) == STAFF_MAIL
        # A long subject may be folded onto the header's next line; a reader sees it unfolded.
        assert squash(str(message["Subject"])) == f"{start}{TITLE} ({noun} {r.case_id})"
        assert squash(str(message["Subject"])) == subject_line(r, settings)
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
        text = squash(message.get_body(("plain",)).get_content())
        page = visible(message.get_body(("html",)).get_content())
        for part in (text, page):
            assert squash(r.context["next_step"]) in part
            assert r.context["next_step_due"] == due
            if due is not None:
                assert f"Date: {due}" in part and due in r.context["next_step"]
            assert TITLE in part and STAFF_MAIL in part
            if noun == "mobility":
                assert r.context["participant_name"] in part and r.context["host"] in part
    assert {r.status for r in mail} == {"sent"}
    assert all(r.sent_at == LAST.now and r.attempts == 1 for r in mail)


def test_a_sender_address_with_a_display_name_still_gives_a_well_formed_message_id(engine):
    submitted(engine)
    with Sink() as sink:
        settings = settings_for(sink.port, mail_from="VETPRO <vetpro@national-agency.example>")
        send_pending(engine, settings, SUBMITTED)
        (received,) = sink.wait_for(1)

    (sent,) = stored(engine)
    expected = message_id(sent, settings)
    assert re.fullmatch(r"<[\w-]+(\.[\w-]+)*@national-agency\.example>", expected)
    assert f"Message-ID: {expected}\r\n".encode() in received.raw
    assert received.message["Message-ID"].defects == ()
    assert received.sender == "vetpro@national-agency.example"
    assert str(received.message["From"]) == "VETPRO <vetpro@national-agency.example>"


def test_mail_sent_while_the_server_is_down_stays_pending_and_goes_out_once_when_it_is_back(
    engine,
):
    done = import_doc(engine)
    walk(engine, done, len(STORY))
    sink = stopped_sink()
    settings = settings_for(sink.port)

    down = send_pending(engine, settings, LAST)

    count = len(stored(engine))
    assert down.as_json() == QUIET | {"retrying": count, "pending": count}
    for r in stored(engine):
        assert (r.status, r.attempts, r.sent_at, r.claimed_by) == ("pending", 1, None, None)
        assert r.last_error.startswith("connection: ") and str(sink.port) in r.last_error
        assert r.next_attempt_at == LAST.now + timedelta(seconds=RETRY)
    with sink.start():
        assert send_pending(engine, settings, LAST).as_json() == QUIET | {"pending": count}
        back = send_pending(engine, settings, later(LAST, RETRY))
        again = send_pending(engine, settings, later(LAST, 100 * RETRY))
        sink.wait_for(count)

    assert back.as_json() == QUIET | {"sent": count}
    assert again.as_json() == QUIET
    mail = stored(engine)
    assert arrivals(sink) == each_once(mail, settings)
    assert {(r.status, r.attempts, r.last_error) for r in mail} == {("sent", 2, None)}
    with reading(engine) as session:
        assert records.show(session, done.application)["undeliverable_mail"] == []


def test_a_message_answered_451_is_retried_with_a_doubling_back_off_and_delivered_once(engine):
    submitted(engine)
    with Sink(data_replies=["451 4.3.0 busy", "451 4.3.0 still busy"]) as sink:
        settings = settings_for(sink.port)
        first = send_pending(engine, settings, SUBMITTED)
        (after_first,) = stored(engine)
        early = send_pending(engine, settings, later(SUBMITTED, RETRY - 1))
        second = send_pending(engine, settings, later(SUBMITTED, RETRY))
        (after_second,) = stored(engine)
        third = send_pending(engine, settings, later(SUBMITTED, 3 * RETRY))
        (received,) = sink.wait_for(1)

    assert first.as_json() == second.as_json() == QUIET | {"retrying": 1, "pending": 1}
    assert early.as_json() == QUIET | {"pending": 1}
    assert third.as_json() == QUIET | {"sent": 1}
    assert (after_first.status, after_first.attempts, after_first.last_error) == (
        "pending",
        1,
        "451 4.3.0 busy",
    )
    assert after_first.next_attempt_at == SUBMITTED.now + timedelta(seconds=RETRY)
    assert (after_second.attempts, after_second.last_error) == (2, "451 4.3.0 still busy")
    assert after_second.next_attempt_at == SUBMITTED.now + timedelta(seconds=3 * RETRY)
    (sent,) = stored(engine)
    assert (sent.status, sent.attempts, sent.sent_at) == (
        "sent",
        3,
        SUBMITTED.now + timedelta(seconds=3 * RETRY),
    )
    assert str(received.message["Message-ID"]) == message_id(sent, settings)


def test_a_reader_refused_with_550_makes_that_row_undeliverable_and_the_case_shows_it(engine):
    done = import_doc(engine)
    walk(engine, done, len(STORY))
    markus, sabine = done.mobilities
    with Sink(reject_recipients={MARKUS}) as sink:
        settings = settings_for(sink.port)
        tally = send_pending(engine, settings, LAST)
        again = send_pending(engine, settings, later(LAST, 100 * RETRY))

    mail = stored(engine)
    (bounced,) = [r for r in mail if r.status != "sent"]
    assert tally.as_json() == QUIET | {"sent": len(mail) - 1, "undeliverable": 1}
    assert again.as_json() == QUIET
    assert (bounced.status, bounced.case_id, bounced.kind, bounced.recipient) == (
        "undeliverable",
        markus,
        "participant_report_request",
        MARKUS,
    )
    assert "550" in bounced.last_error and MARKUS in bounced.last_error
    assert (bounced.attempts, bounced.next_attempt_at, bounced.sent_at) == (1, None, None)
    assert arrivals(sink) == each_once([r for r in mail if r.status == "sent"], settings)
    assert MARKUS not in {to for m in sink.messages for to in m.recipients}
    with reading(engine) as session:
        assert records.show(session, markus)["undeliverable_mail"] == [
            {
                "id": bounced.id,
                "to": MARKUS,
                "kind": "participant_report_request",
                "last_error": bounced.last_error,
            }
        ]
        assert records.show(session, sabine)["undeliverable_mail"] == []
        assert records.show(session, done.application)["undeliverable_mail"] == []


def test_staff_read_a_bounce_in_the_digest_and_a_retry_to_a_fixed_address_delivers_it(engine):
    done = import_doc(engine)
    walk(engine, done, len(STORY))
    fixed = "markus.leitner@omnia.example"
    with Sink(reject_recipients={MARKUS}) as refusing:
        send_pending(engine, settings_for(refusing.port), LAST)
    (bounced,) = [r for r in stored(engine) if r.status == "undeliverable"]
    with writing(engine) as session:
        digest_id = enqueue_digest(session, today=LAST.today, now=LAST.now, staff_email=STAFF_MAIL)
    assert digest_id is not None
    assert row(engine, digest_id).context["undeliverable"] == [
        {
            "id": bounced.id,
            "to": MARKUS,
            "kind": "participant_report_request",
            "last_error": bounced.last_error,
            "case_id": done.mobilities[0],
        }
    ]

    with Sink() as sink:
        settings = settings_for(sink.port)
        assert send_pending(engine, settings, LAST).as_json() == QUIET | {"sent": 1}
        (digest,) = sink.wait_for(1)
        with writing(engine) as session:
            outbox.retry(session, bounced.id, now=later(LAST, 3600).now, to=fixed)
        with reading(engine) as session:
            assert records.show(session, done.mobilities[0])["undeliverable_mail"] == []
        retried = send_pending(engine, settings, later(LAST, 3600))
        _, delivered = sink.wait_for(2)

    assert digest.recipients == (STAFF_MAIL,)
    for part in ("plain", "html"):
        shown = squash(digest.message.get_body((part,)).get_content())
        assert MARKUS in shown and "550" in shown and str(bounced.id) in shown
    assert retried.as_json() == QUIET | {"sent": 1}
    assert delivered.recipients == (fixed,) and str(delivered.message["To"]) == fixed
    # The same row, so the same Message-ID as the attempt that bounced.
    assert str(delivered.message["Message-ID"]) == message_id(bounced, settings)
    after = row(engine, bounced.id)
    assert (after.status, after.recipient, after.sent_at) == ("sent", fixed, later(LAST, 3600).now)


def test_an_invalid_address_is_undeliverable_at_once_without_asking_the_server(engine):
    case_id, context = submitted(engine)
    (bad_to,) = enqueue(engine, 1, case_id=case_id, context=context, recipient=lambda n: "anna@")
    (bad_cc,) = enqueue(engine, 1, case_id=case_id, context=context, prefix="cc")
    with writing(engine) as session:
        session.get(Outbox, bad_cc).cc = "copy to anna@bbz-steyr.example"
        session.commit()
    # Nothing listens: a row that needed the server could only be retried, not decided.
    settings = settings_for(stopped_sink().port)

    tally = send_pending(engine, settings, SUBMITTED)

    assert tally.as_json() == QUIET | {"retrying": 1, "undeliverable": 2, "pending": 1}
    assert row(engine, bad_to).last_error == "invalid address 'anna@'"
    assert row(engine, bad_cc).last_error == "invalid address 'copy to anna@bbz-steyr.example'"
    for r in (row(engine, bad_to), row(engine, bad_cc)):
        assert (r.status, r.attempts, r.next_attempt_at) == ("undeliverable", 1, None)


def test_a_row_that_cannot_be_rendered_is_undeliverable_and_the_rest_of_the_batch_is_sent(engine):
    case_id, context = submitted(engine)
    enqueue(engine, 5, case_id=case_id, context=context)
    missing = {k: v for k, v in context.items() if k != "project_title"}
    (broken,) = enqueue(engine, 1, case_id=case_id, context=missing, prefix="broken")
    (unknown,) = enqueue(
        engine, 1, case_id=case_id, context=context, kind="postcard", prefix="postcard"
    )
    with Sink() as sink:
        settings = settings_for(sink.port)
        tally = send_pending(engine, settings, SUBMITTED)
        sink.wait_for(6)

    assert tally.as_json() == QUIET | {"sent": 6, "undeliverable": 2}
    assert row(engine, broken).last_error == "cannot render receipt: 'project_title' is undefined"
    assert row(engine, unknown).last_error.startswith(
        "cannot render postcard: unknown notification kind 'postcard'"
    )
    sent = [r for r in stored(engine) if r.status == "sent"]
    assert arrivals(sink) == each_once(sent, settings)
    with reading(engine) as session:
        shown = records.show(session, case_id)["undeliverable_mail"]
    assert [m["id"] for m in shown] == [broken, unknown]


def test_a_row_that_keeps_failing_is_given_up_after_the_maximum_number_of_attempts(engine):
    submitted(engine)
    settings = settings_for(stopped_sink().port, mail_max_attempts=3)
    clock, outcomes = SUBMITTED, []
    for _ in range(3):
        tally = send_pending(engine, settings, clock)
        outcomes.append((tally.retrying, tally.undeliverable))
        (r,) = stored(engine)
        if r.status == "pending":
            assert r.next_attempt_at == clock.now + timedelta(seconds=RETRY * 2 ** (r.attempts - 1))
            clock = Clock.at(r.next_attempt_at)

    assert outcomes == [(1, 0), (1, 0), (0, 1)]
    (r,) = stored(engine)
    assert (r.status, r.attempts, r.next_attempt_at) == ("undeliverable", 3, None)
    assert r.last_error.startswith("gave up after 3 attempts: connection: ")
    assert send_pending(engine, settings, later(clock, 10**6)).as_json() == QUIET


def _sender(url: str, port: int) -> subprocess.Popen[bytes]:
    """`vetpro outbox send` in a process of its own, one connection, on the submission day."""
    env = os.environ | {
        "VETPRO_DATABASE_URL": url,
        "VETPRO_SMTP_HOST": "127.0.0.1",
        "VETPRO_SMTP_PORT": str(port),
        "VETPRO_SMTP_TLS": "none",
        "VETPRO_MAIL_CONCURRENCY": "1",
        "VETPRO_TODAY": SUBMIT_DAY.isoformat(),
    }
    command = "from vetpro_workflow.cli import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", command, "outbox", "send", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_a_sender_killed_mid_batch_is_finished_by_the_next_run_and_resends_only_the_one_in_flight(
    sqlite_engine, sqlite_url
):
    case_id, context = submitted(sqlite_engine)
    enqueue(sqlite_engine, 199, case_id=case_id, context=context)
    kill_at = 50
    child: list[subprocess.Popen[bytes]] = []
    stored_so_far = iter(range(1, 10**6))

    def kill_on_the_50th(received: Received) -> None:
        # The sink runs this after storing a message and before answering 250: the sender is
        # killed with that message accepted by the server but not yet acknowledged to it.
        if next(stored_so_far) == kill_at:
            os.kill(child[0].pid, signal.SIGKILL)

    with Sink(on_message=kill_on_the_50th) as sink:
        child.append(_sender(sqlite_url, sink.port))
        _, err = child[0].communicate(timeout=60)
        assert child[0].returncode == -signal.SIGKILL, err.decode()
        crashed = stored(sqlite_engine)
        settings = settings_for(sink.port, mail_concurrency=1)
        rerun = send_pending(sqlite_engine, settings, SUBMITTED)
        sink.wait_for(len(crashed) + 1)

    in_flight = crashed[kill_at - 1]
    assert [r.status for r in crashed] == ["sent"] * (kill_at - 1) + ["pending"] * (201 - kill_at)
    assert in_flight.claimed_by.startswith(f"{socket.gethostname()}:{child[0].pid}:")
    assert rerun.as_json() == QUIET | {"sent": len(crashed) - (kill_at - 1)}
    finished = stored(sqlite_engine)
    assert {r.status for r in finished} == {"sent"}
    # SMTP has no way to take back a message: the one the server stored just as the sender
    # died is the only one sent twice, with the same Message-ID so a reader's client can tell.
    assert arrivals(sink) == each_once(finished, settings) + Counter(
        [message_id(in_flight, settings)]
    )
    assert [r.attempts for r in finished[: kill_at - 1]] == [1] * (kill_at - 1)


def test_rows_claimed_by_another_sender_are_left_to_it_until_its_lease_runs_out(engine):
    case_id, context = submitted(engine)
    enqueue(engine, 9, case_id=case_id, context=context)
    theirs = outbox.claim(engine, now=SUBMITTED.now, size=4, by="other-host:4242:0badf00d")
    assert len(theirs) == 4
    with Sink() as sink:
        settings = settings_for(sink.port)
        ours = send_pending(engine, settings, SUBMITTED)
        mine = arrivals(sink)
        expired = send_pending(engine, settings, Clock.at(SUBMITTED.now + outbox.LEASE))

    assert ours.as_json() == QUIET | {"sent": 6, "pending": 4}
    assert not set(mine) & {message_id(letter, settings) for letter in theirs}
    assert expired.as_json() == QUIET | {"sent": 4}
    assert arrivals(sink) == each_once(stored(engine), settings)


def test_two_senders_running_at_once_share_the_work_and_send_every_row_exactly_once(engine):
    case_id, context = submitted(engine)
    enqueue(engine, 59, case_id=case_id, context=context)
    start, tallies, failures = threading.Barrier(2), [], []
    with Sink() as sink:
        settings = settings_for(sink.port, mail_batch_size=5, mail_concurrency=2)

        def sender() -> None:
            try:
                start.wait()
                tallies.append(send_pending(engine, settings, SUBMITTED))
            except BaseException as exc:  # pragma: no cover - shown by the assertion below
                failures.append(exc)

        threads = [threading.Thread(target=sender) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        sink.wait_for(60)

    assert failures == []
    assert sum(t.sent for t in tallies) == 60
    # Neither stops while mail is due: one finding the rows it looked at just claimed by the
    # other takes the next ones, so both keep sending batch after batch.
    assert min(t.sent for t in tallies) >= 2 * settings.mail_batch_size
    assert arrivals(sink) == each_once(stored(engine), settings)
    assert {r.status for r in stored(engine)} == {"sent"}


def test_a_claim_left_by_a_dead_sender_on_this_host_is_released_at_the_next_run(engine):
    case_id, context = submitted(engine)
    enqueue(engine, 4, case_id=case_id, context=context)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = socket.gethostname()
    dead = outbox.claim(engine, now=SUBMITTED.now, size=3, by=f"{host}:{gone.pid}:deadbeef")
    alive = outbox.claim(engine, now=SUBMITTED.now, size=1, by=f"{host}:{os.getpid()}:a1a1a1a1")
    with Sink() as sink:
        settings = settings_for(sink.port)
        tally = send_pending(engine, settings, SUBMITTED)
        sink.wait_for(4)

    assert tally.as_json() == QUIET | {"sent": 4, "pending": 1}
    received = arrivals(sink)
    assert all(received[message_id(letter, settings)] == 1 for letter in dead)
    (held,) = alive
    assert message_id(held, settings) not in received
    assert row(engine, held.id).claimed_by == f"{host}:{os.getpid()}:a1a1a1a1"


def connections_to(port: int) -> set[int]:
    """The client ports of the TCP connections to a local port open right now."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        if state == "01" and int(local.rpartition(":")[2], 16) == port:  # 01: established
            found.add(int(remote.rpartition(":")[2], 16))
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="counts connections in /proc")
@pytest.mark.parametrize("lanes", [1, 4])
def test_forty_rows_go_out_once_each_over_at_most_the_configured_connections(engine, lanes):
    case_id, context = submitted(engine)
    enqueue(engine, 39, case_id=case_id, context=context)
    open_at_each_message: list[set[int]] = []
    port: list[int] = []

    def count_connections(received: Received) -> None:
        open_at_each_message.append(connections_to(port[0]))

    with Sink(on_message=count_connections) as sink:
        port.append(sink.port)
        settings = settings_for(sink.port, mail_concurrency=lanes)
        tally = send_pending(engine, settings, SUBMITTED)
        sink.wait_for(40)

    assert tally.as_json() == QUIET | {"sent": 40}
    assert arrivals(sink) == each_once(stored(engine), settings)
    assert max(len(now_open) for now_open in open_at_each_message) == lanes
    # Each lane keeps its one connection for all of its rows.
    assert len(set().union(*open_at_each_message)) == lanes
