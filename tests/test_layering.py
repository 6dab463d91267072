"""Dependencies point inward: the workflows are pure, each layer imports only those below it, and
the shipped example is the shared one.

Imports are read from the source (absolute and relative, at module level and inside functions),
not by importing the modules, so a test here never depends on what a module does when imported.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "vetpro_workflow"
ROOT = "vetpro_workflow"
# Libraries of the outer layers: the database, orchestration, mail, templates, the edges.
OUTER = {
    "sqlmodel",
    "sqlalchemy",
    "prefect",
    "jinja2",
    "aiosmtplib",
    "aiosmtpd",
    "fastapi",
    "typer",
    "click",
    "psycopg",
    "pydantic",
}


def module_name(path: Path) -> str:
    """The dotted name of a module of the package, from its file."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def exists(dotted: str) -> bool:
    """Whether a dotted name is a module or package of ours."""
    relative = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    base = PACKAGE / relative
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports(path: Path) -> Iterator[tuple[str, int]]:
    """Every module a file imports: (dotted name, line), relative imports made absolute.

    `from .. import cases` names the module `cases` when there is one (else the package);
    `from ..store import x` names `store.x` when x is a module, else `store`.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path).split(".")
    package = here if is_package(path) else here[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            if not base.startswith(ROOT):
                yield base, node.lineno
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield (submodule if exists(submodule) else base), node.lineno


def layer(dotted: str) -> str:
    """The part of the package a module belongs to: 'states', 'store', 'cases', 'errors'…"""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ""


def ours(path: Path) -> list[tuple[str, int]]:
    """The package's own modules a file imports."""
    return [(name, line) for name, line in imports(path) if name.split(".")[0] == ROOT]


def modules(*parts: str) -> list[Path]:
    """The source files of some parts of the package (every part when none is named)."""
    files = sorted(PACKAGE.rglob("*.py"))
    if not parts:
        return files
    return [f for f in files if layer(module_name(f)) in parts]


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(PACKAGE)}:{line}"


# --- the reader itself --------------------------------------------------------------------------


def test_relative_imports_are_read_as_the_modules_they_name() -> None:
    cascade = PACKAGE / "states" / "cascade.py"
    names = {name for name, _ in imports(cascade)}
    assert "vetpro_workflow.errors" in names  # from ..errors import NotAllowed
    assert "vetpro_workflow.states.machine" in names  # from .machine import fire
    cli_init = PACKAGE / "cli" / "__init__.py"
    # `from . import calls, cases` inside cli/ names cli's own modules, not the service layer.
    assert {"vetpro_workflow.cli.cases", "vetpro_workflow.cli.calls"} <= {
        name for name, _ in imports(cli_init)
    }
    assert "vetpro_workflow.cases" not in {name for name, _ in imports(cli_init)}


def test_the_reader_sees_imports_inside_functions() -> None:
    # The command line imports the store lazily, inside its commands.
    names = {name for name, _ in imports(PACKAGE / "cli" / "cases.py")}
    assert "vetpro_workflow.store.views" in names


@pytest.mark.parametrize("module", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_import_of_our_own_names_a_module_that_exists(module: Path) -> None:
    missing = [f"{where(module, line)} {name}" for name, line in ours(module) if not exists(name)]
    assert missing == []


# --- the pure domain ----------------------------------------------------------------------------


@pytest.mark.parametrize("module", modules("states"), ids=lambda p: p.name)
def test_the_workflow_definitions_import_no_database_mail_orchestration_or_edge(
    module: Path,
) -> None:
    outer = {
        f"{where(module, line)} {name}"
        for name, line in imports(module)
        if name.split(".")[0] in OUTER
    }
    assert outer == set()


@pytest.mark.parametrize("module", modules("states"), ids=lambda p: p.name)
def test_the_domain_imports_nothing_of_ours_outside_it_but_the_errors(module: Path) -> None:
    outside = [
        f"{where(module, line)} {name}"
        for name, line in ours(module)
        if layer(name) not in ("states", "errors")
    ]
    assert outside == []


# --- the layers above it ------------------------------------------------------------------------

STORE_MUST_NOT_IMPORT = ("cases", "sweeps", "intake", "notifications", "flows", "cli", "web", "dev")


@pytest.mark.parametrize("module", modules("store"), ids=lambda p: p.name)
def test_the_store_imports_no_service_intake_mail_flow_or_edge(module: Path) -> None:
    upward = [
        f"{where(module, line)} {name}"
        for name, line in ours(module)
        if layer(name) in STORE_MUST_NOT_IMPORT
    ]
    assert upward == []


@pytest.mark.parametrize("module", ["cases.py", "sweeps.py"])
def test_the_service_layer_does_not_import_the_command_line_flows_or_dev_tools(
    module: str,
) -> None:
    path = PACKAGE / module
    upward = [
        f"{where(path, line)} {name}"
        for name, line in ours(path)
        if layer(name) in ("cli", "flows", "dev", "web")
    ]
    assert upward == []


def test_nothing_in_the_product_imports_the_dev_tools_but_the_command_line() -> None:
    users = [
        f"{where(path, line)} {name}"
        for path in modules()
        if layer(module_name(path)) not in ("dev", "cli")
        for name, line in ours(path)
        if layer(name) == "dev"
    ]
    assert users == []
    # ... and the command line uses them only for the demo and the local mail sink.
    used = {name for path in modules("cli") for name, _ in ours(path) if layer(name) == "dev"}
    assert used <= {"vetpro_workflow.dev.demo", "vetpro_workflow.dev.sink"}


def test_nothing_but_the_edges_imports_the_command_line_or_the_flows() -> None:
    users = [
        f"{where(path, line)} {name}"
        for path in modules()
        if layer(module_name(path)) not in ("cli", "flows", "dev", "web")
        for name, line in ours(path)
        if layer(name) in ("cli", "flows")
    ]
    assert users == []


# --- what ships with the package ----------------------------------------------------------------


def test_the_packaged_example_is_the_shared_example_document() -> None:
    shared = Path(__file__).parents[2] / "shared" / "examples" / "application.json"
    if not shared.exists():
        pytest.skip(f"{shared} is not beside this checkout")
    packaged = resources.files("vetpro_workflow").joinpath("examples/application.json").read_text()
    assert packaged == shared.read_text()


@pytest.mark.parametrize("kind", ["application", "mobility"])
def test_the_readme_shows_the_diagram_the_workflow_draws(kind: str) -> None:
    from vetpro_workflow.states.workflows import DEFINITIONS, mermaid

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert f"```mermaid\n{mermaid(DEFINITIONS[kind])}\n```" in readme
