"""The commands on mail: outbox list/send/retry/preview, the staff digest and a local mail sink."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .base import JsonOpt, app, emit, env_of, open_engine, outbox_app, session_for


def _row(r: Any, subject: str) -> dict[str, Any]:
    return {
        "id": r.id,
        "case_id": r.case_id,
        "kind": r.kind,
        "to": r.recipient,
        "cc": r.cc,
        "subject": subject,
        "status": r.status,
        "attempts": r.attempts,
        "last_error": r.last_error,
        "next_attempt_at": r.next_attempt_at.isoformat() if r.next_attempt_at else None,
        "sent_at": r.sent_at.isoformat() if r.sent_at else None,
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


@outbox_app.command("list")
def outbox_list(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option("--status", help="pending, sent or undeliverable.")
    ] = None,
    case: Annotated[int | None, typer.Option("--case", help="Only this case's mail.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the outbox: who gets what, and whether it went."""
    from ..notifications.delivery import subject_line
    from ..notifications.outbox import rows

    env = env_of(ctx)
    with session_for(env, write=False) as session:
        found = rows(session, status=status, case_id=case)
        data = [_row(r, subject_line(r, env.settings)) for r in found]
    emit(as_json, data, _rows_table)


@outbox_app.command("send")
def outbox_send(
    ctx: typer.Context,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Send at most N.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Send the mail that is due, over the configured SMTP server."""
    from ..notifications.delivery import send_pending

    env = env_of(ctx)
    engine = open_engine(env)
    try:
        tally = send_pending(engine, env.settings, env.clock, limit=limit)
    finally:
        engine.dispose()
    emit(as_json, tally.as_json(), lambda d: ", ".join(f"{k} {v}" for k, v in d.items()))


@outbox_app.command("retry")
def outbox_retry(
    ctx: typer.Context,
    row_id: Annotated[int, typer.Argument(metavar="ID")],
    to: Annotated[str | None, typer.Option("--to", help="A corrected address.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Put an undeliverable message back in the queue (after fixing its address)."""
    from ..notifications.delivery import subject_line
    from ..notifications.outbox import retry

    env = env_of(ctx)
    with session_for(env, write=True) as session:
        row = retry(session, row_id, now=env.clock.now, to=to)
        data = _row(row, subject_line(row, env.settings))
    emit(as_json, data, lambda d: f"outbox row {d['id']} to {d['to']} is pending again")


@outbox_app.command("preview")
def outbox_preview(
    ctx: typer.Context,
    row_id: Annotated[int, typer.Argument(metavar="ID")],
    as_json: JsonOpt = False,
) -> None:
    """Show the message an outbox row sends, rendered."""
    from ..notifications.delivery import preview
    from ..notifications.outbox import row_of

    env = env_of(ctx)
    with session_for(env, write=False) as session:
        message = preview(row_of(session, row_id), env.settings)
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
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


@app.command()
def digest(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Enqueue today's staff digest of overdue cases and undeliverable mail (once a day)."""
    from ..notifications.digest import enqueue_digest

    env = env_of(ctx)
    with session_for(env, write=True) as session:
        row_id = enqueue_digest(
            session, today=env.clock.today, now=env.clock.now, staff_email=env.settings.staff_email
        )
    emit(
        as_json,
        {"outbox_id": row_id},
        lambda d: (
            f"digest queued as outbox row {d['outbox_id']}"
            if d["outbox_id"]
            else "nothing overdue and no undeliverable mail: no digest today"
        ),
    )


@app.command("mail-sink")
def mail_sink(
    ctx: typer.Context,
    port: Annotated[
        int | None, typer.Option("--port", help="Port to listen on (default VETPRO_SMTP_PORT).")
    ] = None,
    maildir: Annotated[Path | None, typer.Option("--maildir", help="Keep mail here too.")] = None,
) -> None:
    """Run a local SMTP server that keeps what it receives (Ctrl-C stops it)."""
    from ..notifications.sink import Received, Sink, serve

    def ready(sink: Sink) -> None:
        kept = f", keeping mail in {maildir}" if maildir else ""
        typer.echo(f"mail sink listening on {sink.host}:{sink.port}{kept} (Ctrl-C stops it)")

    def show(r: Received) -> None:
        to = ", ".join(r.recipients)
        typer.echo(f"{r.received_at:%H:%M:%S}  {r.sender} -> {to}  {r.message.get('Subject', '')}")

    chosen = env_of(ctx).settings.smtp_port if port is None else port
    serve(host="127.0.0.1", port=chosen, maildir=maildir, on_message=show, on_ready=ready)
