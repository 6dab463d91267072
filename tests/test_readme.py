"""The README tells the truth: its "Using it" runs as written, and it lists every setting."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

from vetpro_workflow.config import Settings, env_name

README = (Path(__file__).parents[1] / "README.md").read_text()
VETPRO = str(Path(sys.executable).with_name("vetpro"))


def section(title: str) -> str:
    """The text of a README section, up to the next one of the same level."""
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_the_readme_using_it_runs_as_written_from_top_to_bottom(tmp_path):
    script = re.search(r"```sh\n(.*?)```", section("Using it"), re.S)
    assert script is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VETPRO_", "PREFECT_"))}
    env["PATH"] = f"{Path(VETPRO).parent}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script.group(1)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "swept 2027-09-23 (exclusive) to 2027-09-24: 1 move(s)" in done.stdout
    assert "Return recorded: Markus Leitner" in done.stdout  # the sweep's return prompted
    assert (tmp_path / "vetpro.db").exists()


def test_the_readme_configuration_table_lists_every_setting():
    table = section("Configuration")
    missing = [env_name(f.name) for f in fields(Settings) if f"`{env_name(f.name)}`" not in table]
    assert missing == []
