"""The demonstration: the example application walked through every state on a moving clock."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import select

from .cases import apply
from .clock import Clock
from .config import Settings, get_settings
from .db import create_schema, make_engine, reading, writing
from .errors import VetproError
from .filing import file_document
from .intake import parse
from .models import Case, History
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


# The days the morning sweep runs in the demo (as Prefect's `nightly` flow): it returns each
# mobility on its planned end date and sends the reminders that fell due since the last sweep.
SWEEP_DAYS = (
    date(2027, 1, 2),
    date(2027, 8, 23),
    date(2027, 9, 24),
    date(2027, 10, 1),
    date(2027, 10, 15),
    date(2027, 10, 22),
    date(2029, 5, 31),
)


@dataclass
class Story:
    """What the demo did: the timeline from the case history, the sweeps, refusals and mail."""

    database: str
    maildir: str
    timeline: list[dict[str, Any]] = field(default_factory=list)
    sweeps: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[tuple[date, int, str, str]] = field(default_factory=list)
    mail: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "maildir": self.maildir,
            "timeline": self.timeline,
            "sweeps": self.sweeps,
            "refused": [
                {"date": day.isoformat(), "case": case, "trigger": trigger, "error": error}
                for day, case, trigger, error in self.refusals
            ],
            "mail": self.mail,
        }

    def text(self) -> str:
        rows = [(e["date"], 0, e) for e in self.timeline] + [(s["day"], 1, s) for s in self.sweeps]
        lines = ["Timeline", f"{'date':<10}  {'case':<14}  {'trigger':<20}  {'move':<30}  by"]
        for day, is_sweep, e in sorted(rows, key=lambda row: (row[0], row[1])):
            if is_sweep:
                rules = ", ".join(f"{k} {v}" for k, v in e["by_rule"].items()) or "no reminder"
                lines.append(
                    f"{day}  {'morning sweep':<14}  {'(Prefect: nightly)':<20}  "
                    f"{str(e['transitions']) + ' return(s); ' + rules:<30}  "
                    f"mail sent {e['sent']}"
                )
                continue
            case = f"{e['kind']} {e['case']}"
            move = f"{e['source']} -> {e['dest']}"
            lines.append(f"{day}  {case:<14}  {e['trigger']:<20}  {move:<30}  {e['actor']}")
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

    People's steps go through the service; each morning sweep runs as Prefect's `nightly` flow
    (sweep, staff digest, dispatch) on its local engine; mail goes to an in-process SMTP sink.
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
            overrides = {
                "database_url": url,
                "smtp_host": "127.0.0.1",
                "smtp_port": sink.port,
                "smtp_tls": "none",
                "smtp_username": None,
                "smtp_password": None,
            }
            for name, value in overrides.items():  # the flows read their settings from here
                key = f"VETPRO_{name.upper()}"
                os.environ.pop(key, None) if value is None else os.environ.__setitem__(
                    key, str(value)
                )
            settings = get_settings(**overrides)
            jobs = _prefect_jobs()
            sweeps = list(SWEEP_DAYS)
            ids = [first.application, *first.mobilities]
            for number, step in enumerate(STORY):
                while sweeps and sweeps[0] <= step[3]:
                    _sweep(jobs, story, sweeps.pop(0))
                if step[1] == "return_home":
                    continue  # the morning sweep returns them on their planned end date
                if number in MISTAKES:
                    _play(engine, story, ids, MISTAKES[number], settings)
                _play(engine, story, ids, step, settings)
            for day in sweeps:
                _sweep(jobs, story, day)
            for step in SECOND:
                _play(engine, story, [second.application, *second.mobilities], step, settings)
            with reading(engine) as session:
                expected = len(rows(session, status="sent"))
                story.timeline = _timeline(session)
            story.mail = [_letter(r) for r in sink.wait_for(expected)]
        return story
    finally:
        engine.dispose()


def _prefect_jobs() -> Any:
    from .flows import quiet_prefect

    quiet_prefect()
    from .flows import jobs

    return jobs


def _sweep(jobs: Any, story: Story, day: date) -> None:
    result = jobs.nightly(today=day)
    story.sweeps.append({**result["sweep"], "sent": result["dispatch"]["sent"]})


def _timeline(session: Any) -> list[dict[str, Any]]:
    entries = session.execute(
        select(History, Case.kind)
        .join(Case, Case.id == History.case_id)
        .where(History.trigger != "import")
        .order_by(History.at, History.id)
    ).all()
    return [
        {
            "date": h.at.date().isoformat(),
            "case": h.case_id,
            "kind": kind,
            "trigger": h.trigger,
            "source": h.source,
            "dest": h.dest,
            "actor": h.actor,
        }
        for h, kind in entries
    ]


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
            apply(
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
    send_pending(engine, settings, Clock.on(day))


def story_json(story: Story) -> str:
    """The story as one JSON document."""
    return json.dumps(story.as_json(), default=str, indent=2)
