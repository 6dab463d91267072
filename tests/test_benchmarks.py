"""Every script of `make bench` runs to its end at a tiny size and prints its comparison.

No figure is asserted (the machines are shared and noisy): this only keeps the scripts working
as the code they measure changes, with the checks each script makes of its own results.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import POSTGRES_URL, postgres_url

ROOT = Path(__file__).resolve().parent.parent

SMALL = {
    "transitions": (["--rounds", "3", "--per-round", "20"], "ratio "),
    "mail": (["--messages", "30", "--rounds", "3", "--connections", "2"], "ratio "),
    "sweep": (["--sizes", "2000,4000", "--due", "40", "--rounds", "1"], "ratio "),
    "cli": (["--runs", "1", "--cases", "200"], "vetpro case show"),
    "web": (["--cases", "5000", "--requests", "20"], "worst p95"),
}


def _run(script: str, args: list[str], tmp_path: Path) -> str:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "DO_NOT_TRACK": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("script", sorted(SMALL))
def test_the_benchmark_runs_at_a_tiny_size_and_prints_its_comparison(script, tmp_path):
    args, expected = SMALL[script]
    out = _run(script, args, tmp_path)
    assert expected in out, out


def test_the_postgres_benchmark_runs_at_a_tiny_size_and_prints_its_ratios(tmp_path):
    postgres_url()  # skips, or fails where PostgreSQL is required, without a server
    args = ["--url", POSTGRES_URL, "--rounds", "1", "--per-process", "5", "--processes", "2"]
    out = _run("postgres", [*args, "--warmup", "5"], tmp_path)
    assert "ratio with 2 processes" in out, out
