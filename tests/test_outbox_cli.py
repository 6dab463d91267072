"""`vetpro outbox …`, `vetpro digest` and the mail `case show` shows, against a real SMTP sink."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from factories import STAFF_MAIL, STORY, import_doc, walk
from vetpro_workflow.cli import app
from vetpro_workflow.dev.sink import Sink
from vetpro_workflow.intake.filing import Imported

LAST_DAY = STORY[-1][3]  # the story's last move: all of its mail is due
MARKUS = "markus.leitner@bbz-steyr.example"
FIXED = "markus.leitner@omnia.example"
ROW_KEYS = {"id", "to", "subject", "status", "attempts", "last_error", "next_attempt_at"}
QUIET = {"sent": 0, "retrying": 0, "undeliverable": 0, "pending": 0, "due": 0, "lost": 0}


@pytest.fixture
def story(sqlite_db) -> Imported:
    """The example walked through its whole story: its mail waits in the outbox."""
    done = import_doc(sqlite_db)
    walk(sqlite_db, done, len(STORY))
    return done


@pytest.fixture
def down() -> int:
    """A port where no SMTP server listens any more."""
    sink = Sink().start()
    sink.stop()
    return sink.port


@pytest.fixture
def vetpro(sqlite_url, down):
    """Run `vetpro ARGS…` in-process on the story's database, sending to `port`."""
    runner = CliRunner()

    def run(*args: str, port: int = down, ok: bool = True) -> Result:
        env = {
            "VETPRO_DATABASE_URL": sqlite_url,
            "VETPRO_SMTP_HOST": "127.0.0.1",
            "VETPRO_SMTP_PORT": str(port),
            "VETPRO_SMTP_TLS": "none",
            "VETPRO_STAFF_EMAIL": STAFF_MAIL,
            "VETPRO_MAIL_RETRY_SECONDS": "60",
            "VETPRO_TODAY": LAST_DAY.isoformat(),
        }
        result = runner.invoke(app, list(args), env=env)
        assert "Traceback" not in result.stdout + result.stderr
        if ok:
            assert result.exit_code == 0, result.stderr
        return result

    return run


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


def tally(result: Result) -> dict[str, int]:
    """The counts of `outbox send --json` (without its next attempt time)."""
    return {k: v for k, v in as_json(result).items() if k in QUIET}


def refused(result: Result, code: int = 1) -> str:
    """The one `error:` line of a refused command (nothing on stdout)."""
    assert result.exit_code == code, result.stdout + result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ")
    return line


def test_outbox_list_shows_each_message_with_its_reader_subject_status_and_attempts(vetpro, story):
    listed = as_json(vetpro("outbox", "list", "--json"))

    assert len(listed) == len({r["id"] for r in listed}) > 0
    assert all(set(r) >= ROW_KEYS for r in listed)
    assert {(r["status"], r["attempts"], r["last_error"]) for r in listed} == {("pending", 0, None)}
    receipt = next(r for r in listed if r["kind"] == "receipt")
    assert receipt["to"] == "anna.huber@bbz-steyr.example"
    assert receipt["subject"].startswith("Application received: ")
    assert {r["to"] for r in listed} >= {MARKUS, "sabine.gruber@bbz-steyr.example"}
    assert as_json(vetpro("outbox", "list", "--status", "pending", "--json")) == listed
    assert as_json(vetpro("outbox", "list", "--status", "sent", "--json")) == []
    markus = story.mobilities[0]
    assert {
        r["case_id"] for r in as_json(vetpro("outbox", "list", "--case", str(markus), "--json"))
    } == {markus}
    table = vetpro("outbox", "list").stdout
    assert receipt["subject"] in table and MARKUS in table


def test_outbox_send_prints_its_tally_and_sends_each_message_once(vetpro, story):
    count = len(as_json(vetpro("outbox", "list", "--json")))
    with Sink() as sink:
        sent = vetpro("outbox", "send", "--json", port=sink.port)
        again = vetpro("outbox", "send", "--json", port=sink.port)
        human = vetpro("outbox", "send", port=sink.port).stdout
        received = sink.wait_for(count)

    assert tally(sent) == QUIET | {"sent": count}
    assert tally(again) == QUIET
    assert as_json(again)["next_attempt_at"] is None
    assert human.strip() == "sent 0, retrying 0, undeliverable 0; nothing left to send"
    assert len({str(r.message["Message-ID"]) for r in received}) == len(received) == count
    listed = as_json(vetpro("outbox", "list", "--status", "sent", "--json"))
    assert len(listed) == count and {r["attempts"] for r in listed} == {1}


def test_outbox_send_while_the_server_is_down_says_so_and_leaves_every_message_pending_untried(
    vetpro, story, down
):
    # Changed by the redesign: an unreachable server is one `error:` line and exit 1, and no row
    # is counted as tried (before, every row was marked retrying with a connection error).
    count = len(as_json(vetpro("outbox", "list", "--json")))

    line = refused(vetpro("outbox", "send", "--json", ok=False))

    assert f"error: the mail server 127.0.0.1:{down} cannot be reached" in line
    assert f"{count} message(s) wait, sent 0 before it stopped" in line
    listed = as_json(vetpro("outbox", "list", "--json"))
    assert {(r["status"], r["attempts"], r["last_error"]) for r in listed} == {("pending", 0, None)}
    assert "last error" not in vetpro("outbox", "list").stdout
    assert "cannot be reached" in refused(vetpro("outbox", "send", ok=False))


def test_outbox_send_says_when_everything_waits_for_its_retry_time_and_when_the_next_is(
    vetpro, story
):
    count = len(as_json(vetpro("outbox", "list", "--json")))
    with Sink(data_replies=["451 4.3.0 busy"] * count) as busy:
        first = vetpro("outbox", "send", "--json", port=busy.port)
        waiting = vetpro("outbox", "send", "--json", port=busy.port)
        human = vetpro("outbox", "send", port=busy.port).stdout
        assert busy.messages == []

    listed = as_json(vetpro("outbox", "list", "--json"))
    soonest = min(r["next_attempt_at"] for r in listed)
    assert tally(first) == QUIET | {"retrying": count, "pending": count}
    assert tally(waiting) == QUIET | {"pending": count}
    assert as_json(waiting)["next_attempt_at"] == soonest
    assert human.strip() == (
        f"sent 0, retrying 0, undeliverable 0; {count} waiting for their retry time, "
        f"the next at {soonest}"
    )
    assert {(r["status"], r["attempts"], r["last_error"]) for r in listed} == {
        ("pending", 1, "451 4.3.0 busy")
    }
    assert "last error: 451 4.3.0 busy" in vetpro("outbox", "list").stdout


def test_undeliverable_mail_is_shown_by_case_show_and_the_digest_and_retried_to_a_new_address(
    vetpro, story
):
    markus = story.mobilities[0]
    with Sink(reject_recipients={MARKUS}) as refusing:
        sent = as_json(vetpro("outbox", "send", "--json", port=refusing.port))
    (bounced,) = as_json(vetpro("outbox", "list", "--status", "undeliverable", "--json"))
    assert sent["undeliverable"] == 1 and sent["pending"] == 0
    assert bounced["to"] == MARKUS and "550" in bounced["last_error"]

    shown = as_json(vetpro("case", "show", str(markus), "--json"))
    assert [m["id"] for m in shown["undeliverable_mail"]] == [bounced["id"]]
    text = vetpro("case", "show", str(markus)).stdout
    assert f"MAIL NOT DELIVERED  outbox row {bounced['id']}" in text
    assert f"vetpro outbox retry {bounced['id']} --to ADDRESS" in text
    assert "MAIL NOT DELIVERED" not in vetpro("case", "show", str(story.mobilities[1])).stdout

    digest = as_json(vetpro("digest", "--json"))
    assert digest["outbox_id"] is not None and digest["day"] == LAST_DAY.isoformat()
    assert [m["id"] for m in digest["undeliverable"]] == [bounced["id"]]
    assert as_json(vetpro("digest", "--json")) == digest  # once a day
    retried = as_json(vetpro("outbox", "retry", str(bounced["id"]), "--to", FIXED, "--json"))
    assert (retried["id"], retried["to"], retried["status"]) == (bounced["id"], FIXED, "pending")
    assert retried["attempts"] == 0
    assert as_json(vetpro("case", "show", str(markus), "--json"))["undeliverable_mail"] == []
    with Sink() as sink:
        after = tally(vetpro("outbox", "send", "--json", port=sink.port))
        received = {r.recipients: r for r in sink.wait_for(2)}

    assert after == QUIET | {"sent": 2}
    assert set(received) == {(STAFF_MAIL,), (FIXED,)}
    listing = received[(STAFF_MAIL,)].message.get_body(("plain",)).get_content()
    assert MARKUS in listing and "550" in listing
    assert str(received[(FIXED,)].message["To"]) == FIXED
    assert as_json(vetpro("outbox", "list", "--status", "undeliverable", "--json")) == []
    assert digest["outbox_id"] in {r["id"] for r in as_json(vetpro("outbox", "list", "--json"))}


def test_a_digest_with_nothing_to_report_is_not_queued(vetpro, story):
    said = as_json(vetpro("digest", "--json"))
    assert (said["outbox_id"], said["overdue"], said["undeliverable"]) == (None, [], [])
    assert "no undeliverable mail" in vetpro("digest").stdout
    assert "no digest" in vetpro("digest").stdout
    assert as_json(vetpro("outbox", "list", "--json")) == as_json(
        vetpro("outbox", "list", "--status", "pending", "--json")
    )
    assert "staff_digest" not in {r["kind"] for r in as_json(vetpro("outbox", "list", "--json"))}


def test_digest_show_shows_the_digest_without_queueing_it(vetpro, story):
    with Sink(reject_recipients={MARKUS}) as refusing:
        vetpro("outbox", "send", port=refusing.port)

    shown = as_json(vetpro("digest", "--show", "--json"))

    assert shown["outbox_id"] is None and len(shown["undeliverable"]) == 1
    assert "staff_digest" not in {r["kind"] for r in as_json(vetpro("outbox", "list", "--json"))}
    text = vetpro("digest", "--show").stdout
    assert f"to {MARKUS}: refused {MARKUS}: 550" in text
    # Its head must not contradict what it lists.
    assert "no undeliverable mail" not in text


def test_outbox_preview_shows_the_headers_text_and_html_of_a_message(vetpro, story):
    receipt = next(r for r in as_json(vetpro("outbox", "list", "--json")) if r["kind"] == "receipt")

    shown = as_json(vetpro("outbox", "preview", str(receipt["id"]), "--json"))

    assert set(shown) == {"headers", "text", "html"}
    headers = shown["headers"]
    assert headers["To"] == receipt["to"] and headers["Subject"] == receipt["subject"]
    assert headers["Message-ID"].startswith("<") and headers["Message-ID"].endswith(">")
    # The preview's Message-ID is the one every attempt sends.
    assert (
        as_json(vetpro("outbox", "preview", str(receipt["id"]), "--json"))["headers"]["Message-ID"]
        == headers["Message-ID"]
    )
    assert "NA staff evaluate the application" in shown["text"]
    assert "NA staff evaluate the application" in shown["html"] and "</html>" in shown["html"]
    assert (
        f"Subject: {receipt['subject']}" in vetpro("outbox", "preview", str(receipt["id"])).stdout
    )


def test_retrying_mail_that_is_not_undeliverable_or_to_a_bad_address_is_refused(vetpro, story):
    with Sink(reject_recipients={MARKUS}) as refusing:
        vetpro("outbox", "send", port=refusing.port)
    listed = as_json(vetpro("outbox", "list", "--json"))
    bounced = next(r for r in listed if r["status"] == "undeliverable")
    sent = next(r for r in listed if r["status"] == "sent")

    assert "is sent; only undeliverable rows are retried" in refused(
        vetpro("outbox", "retry", str(sent["id"]), ok=False)
    )
    assert "--to: 'not-an-address' is not a valid email address" in refused(
        vetpro("outbox", "retry", str(bounced["id"]), "--to", "not-an-address", ok=False)
    )
    assert "outbox row 9999 does not exist" in refused(vetpro("outbox", "retry", "9999", ok=False))
    assert "name one row (ID) or many" in refused(vetpro("outbox", "retry", ok=False))
    assert "--to goes with one row" in refused(
        vetpro("outbox", "retry", "--status", "undeliverable", "--to", FIXED, ok=False)
    )
    assert "--since: 'yesterday' is not a date" in refused(
        vetpro("outbox", "retry", "--status", "undeliverable", "--since", "yesterday", ok=False)
    )
    assert as_json(vetpro("outbox", "list", "--json")) == listed


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        # Changed by the redesign: click checks the choice, a usage error (exit 2).
        (("outbox", "list", "--status", "lost"), 2, "'lost' is not one of"),
        (("outbox", "preview", "9999"), 1, "outbox row 9999 does not exist"),
    ],
    ids=["bad status", "unknown row"],
)
def test_a_bad_status_or_an_unknown_row_is_refused_with_one_error_line(
    vetpro, story, args, code, message
):
    line = refused(vetpro(*args, ok=False), code)
    assert message in line
    if "--status" in args:
        assert "pending" in line and "sent" in line and "undeliverable" in line
