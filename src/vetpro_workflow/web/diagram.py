"""The state diagram of a workflow as a small static SVG, drawn from its TRANSITIONS data.

No script and no network: the longest way from the initial state to a final one runs down
the middle, the states off it (rejected, withdrawn, cancelled) stand beside it, steps that go
back or skip states are arcs on the left, and the case's current state is highlighted. The
page lists every transition in a table too, for screen readers and for print.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from html import escape

from ..states.machine import Definition

NODE_W, NODE_H = 136, 34
ROW = NODE_H + 44  # from one row of states to the next
LEFT = 200  # room on the left for the arcs of steps that go back or skip states
SIDE = LEFT + NODE_W + 190  # the column of the states off the main path (rejected, cancelled)


@dataclass(frozen=True)
class Edge:
    """The steps from one state to another."""

    source: str
    dest: str
    triggers: tuple[str, ...]


def edges(d: Definition) -> list[Edge]:
    """The state changes of a workflow, the triggers between the same two states together."""
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for step in d.steps:
        for source in step.sources:
            dest = source if step.dest == "=" else step.dest
            grouped[(source, dest)].append(step.trigger)
    return [Edge(s, t, tuple(triggers)) for (s, t), triggers in grouped.items()]


def _forward(d: Definition, all_edges: list[Edge]) -> list[Edge]:
    """The edges that go forward: not loops, nor those that close a cycle when walking
    depth-first from the initial state (such as `request_changes`)."""
    out: dict[str, list[str]] = defaultdict(list)
    for e in all_edges:
        if e.source != e.dest:
            out[e.source].append(e.dest)
    back: set[tuple[str, str]] = set()
    on_path: set[str] = set()
    done: set[str] = set()

    def visit(state: str) -> None:
        on_path.add(state)
        for nxt in out[state]:
            if nxt in on_path:
                back.add((state, nxt))
            elif nxt not in done:
                visit(nxt)
        on_path.discard(state)
        done.add(state)

    visit(d.initial)
    return [e for e in all_edges if e.source != e.dest and (e.source, e.dest) not in back]


def _depths(d: Definition, all_edges: list[Edge]) -> dict[str, int]:
    """Each state's longest distance from the initial state, going forward."""
    forward = _forward(d, all_edges)
    depth = dict.fromkeys(d.states, 0)
    for _ in d.states:  # relaxing once per state is enough for a graph without cycles
        for e in forward:
            depth[e.dest] = max(depth[e.dest], depth[e.source] + 1)
    return depth


def main_path(d: Definition) -> list[str]:
    """The longest way from the initial state to a final one: the spine of the drawing."""
    all_edges = edges(d)
    depth = _depths(d, all_edges)
    forward = _forward(d, all_edges)
    end = max(d.final_states, key=lambda s: (depth[s], -d.states.index(s)))
    path = [end]
    while path[-1] != d.initial:
        into = [e.source for e in forward if e.dest == path[-1]]
        path.append(next(s for s in into if depth[s] == depth[path[-1]] - 1))
    return path[::-1]


def positions(d: Definition) -> dict[str, tuple[int, int]]:
    """Where each state is drawn: the main path down the middle, the others beside it."""
    spine = main_path(d)
    where = {state: (LEFT, 10 + row * ROW) for row, state in enumerate(spine)}
    taken: set[int] = set()
    for state in d.states:
        if state in where:
            continue
        rows = [where[e.source][1] for e in edges(d) if e.dest == state and e.source in where]
        y = max(rows, default=10) + ROW
        while y in taken:
            y += ROW
        taken.add(y)
        where[state] = (SIDE, y)
    return where


def _label(x: int, y: int, text: str, anchor: str = "start") -> str:
    return f'<text x="{x}" y="{y}" text-anchor="{anchor}" class="edge-label">{text}</text>'


def _edge(e: Edge, where: dict[str, tuple[int, int]], arrow: str) -> str:
    (sx, sy), (tx, ty) = where[e.source], where[e.dest]
    label = escape(", ".join(e.triggers))
    title = f"<title>{escape(e.source)} to {escape(e.dest)}: {label}</title>"
    if e.source == e.dest:  # a step that records facts and stays: a loop above the right edge
        x, y = sx + NODE_W - 24, sy
        path = f"M{x},{y} C{x - 4},{y - 22} {x + 34},{y - 22} {x + 24},{y}"
        text = _label(x + 34, y - 12, label)
    elif sx != tx:  # to a state beside the main path
        x1, y1, x2, y2 = sx + NODE_W, sy + NODE_H * 3 // 4, tx, ty + NODE_H // 2
        path = f"M{x1},{y1} L{x2},{y2}"
        # Labels near the destination: the steps into one state stack up without overlapping.
        text = _label(x1 + (x2 - x1) * 7 // 10, y1 + (y2 - y1) * 7 // 10 - 4, label, "middle")
    elif ty == sy + ROW:  # the next state down the main path
        x = sx + NODE_W // 2
        path = f"M{x},{sy + NODE_H} L{x},{ty}"
        text = _label(x - 6, sy + NODE_H + 26, label, "end")
    else:  # back up, or skipping states: an arc on the left
        y1, y2 = sy + NODE_H // 2, ty + NODE_H // 2
        bend = sx - 56 - abs(ty - sy) // 12
        path = f"M{sx},{y1} C{bend},{y1} {bend},{y2} {sx},{y2}"
        text = _label(bend - 4, (y1 + y2) // 2 + 4, label, "end")
    return f'<g class="edge">{title}<path d="{path}" marker-end="url(#{arrow})"/>{text}</g>'


def _node(state: str, x: int, y: int, *, current: bool, final: bool) -> str:
    classes = " ".join(
        name for name, on in (("state", True), ("current", current), ("final", final)) if on
    )
    return (
        f'<g class="{classes}"><rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" '
        f'rx="8"/><text x="{x + NODE_W // 2}" y="{y + NODE_H // 2 + 5}" '
        f'text-anchor="middle">{escape(state)}</text></g>'
    )


def svg(d: Definition, *, current: str | None = None) -> str:
    """The workflow of a kind as an inline SVG, the current state (if any) highlighted."""
    where = positions(d)
    width = SIDE + NODE_W + 10
    height = max(y for _, y in where.values()) + NODE_H + 12
    final = set(d.final_states)
    shown = f"; the case is {current}" if current else ""
    arrow = f"arrow-{d.kind}"
    parts = [
        f'<svg class="diagram" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="diagram-title-{d.kind}" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="diagram-title-{d.kind}">The {d.kind} workflow{escape(shown)}</title>',
        f'<defs><marker id="{arrow}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>'
        "</defs>",
    ]
    parts += [_edge(e, where, arrow) for e in edges(d)]
    parts += [_node(s, x, y, current=s == current, final=s in final) for s, (x, y) in where.items()]
    parts.append("</svg>")
    return "".join(parts)


def transitions(d: Definition) -> list[dict[str, str]]:
    """Every step of a workflow, for the table beside the diagram."""
    return [
        {
            "trigger": step.trigger,
            "sources": ", ".join(step.sources),
            "dest": "(stays)" if step.dest == "=" else step.dest,
            "who": " or ".join(step.who),
        }
        for step in d.steps
    ]
