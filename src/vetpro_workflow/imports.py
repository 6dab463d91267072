"""Importing many application documents: each in its own transaction, refusals collected."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from .clock import Clock
from .db import writing
from .errors import InvalidInput, VetproError
from .filing import file_document
from .intake import read_file


@dataclass
class Outcome:
    """What an import did: the single file's cases, or a summary of many files."""

    single: dict[str, Any] | None = None
    imported: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"imported": self.imported, "refused": self.refused}

    def human(self) -> str:
        lines = [f"imported {len(self.imported)} document(s), refused {len(self.refused)}"]
        lines += [f"  ok      {i['file']}: application {i['application']}" for i in self.imported]
        lines += [f"  refused {r['file']}: {r['error']}" for r in self.refused]
        return "\n".join(lines)


def documents(paths: list[Path]) -> tuple[list[Path], bool]:
    """The document files named (folders expand to their *.json files) and whether many."""
    files: list[Path] = []
    many = len(paths) > 1
    for path in paths:
        if path.is_dir():
            many = True
            files += sorted(p for p in path.iterdir() if p.suffix == ".json" and p.is_file())
        else:
            files.append(path)
    return files, many


def import_one(engine: Engine, path: Path, *, clock: Clock) -> dict[str, Any]:
    """Import one document in one transaction; refused documents write nothing."""
    doc = read_file(path)
    try:
        with writing(engine) as session:
            done = file_document(session, doc, clock=clock, source=path.name)
    except InvalidInput as exc:  # a clash with the stored organisations or users
        raise InvalidInput(f"{path}: {exc}") from None
    return {"application": done.application, "mobilities": done.mobilities}


def import_paths(engine: Engine, paths: list[Path], *, clock: Clock, progress: bool) -> Outcome:
    """Import documents; one file's refusal is raised, several files' refusals are listed."""
    files, many = documents(paths)
    if not many:
        return Outcome(single=import_one(engine, files[0], clock=clock))
    if not files:
        raise InvalidInput(f"no *.json documents in {', '.join(map(str, paths))}")
    outcome = Outcome()
    bar = _progress(len(files)) if progress else None
    for path in files:
        try:
            done = import_one(engine, path, clock=clock)
            outcome.imported.append({"file": str(path), **done})
        except VetproError as exc:
            message = str(exc).removeprefix(f"{path}: ").removeprefix(f"{path.name}: ")
            outcome.refused.append({"file": str(path), "error": message})
        if bar is not None:
            bar.advance()
    if bar is not None:
        bar.close()
    return outcome


class _progress:
    """A progress bar on the terminal (stderr), so stdout stays the summary."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import Progress

        self._progress = Progress(console=Console(stderr=True), transient=True)
        self._task = self._progress.add_task("importing", total=total)
        self._progress.start()

    def advance(self) -> None:
        self._progress.advance(self._task)

    def close(self) -> None:
        self._progress.stop()
