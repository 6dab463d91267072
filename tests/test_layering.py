"""Dependencies point inward: the workflows are pure, and the shipped example is the shared one."""

from __future__ import annotations

import ast
from importlib import resources
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "vetpro_workflow"
OUTER = {
    "sqlmodel",
    "sqlalchemy",
    "prefect",
    "jinja2",
    "aiosmtplib",
    "aiosmtpd",
    "fastapi",
    "typer",
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("module", sorted((PACKAGE / "states").glob("*.py")), ids=lambda p: p.name)
def test_the_workflow_definitions_import_no_database_mail_or_orchestration(module):
    assert imported_roots(module) & OUTER == set()


def test_the_service_layer_does_not_import_the_command_line_or_flows():
    for module in ("cases.py", "dossiers.py", "intake.py", "records.py", "models.py"):
        source = (PACKAGE / module).read_text()
        assert "from .cli" not in source and "from .flows" not in source, module


def test_the_packaged_example_is_the_shared_example_document():
    shared = Path(__file__).parents[2] / "shared" / "examples" / "application.json"
    if not shared.exists():
        pytest.skip(f"{shared} is not beside this checkout")
    packaged = resources.files("vetpro_workflow").joinpath("examples/application.json").read_text()
    assert packaged == shared.read_text()


@pytest.mark.parametrize("kind", ["application", "mobility"])
def test_the_readme_shows_the_diagram_the_workflow_draws(kind):
    from vetpro_workflow.states.workflows import DEFINITIONS, mermaid

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert f"```mermaid\n{mermaid(DEFINITIONS[kind])}\n```" in readme
