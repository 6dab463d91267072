"""Drafts that can be changed, resubmission dates, and stays that end early, through the CLI.

`vetpro case amend` replaces a drafted application's content in one transaction and records
what changed, field by field; `request_changes --set resubmit_by=DATE` opens a resubmission after
the call deadline until that date, and the mail says which date stands; `interrupt` ends a stay
early. All on a real store (a SQLite file, then PostgreSQL), through the click group.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from factories import COORDINATOR, SCORES, STAFF, document, ensure_agency, snapshot
from vetpro_workflow.cli.app import app
from vetpro_workflow.store.database import Database

OTHER = "someone@elsewhere.example"


class Vetpro:
    """The `vetpro` command line, in-process, on one store."""

    def __init__(self, url: str, folder: Any) -> None:
        self.runner, self.folder = CliRunner(), folder
        self.env = {"VETPRO_DATABASE_URL": url, "VETPRO_TODAY": "", "PREFECT_API_URL": None}

    def __call__(self, *args: str, code: int = 0) -> Result:
        result = self.runner.invoke(app, list(args), env=self.env)
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output and "internal error" not in result.output
        if code:
            assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    def file(self, name: str, doc: Any) -> str:
        path = self.folder / name
        path.write_text(json.dumps(doc))
        return str(path)


@pytest.fixture
def vetpro(db: Database, store_url: str, tmp_path) -> Vetpro:
    ensure_agency(db)
    cli = Vetpro(store_url, tmp_path)
    cli("import", cli.file("application.json", document()))
    return cli


def test_an_amendment_changes_exactly_what_the_new_document_changes(vetpro, db):
    new = document(
        **{"project.title": "Welding simulators, revised", "mobilities.0.end_date": "2027-09-20"}
    )
    new["mobilities"] = [new["mobilities"][0]]  # Sabine's stay is dropped
    new["mobilities"].append(
        document()["mobilities"][1]
        | {
            "participant": document()["mobilities"][1]["participant"]
            | {"name": "Petra Moser", "email": "petra.moser@bbz-steyr.example"},
        }
    )
    before = vetpro.json("case", "show", "1")
    done = vetpro.json("case", "amend", "1", vetpro.file("v2.json", new), "--actor", COORDINATOR)
    assert done["version"] == before["version"] + 1
    assert done["changes"]["project.title"] == [before["title"], "Welding simulators, revised"]
    assert done["changes"]["mobility 2.end_date"] == ["2027-09-24", "2027-09-20"]
    assert done["changes"]["mobility 3"][1] == "cancelled"
    added = [k for k, v in done["changes"].items() if v[0] is None and "Petra Moser" in v[1]]
    assert added == ["mobility 4"]
    assert set(done["changes"]) == {
        "project.title",
        "mobility 2.end_date",
        "mobility 3",
        "mobility 4",
    }
    after = vetpro.json("case", "show", "1")
    assert after["title"] == "Welding simulators, revised"
    assert [(m["id"], m["state"]) for m in after["mobilities"]] == [
        (2, "drafted"),
        (3, "cancelled"),
        (4, "drafted"),
    ]
    history = vetpro.json("case", "history", "1")
    assert history[-1]["trigger"] == "amend" and history[-1]["facts"]["changes"] == done["changes"]
    changed = vetpro.json("case", "history", "2")[-1]["facts"]
    assert changed == {"changes": {"end_date": ["2027-09-24", "2027-09-20"]}}
    assert "removed by an amendment" in vetpro.json("case", "history", "3")[-1]["note"]


def test_an_amendment_with_a_stale_version_is_refused_as_a_conflict_and_writes_nothing(vetpro, db):
    path = vetpro.file("v2.json", document(**{"project.title": "Another title"}))
    vetpro("case", "amend", "1", path, "--actor", COORDINATOR, "--if-version", "1")
    before = snapshot(db)
    again = document(**{"project.title": "A third title"})
    stale = vetpro(
        "case",
        "amend",
        "1",
        vetpro.file("v3.json", again),
        "--actor",
        COORDINATOR,
        "--if-version",
        "1",
        code=3,
    )
    assert "changed meanwhile (version 2, you had 1)" in stale.stderr
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("actor", "message"),
    [(STAFF, "amended by its coordinator"), (OTHER, "unknown actor")],
)
def test_only_the_coordinator_amends_and_nothing_is_written_otherwise(vetpro, db, actor, message):
    before = snapshot(db)
    path = vetpro.file("v2.json", document(**{"project.title": "Changed"}))
    refused = vetpro("case", "amend", "1", path, "--actor", actor, code=1)
    assert message in refused.stderr
    assert snapshot(db) == before


def test_a_submitted_application_cannot_be_amended(vetpro, db):
    vetpro("--today", "2027-01-15", "case", "advance", "1", "submit", "--actor", COORDINATOR)
    before = snapshot(db)
    path = vetpro.file("v2.json", document(**{"project.title": "Changed"}))
    refused = vetpro("case", "amend", "1", path, "--actor", COORDINATOR, code=1)
    assert "is in 'submitted'; 'amend' is only possible from drafted" in refused.stderr
    assert snapshot(db) == before


def test_a_document_that_changes_nothing_is_refused(vetpro):
    refused = vetpro(
        "case", "amend", "1", vetpro.file("same.json", document()), "--actor", COORDINATOR, code=1
    )
    assert "says what application 1 says already" in refused.stderr


def _changes_requested(vetpro: Vetpro, *extra: str) -> None:
    vetpro("--today", "2027-01-15", "case", "advance", "1", "submit", "--actor", COORDINATOR)
    vetpro(
        "--today",
        "2027-02-10",
        "case",
        "advance",
        "1",
        "request_changes",
        "--actor",
        STAFF,
        "--note",
        "Please shorten the second stay.",
        *extra,
    )


def _mail(db: Database, kind: str) -> dict[str, Any]:
    with db.transaction(write=False) as tx:
        row = tx.row("SELECT context FROM outbox WHERE kind = :k", {"k": kind})
    assert row is not None
    return dict(row["context"])


def test_a_resubmission_date_opens_a_resubmission_after_the_deadline_until_that_day(vetpro, db):
    _changes_requested(vetpro, "--set", "resubmit_by=2027-02-20")
    assert _mail(db, "changes_requested")["resubmit_by"] == "2027-02-20"
    vetpro("--today", "2027-02-20", "case", "advance", "1", "submit", "--actor", COORDINATOR)
    assert vetpro.json("case", "show", "1")["state"] == "submitted"


def test_after_the_resubmission_date_the_changed_application_is_refused(vetpro, db):
    _changes_requested(vetpro, "--set", "resubmit_by=2027-02-20")
    before = snapshot(db)
    late = vetpro(
        "--today", "2027-02-21", "case", "advance", "1", "submit", "--actor", COORDINATOR, code=1
    )
    assert "needed resubmitting by 2027-02-20" in late.stderr
    assert snapshot(db) == before


def test_without_a_resubmission_date_the_deadline_stands_and_the_mail_says_so(vetpro, db):
    _changes_requested(vetpro)
    context = _mail(db, "changes_requested")
    assert context["resubmit_by"] is None and context["call_deadline_passed"] is True
    from vetpro_workflow.notifications.render import words

    said = words("changes_requested", context, agency_email="na@agency.example")
    assert "has passed, and no later date was set" in said.text
    refused = vetpro(
        "--today", "2027-02-12", "case", "advance", "1", "submit", "--actor", COORDINATOR, code=1
    )
    assert "call deadline" in refused.stderr


def test_a_resubmission_date_in_the_past_is_refused(vetpro, db):
    vetpro("--today", "2027-01-15", "case", "advance", "1", "submit", "--actor", COORDINATOR)
    refused = vetpro(
        "--today",
        "2027-02-10",
        "case",
        "advance",
        "1",
        "request_changes",
        "--actor",
        STAFF,
        "--note",
        "x",
        "--set",
        "resubmit_by=2027-02-01",
        code=1,
    )
    assert "resubmit_by today or later" in refused.stderr


def _under_way(vetpro: Vetpro) -> None:
    steps = [
        ("2027-01-15", "1", "submit", COORDINATOR, []),
        ("2027-02-10", "1", "evaluate", STAFF, [f"{k}={v}" for k, v in SCORES.items()]),
        ("2027-02-20", "1", "approve", STAFF, []),
        (
            "2027-03-10",
            "1",
            "start_preparation",
            COORDINATOR,
            ["grant_agreement_signed_on=2027-03-10"],
        ),
        ("2027-05-10", "2", "start_preparation", COORDINATOR, ["agreement_signed_on=2027-05-10"]),
        (
            "2027-09-06",
            "2",
            "depart",
            COORDINATOR,
            ["departed_on=2027-09-06", "preparation_done=true"],
        ),
    ]
    for day, case_id, trigger, actor, facts in steps:
        sets = [part for fact in facts for part in ("--set", fact)]
        vetpro(
            "--today",
            day,
            "case",
            "advance",
            case_id,
            trigger,
            "--actor",
            actor,
            "--note",
            "ok",
            *sets,
        )


def test_an_interrupted_stay_goes_to_validation_and_tells_participant_and_coordinator(vetpro, db):
    _under_way(vetpro)
    vetpro(
        "--today",
        "2027-09-10",
        "case",
        "advance",
        "2",
        "interrupt",
        "--actor",
        COORDINATOR,
        "--set",
        "returned_on=2027-09-09",
        "--set",
        "reason=force_majeure",
        "--note",
        "Flooding closed the host's workshop.",
    )
    shown = vetpro.json("case", "show", "2")
    assert shown["state"] == "validation"
    assert shown["facts"]["interruption_reason"] == "force_majeure"
    assert shown["stay_note"] == "4 days abroad: Flooding closed the host's workshop."
    with db.transaction(write=False) as tx:
        mail = tx.rows("SELECT kind, recipient FROM outbox WHERE case_id = 2 ORDER BY id")
    assert [(m["kind"], m["recipient"]) for m in mail][-2:] == [
        ("participant_report_request", "markus.leitner@bbz-steyr.example"),
        ("stay_interrupted", COORDINATOR),
    ]
    digest = vetpro.json("--today", "2027-09-11", "digest", "--show")
    assert any(
        "outside the call's limits: 4 days abroad" in item["what"] for item in digest["overdue"]
    )


def test_a_departure_before_the_training_agreement_is_refused(vetpro, db):
    _under_way(vetpro)
    vetpro(
        "--today",
        "2027-05-10",
        "case",
        "advance",
        "3",
        "start_preparation",
        "--actor",
        COORDINATOR,
        "--set",
        "agreement_signed_on=2027-05-10",
    )
    before = snapshot(db)
    refused = vetpro(
        "--today",
        "2027-10-04",
        "case",
        "advance",
        "3",
        "depart",
        "--actor",
        COORDINATOR,
        "--set",
        "departed_on=2027-05-01",
        code=1,
    )
    assert "departed_on not before the training agreement (2027-05-10)" in refused.stderr
    assert snapshot(db) == before


def test_a_return_after_the_project_end_is_refused(vetpro, db):
    _under_way(vetpro)
    before = snapshot(db)
    refused = vetpro(
        "--today",
        "2029-07-01",
        "case",
        "advance",
        "2",
        "return_home",
        "--actor",
        COORDINATOR,
        "--set",
        "returned_on=2029-06-30",
        "--note",
        "late",
        code=1,
    )
    assert "returned_on not after the project end (2029-05-31)" in refused.stderr
    assert snapshot(db) == before
