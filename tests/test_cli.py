"""The `vetpro` command line: JSON on stdout, one `error:` line on stderr, meaningful exit codes.

Each test runs the real click group in-process (click.testing.CliRunner) against a real store, a
SQLite file and then PostgreSQL, or the installed `vetpro` script as a real process where what
is checked is the process itself (what it imports, what it prints on a terminal's streams).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from factories import (
    CALL,
    COORDINATOR,
    SCORES,
    STAFF,
    advance,
    call_document,
    document,
    ensure_agency,
    import_doc,
    snapshot,
    state_of,
    step_of,
    walk,
)
from vetpro_workflow.cli.app import app
from vetpro_workflow.states.calendar import business_day

EXAMPLES = resources.files("vetpro_workflow").joinpath("examples")
EXAMPLE = str(EXAMPLES.joinpath("application.json"))
CALL_FILE = str(EXAMPLES.joinpath("call.json"))
VETPRO = Path(sys.executable).parent / "vetpro"
BIG = str(2**63)
HUGE = str(2**64)
SECRET = "Sup3rSecret-pw"


def runner_for(url: str) -> Any:
    """`vetpro ARGS…` in-process on a store; returns the click Result."""
    runner = CliRunner()
    env = {
        "VETPRO_DATABASE_URL": url,
        "VETPRO_TODAY": "",
        "VETPRO_DEBUG": None,
        "PREFECT_API_URL": None,
    }

    def run(*args: str, ok: bool | None = True, **extra_env: str | None) -> Result:
        result = runner.invoke(app, list(args), env={**env, **extra_env})
        if ok is True:
            assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output
        assert "internal error" not in result.stderr, result.stderr
        return result

    return run


@pytest.fixture
def vetpro(store_url):
    """Run `vetpro ARGS…` in-process on a fresh store (SQLite, then PostgreSQL)."""
    run = runner_for(store_url)
    run("init")
    return run


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


def scores(**changes: object) -> list[str]:
    """`--set criterion=score` for each of the six criteria."""
    return [a for k, v in (SCORES | changes).items() for a in ("--set", f"{k}={v}")]


@pytest.fixture
def imported(vetpro):
    vetpro("user", "add", STAFF, "--role", "staff", "--name", "Programme officer")
    vetpro("call", "add", CALL_FILE, "--actor", STAFF)
    return as_json(vetpro("import", EXAMPLE, "--json"))


def assert_one_error(result: Result, code: int, message: str) -> None:
    """The exit code, nothing on stdout, and one `error:` line on stderr naming `message`."""
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]


def test_importing_one_file_prints_the_new_case_ids(imported):
    assert imported == {"application": 1, "mobilities": [2, 3]}


def test_case_show_gives_state_version_allowed_triggers_next_step_and_mobilities(vetpro, imported):
    case = as_json(vetpro("--today", "2027-01-10", "case", "show", "1", "--json"))
    assert (case["id"], case["kind"], case["state"], case["version"]) == (
        1,
        "application",
        "drafted",
        1,
    )
    assert case["allowed_triggers"] == ["submit", "withdraw"]
    assert "before the call deadline, 2027-02-01 12:00 Brussels time" in case["next_step"]
    assert case["call"] == CALL
    assert [m["id"] for m in case["mobilities"]] == [2, 3]
    mobility = as_json(vetpro("case", "show", "2", "--json"))
    assert mobility["application_id"] == 1 and mobility["participant"] == "Markus Leitner"
    assert mobility["allowed_triggers"] == ["cancel"]


def test_advance_moves_the_case_and_prints_it_after_the_move(vetpro, imported):
    case = as_json(
        vetpro(
            "--today",
            "2027-01-15",
            "case",
            "advance",
            "1",
            "submit",
            "--actor",
            COORDINATOR,
            "--json",
        )
    )
    assert (case["state"], case["version"]) == ("submitted", 2)
    assert [m["state"] for m in case["mobilities"]] == ["submitted", "submitted"]


def _submitted_and_evaluated(vetpro) -> None:
    vetpro("--today", "2027-01-15", "case", "advance", "1", "submit", "--actor", COORDINATOR)
    vetpro(
        "--today",
        "2027-02-10",
        "case",
        "advance",
        "1",
        "evaluate",
        "--actor",
        STAFF,
        *scores(),
        "--note",
        "Clear objectives.",
    )


def test_advance_takes_facts_with_set_and_records_them(vetpro, imported):
    _submitted_and_evaluated(vetpro)
    vetpro(
        "--today",
        "2027-02-20",
        "case",
        "advance",
        "1",
        "approve",
        "--actor",
        STAFF,
        "--note",
        "Sound plan.",
    )
    case = as_json(
        vetpro(
            "--today",
            "2027-03-10",
            "case",
            "advance",
            "1",
            "start_preparation",
            "--actor",
            COORDINATOR,
            "--set",
            "grant_agreement_signed_on=2027-03-09",
            "--json",
        )
    )
    assert case["facts"]["grant_agreement_signed_on"] == "2027-03-09"
    assert case["facts"]["approved_on"] == "2027-02-20"
    assert case["facts"]["score"] == sum(SCORES.values())
    history = as_json(vetpro("case", "history", "1", "--json"))
    assert [(e["trigger"], e["source"], e["dest"], e["actor"]) for e in history] == [
        ("import", None, "drafted", "system"),
        ("submit", "drafted", "submitted", COORDINATOR),
        ("evaluate", "submitted", "submitted", STAFF),
        ("approve", "submitted", "approved", STAFF),
        ("start_preparation", "approved", "preparation", COORDINATOR),
    ]
    assert history[2]["facts"] == SCORES and history[2]["note"] == "Clear objectives."
    assert history[3]["note"] == "Sound plan."
    assert history[4]["facts"] == {"grant_agreement_signed_on": "2027-03-09"}
    # Recorded at the start of the business day in Brussels, whatever zone it is written in.
    assert business_day(datetime.fromisoformat(history[4]["at"])) == date(2027, 3, 10)


def test_case_history_text_dates_each_move_on_its_business_day(vetpro, imported):
    vetpro("--today", "2027-01-15", "case", "advance", "1", "submit", "--actor", COORDINATOR)
    lines = vetpro("case", "history", "1").stdout.splitlines()
    submit = next(line for line in lines if " submit " in line)
    assert submit.startswith("2027-01-15"), submit


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        pytest.param(
            ["case", "advance", "1", "approve", "--actor", COORDINATOR, "--note", "x"],
            1,
            "'approve' on an application is fired by NA staff",
            id="approve-by-the-coordinator",
        ),
        pytest.param(
            ["case", "advance", "1", "fly", "--actor", COORDINATOR],
            1,
            "'fly' is not a trigger",
            id="unknown-trigger",
        ),
        pytest.param(
            ["case", "advance", "1", "submit", "--actor", "ghost@x.example"],
            1,
            "unknown actor",
            id="unknown-actor",
        ),
        pytest.param(
            ["case", "advance", "1", "submit", "--actor", COORDINATOR, "--if-version", "4"],
            3,
            "changed meanwhile (version 1, you had 4)",
            id="stale-version",
        ),
        pytest.param(
            ["case", "advance", "1", "submit", "--actor", COORDINATOR, "--if-version", BIG],
            3,
            f"changed meanwhile (version 1, you had {BIG})",
            id="version-of-2**63",
        ),
        pytest.param(
            ["case", "advance", "1", "submit", "--actor", COORDINATOR, "--set", "oops"],
            1,
            "--set: 'oops' is not KEY=VALUE",
            id="set-without-equals",
        ),
        pytest.param(
            ["case", "advance", "1", "submit", "--actor", COORDINATOR, "--set", "=2027-01-01"],
            1,
            "--set: '=2027-01-01' is not KEY=VALUE",
            id="set-without-key",
        ),
        pytest.param(
            [
                "case",
                "advance",
                "1",
                "submit",
                "--actor",
                COORDINATOR,
                "--set",
                "departed_on=2027-01-01",
            ],
            1,
            "'departed_on' is not a fact of 'submit'",
            id="fact-the-trigger-does-not-take",
        ),
        pytest.param(
            ["case", "advance", "9", "submit", "--actor", COORDINATOR],
            1,
            "case 9 does not exist",
            id="no-case-9",
        ),
        pytest.param(
            ["case", "advance", BIG, "submit", "--actor", COORDINATOR],
            1,
            f"case {BIG} does not exist",
            id="advance-case-2**63",
        ),
        pytest.param(["case", "show", BIG], 1, f"case {BIG} does not exist", id="show-2**63"),
        pytest.param(["case", "show", HUGE], 1, f"case {HUGE} does not exist", id="show-2**64"),
        pytest.param(["case", "history", BIG], 1, f"case {BIG} does not exist", id="history-2**63"),
        pytest.param(
            ["case", "rederive", BIG, "--actor", STAFF],
            1,
            f"case {BIG} does not exist",
            id="rederive-2**63",
        ),
        pytest.param(
            ["--today", "2027-02-02", "case", "advance", "1", "submit", "--actor", COORDINATOR],
            1,
            "call deadline",
            id="after-the-deadline",
        ),
        pytest.param(
            ["--today", "2027-02-30", "case", "show", "1"],
            1,
            "--today: '2027-02-30' is not a date",
            id="today-30-february",
        ),
        pytest.param(
            ["--today", "0001-01-01", "case", "show", "1"],
            1,
            "--today: 0001-01-01 is out of range",
            id="today-year-1-on-show",
        ),
        pytest.param(
            ["--today", "0001-01-01", "case", "advance", "1", "submit", "--actor", COORDINATOR],
            1,
            "--today: 0001-01-01 is out of range",
            id="today-year-1",
        ),
        pytest.param(
            [
                "--today",
                "9999-12-31T23:59-14:00",
                "case",
                "advance",
                "1",
                "submit",
                "--actor",
                COORDINATOR,
            ],
            1,
            "--today: '9999-12-31T23:59-14:00' is out of range",
            id="today-overflowing-its-offset",
        ),
        pytest.param(
            [
                "case",
                "advance",
                "1",
                "submit",
                "--actor",
                COORDINATOR,
                "--today",
                "2027-01-15T10:00",
            ],
            1,
            "--today: '2027-01-15T10:00' has no time zone",
            id="today-an-instant-without-zone",
        ),
        pytest.param(
            ["sweep", "--dry-run", "--today", "9999-12-31T23:59-14:00"],
            1,
            "--today: '9999-12-31T23:59-14:00' is out of range",
            id="sweep-today-overflowing",
        ),
        pytest.param(
            ["sweep", "--dry-run", "--today", "2027-01-02", "--since", "9999-12-31"],
            1,
            "--since",
            id="sweep-since-9999",
        ),
        pytest.param(
            ["sweep", "--dry-run", "--today", "2027-01-02", "--since", "yesterday"],
            1,
            "--since: 'yesterday' is not a date",
            id="sweep-since-not-a-date",
        ),
        pytest.param(["case", "show", "one"], 2, "Invalid value for 'ID'", id="id-not-a-number"),
        # click refuses values outside a fixed choice as usage errors (exit 2).
        pytest.param(
            ["case", "list", "--kind", "project"],
            2,
            "Invalid value for '--kind': 'project'",
            id="unknown-kind",
        ),
        pytest.param(
            ["case", "list", "--state", "flying"],
            1,
            "--state: 'flying' is not a state",
            id="unknown-state",
        ),
        pytest.param(
            ["user", "add", "not-an-email", "--role", "staff"],
            1,
            "is not a valid email address",
            id="user-not-an-email",
        ),
        pytest.param(
            ["user", "add", "x@y.example", "--role", "admin"],
            2,
            "Invalid value for '--role': 'admin'",
            id="unknown-role",
        ),
        pytest.param(
            ["user", "add", "x@y.example", "--role", "coordinator"],
            1,
            "--org: a coordinator belongs",
            id="coordinator-without-org",
        ),
        pytest.param(
            ["user", "add", "x@y.example", "--role", "coordinator", "--org", "Nope"],
            1,
            "no organisation is named 'Nope'",
            id="unknown-org",
        ),
        pytest.param(
            ["user", "add", STAFF, "--role", "staff"], 1, "is already registered", id="user-twice"
        ),
        pytest.param(
            ["diagram", "project"],
            2,
            "'project' is not one of 'application', 'mobility'",
            id="diagram-kind",
        ),
        pytest.param(["case", "history", "77"], 1, "case 77 does not exist", id="history-77"),
        pytest.param(
            ["case", "frobnicate"], 2, "No such command 'frobnicate'", id="unknown-command"
        ),
        pytest.param(["import"], 2, "Missing argument", id="import-nothing"),
        pytest.param(["call", "show", "NOPE"], 1, "no call 'NOPE'", id="unknown-call"),
    ],
)
def test_a_refused_command_prints_one_error_line_and_exits_non_zero(
    vetpro, imported, args, code, message
):
    result = vetpro(*args, "--json", ok=None)
    assert_one_error(result, code, message)


def test_a_fact_of_the_wrong_type_is_refused_naming_it(db, vetpro, imported):
    vetpro("--today", "2027-01-15", "case", "advance", "1", "submit", "--actor", COORDINATOR)
    before = snapshot(db)
    result = vetpro(
        "--today",
        "2027-02-10",
        "case",
        "advance",
        "1",
        "evaluate",
        "--actor",
        STAFF,
        *scores(),
        "--set",
        "objectives=eight",
        "--note",
        "x",
        "--json",
        ok=None,
    )
    assert_one_error(result, 1, "objectives: 'eight' is not a number")
    result = vetpro(
        "--today",
        "2027-02-10",
        "case",
        "advance",
        "1",
        "evaluate",
        "--actor",
        STAFF,
        *scores(objectives="NaN"),
        "--note",
        "x",
        "--json",
        ok=None,
    )
    assert_one_error(result, 1, "objectives: 'NaN' is not a number")
    assert snapshot(db) == before


def test_a_huge_case_id_to_list_after_is_a_refusal_never_a_crash(vetpro, imported):
    result = vetpro("case", "list", "--after", str(10**20), "--json", ok=None)
    assert_one_error(result, 2, "--after")


def test_the_case_list_pages_by_case_id(vetpro, imported):
    first = as_json(vetpro("case", "list", "--limit", "2", "--json"))
    after = as_json(
        vetpro("case", "list", "--limit", "2", "--after", str(first[-1]["id"]), "--json")
    )
    assert [c["id"] for c in first] == [1, 2] and [c["id"] for c in after] == [3]


def test_a_refused_advance_changes_nothing(db, vetpro, imported):
    before = snapshot(db)
    vetpro(
        "--today", "2027-02-02", "case", "advance", "1", "submit", "--actor", COORDINATOR, ok=None
    )
    assert snapshot(db) == before


def test_case_list_filters_by_kind_and_state(vetpro, imported):
    vetpro(
        "--today",
        "2027-01-15",
        "case",
        "advance",
        "2",
        "cancel",
        "--actor",
        COORDINATOR,
        "--note",
        "Left the school.",
    )
    mobilities = as_json(vetpro("case", "list", "--kind", "mobility", "--json"))
    assert [(c["id"], c["state"]) for c in mobilities] == [(2, "cancelled"), (3, "drafted")]
    drafted = as_json(vetpro("case", "list", "--state", "drafted", "--json"))
    assert [c["id"] for c in drafted] == [1, 3]
    by_call = as_json(vetpro("case", "list", "--call", CALL, "--json"))
    assert [c["id"] for c in by_call] == [1, 2, 3]
    assert as_json(vetpro("case", "list", "--call", "LDV-VETPRO-2099", "--json")) == []


def test_the_clock_can_be_set_with_vetpro_today(vetpro, imported):
    result = vetpro(
        "case", "advance", "1", "submit", "--actor", COORDINATOR, ok=None, VETPRO_TODAY="2027-03-01"
    )
    assert result.exit_code == 1 and "call deadline" in result.stderr


def test_a_malformed_vetpro_today_is_refused_naming_the_variable(vetpro, imported):
    result = vetpro("case", "list", ok=None, VETPRO_TODAY="tomorrow")
    assert_one_error(result, 1, "VETPRO_TODAY: 'tomorrow' is not a date")


def test_commands_need_an_initialised_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = runner_for(url)("case", "list", ok=None)
    assert result.exit_code == 1
    assert result.stderr.strip().endswith("has no tables yet; run 'vetpro init' first")


def test_the_diagram_is_mermaid_drawn_from_the_workflow(vetpro):
    text = vetpro("diagram", "mobility").stdout
    assert text.startswith("stateDiagram-v2")
    assert "preparation --> abroad: depart (coordinator)" in text
    assert "abroad --> validation: return_home (coordinator/system)" in text


def test_every_command_prints_exactly_one_json_document_with_json(vetpro, imported, tmp_path):
    linz = tmp_path / "linz.json"
    doc = document(
        applicant={
            "name": "HTL Linz",
            "type": "vet_provider",
            "country": "AT",
            "contact_name": "Kim Berger",
            "contact_email": "k.berger@htl-linz.example",
        }
    )
    for i, m in enumerate(doc["mobilities"]):
        m["participant"]["email"] = f"p{i}@htl-linz.example"
    linz.write_text(json.dumps(doc))
    for args in (
        ["init"],
        ["user", "add", "deputy@national-agency.example", "--role", "staff"],
        ["call", "add", CALL_FILE, "--actor", STAFF],
        ["import", str(linz)],
        ["--today", "2027-01-15", "case", "advance", "1", "submit", "--actor", COORDINATOR],
        ["case", "list"],
        ["case", "show", "1"],
        ["case", "show", "1", "--actor", STAFF],
        ["case", "history", "1"],
        ["case", "rederive", "1", "--actor", STAFF],
        ["call", "list"],
        ["call", "show", CALL],
        ["call", "ranking", CALL],
        ["diagram", "application"],
        ["sweep", "--dry-run", "--today", "2027-01-02"],
        ["outbox", "list"],
        ["digest", "--show", "--today", "2027-01-16"],
    ):
        result = vetpro(*args, "--json")
        json.loads(result.stdout)  # exactly one document: anything after it is "extra data"
        assert result.stderr == "", (args, result.stderr)


# Who may do what: `case show --actor`.


def test_case_show_with_an_actor_lists_only_what_that_person_may_fire_and_the_facts_asked(
    vetpro, imported
):
    vetpro("--today", "2027-01-15", "case", "advance", "1", "submit", "--actor", COORDINATOR)
    everyone = as_json(vetpro("case", "show", "1", "--json"))
    assert everyone["allowed_triggers"] == ["request_changes", "evaluate", "reject", "withdraw"]
    # Approval waits for an evaluation at the pass mark: not offered, and said why.
    assert everyone["waiting"] == [
        {"trigger": "approve", "reason": "needs an evaluation (evaluate) at or above the pass "
         "mark (36 of 60)"}
    ]  # fmt: skip
    text = vetpro("case", "show", "1", "--actor", STAFF).stdout
    assert "  waiting    approve needs an evaluation (evaluate) at or above" in text

    vetpro("--today", "2027-02-10", "case", "advance", "1", "evaluate", "--actor", STAFF,
           *scores(), "--note", "Clear objectives.")  # fmt: skip
    staff = as_json(vetpro("case", "show", "1", "--actor", STAFF, "--json"))
    assert staff["allowed_triggers"] == ["request_changes", "evaluate", "approve", "reject"]
    assert staff["waiting"] == []
    asks = {a["trigger"]: a for a in staff["allowed"]}
    assert asks["evaluate"]["facts"] == [
        {"name": c, "shape": "a number", "required": True} for c in SCORES
    ]
    assert asks["evaluate"]["note"] is True
    assert asks["request_changes"]["facts"] == [
        {"name": "resubmit_by", "shape": "YYYY-MM-DD", "required": False}
    ]
    assert asks["approve"]["facts"] == [] and asks["approve"]["note"] is True

    coordinator = as_json(vetpro("case", "show", "1", "--actor", COORDINATOR, "--json"))
    assert coordinator["allowed_triggers"] == ["withdraw"]
    assert coordinator["allowed"] == [
        {"trigger": "withdraw", "who": ["coordinator"], "facts": [], "note": True}
    ]

    text = vetpro("case", "show", "1", "--actor", STAFF).stdout
    allowed = next(line for line in text.splitlines() if line.strip().startswith("allowed"))
    assert "evaluate [objectives=a number" in allowed
    assert "resubmit_by=YYYY-MM-DD (optional)" in allowed
    assert "withdraw" not in allowed


def test_case_show_for_a_coordinator_of_another_organisation_is_refused(vetpro, imported, tmp_path):
    linz = tmp_path / "linz.json"
    doc = document(
        **{
            "applicant.name": "HTL Linz",
            "applicant.contact_email": "k.berger@htl-linz.example",
            "mobilities.0.participant.email": "p0@htl-linz.example",
            "mobilities.1.participant.email": "p1@htl-linz.example",
        }
    )
    linz.write_text(json.dumps(doc))
    vetpro("import", str(linz))
    result = vetpro("case", "show", "1", "--actor", "k.berger@htl-linz.example", ok=None)
    assert_one_error(result, 1, "case 1 does not exist or is not one of your organisation's")
    result = vetpro("case", "show", "1", "--actor", "ghost@x.example", ok=None)
    assert_one_error(result, 1, "unknown actor")


# Secrets: a database password is never printed.

UNREACHABLE = f"postgresql+psycopg://vetpro:{SECRET}@127.0.0.1:1/agency"


@pytest.mark.parametrize(
    "args",
    [
        ["init"],
        ["init", "--json"],
        ["case", "list", "--json"],
        ["case", "show", "1"],
        ["import", EXAMPLE],
        ["call", "list"],
        ["user", "add", STAFF, "--role", "staff"],
        ["sweep", "--dry-run", "--today", "2027-01-02"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_an_unreachable_database_is_named_with_its_password_masked(args):
    result = runner_for(UNREACHABLE)(*args, ok=None)
    assert SECRET not in result.output
    assert_one_error(result, 1, "vetpro:***@127.0.0.1:1/agency")


def test_init_prints_the_database_it_made_ready_with_its_password_masked(store_url):
    if not store_url.startswith("postgresql"):
        pytest.skip("a SQLite file has no password")
    # The test server trusts its clients: any password is accepted, and must not be shown.
    user, _, rest = store_url.partition("://")[2].partition("@")
    url = f"{store_url.partition('://')[0]}://{user}:{SECRET}@{rest}"
    result = runner_for(url)("init", "--json")
    assert SECRET not in result.output
    assert as_json(result)["database"].startswith(f"postgresql+psycopg://{user}:***@")
    text = runner_for(url)("init")
    assert SECRET not in text.output and ":***@" in text.stdout


def test_an_unsupported_database_url_is_refused_without_its_password():
    result = runner_for(f"mysql://vetpro:{SECRET}@db.example/agency")("case", "list", ok=None)
    assert SECRET not in result.output
    assert_one_error(result, 1, "VETPRO_DATABASE_URL: use sqlite:///FILE or postgresql")


# The program itself: its version, and an example in every command's help.


def test_vetpro_version_prints_the_installed_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"vetpro, version {metadata.version('vetpro-workflow')}\n"


def _commands(group: click.Group, path: list[str]) -> list[list[str]]:
    found = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += _commands(command, [*path, name])
        else:
            found.append([*path, name])
    return found


@pytest.mark.parametrize("path", _commands(app, []), ids=" ".join)
def test_every_command_shows_an_example_in_its_help(path):
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    example = [line.strip() for line in result.stdout.splitlines() if "Example" in line]
    assert example, result.stdout
    assert "vetpro" in example[0] or "vetpro" in result.stdout.split("Example", 1)[1]


# --today takes an instant and keeps its zone: the business day is the date in Brussels.

SPRING = "LDV-VETPRO-2027-SPRING"


def _project_around_the_clock_changes(db) -> tuple[int, int, int]:
    """An approved project in preparation whose two stays begin on the days Brussels changes
    its clocks (2027-03-28 and 2027-10-31), both in preparation."""
    ensure_agency(
        db,
        call_document(code=SPRING, title="Spring call 2027", earliest_start="2027-03-01"),
    )
    doc = document(
        **{
            "call": SPRING,
            "project.start_date": "2027-03-01",
            "project.end_date": "2029-02-28",
            "mobilities.0.start_date": "2027-03-28",
            "mobilities.0.end_date": "2027-04-09",
            "mobilities.1.start_date": "2027-10-31",
            "mobilities.1.end_date": "2027-11-12",
        }
    )
    done = import_doc(db, doc)
    app_id, first, second = done.application, *done.mobilities
    advance(db, app_id, "submit", on=date(2027, 1, 15))
    advance(db, app_id, "evaluate", actor=STAFF, on=date(2027, 1, 20), note="Good.", **SCORES)
    advance(db, app_id, "approve", actor=STAFF, on=date(2027, 1, 25), note="Good.")
    advance(
        db,
        app_id,
        "start_preparation",
        on=date(2027, 1, 26),
        grant_agreement_signed_on="2027-01-26",
    )
    for mobility in (first, second):
        advance(
            db, mobility, "start_preparation", on=date(2027, 2, 1), agreement_signed_on="2027-02-01"
        )
    return app_id, first, second


@pytest.mark.parametrize(
    ("instant", "mobility", "departed_on", "facts"),
    [
        pytest.param(
            "2027-03-28T00:30+01:00",
            1,
            "2027-03-28",
            ["--set", "preparation_done=true"],
            id="spring-forward",
        ),
        pytest.param("2027-10-31T00:30+02:00", 2, "2027-10-31", [], id="fall-back"),
    ],
)
def test_today_as_an_instant_is_the_business_day_in_brussels_around_the_clock_change(
    db, vetpro, instant, mobility, departed_on, facts
):
    ids = _project_around_the_clock_changes(db)
    case_id = ids[mobility]
    case = as_json(
        vetpro(
            "--today",
            instant,
            "case",
            "advance",
            str(case_id),
            "depart",
            "--actor",
            COORDINATOR,
            "--set",
            f"departed_on={departed_on}",
            *facts,
            "--json",
        )
    )
    assert case["state"] == "abroad"
    assert case["facts"]["departed_on"] == departed_on
    history = as_json(vetpro("case", "history", str(case_id), "--json"))
    recorded = datetime.fromisoformat(history[-1]["at"])
    assert recorded == datetime.fromisoformat(instant)  # the instant, in whichever zone
    # In UTC it is still the day before: the business day is Brussels's, not UTC's.
    assert recorded.astimezone(UTC).date() < date.fromisoformat(departed_on)


@pytest.mark.parametrize(
    ("instant", "mobility", "departed_on", "today"),
    [
        pytest.param("2027-03-27T23:59+01:00", 1, "2027-03-28", "2027-03-27", id="spring"),
        pytest.param("2027-10-30T23:59+02:00", 2, "2027-10-31", "2027-10-30", id="autumn"),
    ],
)
def test_a_departure_dated_after_the_business_day_in_brussels_is_in_the_future(
    db, vetpro, instant, mobility, departed_on, today
):
    ids = _project_around_the_clock_changes(db)
    before = snapshot(db)
    result = vetpro(
        "--today",
        instant,
        "case",
        "advance",
        str(ids[mobility]),
        "depart",
        "--actor",
        COORDINATOR,
        "--set",
        f"departed_on={departed_on}",
        "--set",
        "preparation_done=true",
        ok=None,
    )
    assert_one_error(
        result, 1, f"needs departed_on not in the future ({departed_on} is after today, {today})"
    )
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("instant", "moved"),
    [
        pytest.param("2027-02-01T11:59+01:00", True, id="11:59-Brussels"),
        pytest.param("2027-02-01T10:59+00:00", True, id="11:59-Brussels-written-in-UTC"),
        pytest.param("2027-02-01T11:59+00:00", False, id="12:59-Brussels-written-in-UTC"),
        pytest.param("2027-02-01T12:00+01:00", False, id="at-the-deadline"),
    ],
)
def test_the_deadline_is_met_or_missed_by_the_instant_given_with_today(
    vetpro, imported, instant, moved
):
    result = vetpro(
        "--today", instant, "case", "advance", "1", "submit", "--actor", COORDINATOR, ok=None
    )
    if moved:
        assert result.exit_code == 0, result.stderr
    else:
        assert_one_error(result, 1, "the call deadline (2027-02-01 12:00 Brussels time) has passed")


# The sweep, in this process.


def test_sweep_dry_run_names_each_recipient_rule_and_due_date_and_writes_nothing(
    db, vetpro, imported
):
    before = snapshot(db)
    report = as_json(vetpro("sweep", "--today", "2027-01-02", "--dry-run", "--json"))
    assert (report["reminders"], report["by_rule"]) == (1, {"call_deadline": 1})
    planned = report["planned"]
    assert [(p["case_id"], p["rule"], p["to"], p["due"]) for p in planned] == [
        (1, "call_deadline", COORDINATOR, "2027-02-01")
    ]
    text = vetpro("sweep", "--today", "2027-01-02", "--dry-run").stdout
    assert f"case 1: call_deadline to {COORDINATOR}, due 2027-02-01" in text
    assert "flow run" not in text
    assert snapshot(db) == before


def _python(script: str, url: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VETPRO_", "PREFECT_"))}
    env["VETPRO_DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def _main_then_prefect_loaded(*argv: str) -> str:
    return (
        "import sys\nfrom vetpro_workflow.cli import main\n"
        f"sys.argv = ['vetpro', *{list(argv)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('prefect loaded:', 'prefect' in sys.modules)\n"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["init"],
        ["case", "list"],
        ["sweep", "--dry-run", "--today", "2027-01-02", "--json"],
    ],
    ids=" ".join,
)
def test_commands_that_run_no_flow_do_not_import_prefect(sqlite_url, tmp_path, argv):
    out = _python(_main_then_prefect_loaded(*argv), sqlite_url, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "prefect loaded: False"


def test_the_sweep_command_runs_in_process_and_prints_only_its_json(tmp_path, sqlite_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VETPRO_", "PREFECT_"))}
    env |= {"VETPRO_DATABASE_URL": sqlite_url}
    for args in (
        ["init"],
        ["user", "add", STAFF, "--role", "staff"],
        ["call", "add", CALL_FILE, "--actor", STAFF],
        ["import", EXAMPLE],
    ):
        subprocess.run(
            [str(VETPRO), *args],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
            cwd=tmp_path,
        )
    out = subprocess.run(
        [str(VETPRO), "sweep", "--today", "2027-01-02", "--dry-run", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no warning, traceback or telemetry line
    report = json.loads(out.stdout)
    assert (report["reminders"], report["by_rule"]) == (1, {"call_deadline": 1})
    assert report["planned"][0]["rule"] == "call_deadline"
    assert "flow_run" not in report
    assert not (tmp_path / ".prefect").exists()


# Re-deriving a project's phase from its mobilities.


def test_case_rederive_brings_a_project_left_behind_in_line_with_its_mobilities(db, vetpro):
    done = import_doc(db)
    walk(db, done, step_of("depart", 1))
    assert state_of(db, done.application) == "abroad"
    with db.transaction() as tx:  # a project left behind (say, by an older version)
        tx.execute(
            "UPDATE \"case\" SET state = 'preparation', version = version + 1 WHERE id = :id",
            {"id": done.application},
        )
    result = as_json(
        vetpro(
            "--today",
            "2027-09-07",
            "case",
            "rederive",
            str(done.mobilities[0]),
            "--actor",
            STAFF,
            "--json",
        )
    )
    assert result["application"] == done.application
    assert result["state"] == "abroad"
    assert [(m["case_id"], m["source"], m["dest"]) for m in result["moves"]] == [
        (done.application, "preparation", "abroad")
    ]
    assert state_of(db, done.application) == "abroad"
    last = as_json(vetpro("case", "history", str(done.application), "--json"))[-1]
    assert (last["source"], last["dest"]) == ("preparation", "abroad")

    again = vetpro(
        "--today", "2027-09-07", "case", "rederive", str(done.application), "--actor", STAFF
    )
    assert "nothing to change" in again.stdout


def test_case_rederive_is_for_na_staff_only(db, vetpro):
    done = import_doc(db)
    before = snapshot(db)
    result = vetpro("case", "rederive", str(done.application), "--actor", COORDINATOR, ok=None)
    assert_one_error(result, 1, "re-deriving a project's phase is for NA staff")
    assert snapshot(db) == before


# Notes are free text people read: bounded and plain.


def test_a_note_of_absurd_length_is_refused_and_changes_nothing(db, vetpro, imported):
    before = snapshot(db)
    result = vetpro(
        "--today",
        "2027-01-15",
        "case",
        "advance",
        "1",
        "withdraw",
        "--actor",
        COORDINATOR,
        "--note",
        "x" * 100_000,
        ok=None,
    )
    assert_one_error(result, 1, "note")
    assert "characters" in result.stderr
    assert snapshot(db) == before


def test_a_long_but_reasonable_note_is_kept_whole(vetpro, imported):
    note = "The school merged with another; the project is withdrawn. " * 30  # ~1,800 characters
    vetpro(
        "--today",
        "2027-01-15",
        "case",
        "advance",
        "1",
        "withdraw",
        "--actor",
        COORDINATOR,
        "--note",
        note,
    )
    assert as_json(vetpro("case", "history", "1", "--json"))[-1]["note"] == note.strip()


def test_a_note_with_a_bidirectional_control_is_refused_and_changes_nothing(db, vetpro, imported):
    before = snapshot(db)
    result = vetpro(
        "--today",
        "2027-01-15",
        "case",
        "advance",
        "1",
        "withdraw",
        "--actor",
        COORDINATOR,
        "--note",
        "Withdrawn: \u202egnidnuf on",
        ok=None,
    )
    assert_one_error(result, 1, "U+202E")
    assert "\u202e" not in result.stderr
    assert snapshot(db) == before
