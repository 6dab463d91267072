"""`vetpro outbox …`, `vetpro digest` and the mail `case show` shows, against a real SMTP sink."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from factories import STORY, import_doc, walk
from vetpro_workflow.cli import app
from vetpro_workflow.filing import Imported
from vetpro_workflow.notifications.sink import Sink

LAST_DAY = STORY[-1][3]  # the story's last move: all of its mail is due
STAFF_MAIL = "vetpro-staff@national-agency.example"
MARKUS = "markus.leitner@bbz-steyr.example"
FIXED = "markus.leitner@omnia.example"
ROW_KEYS = {"id", "to", "subject", "status", "attempts", "last_error"}
QUIET = {"sent": 0, "retrying": 0, "undeliverable": 0, "pending": 0}


@pytest.fixture
def story(sqlite_engine) -> Imported:
    """The example walked through its whole story: its mail waits in the outbox."""
    done = import_doc(sqlite_engine)
    walk(sqlite_engine, done, len(STORY))
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


def refused(result: Result) -> str:
    """The one `error:` line of a refused command (exit 1, nothing on stdout)."""
    assert result.exit_code == 1, result.stdout
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
    table = vetpro("outbox", "list").stdout
    assert receipt["subject"] in table and MARKUS in table


def test_outbox_send_prints_its_tally_and_sends_each_message_once(vetpro, story):
    count = len(as_json(vetpro("outbox", "list", "--json")))
    with Sink() as sink:
        sent = as_json(vetpro("outbox", "send", "--json", port=sink.port))
        again = as_json(vetpro("outbox", "send", "--json", port=sink.port))
        received = sink.wait_for(count)

    assert sent == QUIET | {"sent": count}
    assert again == QUIET
    assert len({str(r.message["Message-ID"]) for r in received}) == len(received) == count
    listed = as_json(vetpro("outbox", "list", "--status", "sent", "--json"))
    assert len(listed) == count and {r["attempts"] for r in listed} == {1}


def test_outbox_send_while_the_server_is_down_reports_the_mail_retrying_and_why(vetpro, story):
    result = vetpro("outbox", "send", "--json")

    listed = as_json(vetpro("outbox", "list", "--json"))
    assert as_json(result) == QUIET | {"retrying": len(listed), "pending": len(listed)}
    assert {(r["status"], r["attempts"]) for r in listed} == {("pending", 1)}
    assert all(r["last_error"].startswith("connection: ") for r in listed)
    assert "last error: connection: " in vetpro("outbox", "list").stdout
    human = vetpro("outbox", "send").stdout
    assert human.strip() == f"sent 0, retrying 0, undeliverable 0, pending {len(listed)}"


def test_undeliverable_mail_is_shown_by_case_show_and_the_digest_and_retried_to_a_new_address(
    vetpro, story
):
    markus = story.mobilities[0]
    with Sink(reject_recipients={MARKUS}) as refusing:
        tally = as_json(vetpro("outbox", "send", "--json", port=refusing.port))
    (bounced,) = as_json(vetpro("outbox", "list", "--status", "undeliverable", "--json"))
    assert tally["undeliverable"] == 1 and tally["pending"] == 0
    assert bounced["to"] == MARKUS and "550" in bounced["last_error"]

    shown = as_json(vetpro("case", "show", str(markus), "--json"))
    assert [m["id"] for m in shown["undeliverable_mail"]] == [bounced["id"]]
    text = vetpro("case", "show", str(markus)).stdout
    assert f"MAIL NOT DELIVERED  outbox row {bounced['id']}" in text
    assert f"vetpro outbox retry {bounced['id']} --to ADDRESS" in text
    assert "MAIL NOT DELIVERED" not in vetpro("case", "show", str(story.mobilities[1])).stdout

    digest = as_json(vetpro("digest", "--json"))
    assert as_json(vetpro("digest", "--json")) == digest  # once a day
    retried = as_json(vetpro("outbox", "retry", str(bounced["id"]), "--to", FIXED, "--json"))
    assert (retried["id"], retried["to"], retried["status"]) == (bounced["id"], FIXED, "pending")
    assert as_json(vetpro("case", "show", str(markus), "--json"))["undeliverable_mail"] == []
    with Sink() as sink:
        after = as_json(vetpro("outbox", "send", "--json", port=sink.port))
        received = {r.recipients: r for r in sink.wait_for(2)}

    assert after == QUIET | {"sent": 2}
    assert set(received) == {(STAFF_MAIL,), (FIXED,)}
    listing = received[(STAFF_MAIL,)].message.get_body(("plain",)).get_content()
    assert MARKUS in listing and "550" in listing
    assert str(received[(FIXED,)].message["To"]) == FIXED
    assert as_json(vetpro("outbox", "list", "--status", "undeliverable", "--json")) == []
    assert digest["outbox_id"] in {r["id"] for r in as_json(vetpro("outbox", "list", "--json"))}


def test_a_digest_with_nothing_to_report_is_not_queued(vetpro, story):
    assert as_json(vetpro("digest", "--json")) == {"outbox_id": None}
    assert "no digest today" in vetpro("digest").stdout


def test_outbox_preview_shows_the_headers_text_and_html_of_a_message(vetpro, story):
    receipt = next(r for r in as_json(vetpro("outbox", "list", "--json")) if r["kind"] == "receipt")

    shown = as_json(vetpro("outbox", "preview", str(receipt["id"]), "--json"))

    assert set(shown) == {"headers", "text", "html"}
    headers = shown["headers"]
    assert headers["To"] == receipt["to"] and headers["Subject"] == receipt["subject"]
    assert headers["Message-ID"].startswith("<") and headers["Message-ID"].endswith(">")
    assert "NA staff assess the application" in shown["text"]
    assert "NA staff assess the application" in shown["html"] and "</html>" in shown["html"]
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
    assert as_json(vetpro("outbox", "list", "--json")) == listed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("outbox", "list", "--status", "lost"), "--status: 'lost' is not a status"),
        (("outbox", "preview", "9999"), "outbox row 9999 does not exist"),
    ],
    ids=["bad status", "unknown row"],
)
def test_a_bad_status_or_an_unknown_row_is_refused_with_one_error_line(
    vetpro, story, args, message
):
    line = refused(vetpro(*args, ok=False))
    assert message in line
    if "--status" in args:
        assert "pending, sent, undeliverable" in line
