"""Issue 7, point 1: one bad address must never stop the mail.

An address with a control or bidirectional-formatting character is refused wherever one enters
(an imported document, `vetpro user add`, `vetpro outbox retry --to`, the settings); a row that
holds one anyway (written by an older version: inserted here with plain SQL) becomes
undeliverable, shown to staff, and every other message still goes out.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from click.testing import CliRunner, Result

from factories import COORDINATOR, STAFF_MAIL, document, ensure_agency, snapshot
from test_delivery import (
    QUIET,
    VETPRO,
    arrivals,
    counts,
    each_once,
    enqueue,
    insert_raw,
    row,
    settings_for,
    shown,
    stored,
    submitted,
)
from vetpro_workflow.cli import app
from vetpro_workflow.dev.sink import Sink
from vetpro_workflow.notifications.delivery import send_pending

BAD = {
    "control character": "anna.huber\x01@bbz-steyr.example",
    "escape sequence": "anna.huber\x1b[8m@bbz-steyr.example",
    "bidi override": "anna.huber@bbz-steyr.example\u202e",
    "right-to-left mark": "anna\u200f.huber@bbz-steyr.example",
    "smtp command": "anna.huber@bbz-steyr.example>\r\nRCPT TO:<spy@evil.example",
}
CHARACTERS = ("\x01", "\x1b", "\u202e", "\u200f", "\r")


def vetpro(url: str, *args: str, **env: str) -> Result:
    """`vetpro ARGS…` in-process on a store."""
    stale = {k: None for k in os.environ if k.startswith(("VETPRO_", "PREFECT_API"))}
    result = CliRunner().invoke(app, list(args), env=stale | {"VETPRO_DATABASE_URL": url} | env)
    assert "Traceback" not in result.stdout + result.stderr
    return result


def normalised(address: str) -> str:
    """How a refusal quotes an address: trimmed, lower-case, escaped."""
    return repr(address.strip().lower()[:80])


def refused(result: Result) -> str:
    """The one `error:` line of a refused command (exit 1, nothing on stdout), with no raw
    control or bidi character in it (they are shown escaped)."""
    assert result.exit_code == 1, result.stdout + result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ")
    assert not any(c in line for c in CHARACTERS)
    return line


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
@pytest.mark.parametrize(
    ("field", "shown_as"),
    [
        ("applicant.contact_email", "applicant.contact_email"),
        ("mobilities.0.participant.email", "mobilities[0].participant.email"),
    ],
    ids=["coordinator", "participant"],
)
def test_an_import_naming_a_bad_address_is_refused_and_writes_nothing(
    db, store_url, tmp_path, field, shown_as, bad
):
    ensure_agency(db)
    before = snapshot(db)
    path = tmp_path / "application.json"
    path.write_text(json.dumps(document(**{field: bad})))

    line = refused(vetpro(store_url, "import", str(path)))

    assert f"{shown_as}: {normalised(bad)} is not a valid email address" in line
    assert snapshot(db) == before


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
def test_user_add_refuses_a_bad_address(db, store_url, bad):
    ensure_agency(db)
    before = snapshot(db)

    line = refused(vetpro(store_url, "user", "add", bad, "--role", "staff"))

    assert f"EMAIL: {normalised(bad)} is not a valid email address" in line
    assert snapshot(db) == before


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
def test_outbox_retry_to_a_bad_address_is_refused_and_the_row_stays_as_it_was(db, store_url, bad):
    submitted(db)
    (receipt,) = stored(db)
    with Sink(reject_recipients={COORDINATOR}) as refusing:
        send_pending(db, settings_for(refusing.port))
    bounced = row(db, receipt["id"])
    assert bounced["status"] == "undeliverable"

    line = refused(vetpro(store_url, "outbox", "retry", str(receipt["id"]), "--to", bad))

    assert f"--to: {normalised(bad)} is not a valid email address" in line
    assert row(db, receipt["id"]) == bounced


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
def test_a_staff_address_setting_with_a_bad_address_is_refused_before_any_work(db, store_url, bad):
    submitted(db)
    before = snapshot(db)

    line = refused(vetpro(store_url, "outbox", "send", VETPRO_STAFF_EMAIL=bad))

    assert "VETPRO_STAFF_EMAIL: " in line and "is not a plain email address" in line
    assert snapshot(db) == before


def test_rows_holding_bad_addresses_become_undeliverable_and_every_other_message_is_sent(
    db, store_url
):
    case_id, context = submitted(db)
    bad_ids = []
    for n, bad in enumerate(BAD.values()):  # one bad row first, then among the good ones
        bad_ids.append(
            insert_raw(db, key=f"old:{n}", recipient=bad, case_id=case_id, context=context)
        )
        enqueue(db, 60, case_id=case_id, context=context, prefix=f"good{n}")
    good = len(stored(db)) - len(BAD)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VETPRO_", "PREFECT_API"))}
    with Sink() as sink:
        env |= {
            "VETPRO_DATABASE_URL": store_url,
            "VETPRO_SMTP_HOST": "127.0.0.1",
            "VETPRO_SMTP_PORT": str(sink.port),
            "VETPRO_STAFF_EMAIL": STAFF_MAIL,
        }
        runs = [
            subprocess.run(
                [str(VETPRO), "outbox", "send", "--json"], env=env, capture_output=True, timeout=600
            )
            for _ in range(2)
        ]
        sink.wait_for(good)

    for run in runs:
        assert run.returncode == 0, run.stderr.decode()
        assert run.stderr == b""
    first, again = (json.loads(run.stdout) for run in runs)
    assert {k: first[k] for k in QUIET} == QUIET | {"sent": good, "undeliverable": len(BAD)}
    assert {k: again[k] for k in QUIET} == QUIET
    for row_id, bad in zip(bad_ids, BAD.values(), strict=True):
        after = row(db, row_id)
        assert (after["status"], after["attempts"], after["sent_at"]) == ("undeliverable", 1, None)
        assert after["last_error"] == f"invalid address {bad!r}"
    sent = [r for r in stored(db) if r["status"] == "sent"]
    assert len(sent) == good
    assert arrivals(sink) == each_once(sent, settings_for(sink.port))
    assert not {to for m in sink.messages for to in m.recipients} & set(BAD.values())
    # Staff see them on the case and in the digest.
    assert [m["id"] for m in shown(db, case_id)] == bad_ids
    digest = json.loads(vetpro(store_url, "digest", "--show", "--json").stdout)
    assert [m["id"] for m in digest["undeliverable"]] == bad_ids


def test_a_bad_row_among_a_batch_sent_in_process_does_not_stop_the_batch(db):
    case_id, context = submitted(db)
    enqueue(db, 5, case_id=case_id, context=context)
    bad = insert_raw(
        db, key="old:1", recipient=BAD["smtp command"], case_id=case_id, context=context
    )
    enqueue(db, 5, case_id=case_id, context=context, prefix="after")
    with Sink() as sink:
        settings = settings_for(sink.port, mail_concurrency=1)
        tally = send_pending(db, settings)
        sink.wait_for(11)

    assert counts(tally) == QUIET | {"sent": 11, "undeliverable": 1}
    assert row(db, bad)["status"] == "undeliverable"
    assert {m.recipients for m in sink.messages}.isdisjoint({("spy@evil.example",)})
