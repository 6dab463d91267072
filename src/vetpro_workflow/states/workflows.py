"""The two workflows by kind, the mermaid diagrams drawn from them, and their reachability."""

from __future__ import annotations

from collections import deque

from . import application, mobility
from .machine import Definition

DEFINITIONS: dict[str, Definition] = {
    "application": application.DEFINITION,
    "mobility": mobility.DEFINITION,
}
KINDS = tuple(DEFINITIONS)


def definition(kind: str) -> Definition:
    """The workflow of a kind of case."""
    return DEFINITIONS[kind]


def reachable(d: Definition) -> set[str]:
    """Every state reachable from the initial one."""
    seen, queue = {d.initial}, deque([d.initial])
    while queue:
        state = queue.popleft()
        for step in d.steps:
            if state in step.sources and step.dest != "=" and step.dest not in seen:
                seen.add(step.dest)
                queue.append(step.dest)
    return seen


def mermaid(d: Definition, *, current: str | None = None) -> str:
    """A mermaid state diagram of a workflow, drawn from its TRANSITIONS data; the current
    state, when given, is highlighted."""
    lines = ["stateDiagram-v2", f"    [*] --> {d.initial}"]
    for step in d.steps:
        who = "/".join(step.who)
        for source in step.sources:
            dest = source if step.dest == "=" else step.dest
            lines.append(f"    {source} --> {dest}: {step.trigger} ({who})")
    lines += [f"    {s} --> [*]" for s in d.final_states]
    if current is not None:
        lines += [
            "    classDef current fill:#ffd54f,stroke:#333,stroke-width:3px",
            f"    class {current} current",
        ]
    return "\n".join(lines)
