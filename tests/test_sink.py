"""The local mail sink behaves like a real SMTP server, including the faults tests rehearse."""

from __future__ import annotations

import asyncio
import logging
import mailbox
import os
import signal
import smtplib
import socket
import threading
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest

from vetpro_workflow.dev.sink import Received, Sink, serve
from vetpro_workflow.errors import InvalidInput


def prompt(
    to: str | list[str], subject: str = "Sign the grant agreement by 2027-03-01"
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "vetpro@national-agency.example"
    message["To"] = to if isinstance(to, str) else ", ".join(to)
    message["Subject"] = subject
    message.set_content("Zoë Ünal leaves for Lyon on 2027-09-06.\n.A line starting with a dot\n")
    message.add_alternative("<p>Zoë Ünal leaves for Lyon on 2027-09-06.</p>", subtype="html")
    return message


def send(message: EmailMessage, port: int, **kwargs: object) -> tuple[dict, str]:
    return asyncio.run(
        aiosmtplib.send(
            message, hostname="127.0.0.1", port=port, start_tls=False, timeout=5, **kwargs
        )
    )


def sink_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t is not threading.current_thread()]


def test_a_message_sent_to_the_sink_arrives_with_its_sender_recipients_and_subject():
    with Sink() as sink:
        send(prompt(["coordinator@school.example", "staff@agency.example"]), sink.port)
        (received,) = sink.wait_for(1)

    assert received.sender == "vetpro@national-agency.example"
    assert received.recipients == ("coordinator@school.example", "staff@agency.example")
    assert received.message["Subject"] == "Sign the grant agreement by 2027-03-01"
    text = received.message.get_body(("plain",))
    html = received.message.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content() == (
        "Zoë Ünal leaves for Lyon on 2027-09-06.\n.A line starting with a dot\n"
    )
    assert "<p>Zoë Ünal" in html.get_content()
    assert received.received_at.tzinfo is not None


def test_messages_from_the_standard_library_client_arrive_in_the_order_sent():
    with Sink() as sink, smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as client:
        for n in range(3):
            client.send_message(prompt("a@school.example", subject=f"Reminder {n}"))
        received = sink.wait_for(3)

    assert [r.message["Subject"] for r in received] == ["Reminder 0", "Reminder 1", "Reminder 2"]


def test_every_accepted_message_is_also_filed_in_the_maildir(tmp_path):
    folder = tmp_path / "mail"
    with Sink(maildir=folder) as sink:
        send(prompt("coordinator@school.example"), sink.port)
        send(prompt("staff@agency.example", subject="Validation overdue"), sink.port)
        sink.wait_for(2)

    filed = sorted(mailbox.Maildir(folder, create=False), key=lambda m: m["Delivered-To"])
    assert [m["Delivered-To"] for m in filed] == [
        "coordinator@school.example",
        "staff@agency.example",
    ]
    assert {m["Return-Path"] for m in filed} == {"<vetpro@national-agency.example>"}
    assert filed[1]["Subject"] == "Validation overdue"
    assert not any(b"\r\n" in path.read_bytes() for path in (folder / "new").iterdir())


def test_a_server_answering_451_then_250_accepts_the_message_on_the_second_attempt():
    with Sink(data_replies=["451 4.3.0 busy, try later"]) as sink:
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            send(prompt("coordinator@school.example"), sink.port)
        assert refused.value.code == 451
        assert sink.messages == []

        send(prompt("coordinator@school.example"), sink.port)
        assert len(sink.wait_for(1)) == 1


def test_a_data_reply_of_none_accepts_that_message_and_the_next_reply_answers_the_one_after():
    with Sink(data_replies=[None, "554 5.6.0 message refused"]) as sink:
        send(prompt("a@school.example", subject="first"), sink.port)
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            send(prompt("a@school.example", subject="second"), sink.port)
        send(prompt("a@school.example", subject="third"), sink.port)
        received = sink.wait_for(2)

    assert refused.value.code == 554
    assert [r.message["Subject"] for r in received] == ["first", "third"]


def test_a_recipient_refused_with_550_is_reported_while_the_others_still_receive_the_message():
    with Sink(reject_recipients={"Gone@School.example"}) as sink:
        errors, _ = send(prompt(["gone@school.example", "here@school.example"]), sink.port)
        (received,) = sink.wait_for(1)

    assert list(errors) == ["gone@school.example"]
    assert errors["gone@school.example"].code == 550
    assert received.recipients == ("here@school.example",)


def test_a_message_whose_only_recipient_is_refused_raises_recipients_refused_and_is_not_kept():
    with Sink(reject_recipients={"gone@school.example"}) as sink:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            send(prompt("gone@school.example"), sink.port)
        assert [r.code for r in refused.value.recipients] == [550]
        assert sink.messages == []


def test_two_sinks_listen_on_different_free_ports_at_the_same_time():
    with Sink() as first, Sink() as second:
        assert first.port != second.port and 0 not in (first.port, second.port)
        send(prompt("one@school.example"), first.port)
        send(prompt("two@school.example"), second.port)
        assert [r.recipients for r in first.wait_for(1)] == [("one@school.example",)]
        assert [r.recipients for r in second.wait_for(1)] == [("two@school.example",)]


def test_waiting_for_more_messages_than_arrive_raises_a_timeout_that_says_how_many_came():
    with Sink() as sink:
        send(prompt("a@school.example"), sink.port)
        with pytest.raises(TimeoutError, match=r"received 1 message\(s\) in 0.2 s; expected 2"):
            sink.wait_for(2, timeout=0.2)


def test_a_sink_stops_and_leaves_no_thread_behind():
    before = sink_threads()
    with Sink() as sink:
        send(prompt("a@school.example"), sink.port)
        sink.wait_for(1)
    assert sink_threads() == before


def test_a_sink_stopped_with_a_client_still_connected_stops_without_waiting_for_the_client():
    before = sink_threads()
    sink = Sink().start()
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as client:
        assert client.noop()[0] == 250
        # stop() returns while the client still holds its connection open: it does not wait
        # for the client to leave, and the client finds the server gone.
        sink.stop()
        assert sink_threads() == before
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()


def test_a_stopped_sink_refuses_connections_and_starts_again_on_the_same_port():
    sink = Sink().start()
    port = sink.port
    send(prompt("a@school.example", subject="before"), port)
    sink.stop()

    with pytest.raises(aiosmtplib.SMTPConnectError):
        send(prompt("a@school.example", subject="while down"), port)

    with sink.start():
        assert sink.port == port
        send(prompt("a@school.example", subject="after"), port)
        received = sink.wait_for(2)
    assert [r.message["Subject"] for r in received] == ["before", "after"]


def test_a_port_already_in_use_is_refused_with_a_message_that_says_what_to_do():
    with Sink() as busy, pytest.raises(InvalidInput, match=rf"listen on 127.0.0.1:{busy.port} "):
        Sink(port=busy.port).start()


def test_a_message_the_sink_cannot_file_gets_a_temporary_failure_and_is_not_kept(tmp_path):
    folder = tmp_path / "mail"
    with Sink(maildir=folder) as sink:
        # A file where Maildir keeps its tmp folder makes every delivery fail to be written.
        (folder / "tmp").rmdir()
        (folder / "tmp").write_text("")
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            send(prompt("a@school.example"), sink.port)
        assert refused.value.code == 451
        assert sink.messages == []


def test_the_sink_prints_and_logs_nothing_while_it_works(capfd, caplog):
    caplog.set_level(logging.DEBUG)
    with Sink() as sink:
        send(prompt("a@school.example"), sink.port)
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as client:
            assert client.docmd("BOGUS")[0] == 500  # aiosmtpd warns about these
        sink.wait_for(1)

    assert capfd.readouterr() == ("", "")
    assert [r for r in caplog.records if r.name.startswith("mail")] == []


def _send_then_signal(port: int, signum: int, arrived: threading.Event) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
        client.send_message(prompt("coordinator@school.example"))
    arrived.wait(10)
    os.kill(os.getpid(), signum)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_serving_in_the_foreground_reports_each_message_and_returns_quietly_on_a_signal(
    signum, tmp_path, capfd
):
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    seen: list[Received] = []
    ready: list[Sink] = []
    arrived = threading.Event()

    def on_message(received: Received) -> None:
        seen.append(received)
        arrived.set()

    def on_ready(sink: Sink) -> None:
        ready.append(sink)
        threading.Thread(target=_send_then_signal, args=(sink.port, signum, arrived)).start()

    serve(
        host="127.0.0.1",
        port=0,
        maildir=tmp_path / "mail",
        on_message=on_message,
        on_ready=on_ready,
    )

    assert [r.recipients for r in seen] == [("coordinator@school.example",)]
    assert len(list(mailbox.Maildir(tmp_path / "mail", create=False))) == 1
    assert ready[0].messages == seen
    assert capfd.readouterr() == ("", "")
    assert {s: signal.getsignal(s) for s in handlers} == handlers


def test_serving_on_a_port_in_use_raises_before_listening():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(InvalidInput):
            serve(host="127.0.0.1", port=taken.getsockname()[1], maildir=None)


def test_the_maildir_folder_is_created_with_its_parents_when_missing(tmp_path: Path):
    folder = tmp_path / "deep" / "mail"
    with Sink(maildir=folder) as sink:
        send(prompt("a@school.example"), sink.port)
        sink.wait_for(1)
    assert len(list((folder / "new").iterdir())) == 1


def test_a_maildir_that_cannot_be_created_is_refused_before_listening(tmp_path: Path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(InvalidInput, match=r"cannot keep mail in .*a-file"):
        Sink(maildir=tmp_path / "a-file").start()
