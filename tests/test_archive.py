"""Export, restore and report: an agency moves its store from SQLite to PostgreSQL in two
commands, and exporting again gives the same lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import postgres_url
from vetpro_workflow.dev.demo import run_demo

VETPRO = str(Path(sys.executable).with_name("vetpro"))


def vetpro(url: str, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VETPRO_", "PREFECT_"))}
    done = subprocess.run(
        [VETPRO, *args],
        env=env | {"VETPRO_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    return done


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> str:
    story = run_demo(tmp_path_factory.mktemp("demo") / "demo", prefect=False)
    return f"sqlite:///{story.database}"


@pytest.mark.postgres
def test_a_demo_store_exported_from_sqlite_and_restored_into_postgresql_exports_the_same(
    demo_store, tmp_path
):
    exported = tmp_path / "sqlite.jsonl"
    vetpro(demo_store, "export", "--out", str(exported))
    target = postgres_url()
    restored = json.loads(vetpro(target, "restore", str(exported), "--json").stdout)
    assert restored["case"] == 5 and restored["outbox"] > 10
    again = vetpro(target, "export").stdout
    assert again == exported.read_text()
    lines = [json.loads(line) for line in again.splitlines()]
    cases = [line for line in lines if line["record"] == "case"]
    assert [(c["id"], c["state"], c["version"]) for c in cases] == [
        (1, "closed", 9),
        (2, "completed", 9),
        (3, "completed", 9),
        (4, "rejected", 4),
        (5, "cancelled", 3),
    ]
    assert cases[0]["details"]["score"] == 43 and len(cases[0]["history"]) == 9


@pytest.mark.postgres
def test_a_restored_postgresql_store_goes_on_with_new_ids_after_the_restored_ones(
    demo_store, tmp_path
):
    exported = tmp_path / "all.jsonl"
    vetpro(demo_store, "export", "--out", str(exported))
    target = postgres_url()
    vetpro(target, "restore", str(exported))
    example = tmp_path / "a.json"
    example.write_text(vetpro(target, "example", "application").stdout)
    done = json.loads(vetpro(target, "import", str(example), "--allow-duplicate", "--json").stdout)
    assert done["application"] == 6 and done["mobilities"] == [7, 8]


def test_restore_refuses_a_store_that_is_not_empty(demo_store, tmp_path):
    exported = tmp_path / "all.jsonl"
    vetpro(demo_store, "export", "--out", str(exported))
    refused = vetpro(demo_store, "restore", str(exported), code=1)
    assert (
        refused.stderr
        == "error: the store is not empty; restore loads an export into an empty store\n"
    )


def test_an_export_of_one_kind_is_for_reading_and_cannot_be_restored(
    demo_store, sqlite_url, tmp_path
):
    mobilities = vetpro(demo_store, "export", "--kind", "mobility").stdout.splitlines()
    records = [json.loads(line) for line in mobilities]
    assert records[0] == {"record": "export", "format": 1, "complete": False}
    assert {r["kind"] for r in records[1:]} == {"mobility"} and len(records) == 4
    part = tmp_path / "mobilities.jsonl"
    part.write_text("\n".join(mobilities) + "\n")
    refused = vetpro(sqlite_url, "restore", str(part), code=1)
    assert "restore needs a complete export" in refused.stderr


def test_restoring_something_that_is_not_an_export_is_refused_and_writes_nothing(
    sqlite_url, tmp_path
):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"record": "export", "format": 1, "complete": true}\n{"record": "case", "id": "x"\n'
    )
    refused = vetpro(sqlite_url, "restore", str(bad), code=1)
    assert refused.stderr == "error: line 2: not a line of a vetpro export\n"
    assert json.loads(vetpro(sqlite_url, "case", "list", "--json").stdout) == []


def test_the_report_counts_cases_per_state_call_and_country_and_the_mail(demo_store):
    figures = json.loads(vetpro(demo_store, "report", "--json").stdout)
    assert {"kind": "application", "state": "closed", "cases": 1} in figures["cases per state"]
    assert {"call": "LDV-VETPRO-2027", "state": "rejected", "applications": 1} in figures[
        "applications per call"
    ]
    assert {"country": "AT", "kind": "mobility", "cases": 3} in figures["cases per country"]
    sent = sum(r["messages"] for r in figures["mail"] if r["status"] == "sent")
    assert sent == 18
    csv = vetpro(demo_store, "report", "--format", "csv").stdout.splitlines()
    assert csv[0] == "table,key,value,count" and "cases per state,application,closed,1" in csv
