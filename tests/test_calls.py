"""The agency's calls (issue #9): NA staff define them, applications only name them.

`vetpro call add/list/show/ranking` on a real store (a SQLite file, then PostgreSQL), in-process
through the click group. A call's rules change only as a new version, and once applications
exist only with --force and a note. Staff evaluate submitted applications on the six criteria,
rank them against the call's pass mark, and approve only what reaches it.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from factories import CALL, COORDINATOR, SCORES, STAFF, call_document, document, snapshot
from vetpro_workflow.cli.app import app

EXAMPLES = resources.files("vetpro_workflow").joinpath("examples")
EXAMPLE = str(EXAMPLES.joinpath("application.json"))
CALL_FILE = str(EXAMPLES.joinpath("call.json"))
SHARED_EXAMPLE = Path("/work/shared/examples/application.json")
CRITERIA = tuple(SCORES)


class Vetpro:
    """The `vetpro` command line, in-process, on one store, with a folder for documents."""

    def __init__(self, url: str, folder: Path) -> None:
        self.runner = CliRunner()
        self.env = {
            "VETPRO_DATABASE_URL": url,
            "VETPRO_TODAY": "",
            "VETPRO_DEBUG": None,
            "PREFECT_API_URL": None,
        }
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, *args: str, ok: bool | None = True) -> Result:
        result = self.runner.invoke(app, list(args), env=self.env)
        if ok is True:
            assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output
        assert "internal error" not in result.stderr, result.stderr
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    def file(self, name: str, doc: Any) -> str:
        path = self.folder / name
        path.write_text(json.dumps(doc, indent=2, ensure_ascii=False))
        return str(path)

    def imported(self, doc: dict[str, Any], name: str = "doc.json") -> int:
        return int(self.json("import", self.file(name, doc))["application"])


@pytest.fixture
def vetpro(store_url, tmp_path) -> Vetpro:
    run = Vetpro(store_url, tmp_path / "documents")
    run("init")
    run("user", "add", STAFF, "--role", "staff", "--name", "Programme officer")
    return run


@pytest.fixture
def with_call(vetpro) -> Vetpro:
    vetpro("call", "add", CALL_FILE, "--actor", STAFF, "--today", "2026-11-01")
    return vetpro


def assert_one_error(result: Result, message: str, code: int = 1) -> None:
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]


def applicant(name: str) -> dict[str, Any]:
    """The example filed by another school (a new organisation, its contact its coordinator)."""
    slug = name.lower().replace(" ", "-")
    doc = document(
        applicant={
            "name": name,
            "type": "vet_provider",
            "country": "AT",
            "contact_name": "Kim Berger",
            "contact_email": f"k.berger@{slug}.example",
        }
    )
    for i, m in enumerate(doc["mobilities"]):
        m["participant"]["email"] = f"participant{i}@{slug}.example"
    return doc


def contact(name: str) -> str:
    return f"k.berger@{name.lower().replace(' ', '-')}.example"


# Defining calls.


def test_staff_add_a_call_and_list_and_show_it(vetpro):
    added = vetpro.json("call", "add", CALL_FILE, "--actor", STAFF)
    assert (added["code"], added["version"], added["action"]) == (CALL, 1, "added")
    other = vetpro.file("2028.json", call_document(code="LDV-VETPRO-2028", title="Call 2028"))
    text = vetpro("call", "add", other, "--actor", STAFF).stdout
    assert text == "call LDV-VETPRO-2028 added (version 1)\n"

    calls = vetpro.json("call", "list")
    assert sorted(c["code"] for c in calls) == [CALL, "LDV-VETPRO-2028"]
    shown = vetpro.json("call", "show", CALL)
    assert shown["deadline_brussels"] == "2027-02-01 12:00 Brussels time"
    assert (shown["earliest_start"], shown["max_project_months"]) == ("2027-06-01", 24)
    assert (shown["min_days"], shown["max_days"], shown["scale"]) == (7, 42, 10)
    assert (shown["pass_mark"], shown["max_total"]) == (36, 60)
    assert shown["version"] == 1 and [v["version"] for v in shown["versions"]] == [1]
    assert shown["versions"][0]["actor"] == STAFF
    assert shown["applications"] == {}

    text = vetpro("call", "show", CALL).stdout
    assert "2027-02-01 12:00 Brussels time" in text
    assert "pass mark 36 of 60" in text
    assert CALL in vetpro("call", "list").stdout


def test_adding_the_same_call_again_changes_nothing(with_call, db):
    before = snapshot(db)
    again = with_call.json("call", "add", CALL_FILE, "--actor", STAFF)
    assert (again["action"], again["version"], again["changes"]) == ("unchanged", 1, [])
    assert snapshot(db) == before


def test_a_coordinator_may_not_define_a_call(with_call, db):
    with_call("import", EXAMPLE)
    before = snapshot(db)
    other = with_call.file("2028.json", call_document(code="LDV-VETPRO-2028"))
    result = with_call("call", "add", other, "--actor", COORDINATOR, ok=None)
    assert_one_error(result, f"calls are defined by NA staff; {COORDINATOR} is coordinator")
    result = with_call("call", "add", other, "--actor", "ghost@x.example", ok=None)
    assert_one_error(result, "unknown actor")
    assert snapshot(db) == before


NAN = float("nan")

BAD_CALLS = [
    pytest.param(
        {k: v for k, v in call_document().items() if k != "code"}, "code: is missing", id="no-code"
    ),
    pytest.param(
        call_document(application_deadline="2027-02-01T12:00"),
        'application_deadline: "2027-02-01T12:00" is not a date and time with its offset',
        id="deadline-without-offset",
    ),
    pytest.param(
        call_document(application_deadline="9999-12-31T23:59:59-14:00"),
        "application_deadline: '9999-12-31T23:59:59-14:00' is out of range",
        id="deadline-overflowing",
    ),
    pytest.param(
        call_document(min_days=10, max_days=5),
        "max_days: 5 is below min_days (10)",
        id="max-days-below-min-days",
    ),
    pytest.param(
        call_document(evaluation={"weights": {"budget": 1}}),
        "evaluation.weights: 'budget' is not a quality criterion",
        id="unknown-criterion",
    ),
    pytest.param(
        call_document(evaluation={"pass_mark": 70}),
        "evaluation.pass_mark: 70 is above the maximum total 60",
        id="unreachable-mark",
    ),
    pytest.param(
        call_document(evaluation={"pass_mark": NAN}),
        "evaluation.pass_mark: ",
        id="mark-not-a-number",
    ),
    pytest.param(
        call_document(title="Call \u202e7202"),
        "title: contains the control or formatting character U+202E",
        id="bidi-title",
    ),
    pytest.param(call_document(budget=1), "budget: is not a field here", id="unknown-field"),
    pytest.param([], "a call document is a JSON object, not []", id="a-list"),
]


@pytest.mark.parametrize(("doc", "message"), BAD_CALLS)
def test_a_bad_call_document_is_refused_naming_the_field_and_changes_nothing(
    vetpro, db, doc, message
):
    path = vetpro.file("call.json", doc)
    before = snapshot(db)
    result = vetpro("call", "add", path, "--actor", STAFF, ok=None)
    assert_one_error(result, f"{path}: {message}")
    assert snapshot(db) == before


def test_a_call_file_that_cannot_be_read_is_refused(vetpro):
    missing = str(vetpro.folder / "missing.json")
    result = vetpro("call", "add", missing, "--actor", STAFF, ok=None)
    assert_one_error(result, f"{missing}: cannot be read (No such file or directory)")


def test_an_unknown_call_is_refused_by_show_and_ranking(with_call):
    for command in ("show", "ranking"):
        result = with_call("call", command, "LDV-VETPRO-2099", ok=None)
        assert_one_error(result, "no call 'LDV-VETPRO-2099'")


def test_calls_are_listed_latest_deadline_first(with_call):
    later = call_document(
        code="LDV-VETPRO-2028", title="Call 2028", application_deadline="2028-02-01T12:00:00+01:00"
    )
    with_call("call", "add", with_call.file("2028.json", later), "--actor", STAFF)
    assert [c["code"] for c in with_call.json("call", "list")] == ["LDV-VETPRO-2028", CALL]


# The shared example names the agency's call: it imports once NA staff added that call.


def test_the_shared_example_imports_once_its_call_is_added(vetpro, db):
    before = snapshot(db)
    result = vetpro("import", str(SHARED_EXAMPLE), ok=None)
    assert_one_error(result, f"{SHARED_EXAMPLE}: call.code: no call '{CALL}'")
    assert "vetpro call add" in result.stderr
    assert snapshot(db) == before

    vetpro("call", "add", CALL_FILE, "--actor", STAFF)
    done = vetpro.json("import", str(SHARED_EXAMPLE))
    assert len(done["mobilities"]) == 2
    assert vetpro.json("call", "show", CALL)["applications"] == {"drafted": 1}


# Changing a call: a new version; its rules only with --force and a note once it has applications.


def _later_deadline(vetpro: Vetpro) -> str:
    return vetpro.file(
        "later.json", call_document(application_deadline="2027-02-15T12:00:00+01:00")
    )


def test_a_call_without_applications_may_change_its_deadline_as_a_new_version(with_call):
    changed = with_call.json("call", "add", _later_deadline(with_call), "--actor", STAFF)
    assert (changed["action"], changed["version"]) == ("changed", 2)
    assert changed["changes"] == ["application_deadline"]
    shown = with_call.json("call", "show", CALL)
    assert shown["deadline_brussels"] == "2027-02-15 12:00 Brussels time"
    assert [v["version"] for v in shown["versions"]] == [1, 2]


def test_changing_the_deadline_of_a_call_with_applications_needs_force_and_a_note(with_call, db):
    app_id = with_call.imported(document(), "example.json")
    later = _later_deadline(with_call)
    before = snapshot(db)
    for extra in ([], ["--force"], ["--note", "Server outage."], ["--force", "--note", "  "]):
        result = with_call("call", "add", later, "--actor", STAFF, *extra, ok=None)
        assert_one_error(
            result,
            f"call {CALL} has 1 application(s); changing application_deadline needs --force "
            "and a --note saying why",
        )
    assert snapshot(db) == before

    note = "Deadline extended after the portal was down on 1 February."
    changed = with_call.json(
        "call", "add", later, "--actor", STAFF, "--force", "--note", note, "--today", "2027-01-20"
    )
    assert (changed["action"], changed["version"], changed["changes"]) == (
        "changed",
        2,
        ["application_deadline"],
    )
    shown = with_call.json("call", "show", CALL)
    assert shown["version"] == 2
    assert shown["deadline_brussels"] == "2027-02-15 12:00 Brussels time"
    v1, v2 = shown["versions"]
    assert (v1["version"], v1["note"]) == (1, None)
    assert (v2["version"], v2["actor"], v2["note"]) == (2, STAFF, note)
    assert list(v2["changes"]) == ["application_deadline"]
    assert shown["applications"] == {"drafted": 1}
    text = with_call("call", "show", CALL).stdout
    assert "version 2" in text and note in text

    # The new deadline is the one that counts.
    moved = with_call.json(
        "--today", "2027-02-10", "case", "advance", str(app_id), "submit", "--actor", COORDINATOR
    )
    assert moved["state"] == "submitted"


def test_a_call_with_applications_may_change_its_title_without_force(with_call):
    with_call.imported(document(), "example.json")
    renamed = with_call.file("renamed.json", call_document(title="VETPRO call 2027"))
    changed = with_call.json("call", "add", renamed, "--actor", STAFF)
    assert (changed["action"], changed["version"], changed["changes"]) == ("changed", 2, ["title"])


def test_a_call_change_note_has_a_length_limit(with_call, db):
    with_call.imported(document(), "example.json")
    before = snapshot(db)
    result = with_call(
        "call",
        "add",
        _later_deadline(with_call),
        "--actor",
        STAFF,
        "--force",
        "--note",
        "x" * 100_000,
        ok=None,
    )
    assert_one_error(result, "note")
    assert "characters" in result.stderr
    assert snapshot(db) == before


# Evaluation and ranking.


def evaluate(
    vetpro: Vetpro,
    case_id: int,
    *,
    day: str = "2027-02-10",
    ok: bool | None = True,
    **changes: object,
) -> Result:
    sets = [a for k, v in (SCORES | changes).items() for a in ("--set", f"{k}={v}")]
    return vetpro(
        "--today",
        day,
        "case",
        "advance",
        str(case_id),
        "evaluate",
        "--actor",
        STAFF,
        *sets,
        "--note",
        "Assessed by two experts.",
        ok=ok,
    )


def submit(vetpro: Vetpro, case_id: int, actor: str = COORDINATOR) -> None:
    vetpro("--today", "2027-01-15", "case", "advance", str(case_id), "submit", "--actor", actor)


def approve(vetpro: Vetpro, case_id: int, ok: bool | None = True) -> Result:
    return vetpro(
        "--today",
        "2027-02-20",
        "case",
        "advance",
        str(case_id),
        "approve",
        "--actor",
        STAFF,
        "--note",
        "Selected.",
        ok=ok,
    )


def every(score: int) -> dict[str, int]:
    return dict.fromkeys(CRITERIA, score)


@pytest.fixture
def call_with_applications(with_call) -> dict[str, int]:
    """Five applications to the call: four submitted (three evaluated), one still a draft."""
    ids = {"steyr": with_call.imported(document(), "steyr.json")}
    for key, name in (
        ("linz", "HTL Linz"),
        ("wels", "HTL Wels"),
        ("graz", "HTL Graz"),
        ("krems", "HTL Krems"),
    ):
        ids[key] = with_call.imported(applicant(name), f"{key}.json")
    submit(with_call, ids["steyr"])
    for key, name in (("linz", "HTL Linz"), ("wels", "HTL Wels"), ("graz", "HTL Graz")):
        submit(with_call, ids[key], contact(name))
    evaluate(with_call, ids["steyr"])  # 43
    evaluate(with_call, ids["linz"], **every(5))  # 30: below the pass mark of 36
    evaluate(with_call, ids["wels"], **every(9))  # 54
    return ids


def test_the_ranking_orders_submitted_applications_by_score_against_the_pass_mark(
    with_call, call_with_applications
):
    ids = call_with_applications
    ranking = with_call.json("call", "ranking", CALL)
    assert (ranking["call"], ranking["pass_mark"], ranking["max_total"]) == (CALL, 36, 60)
    rows = [(a["id"], a["rank"], a["score"], a["passes"]) for a in ranking["applications"]]
    assert rows == [
        (ids["wels"], 1, 54, True),
        (ids["steyr"], 2, 43, True),
        (ids["linz"], 3, 30, False),
        (ids["graz"], None, None, False),  # submitted, not yet evaluated
    ]
    assert ids["krems"] not in [a["id"] for a in ranking["applications"]]  # still a draft
    steyr = ranking["applications"][1]
    assert steyr["applicant"] == "Berufsbildungszentrum Steyr" and steyr["country"] == "AT"
    assert steyr["mobilities"] == 2
    assert with_call.json("call", "ranking", CALL, "--format", "json") == ranking


def test_the_ranking_table_draws_the_pass_mark_between_those_above_and_below(
    with_call, call_with_applications
):
    ids = call_with_applications
    lines = with_call("call", "ranking", CALL).stdout.splitlines()
    assert "pass mark 36 of 60" in lines[0]
    order = [
        next(i for i, line in enumerate(lines) if f" {ids[k]} " in f" {line} ".replace("  ", " "))
        for k in ("wels", "steyr", "linz", "graz")
    ]
    assert order == sorted(order)
    mark = next(i for i, line in enumerate(lines[1:], 1) if "pass mark 36" in line)
    assert order[1] < mark < order[2]


def test_the_ranking_as_csv_has_one_row_per_submitted_application(
    with_call, call_with_applications
):
    ids = call_with_applications
    text = with_call("call", "ranking", CALL, "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [
        "rank",
        "case",
        "score",
        "passes",
        "mobilities",
        "applicant",
        "country",
        "title",
    ]
    assert [(r["rank"], r["case"], r["passes"]) for r in rows] == [
        ("1", str(ids["wels"]), "True"),
        ("2", str(ids["steyr"]), "True"),
        ("3", str(ids["linz"]), "False"),
        ("", str(ids["graz"]), "False"),
    ]
    assert [float(r["score"]) if r["score"] else None for r in rows] == [54, 43, 30, None]
    assert rows[1]["applicant"] == "Berufsbildungszentrum Steyr"


def test_approval_needs_an_evaluation_that_reaches_the_pass_mark(
    with_call, call_with_applications, db
):
    ids = call_with_applications
    before = snapshot(db)
    assert_one_error(
        approve(with_call, ids["graz"], ok=None),
        "needs an evaluation (evaluate) at or above the pass mark (36 of 60)",
    )
    assert_one_error(
        approve(with_call, ids["linz"], ok=None),
        "needs an evaluation at or above the pass mark (36 of 60); the latest totals 30",
    )
    assert snapshot(db) == before

    assert (
        with_call.json(
            "--today",
            "2027-02-20",
            "case",
            "advance",
            str(ids["wels"]),
            "approve",
            "--actor",
            STAFF,
            "--note",
            "Selected.",
        )["state"]
        == "approved"
    )
    ranked = [a["id"] for a in with_call.json("call", "ranking", CALL)["applications"]]
    assert ids["wels"] not in ranked


def test_the_latest_evaluation_is_the_one_that_counts(with_call, call_with_applications):
    ids = call_with_applications
    evaluate(with_call, ids["linz"], day="2027-02-12", **every(7))  # 42 now
    assert with_call.json("case", "show", str(ids["linz"]))["facts"]["score"] == 42
    approve(with_call, ids["linz"])
    evaluate(with_call, ids["steyr"], day="2027-02-12", **every(2))  # 12 now
    assert_one_error(
        approve(with_call, ids["steyr"], ok=None),
        "needs an evaluation at or above the pass mark (36 of 60); the latest totals 12",
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param(
            {"objectives": 11},
            "needs scores from 0 to 10 (not objectives=11)",
            id="above-the-scale",
        ),
        pytest.param(
            {"match": -1}, "needs scores from 0 to 10 (not match=-1)", id="below-the-scale"
        ),
        pytest.param(
            {"preparation": "good"}, "preparation: 'good' is not a number", id="not-a-number"
        ),
    ],
)
def test_an_evaluation_off_the_scale_is_refused_and_changes_nothing(
    with_call, call_with_applications, db, changes, message
):
    before = snapshot(db)
    result = evaluate(with_call, call_with_applications["graz"], ok=None, **changes)
    assert_one_error(result, message)
    assert snapshot(db) == before


def test_an_evaluation_needs_every_criterion_and_a_note_and_is_for_staff(
    with_call, call_with_applications, db
):
    graz = str(call_with_applications["graz"])
    before = snapshot(db)
    sets = [a for k, v in SCORES.items() if k != "dissemination" for a in ("--set", f"{k}={v}")]
    result = with_call(
        "--today",
        "2027-02-10",
        "case",
        "advance",
        graz,
        "evaluate",
        "--actor",
        STAFF,
        *sets,
        ok=None,
    )
    assert_one_error(result, "dissemination (a number)")
    assert "a note" in result.stderr
    result = with_call(
        "--today",
        "2027-02-10",
        "case",
        "advance",
        graz,
        "evaluate",
        "--actor",
        contact("HTL Graz"),
        *sets,
        "--set",
        "dissemination=7",
        "--note",
        "Self-assessed.",
        ok=None,
    )
    assert_one_error(result, "'evaluate' on an application is fired by NA staff")
    assert snapshot(db) == before


def test_changes_requested_after_an_evaluation_call_for_a_new_one(
    with_call, call_with_applications
):
    steyr = str(call_with_applications["steyr"])
    with_call(
        "--today",
        "2027-02-12",
        "case",
        "advance",
        steyr,
        "request_changes",
        "--actor",
        STAFF,
        "--note",
        "Say how the simulators are shared.",
        "--set",
        "resubmit_by=2027-03-01",
    )
    with_call("--today", "2027-02-20", "case", "advance", steyr, "submit", "--actor", COORDINATOR)
    assert_one_error(
        approve(with_call, int(steyr), ok=None),
        "needs an evaluation (evaluate) at or above the pass mark",
    )


def test_a_call_with_its_own_weights_ranks_by_the_weighted_total(with_call):
    weighted = call_document(
        code="LDV-VETPRO-2027-W",
        title="Weighted call 2027",
        evaluation={
            "scale": 10,
            "weights": {"objectives": 2, "dissemination": 0.5},
            "pass_mark": 40,
        },
    )
    with_call("call", "add", with_call.file("weighted.json", weighted), "--actor", STAFF)
    shown = with_call.json("call", "show", "LDV-VETPRO-2027-W")
    assert (shown["max_total"], shown["pass_mark"]) == (65, 40)
    app_id = with_call.imported(document(call="LDV-VETPRO-2027-W"), "weighted-doc.json")
    submit(with_call, app_id)
    evaluate(with_call, app_id)  # 8*2 + 7 + 7 + 6 + 8 + 7*0.5 = 47.5
    ranking = with_call.json("call", "ranking", "LDV-VETPRO-2027-W")
    assert [(a["id"], a["score"], a["passes"]) for a in ranking["applications"]] == [
        (app_id, 47.5, True)
    ]
    assert ranking["max_total"] == 65
    assert date.fromisoformat(ranking["applications"][0]["evaluated_on"]) == date(2027, 2, 10)
