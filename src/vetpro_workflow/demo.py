"""The demonstration: the example application walked through every state on a moving clock."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from .cases import Moved, apply
from .clock import Clock
from .config import Settings, get_settings
from .db import create_schema, make_engine, reading, writing
from .errors import VetproError
from .filing import file_document
from .intake import parse
from .notifications.delivery import send_pending
from .notifications.outbox import rows
from .notifications.sink import Received, Sink
from .users import add_user

COORDINATOR = "anna.huber@bbz-steyr.example"
STAFF = "officer@national-agency.example"
IMPORT_DAY = date(2026, 12, 1)

# The example's story: (case: 0 the application, 1 and 2 its mobilities), trigger, actor, day,
# note, facts. Dates follow the example: stays in September and October 2027, project to 2029.
STORY: list[tuple[int, str, str, date, str | None, dict[str, object]]] = [
    (0, "submit", COORDINATOR, date(2027, 1, 15), None, {}),
    (0, "approve", STAFF, date(2027, 2, 20), "Clear objectives, sound budget.", {}),
    (
        0,
        "start_preparation",
        COORDINATOR,
        date(2027, 3, 10),
        None,
        {"grant_agreement_signed_on": "2027-03-10"},
    ),
    (
        1,
        "start_preparation",
        COORDINATOR,
        date(2027, 5, 10),
        None,
        {"agreement_signed_on": "2027-05-10"},
    ),
    (
        2,
        "start_preparation",
        COORDINATOR,
        date(2027, 5, 10),
        None,
        {"agreement_signed_on": "2027-05-10"},
    ),
    (
        1,
        "depart",
        COORDINATOR,
        date(2027, 9, 6),
        None,
        {"departed_on": "2027-09-06", "preparation_done": "true"},
    ),
    (1, "return_home", COORDINATOR, date(2027, 9, 24), None, {"returned_on": "2027-09-24"}),
    (2, "depart", COORDINATOR, date(2027, 10, 4), None, {"departed_on": "2027-10-04"}),
    (2, "return_home", COORDINATOR, date(2027, 10, 15), None, {"returned_on": "2027-10-15"}),
    (
        1,
        "validate",
        COORDINATOR,
        date(2027, 11, 2),
        None,
        {"europass_ref": "EMD-2027-0001", "participant_report_on": "2027-09-30"},
    ),
    (
        2,
        "validate",
        COORDINATOR,
        date(2027, 11, 2),
        None,
        {"europass_ref": "EMD-2027-0002", "participant_report_on": "2027-10-20"},
    ),
    (
        1,
        "complete",
        COORDINATOR,
        date(2027, 12, 1),
        None,
        {"dissemination": "Workshop for 12 welding trainers"},
    ),
    (
        2,
        "complete",
        COORDINATOR,
        date(2027, 12, 1),
        None,
        {"dissemination": "Talk at the school's staff day"},
    ),
    (0, "close", STAFF, date(2029, 7, 1), None, {"final_report_on": "2029-06-20"}),
]


# Mistakes made on the way, tried just before the story step of the same index: each is refused
# with the rule it breaks, and changes nothing.
MISTAKES: dict[int, tuple[int, str, str, date, str | None, dict[str, object]]] = {
    1: (0, "approve", STAFF, date(2027, 2, 20), None, {}),
    2: (
        1,
        "start_preparation",
        COORDINATOR,
        date(2027, 3, 1),
        None,
        {"agreement_signed_on": "2027-03-01"},
    ),
    5: (1, "depart", COORDINATOR, date(2027, 9, 6), None, {"departed_on": "2027-09-06"}),
    13: (0, "close", STAFF, date(2029, 7, 1), None, {}),
}
# A second project, filed late: rejected, its mobilities cancelled with it.
SECOND: list[tuple[int, str, str, date, str | None, dict[str, object]]] = [
    (0, "submit", COORDINATOR, date(2027, 1, 30), None, {}),
    (0, "reject", STAFF, date(2027, 3, 1), "Duplicate of application 1.", {}),
]


def example_document() -> str:
    """The example application document shipped with the package."""
    return resources.files(__package__).joinpath("examples/application.json").read_text()


@dataclass
class Story:
    """What the demo did: the moves in order and the mail it enqueued."""

    database: str
    moves: list[tuple[date, Moved]] = field(default_factory=list)
    refusals: list[tuple[date, int, str, str]] = field(default_factory=list)
    mail: list[dict[str, Any]] = field(default_factory=list)
    maildir: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "timeline": [
                {
                    "date": day.isoformat(),
                    "case": m.case_id,
                    "kind": m.kind,
                    "trigger": m.trigger,
                    "source": m.source,
                    "dest": m.dest,
                    "actor": m.actor,
                }
                for day, m in self.moves
            ],
            "refused": [
                {"date": day.isoformat(), "case": case, "trigger": trigger, "error": error}
                for day, case, trigger, error in self.refusals
            ],
            "mail": self.mail,
            "maildir": self.maildir,
        }

    def text(self) -> str:
        lines = ["Timeline", f"{'date':<10}  {'case':<14}  {'trigger':<20}  {'move':<30}  actor"]
        for day, m in self.moves:
            case = f"{m.kind} {m.case_id}"
            lines.append(
                f"{day}  {case:<14}  {m.trigger:<20}  {m.source + ' -> ' + m.dest:<30}  {m.actor}"
            )
        lines += ["", "Refused on the way (nothing was written)"]
        lines += [
            f"{day}  case {case:<3} {trigger:<18} {error}"
            for day, case, trigger, error in self.refusals
        ]
        lines += ["", f"Mail received by the local SMTP sink ({len(self.mail)})"]
        for r in self.mail:
            lines += ["", f"  To: {r['to']}" + (f"   Cc: {r['cc']}" if r["cc"] else "")]
            lines += [f"  Subject: {r['subject']}"]
            lines += [f"    {line}" for line in r["first_lines"]]
        lines += ["", f"Database:      {self.database}", f"Received mail: {self.maildir}"]
        return "\n".join(lines)


def run_demo(workdir: Path) -> Story:
    """Start from an empty store in `workdir`, import the example and play its whole story.

    Mail goes out after each step to a local SMTP sink started in this process.
    """
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    url = f"sqlite:///{(workdir / 'vetpro-demo.db').resolve()}"
    engine = make_engine(url)
    try:
        create_schema(engine)
        with writing(engine) as session:
            first, second = (
                file_document(
                    session,
                    parse(example_document()),
                    clock=Clock.on(IMPORT_DAY),
                    source="application.json",
                )
                for _ in range(2)
            )
            add_user(session, email=STAFF, role="staff", name="Programme officer")
        story = Story(
            database=url.removeprefix("sqlite:///"), maildir=str((workdir / "mail").resolve())
        )
        with Sink(maildir=workdir / "mail") as sink:
            settings = get_settings(
                database_url=url,
                smtp_host="127.0.0.1",
                smtp_port=sink.port,
                smtp_tls="none",
                smtp_username=None,
                smtp_password=None,
            )
            ids = [first.application, *first.mobilities]
            for number, step in enumerate(STORY):
                if number in MISTAKES:
                    _play(engine, story, ids, MISTAKES[number], settings)
                _play(engine, story, ids, step, settings)
            for step in SECOND:
                _play(engine, story, [second.application, *second.mobilities], step, settings)
            with reading(engine) as session:
                expected = len(rows(session, status="sent"))
            story.mail = [_letter(r) for r in sink.wait_for(expected)]
        story.moves.sort(key=lambda move: move[0])
        return story
    finally:
        engine.dispose()


def _letter(received: Received) -> dict[str, Any]:
    body = received.message.get_body(("plain",))
    text = body.get_content() if body is not None else ""
    return {
        "to": str(received.message["To"]),
        "cc": str(received.message["Cc"]) if received.message["Cc"] else None,
        "subject": " ".join(str(received.message["Subject"]).split()),
        "first_lines": [line for line in text.splitlines() if line.strip()][:3],
    }


def _play(
    engine: Any,
    story: Story,
    ids: list[int],
    step: tuple[int, str, str, date, str | None, dict[str, object]],
    settings: Settings,
) -> None:
    index, trigger, actor, day, note, facts = step
    try:
        with writing(engine) as session:
            moves = apply(
                session=session,
                case_id=ids[index],
                trigger=trigger,
                actor=actor,
                clock=Clock.on(day),
                facts=facts,
                note=note,
            )
    except VetproError as exc:
        story.refusals.append((day, ids[index], trigger, str(exc)))
        return
    story.moves += [(day, m) for m in moves]
    send_pending(engine, settings, Clock.on(day))


def story_json(story: Story) -> str:
    """The story as one JSON document."""
    return json.dumps(story.as_json(), default=str, indent=2)
