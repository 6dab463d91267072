"""The `vetpro` command line: JSON on stdout, one `error:` line on stderr, meaningful exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vetpro_workflow.cli import app

COORDINATOR = "anna.huber@bbz-steyr.example"
STAFF = "officer@national-agency.example"
EXAMPLE = str(resources.files("vetpro_workflow").joinpath("examples/application.json"))


@pytest.fixture
def vetpro(sqlite_url):
    """Run `vetpro ARGS…` in-process on a fresh database; returns the click Result."""
    runner = CliRunner()
    env = {"VETPRO_DATABASE_URL": sqlite_url, "VETPRO_TODAY": ""}

    def run(*args: str, ok: bool | None = True, **extra_env: str):
        result = runner.invoke(app, list(args), env={**env, **extra_env})
        if ok is True:
            assert result.exit_code == 0, result.stderr
        assert "Traceback" not in result.output + result.stderr
        return result

    run("init")
    return run


def as_json(result) -> object:
    return json.loads(result.stdout)


@pytest.fixture
def imported(vetpro):
    vetpro("user", "add", STAFF, "--role", "staff", "--name", "Programme officer")
    return as_json(vetpro("import", EXAMPLE, "--json"))


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


def test_advance_takes_facts_with_set_and_records_them(vetpro, imported):
    vetpro("--today", "2027-01-15", "case", "advance", "1", "submit", "--actor", COORDINATOR)
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
    assert case["facts"] == {"grant_agreement_signed_on": "2027-03-09"}
    history = as_json(vetpro("case", "history", "1", "--json"))
    assert [(e["trigger"], e["source"], e["dest"], e["actor"]) for e in history] == [
        ("import", None, "drafted", "system"),
        ("submit", "drafted", "submitted", COORDINATOR),
        ("approve", "submitted", "approved", STAFF),
        ("start_preparation", "approved", "preparation", COORDINATOR),
    ]
    assert history[2]["note"] == "Sound plan."
    assert history[3]["facts"] == {"grant_agreement_signed_on": "2027-03-09"}
    assert history[3]["at"].startswith("2027-03-10")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["case", "advance", "1", "approve", "--actor", COORDINATOR, "--note", "x"],
            1,
            "'approve' on an application is fired by NA staff",
        ),
        (["case", "advance", "1", "fly", "--actor", COORDINATOR], 1, "'fly' is not a trigger"),
        (["case", "advance", "1", "submit", "--actor", "ghost@x.example"], 1, "unknown actor"),
        (
            ["case", "advance", "1", "submit", "--actor", COORDINATOR, "--if-version", "4"],
            3,
            "changed meanwhile (version 1, you had 4)",
        ),
        (
            ["case", "advance", "1", "submit", "--actor", COORDINATOR, "--set", "oops"],
            1,
            "--set: 'oops' is not KEY=VALUE",
        ),
        (["case", "advance", "9", "submit", "--actor", COORDINATOR], 1, "case 9 does not exist"),
        (
            ["--today", "2027-02-02", "case", "advance", "1", "submit", "--actor", COORDINATOR],
            1,
            "call deadline",
        ),
        (["--today", "2027-02-30", "case", "show", "1"], 1, "--today: '2027-02-30' is not a date"),
        (["case", "show", "one"], 2, "Invalid value for 'ID'"),
        (["case", "list", "--kind", "project"], 1, "--kind: 'project' is not a kind of case"),
        (["case", "list", "--state", "flying"], 1, "--state: 'flying' is not a state"),
        (["user", "add", "not-an-email", "--role", "staff"], 1, "is not a valid email address"),
        (["user", "add", "x@y.example", "--role", "admin"], 1, "--role: 'admin' is not a role"),
        (
            ["user", "add", "x@y.example", "--role", "coordinator"],
            1,
            "--org: a coordinator belongs",
        ),
        (
            ["user", "add", "x@y.example", "--role", "coordinator", "--org", "Nope"],
            1,
            "no organisation is named 'Nope'",
        ),
        (["user", "add", STAFF, "--role", "staff"], 1, "is already registered"),
        (["diagram", "project"], 1, "KIND: 'project' is not a kind of case"),
        (["case", "history", "77"], 1, "case 77 does not exist"),
        (["case", "frobnicate"], 2, "No such command 'frobnicate'"),
    ],
)
def test_a_refused_command_prints_one_error_line_and_exits_non_zero(
    vetpro, imported, args, code, message
):
    result = vetpro(*args, "--json", ok=None) if args[0] != "--today" else vetpro(*args, ok=None)
    assert result.exit_code == code
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert message in lines[0]


def test_a_refused_advance_changes_nothing(vetpro, imported):
    before = vetpro("case", "list", "--json").stdout
    vetpro(
        "--today", "2027-02-02", "case", "advance", "1", "submit", "--actor", COORDINATOR, ok=None
    )
    assert vetpro("case", "list", "--json").stdout == before


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


def test_the_clock_can_be_set_with_vetpro_today(vetpro, imported):
    result = vetpro(
        "case", "advance", "1", "submit", "--actor", COORDINATOR, ok=None, VETPRO_TODAY="2027-03-01"
    )
    assert result.exit_code == 1 and "call deadline" in result.stderr


def test_commands_need_an_initialised_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = CliRunner().invoke(app, ["case", "list"], env={"VETPRO_DATABASE_URL": url})
    assert result.exit_code == 1
    assert result.stderr.strip().endswith("has no tables yet; run 'vetpro init' first")


def test_the_diagram_is_mermaid_drawn_from_the_workflow(vetpro):
    text = vetpro("diagram", "mobility").stdout
    assert text.startswith("stateDiagram-v2")
    assert "preparation --> abroad: depart (coordinator)" in text
    assert "abroad --> validation: return_home (coordinator/system)" in text


def test_every_command_prints_exactly_one_json_document_with_json(vetpro, imported):
    for args in (
        ["case", "list"],
        ["case", "show", "1"],
        ["case", "history", "1"],
        ["diagram", "application"],
        ["init"],
    ):
        json.loads(vetpro(*args, "--json").stdout)


def test_commands_that_run_no_flow_do_not_import_prefect(sqlite_url, tmp_path):
    script = (
        "import sys\nfrom vetpro_workflow.cli import main\nsys.argv = ['vetpro', 'init']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('prefect' in sys.modules)\n"
    )
    env = {**os.environ, "VETPRO_DATABASE_URL": sqlite_url}
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_the_demo_tells_the_whole_story_cleanly_with_prefect_and_the_mail_sink(tmp_path):
    vetpro = Path(sys.executable).parent / "vetpro"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VETPRO_", "PREFECT_"))}
    env["VETPRO_PREFECT_HOME"] = str(tmp_path / "prefect")
    out = subprocess.run(
        [str(vetpro), "demo", "--dir", str(tmp_path / "demo"), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no warning, traceback or telemetry line
    story = json.loads(out.stdout)
    moves = [(m["case"], m["trigger"], m["dest"], m["actor"]) for m in story["timeline"]]
    assert moves[-1] == (1, "close", "closed", STAFF)
    assert (2, "return_home", "validation", "system") in moves  # returned by the morning sweep
    assert (3, "return_home", "validation", "system") in moves
    assert {(4, "reject", "rejected"), (5, "cancel", "cancelled")} <= {m[:3] for m in moves}
    assert [(r["case"], r["trigger"]) for r in story["refused"]] == [
        (1, "approve"),
        (2, "start_preparation"),
        (2, "depart"),
        (1, "close"),
    ]
    rules = {rule for sweep in story["sweeps"] for rule in sweep["by_rule"]}
    assert rules == {"call_deadline", "preparation", "participant_report", "final_report"}
    mail = story["mail"]
    assert mail[0]["to"] == COORDINATOR and "reminder" in mail[0]["subject"].lower()
    reports = {m["to"] for m in mail if "participant report" in m["subject"].lower()}
    assert reports == {"markus.leitner@bbz-steyr.example", "sabine.gruber@bbz-steyr.example"}
    assert len(list((tmp_path / "demo" / "mail" / "new").iterdir())) == len(mail) == 22


def test_the_sweep_command_runs_its_flow_offline_and_prints_only_its_json(tmp_path, sqlite_url):
    vetpro = Path(sys.executable).parent / "vetpro"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VETPRO_", "PREFECT_"))}
    env |= {"VETPRO_DATABASE_URL": sqlite_url, "VETPRO_PREFECT_HOME": str(tmp_path / "prefect")}
    for args in (["init"], ["import", EXAMPLE]):
        subprocess.run([str(vetpro), *args], env=env, check=True, capture_output=True)
    out = subprocess.run(
        [str(vetpro), "sweep", "--today", "2027-01-02", "--dry-run", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no warning, traceback or telemetry line from Prefect
    report = json.loads(out.stdout)
    assert (report["reminders"], report["by_rule"]) == (1, {"call_deadline": 1})
    assert report["planned"][0]["rule"] == "call_deadline"
