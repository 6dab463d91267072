"""The commands on mail: outbox list/send/retry/preview, the staff digest and a local mail sink."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import click

from ..errors import InvalidInput
from .app import app, emit, env, json_option, outbox, today_option

STATUSES = ("pending", "sent", "undeliverable")


def _row(r: dict[str, Any], subject: str) -> dict[str, Any]:
    return {
        "id": r["id"],
        "case_id": r["case_id"],
        "kind": r["kind"],
        "to": r["recipient"],
        "cc": r["cc"],
        "subject": subject,
        "status": r["status"],
        "attempts": r["attempts"],
        "last_error": r["last_error"],
        "next_attempt_at": r["next_attempt_at"].isoformat() if r["next_attempt_at"] else None,
        "sent_at": r["sent_at"].isoformat() if r["sent_at"] else None,
    }


def _rows_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no mail"
    lines = [f"{'id':>6}  {'status':<13}  {'tries':>5}  {'to':<34}  subject"]
    for r in rows:
        lines.append(
            f"{r['id']:>6}  {r['status']:<13}  {r['attempts']:>5}  {r['to']:<34}  {r['subject']}"
        )
        if r["last_error"]:
            lines.append(f"{'':>6}  last error: {r['last_error']}")
    return "\n".join(lines)


@outbox.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only rows with this status.")
@click.option("--case", "case_id", type=int, help="Only this case's mail.")
@click.option(
    "--limit",
    default=200,
    show_default=True,
    type=click.IntRange(1),
    help="At most this many rows.",
)
@json_option
def outbox_list(status: str | None, case_id: int | None, limit: int, as_json: bool) -> None:
    """List the outbox: who gets what, and whether it went.

    Example: vetpro outbox list --status undeliverable
    """
    from ..notifications.letters import subject_line
    from ..notifications.outbox import rows

    run = env()
    with run.transaction(write=False) as tx:
        found = rows(tx, status=status, case_id=case_id, limit=limit)
    emit(as_json, [_row(r, subject_line(r, run.settings)) for r in found], _rows_table)


def _sent_text(d: dict[str, Any]) -> str:
    text = f"sent {d['sent']}, retrying {d['retrying']}, undeliverable {d['undeliverable']}"
    if d["lost"]:
        text += f", {d['lost']} taken over by another sender"
    if d["pending"] and not d["due"] and d["next_attempt_at"]:
        text += f"; {d['pending']} waiting for their retry time, the next at {d['next_attempt_at']}"
    elif d["pending"]:
        text += f"; {d['pending']} pending"
    else:
        text += "; nothing left to send"
    return text


@outbox.command("send")
@click.option("--limit", type=click.IntRange(1), help="Send at most N.")
@json_option
def outbox_send(limit: int | None, as_json: bool) -> None:
    """Send the mail that is due, over the configured SMTP server.

    Example: VETPRO_SMTP_HOST=smtp.agency.example vetpro outbox send
    """
    from ..notifications.delivery import send_pending

    run = env()
    with run.database() as db:
        tally = send_pending(db, run.settings, limit=limit)
    emit(as_json, tally.as_json(), _sent_text)


@outbox.command("retry")
@click.argument("row_id", metavar="[ID]", type=int, required=False)
@click.option("--to", metavar="ADDRESS", help="A corrected address (with one ID).")
@click.option(
    "--status", type=click.Choice(["undeliverable"]), help="Put back every row with this status."
)
@click.option(
    "--since", metavar="DAY", help="With --status: only rows given up on or after this day."
)
@json_option
def outbox_retry(
    row_id: int | None, to: str | None, status: str | None, since: str | None, as_json: bool
) -> None:
    """Put undeliverable mail back in the queue: one row (after fixing its address), or many.

    Examples: vetpro outbox retry 12 --to right@school.example;
    vetpro outbox retry --status undeliverable --since 2027-03-01
    """
    from ..clock import real_now
    from ..notifications.letters import subject_line
    from ..notifications.outbox import retry, retry_many

    run = env()
    if (row_id is None) == (status is None):
        raise InvalidInput("name one row (ID) or many (--status undeliverable [--since DAY])")
    if row_id is not None:
        if since is not None:
            raise InvalidInput("--since goes with --status, not with one row")
        with run.transaction(write=True) as tx:
            row = retry(tx, row_id, now=real_now(), to=to)
        emit(
            as_json,
            _row(row, subject_line(row, run.settings)),
            lambda d: f"outbox row {d['id']} to {d['to']} is pending again",
        )
        return
    if to is not None:
        raise InvalidInput("--to goes with one row (ID), not with --status")
    try:
        day = date.fromisoformat(since) if since else None
    except ValueError:
        raise InvalidInput(f"--since: {since!r} is not a date; use YYYY-MM-DD") from None
    with run.transaction(write=True) as tx:
        count = retry_many(tx, status=status or "", since=day, now=real_now())
    emit(as_json, {"retried": count}, lambda d: f"{d['retried']} message(s) pending again")


@outbox.command("preview")
@click.argument("row_id", metavar="ID", type=int)
@json_option
def outbox_preview(row_id: int, as_json: bool) -> None:
    """Show the message an outbox row sends, rendered.

    Example: vetpro outbox preview 12
    """
    from ..notifications.letters import compose
    from ..notifications.outbox import row_of

    run = env()
    with run.transaction(write=False) as tx:
        message = compose(row_of(tx, row_id), run.settings)
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    data = {
        "headers": {k: str(v) for k, v in message.items()},
        "text": text.get_content() if text else "",
        "html": html.get_content() if html else "",
    }
    emit(
        as_json,
        data,
        lambda d: "\n".join([*(f"{k}: {v}" for k, v in d["headers"].items()), "", d["text"]]),
    )


def digest_text(d: dict[str, Any]) -> str:
    """The digest as staff read it on a terminal."""
    if not d["overdue"] and not d["undeliverable"]:
        head = f"nothing overdue and no undeliverable mail on {d['day']}: no digest"
    elif d["outbox_id"]:
        head = f"digest of {d['day']}, queued as outbox row {d['outbox_id']}:"
    else:
        head = f"digest of {d['day']} (shown, not queued):"
    lines = [head]
    for item in d["overdue"]:
        lines.append(
            f"  case {item['case_id']:>6} {item['kind']:<11} {item['state']:<13} "
            f"due {item['due'] or '-':<10}  {item['what']} ({item['title']})"
        )
    for item in d["undeliverable"]:
        lines.append(f"  mail {item['id']:>6} to {item['to']}: {item['last_error']}")
    return "\n".join(lines)


@app.command()
@click.option("--show", is_flag=True, help="Only show today's digest; queue nothing.")
@today_option
@json_option
def digest(show: bool, today: str | None, as_json: bool) -> None:
    """Queue today's staff digest of overdue cases and undeliverable mail (once a day); print it.

    Example: vetpro digest --show
    """
    from ..notifications.digest import content, enqueue_digest

    run = env()
    with run.transaction(write=not show) as tx:
        if show:
            row_id, said = None, content(tx, run.clock.today)
        else:
            row_id, said = enqueue_digest(
                tx, today=run.clock.today, staff_email=run.settings.staff_email
            )
    emit(as_json, {"outbox_id": row_id, **said}, digest_text)


@app.command("mail-sink")
@click.option(
    "--port", type=click.IntRange(0, 65535), help="Port to listen on (default VETPRO_SMTP_PORT)."
)
@click.option("--maildir", type=click.Path(path_type=Path), help="Keep mail in this Maildir too.")
def mail_sink(port: int | None, maildir: Path | None) -> None:
    """Run a local SMTP server that keeps what it receives (Ctrl-C stops it).

    Example: vetpro mail-sink --maildir mail/
    """
    from ..dev.sink import Received, Sink, serve

    def ready(sink: Sink) -> None:
        kept = f", keeping mail in {maildir}" if maildir else ""
        click.echo(f"mail sink listening on {sink.host}:{sink.port}{kept} (Ctrl-C stops it)")

    def shown(r: Received) -> None:
        click.echo(
            f"{r.received_at:%H:%M:%S}  {r.sender} -> {', '.join(r.recipients)}  "
            f"{r.message.get('Subject', '')}"
        )

    chosen = env().settings.smtp_port if port is None else port
    serve(host="127.0.0.1", port=chosen, maildir=maildir, on_message=shown, on_ready=ready)
