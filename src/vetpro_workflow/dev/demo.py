"""The demonstration: the agency's call, two applications and their whole story on a moving clock.

Both applications are told in one timeline, in date order. People's steps go through the service;
each morning sweep runs as Prefect's `nightly` flow (sweep, staff digest, dispatch) on its local
engine, or in this process with `prefect=False`; mail goes to a local SMTP sink and is listed
under the day it was sent.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from ..cases import advance
from ..clock import Clock, real_now
from ..config import Settings, get_settings
from ..errors import VetproError
from ..intake.documents import parse, parse_call
from ..intake.filing import file_document
from ..notifications.delivery import send_pending
from ..notifications.digest import enqueue_digest
from ..states.actors import Actor
from ..store import calls, schema
from ..store.auth import set_password
from ..store.database import Database
from ..store.users import add_user
from ..sweeps import sweep
from .sink import Received, Sink
from .story import COORDINATOR, SECOND_TITLE, STAFF, STEPS, SWEEP_DAYS, Step

IMPORT_DAY = date(2026, 12, 1)
# The demo's people can sign in to the web workspace (a demo store only: never in production).
PASSWORDS = {STAFF: "officer-demo-2027", COORDINATOR: "anna-demo-2027"}
LAST_DAY = max(s.day for s in STEPS)


def example(name: str) -> str:
    """An example document shipped with the package (application.json, call.json)."""
    return resources.files("vetpro_workflow").joinpath(f"examples/{name}").read_text()


@dataclass
class Story:
    """What the demo did, day by day: moves, refusals, sweeps and the mail each day sent."""

    database: str
    maildir: str
    lines: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    mail: list[dict[str, Any]] = field(default_factory=list)
    echo: Callable[[str], None] | None = None

    def say(self, line: str) -> None:
        self.lines.append(line)
        if self.echo is not None:
            self.echo(line)

    def as_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "maildir": self.maildir,
            "events": self.events,
            "mail": self.mail,
        }

    def summary(self) -> str:
        refused = sum(1 for e in self.events if e["kind"] == "refused")
        url = f"sqlite:///{self.database}"
        return "\n".join(
            [
                "",
                f"{len(self.events)} events, {refused} refused on purpose, {len(self.mail)} mails "
                "received by the local SMTP sink.",
                f"Database:      {self.database}",
                f"Received mail: {self.maildir}",
                f"Look around:   VETPRO_DATABASE_URL={url} vetpro case list",
                f"In a browser:  VETPRO_DATABASE_URL={url} VETPRO_TODAY={LAST_DAY} vetpro web",
                "               then open http://127.0.0.1:8000 and sign in as",
                *(
                    f"                 {email} / {password}"
                    for email, password in PASSWORDS.items()
                ),
            ]
        )


def _letter(received: Received) -> dict[str, Any]:
    body = received.message.get_body(("plain",))
    text = body.get_content() if body is not None else ""
    return {
        "to": ", ".join(received.recipients),
        "subject": " ".join(str(received.message["Subject"]).split()),
        "first_line": next((line for line in text.splitlines()[1:] if line.strip()), ""),
    }


class _Demo:
    def __init__(
        self, db: Database, settings: Settings, sink: Sink, story: Story, prefect: bool
    ) -> None:
        self.db, self.settings, self.sink, self.story = db, settings, sink, story
        self.seen = 0
        self.jobs = _prefect_jobs(settings) if prefect else None

    def mail_of(self, day: date) -> None:
        """Send what is due and list what arrived."""
        send_pending(self.db, self.settings)
        received = self.sink.messages[self.seen :]
        self.seen += len(received)
        for r in received:
            letter = _letter(r) | {"date": day.isoformat()}
            self.story.mail.append(letter)
            self.story.say(f"{'':<12}mail to {letter['to']}: {letter['subject']}")

    def sweep(self, day: date) -> None:
        if self.jobs is not None:
            result = self.jobs.nightly(today=day)
            swept, how = result["sweep"], "Prefect flow 'nightly'"
        else:
            swept, how = self._sweep_here(day), "in this process"
        rules = ", ".join(f"{k} {v}" for k, v in swept["by_rule"].items()) or "no reminder"
        self.story.events.append({"date": day.isoformat(), "kind": "sweep", **swept})
        self.story.say(f"{day}  morning sweep ({how}): {swept['transitions']} return(s), {rules}")
        self.mail_of(day)

    def _sweep_here(self, day: date) -> dict[str, Any]:
        s = self.settings
        swept = sweep(self.db, clock=Clock.on(day), staff_email=s.staff_email).as_json()
        with self.db.transaction() as tx:
            enqueue_digest(tx, today=day, staff_email=s.staff_email)
        return swept

    def step(self, ids: dict[str, int], step: Step) -> None:
        case_id = ids[step.case]
        try:
            decision = advance(
                self.db,
                case_id=case_id,
                trigger=step.trigger,
                actor=step.actor,
                clock=Clock.on(step.day),
                staff_email=self.settings.staff_email,
                facts=step.facts,
                note=step.note,
            )
        except VetproError as exc:
            self.story.events.append(
                {
                    "date": step.day.isoformat(),
                    "kind": "refused",
                    "case": case_id,
                    "trigger": step.trigger,
                    "error": str(exc),
                }
            )
            self.story.say(
                f"{step.day}  {'case ' + str(case_id):<10}{step.trigger:<20} "
                f"REFUSED (on purpose): {exc}"
            )
            return
        for c in decision.changes:
            self.story.events.append(
                {
                    "date": step.day.isoformat(),
                    "kind": "move",
                    "case": c.case_id,
                    "case_kind": c.kind,
                    "trigger": c.trigger,
                    "source": c.source,
                    "dest": c.dest,
                    "actor": c.actor,
                }
            )
            label = f"{c.kind} {c.case_id}"
            self.story.say(
                f"{step.day}  {label:<16}{c.trigger:<20} {c.source} -> {c.dest}  ({c.actor})"
            )
        self.mail_of(step.day)


def _prefect_jobs(settings: Settings) -> Any:
    from ..flows import quiet_prefect

    quiet_prefect(settings.prefect_home)
    from ..flows.jobs import build

    return build(settings)


def _setup(db: Database, story: Story) -> dict[str, int]:
    """The agency's call and staff, and the two applications, filed as drafts."""
    clock = Clock.on(IMPORT_DAY)
    second = json.loads(example("application.json"))
    second["project"]["title"] = SECOND_TITLE
    second["mobilities"] = second["mobilities"][1:]
    with db.transaction() as tx:
        add_user(tx, email=STAFF, role="staff", name="Programme officer")
        calls.define(
            tx, parse_call(example("call.json")), actor=Actor(STAFF, "staff"), now=clock.now
        )
        first = file_document(
            tx, parse(example("application.json")), clock=clock, source="application.json"
        )
        late = file_document(tx, parse(json.dumps(second)), clock=clock, source="second.json")
    story.say(
        f"{IMPORT_DAY}  call LDV-VETPRO-2027 added by {STAFF}; applications "
        f"{first.application} and {late.application} filed as drafts"
    )
    return {
        "A": first.application,
        "A1": first.mobilities[0],
        "A2": first.mobilities[1],
        "B": late.application,
        "B1": late.mobilities[0],
    }


def run_demo(
    workdir: Path, *, prefect: bool = True, echo: Callable[[str], None] | None = None
) -> Story:
    """Start from an empty store in `workdir` and play the whole story, printing it as it goes."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    path = (workdir / "vetpro-demo.db").resolve()
    url = f"sqlite:///{path}"
    schema.create(url)
    story = Story(database=str(path), maildir=str((workdir / "mail").resolve()), echo=echo)
    with Database(url) as db, Sink(maildir=workdir / "mail") as sink:
        settings = get_settings(
            database_url=url,
            smtp_host="127.0.0.1",
            smtp_port=sink.port,
            smtp_tls="none",
            smtp_username=None,
            smtp_password=None,
            prefect_home=str((workdir / "prefect").resolve()),
        )
        ids = _setup(db, story)
        demo = _Demo(db, settings, sink, story, prefect)
        sweeps = list(SWEEP_DAYS)
        for step in sorted(STEPS, key=lambda s: s.day):
            while sweeps and sweeps[0] <= step.day:
                demo.sweep(sweeps.pop(0))
            demo.step(ids, step)
        for day in sweeps:
            demo.sweep(day)
        with db.transaction() as tx:
            for email, password in PASSWORDS.items():
                set_password(tx, email, password, now=real_now())
    return story
