"""How fast the commands a person types answer, against a bare Python start, in the same run.

Each command runs as a new process, as typed: `vetpro --help`, `vetpro case show ID` and
`vetpro sweep --dry-run` on a store of 10,000 cases, each against `python -c pass`, alternating,
median of 10 runs. Targets: --help under 0.2 s and case show under 0.4 s.
Usage: python benchmarks/cli.py [--runs 10] [--cases 10000]
"""

from __future__ import annotations

import sys
from pathlib import Path

# This folder holds a script named like a library (transitions.py): keep it off the import path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

from vetpro_workflow.dev.bench import filled_store

VETPRO = str(Path(sys.executable).with_name("vetpro"))


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url, apps, mobilities = filled_store(Path(folder) / "cli.db", args.cases // 3)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VETPRO_", "PREFECT_"))}
        env |= {"VETPRO_DATABASE_URL": url, "VETPRO_TODAY": "2027-01-02"}
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "vetpro --help": [VETPRO, "--help"],
            f"vetpro case show {mobilities[-1]}": [VETPRO, "case", "show", str(mobilities[-1])],
            "vetpro sweep --dry-run": [VETPRO, "sweep", "--dry-run"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                times[name].append(timed(argv, env))
    base = statistics.median(times["python -c pass"])
    print(f"cli: {args.runs} runs each on a store of {len(apps) + len(mobilities):,} cases")
    for name, runs in times.items():
        median = statistics.median(runs)
        print(
            f"  {name:<28} median {median * 1000:6.0f} ms  ({median / base:5.1f} x python -c pass)"
        )
    print("  targets: vetpro --help < 200 ms, vetpro case show < 400 ms")
    if args.json:
        print(json.dumps({name: statistics.median(runs) for name, runs in times.items()}))


if __name__ == "__main__":
    main()
