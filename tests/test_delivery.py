"""Delivering the outbox over real SMTP: what arrives, and what happens when sending goes wrong.

Every test sends to the project's aiosmtpd `Sink` on a free local port and keeps its rows in a real
store (a SQLite file, then PostgreSQL); a crash is rehearsed by killing a real sender process.
The outbox runs on real time: a retry time that has "come" is rehearsed by moving the row's
`next_attempt_at` back in the store, never by waiting.
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
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from factories import COORDINATOR, STAFF_MAIL, STORY, import_doc, walk
from vetpro_workflow.clock import real_now
from vetpro_workflow.config import Settings, get_settings
from vetpro_workflow.dev.sink import Received, Sink
from vetpro_workflow.errors import DeliveryError
from vetpro_workflow.notifications import outbox
from vetpro_workflow.notifications.delivery import Tally, send_pending
from vetpro_workflow.notifications.digest import enqueue_digest
from vetpro_workflow.notifications.letters import compose, message_id, subject_line
from vetpro_workflow.states.notices import Notice
from vetpro_workflow.store import views
from vetpro_workflow.store.database import Database

VETPRO = Path(sys.executable).with_name("vetpro")
LAST_DAY = STORY[-1][3]  # the story's last move
RETRY = 60
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
COUNTS = ("sent", "retrying", "undeliverable", "pending", "due", "lost")
QUIET = dict.fromkeys(COUNTS, 0)


def settings_for(port: int, **changes: Any) -> Settings:
    """Settings that send to a local server without TLS, retrying after RETRY seconds."""
    return get_settings(
        environ={},
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
        | changes,
    )


def counts(tally: Tally) -> dict[str, int]:
    """A run's tally without its next attempt time."""
    return {name: getattr(tally, name) for name in COUNTS}


def stopped_sink() -> Sink:
    """A sink that was listening and is not any more: its port refuses connections."""
    sink = Sink().start()
    sink.stop()
    return sink


def stored(db: Database) -> list[dict[str, Any]]:
    with db.transaction(write=False) as tx:
        return outbox.rows(tx)


def row(db: Database, row_id: int) -> dict[str, Any]:
    with db.transaction(write=False) as tx:
        return outbox.row_of(tx, row_id)


def shown(db: Database, case_id: int) -> list[dict[str, Any]]:
    """The undeliverable mail `case show` lists for a case."""
    with db.transaction(write=False) as tx:
        return views.show(tx, case_id)["undeliverable_mail"]


def submitted(db: Database) -> tuple[int, dict[str, Any]]:
    """The example filed and submitted: its application id and the context of its receipt."""
    done = import_doc(db)
    walk(db, done, 1)
    (receipt,) = stored(db)
    return done.application, receipt["context"]


def enqueue(
    db: Database,
    count: int,
    *,
    case_id: int | None,
    context: dict[str, Any],
    recipient: Callable[[int], str] = lambda n: f"coordinator{n}@school{n}.example",
    kind: str = "receipt",
    prefix: str = "bulk",
) -> list[int]:
    """Put `count` rows in the outbox the one way mail is enqueued, due now; their ids."""
    notices = [Notice(f"{prefix}:{n}", case_id, kind, recipient(n), context) for n in range(count)]
    with db.transaction() as tx:
        outbox.enqueue(tx, notices, now=real_now())
        return tx.scalars(
            "SELECT id FROM outbox WHERE key IN (:keys) ORDER BY id",
            {"keys": [n.key for n in notices]},
        )


def insert_raw(db: Database, *, key: str, recipient: str, case_id: int, context: dict) -> int:
    """A pending row written straight into the store, as an old store could hold it."""
    with db.transaction() as tx:
        now = real_now()
        tx.execute(
            "INSERT INTO outbox (key, case_id, kind, recipient, context, status, attempts, "
            "next_attempt_at, created_at) VALUES (:key, :case_id, 'receipt', :recipient, "
            ":context, 'pending', 0, :now, :now)",
            {
                "key": key,
                "case_id": case_id,
                "recipient": recipient,
                "context": context,
                "now": now,
            },
        )
        return int(tx.scalar("SELECT id FROM outbox WHERE key = :key", {"key": key}))


def retry_time_comes(db: Database, ids: Iterable[int] | None = None) -> None:
    """Rehearse the passing of time: pending rows (or these) are due for their next attempt now."""
    sql = "UPDATE outbox SET next_attempt_at = :now WHERE status = 'pending'"
    params: dict[str, Any] = {"now": real_now() - timedelta(seconds=1)}
    if ids is not None:
        sql += " AND id IN (:ids)"
        params["ids"] = list(ids)
    with db.transaction() as tx:
        tx.execute(sql, params)


def arrivals(sink: Sink) -> Counter[str]:
    """How many times the sink received each Message-ID."""
    return Counter(str(r.message["Message-ID"]) for r in sink.messages)


def each_once(rows: list[dict[str, Any]], settings: Settings) -> Counter[str]:
    return Counter({message_id(r, settings.mail_from): 1 for r in rows})


def squash(text: str) -> str:
    return " ".join(text.split())


def visible(page: str) -> str:
    """What a reader sees of an HTML part: the text without tags, unescaped, on one line."""
    return squash(html.unescape(re.sub(r"<[^>]+>", " ", page)))


def between(start: datetime, value: datetime | None, end: datetime) -> bool:
    return value is not None and start <= value <= end


def test_every_mail_of_the_story_reaches_its_reader_with_the_next_step_and_its_date(db):
    done = import_doc(db)
    walk(db, done, len(STORY))
    ids = [done.application, *done.mobilities]
    with Sink() as sink:
        settings = settings_for(sink.port)
        before = real_now()
        tally = send_pending(db, settings)
        after = real_now()
        received = {str(r.message["Message-ID"]): r for r in sink.wait_for(len(STORY_MAIL))}

    mail = stored(db)
    assert counts(tally) == QUIET | {"sent": len(STORY_MAIL)}
    assert tally.next_attempt_at is None
    assert sorted((ids.index(r["case_id"]), r["kind"]) for r in mail) == sorted(STORY_MAIL)
    assert len(received) == len(mail) == len(sink.messages)
    for r in mail:
        reader, start = STORY_MAIL[(ids.index(r["case_id"]), r["kind"])]
        due = STORY_DUE[(ids.index(r["case_id"]), r["kind"])]
        noun = "case" if r["case_id"] == done.application else "mobility"
        # The Message-ID is made from the row: the same on every attempt and every preview.
        assert message_id(r, settings.mail_from) == str(compose(r, settings)["Message-ID"])
        assert message_id(r, settings.mail_from).endswith("@national-agency.example>")
        got = received[message_id(r, settings.mail_from)]
        message = got.message
        assert (got.sender, got.recipients) == (settings.mail_from, (reader,))
        assert str(message["To"]) == reader
        assert str(message["Reply-To"]) == STAFF_MAIL
        # A long subject may be folded onto the header's next line; a reader sees it unfolded.
        assert squash(str(message["Subject"])) == f"{start}{TITLE} ({noun} {r['case_id']})"
        assert squash(str(message["Subject"])) == subject_line(r, settings)
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
        text = squash(message.get_body(("plain",)).get_content())
        page = visible(message.get_body(("html",)).get_content())
        for part in (text, page):
            assert squash(r["context"]["next_step"]) in part
            assert r["context"]["next_step_due"] == due
            if due is not None:
                assert f"Date: {due}" in part and due in r["context"]["next_step"]
            assert TITLE in part and STAFF_MAIL in part
            if noun == "mobility":
                assert r["context"]["participant_name"] in part and r["context"]["host"] in part
    assert {r["status"] for r in mail} == {"sent"}
    assert all(between(before, r["sent_at"], after) and r["attempts"] == 1 for r in mail)
    assert {(r["claimed_by"], r["claimed_until"], r["last_error"]) for r in mail} == {
        (None, None, None)
    }


def test_a_sender_address_with_a_display_name_still_gives_a_well_formed_message_id(db):
    submitted(db)
    with Sink() as sink:
        settings = settings_for(sink.port, mail_from="VETPRO <vetpro@national-agency.example>")
        send_pending(db, settings)
        (received,) = sink.wait_for(1)

    (sent,) = stored(db)
    expected = message_id(sent, settings.mail_from)
    assert re.fullmatch(r"<[\w-]+(\.[\w-]+)*@national-agency\.example>", expected)
    assert f"Message-ID: {expected}\r\n".encode() in received.raw
    assert received.message["Message-ID"].defects == ()
    assert received.sender == "vetpro@national-agency.example"
    assert str(received.message["From"]) == "VETPRO <vetpro@national-agency.example>"


def test_mail_sent_while_the_server_is_down_stays_pending_untried_and_goes_out_once_when_it_is_back(
    db,
):
    done = import_doc(db)
    walk(db, done, len(STORY))
    sink = stopped_sink()
    settings = settings_for(sink.port)
    count = len(stored(db))

    # Changed by the redesign: a server that cannot be reached stops the run with one clear
    # error instead of counting an attempt against every row.
    with pytest.raises(DeliveryError) as down:
        send_pending(db, settings)

    assert f"the mail server 127.0.0.1:{sink.port} cannot be reached" in str(down.value)
    assert f"{count} message(s) wait, sent 0 before it stopped" in str(down.value)
    for r in stored(db):
        assert (r["status"], r["attempts"], r["sent_at"], r["last_error"]) == (
            "pending",
            0,
            None,
            None,
        )
        assert (r["claimed_by"], r["claimed_until"]) == (None, None)
    with sink.start():
        back = send_pending(db, settings)
        again = send_pending(db, settings)
        sink.wait_for(count)

    assert counts(back) == QUIET | {"sent": count}
    assert counts(again) == QUIET
    mail = stored(db)
    assert arrivals(sink) == each_once(mail, settings)
    assert {(r["status"], r["attempts"], r["last_error"]) for r in mail} == {("sent", 1, None)}
    assert shown(db, done.application) == []


def test_a_message_answered_451_is_retried_with_a_doubling_back_off_and_delivered_once(db):
    submitted(db)
    with Sink(data_replies=["451 4.3.0 busy", "451 4.3.0 still busy"]) as sink:
        settings = settings_for(sink.port)
        t0 = real_now()
        first = send_pending(db, settings)
        t1 = real_now()
        (after_first,) = stored(db)
        early = send_pending(db, settings)
        retry_time_comes(db)
        t2 = real_now()
        second = send_pending(db, settings)
        t3 = real_now()
        (after_second,) = stored(db)
        retry_time_comes(db)
        t4 = real_now()
        third = send_pending(db, settings)
        t5 = real_now()
        (received,) = sink.wait_for(1)

    assert counts(first) == counts(second) == QUIET | {"retrying": 1, "pending": 1}
    assert first.next_attempt_at == after_first["next_attempt_at"]
    # Before its retry time nothing is tried; the tally says when the next attempt is.
    assert counts(early) == QUIET | {"pending": 1}
    assert early.next_attempt_at == after_first["next_attempt_at"]
    assert counts(third) == QUIET | {"sent": 1}
    assert (after_first["status"], after_first["attempts"], after_first["last_error"]) == (
        "pending",
        1,
        "451 4.3.0 busy",
    )
    retry = timedelta(seconds=RETRY)
    assert between(t0 + retry, after_first["next_attempt_at"], t1 + retry)
    assert (after_second["attempts"], after_second["last_error"]) == (2, "451 4.3.0 still busy")
    assert between(t2 + 2 * retry, after_second["next_attempt_at"], t3 + 2 * retry)
    (sent,) = stored(db)
    assert (sent["status"], sent["attempts"]) == ("sent", 3)
    assert between(t4, sent["sent_at"], t5)
    assert str(received.message["Message-ID"]) == message_id(sent, settings.mail_from)


def test_a_reader_refused_with_550_makes_that_row_undeliverable_and_the_case_shows_it(db):
    done = import_doc(db)
    walk(db, done, len(STORY))
    markus, sabine = done.mobilities
    with Sink(reject_recipients={MARKUS}) as sink:
        settings = settings_for(sink.port)
        before = real_now()
        tally = send_pending(db, settings)
        after = real_now()
        again = send_pending(db, settings)

    mail = stored(db)
    (bounced,) = [r for r in mail if r["status"] != "sent"]
    assert counts(tally) == QUIET | {"sent": len(mail) - 1, "undeliverable": 1}
    assert counts(again) == QUIET
    assert (bounced["status"], bounced["case_id"], bounced["kind"], bounced["recipient"]) == (
        "undeliverable",
        markus,
        "participant_report_request",
        MARKUS,
    )
    assert "550" in bounced["last_error"] and MARKUS in bounced["last_error"]
    assert (bounced["attempts"], bounced["sent_at"], bounced["claimed_by"]) == (1, None, None)
    # Its next attempt time records when it was given up on (`outbox retry --since` reads it).
    assert between(before, bounced["next_attempt_at"], after)
    sent = [r for r in mail if r["status"] == "sent"]
    assert arrivals(sink) == each_once(sent, settings)
    assert MARKUS not in {to for m in sink.messages for to in m.recipients}
    assert shown(db, markus) == [
        {
            "id": bounced["id"],
            "to": MARKUS,
            "kind": "participant_report_request",
            "last_error": bounced["last_error"],
        }
    ]
    assert shown(db, sabine) == []
    assert shown(db, done.application) == []


def test_staff_read_a_bounce_in_the_digest_and_a_retry_to_a_fixed_address_delivers_it(db):
    done = import_doc(db)
    walk(db, done, len(STORY))
    fixed = "markus.leitner@omnia.example"
    with Sink(reject_recipients={MARKUS}) as refusing:
        send_pending(db, settings_for(refusing.port))
    (bounced,) = [r for r in stored(db) if r["status"] == "undeliverable"]
    with db.transaction() as tx:
        digest_id, _ = enqueue_digest(tx, today=LAST_DAY, staff_email=STAFF_MAIL)
    assert digest_id is not None
    assert row(db, digest_id)["context"]["undeliverable"] == [
        {
            "id": bounced["id"],
            "to": MARKUS,
            "kind": "participant_report_request",
            "last_error": bounced["last_error"],
            "case_id": done.mobilities[0],
        }
    ]

    with Sink() as sink:
        settings = settings_for(sink.port)
        assert counts(send_pending(db, settings)) == QUIET | {"sent": 1}
        (digest,) = sink.wait_for(1)
        with db.transaction() as tx:
            outbox.retry(tx, bounced["id"], now=real_now(), to=fixed)
        assert shown(db, done.mobilities[0]) == []
        before = real_now()
        retried = send_pending(db, settings)
        after = real_now()
        _, delivered = sink.wait_for(2)

    assert digest.recipients == (STAFF_MAIL,)
    for part in ("plain", "html"):
        listing = squash(digest.message.get_body((part,)).get_content())
        assert MARKUS in listing and "550" in listing and str(bounced["id"]) in listing
    assert counts(retried) == QUIET | {"sent": 1}
    assert delivered.recipients == (fixed,) and str(delivered.message["To"]) == fixed
    # The same row, so the same Message-ID as the attempt that bounced.
    assert str(delivered.message["Message-ID"]) == message_id(bounced, settings.mail_from)
    after_row = row(db, bounced["id"])
    assert (after_row["status"], after_row["recipient"]) == ("sent", fixed)
    assert between(before, after_row["sent_at"], after)


@pytest.mark.parametrize(
    "bad",
    ["anna@", "anna huber@bbz-steyr.example", "anna\x01@bbz-steyr.example",
     "anna@bbz-steyr.example\u202e", "Anna <anna@bbz-steyr.example>"],
    ids=["no domain", "space", "control character", "bidi override", "display name"],
)  # fmt: skip
def test_an_invalid_address_is_undeliverable_at_once_without_asking_the_server(db, bad):
    case_id, context = submitted(db)
    with Sink() as sink:
        send_pending(db, settings_for(sink.port))  # the receipt goes out first
    bad_row = insert_raw(db, key="bad:1", recipient=bad, case_id=case_id, context=context)
    # Nothing listens: a row that needed the server could not be decided.
    settings = settings_for(stopped_sink().port)

    tally = send_pending(db, settings)

    assert counts(tally) == QUIET | {"undeliverable": 1}
    after = row(db, bad_row)
    assert after["last_error"] == f"invalid address {bad!r}"
    assert (after["status"], after["attempts"], after["sent_at"]) == ("undeliverable", 1, None)
    assert [m["id"] for m in shown(db, case_id)] == [bad_row]


def test_a_row_that_cannot_be_rendered_is_undeliverable_and_the_rest_of_the_batch_is_sent(db):
    case_id, context = submitted(db)
    enqueue(db, 5, case_id=case_id, context=context)
    missing = {k: v for k, v in context.items() if k != "project_title"}
    (broken,) = enqueue(db, 1, case_id=case_id, context=missing, prefix="broken")
    (unknown,) = enqueue(db, 1, case_id=case_id, context=context, kind="postcard", prefix="card")
    with Sink() as sink:
        settings = settings_for(sink.port)
        tally = send_pending(db, settings)
        sink.wait_for(6)

    assert counts(tally) == QUIET | {"sent": 6, "undeliverable": 2}
    assert row(db, broken)["last_error"] == "cannot render receipt: 'project_title' is undefined"
    assert row(db, unknown)["last_error"].startswith(
        "cannot render postcard: unknown notification kind 'postcard'"
    )
    sent = [r for r in stored(db) if r["status"] == "sent"]
    assert arrivals(sink) == each_once(sent, settings)
    assert [m["id"] for m in shown(db, case_id)] == [broken, unknown]


def test_a_row_that_keeps_failing_is_given_up_after_the_maximum_number_of_attempts(db):
    submitted(db)
    outcomes = []
    with Sink(data_replies=["451 4.3.0 busy"] * 3) as sink:
        settings = settings_for(sink.port, mail_max_attempts=3)
        for _ in range(3):
            retry_time_comes(db)
            start = real_now()
            tally = send_pending(db, settings)
            end = real_now()
            outcomes.append((tally.retrying, tally.undeliverable))
            (r,) = stored(db)
            if r["status"] == "pending":
                backoff = timedelta(seconds=RETRY * 2 ** (r["attempts"] - 1))
                assert between(start + backoff, r["next_attempt_at"], end + backoff)
        retry_time_comes(db)
        last = send_pending(db, settings)

    assert outcomes == [(1, 0), (1, 0), (0, 1)]
    (r,) = stored(db)
    assert (r["status"], r["attempts"]) == ("undeliverable", 3)
    assert r["last_error"] == "gave up after 3 attempts: 451 4.3.0 busy"
    assert counts(last) == QUIET
    assert sink.messages == []


def _sender(url: str, port: int) -> subprocess.Popen[bytes]:
    """`vetpro outbox send` in a process of its own, one connection."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VETPRO_", "PREFECT_API"))}
    env |= {
        "VETPRO_DATABASE_URL": url,
        "VETPRO_SMTP_HOST": "127.0.0.1",
        "VETPRO_SMTP_PORT": str(port),
        "VETPRO_SMTP_TLS": "none",
        "VETPRO_MAIL_CONCURRENCY": "1",
    }
    return subprocess.Popen(
        [str(VETPRO), "outbox", "send", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_a_sender_killed_mid_batch_is_finished_by_the_next_run_and_resends_only_the_one_in_flight(
    db, store_url
):
    case_id, context = submitted(db)
    enqueue(db, 199, case_id=case_id, context=context)
    kill_at = 50
    child: list[subprocess.Popen[bytes]] = []
    stored_so_far = iter(range(1, 10**6))

    def kill_on_the_50th(received: Received) -> None:
        # The sink runs this after storing a message and before answering 250: the sender is
        # killed with that message accepted by the server but not yet acknowledged to it.
        if next(stored_so_far) == kill_at:
            os.kill(child[0].pid, signal.SIGKILL)

    with Sink(on_message=kill_on_the_50th) as sink:
        child.append(_sender(store_url, sink.port))
        _, err = child[0].communicate(timeout=120)
        assert child[0].returncode == -signal.SIGKILL, err.decode()
        crashed = stored(db)
        settings = settings_for(sink.port, mail_concurrency=1)
        rerun = send_pending(db, settings)
        sink.wait_for(len(crashed) + 1)

    in_flight = crashed[kill_at - 1]
    assert [r["status"] for r in crashed] == ["sent"] * (kill_at - 1) + ["pending"] * (
        200 - kill_at + 1
    )
    assert in_flight["claimed_by"].startswith(f"{socket.gethostname()}:{child[0].pid}:")
    assert counts(rerun) == QUIET | {"sent": len(crashed) - (kill_at - 1)}
    finished = stored(db)
    assert {r["status"] for r in finished} == {"sent"}
    # SMTP has no way to take back a message: the one the server stored just as the sender
    # died is the only one sent twice, with the same Message-ID so a reader's client can tell.
    assert arrivals(sink) == each_once(finished, settings) + Counter(
        [message_id(in_flight, settings.mail_from)]
    )
    assert [r["attempts"] for r in finished] == [1] * len(finished)


def test_rows_claimed_by_another_sender_are_left_to_it_until_its_lease_runs_out(db):
    case_id, context = submitted(db)
    enqueue(db, 9, case_id=case_id, context=context)
    other = "other-host:4242:0badf00d"
    with db.transaction() as tx:
        theirs = outbox.claim(tx, now=real_now(), size=4, by=other)
    assert len(theirs) == 4
    with Sink() as sink:
        settings = settings_for(sink.port)
        ours = send_pending(db, settings)
        mine = arrivals(sink)
        # Their lease runs out (rehearsed in the store: leases are real time).
        with db.transaction() as tx:
            tx.execute(
                "UPDATE outbox SET claimed_until = :past WHERE claimed_by = :other",
                {"past": real_now() - timedelta(seconds=1), "other": other},
            )
        expired = send_pending(db, settings)

    assert counts(ours) == QUIET | {"sent": 6, "pending": 4, "due": 4}
    assert not set(mine) & {message_id(letter, settings.mail_from) for letter in theirs}
    assert counts(expired) == QUIET | {"sent": 4}
    assert arrivals(sink) == each_once(stored(db), settings)


def test_two_senders_running_at_once_share_the_work_and_send_every_row_exactly_once(db):
    case_id, context = submitted(db)
    enqueue(db, 59, case_id=case_id, context=context)
    start, tallies, failures = threading.Barrier(2), [], []
    with Sink() as sink:
        settings = settings_for(sink.port, mail_batch_size=5, mail_concurrency=2)

        def sender() -> None:
            try:
                start.wait()
                tallies.append(send_pending(db, settings))
            except BaseException as exc:  # pragma: no cover - shown by the assertion below
                failures.append(exc)

        threads = [threading.Thread(target=sender) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        sink.wait_for(60)

    assert failures == []
    assert sum(t.sent for t in tallies) == 60
    assert sum(t.lost for t in tallies) == 0
    # Neither stops while mail is due: one finding the rows it looked at just claimed by the
    # other takes the next ones, so both keep sending batch after batch.
    assert min(t.sent for t in tallies) >= 2 * settings.mail_batch_size
    assert arrivals(sink) == each_once(stored(db), settings)
    assert {r["status"] for r in stored(db)} == {"sent"}


def test_a_claim_left_by_a_dead_sender_on_this_host_is_released_at_the_next_run(db):
    case_id, context = submitted(db)
    enqueue(db, 4, case_id=case_id, context=context)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = socket.gethostname()
    with db.transaction() as tx:
        dead = outbox.claim(tx, now=real_now(), size=3, by=f"{host}:{gone.pid}:deadbeef")
        alive = outbox.claim(tx, now=real_now(), size=1, by=f"{host}:{os.getpid()}:a1a1a1a1")
    with Sink() as sink:
        settings = settings_for(sink.port)
        tally = send_pending(db, settings)
        sink.wait_for(4)

    assert counts(tally) == QUIET | {"sent": 4, "pending": 1, "due": 1}
    received = arrivals(sink)
    assert all(received[message_id(letter, settings.mail_from)] == 1 for letter in dead)
    (held,) = alive
    assert message_id(held, settings.mail_from) not in received
    assert row(db, held.id)["claimed_by"] == f"{host}:{os.getpid()}:a1a1a1a1"


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
def test_forty_rows_go_out_once_each_over_at_most_the_configured_connections(db, lanes):
    case_id, context = submitted(db)
    enqueue(db, 39, case_id=case_id, context=context)
    open_at_each_message: list[set[int]] = []
    port: list[int] = []

    def count_connections(received: Received) -> None:
        open_at_each_message.append(connections_to(port[0]))

    with Sink(on_message=count_connections) as sink:
        port.append(sink.port)
        settings = settings_for(sink.port, mail_concurrency=lanes)
        tally = send_pending(db, settings)
        sink.wait_for(40)

    assert counts(tally) == QUIET | {"sent": 40}
    assert arrivals(sink) == each_once(stored(db), settings)
    assert max(len(now_open) for now_open in open_at_each_message) == lanes
    # Each lane keeps its one connection for all of its rows.
    assert len(set().union(*open_at_each_message)) == lanes
