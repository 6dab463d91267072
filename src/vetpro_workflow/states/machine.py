"""Binds a case snapshot to the one shared `transitions` Machine of its kind.

A Machine cannot be attached to a SQLModel row, so a small `Workflow` wrapper carries the state;
each kind has one Machine built from its TRANSITIONS data (auto_transitions off). Guards are pure
and explain themselves (`rules`): a refusal names every rule that failed and what the person may
do now.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from transitions import EventData, Machine

from ..errors import TransitionRefused
from .facts import FACT_TYPES, shape
from .rules import allowed_text, possible_step, refusals
from .snapshots import Given

Guard = Callable[[Any, Given], "str | None"]
# What a step writes on the case's own row, from the facts given (by default: those facts).
Recorder = Callable[[Any, Mapping[str, Any], Given], dict[str, Any]]


@dataclass(frozen=True)
class Step:
    """One trigger of a workflow, as declared in its TRANSITIONS data."""

    kind: str
    trigger: str
    sources: tuple[str, ...]
    dest: str  # "=" for a step that records facts and keeps the state
    who: tuple[str, ...]
    conditions: tuple[str, ...]
    facts: tuple[str, ...]  # a trailing '?' marks an optional fact
    note: bool  # a note is required

    @property
    def required_facts(self) -> tuple[str, ...]:
        return tuple(f for f in self.facts if not f.endswith("?"))

    @property
    def accepted_facts(self) -> tuple[str, ...]:
        return tuple(f.rstrip("?") for f in self.facts)

    def asks(self) -> list[dict[str, Any]]:
        """The facts this step asks for, each with its shape and whether it is required."""
        return [
            {
                "name": f.rstrip("?"),
                "shape": shape(self.kind, f.rstrip("?")),
                "required": not f.endswith("?"),
            }
            for f in self.facts
        ]


@dataclass
class Definition:
    """A kind of case: its states, its steps and its guards."""

    kind: str
    states: tuple[str, ...]
    initial: str
    transitions: Sequence[Mapping[str, Any]]
    guards: Mapping[str, Guard]
    records: Mapping[str, Recorder] = field(default_factory=dict)
    # The guards that look only at what is stored (the case and its project), never at what comes
    # with the trigger: while one fails, its step waits and is not offered to anyone.
    waits: frozenset[str] = frozenset()
    _steps: dict[str, Step] = field(init=False, repr=False)
    _machine: Machine | None = field(default=None, init=False, repr=False)
    _available: dict[tuple[str, str | None], list[Step]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        self._steps = {}
        for t in self.transitions:
            sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
            step = Step(
                kind=self.kind,
                trigger=t["trigger"],
                sources=tuple(sources),
                dest=t["dest"],
                who=tuple(t["who"]),
                conditions=tuple(t.get("conditions", ())),
                facts=tuple(t.get("facts", ())),
                note=bool(t.get("note", False)),
            )
            unknown = [g for g in step.conditions if g not in self.guards]
            bad = [f for f in step.accepted_facts if f not in FACT_TYPES[self.kind]]
            if step.trigger in self._steps or unknown or bad:
                raise ValueError(f"bad {self.kind} transition {t!r}")
            self._steps[step.trigger] = step
        if not self.waits <= set(self.guards):
            raise ValueError(
                f"unknown {self.kind} guards in waits: {self.waits - set(self.guards)}"
            )

    @property
    def label(self) -> str:
        return self.kind.capitalize()

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(self._steps.values())

    @property
    def final_states(self) -> tuple[str, ...]:
        """The states no step leaves (a step that only records facts stays in place)."""
        leaving = {s for step in self.steps if step.dest != "=" for s in step.sources}
        return tuple(s for s in self.states if s not in leaving)

    def step(self, trigger: str) -> Step | None:
        """The declared step for a trigger, or None if the kind has no such trigger."""
        return self._steps.get(trigger)

    def record(
        self, subject: Any, trigger: str, facts: Mapping[str, Any], given: Given
    ) -> dict[str, Any]:
        """The columns of the case's own row a step writes."""
        recorder = self.records.get(trigger)
        return recorder(subject, facts, given) if recorder else dict(facts)

    def available(self, state: str, role: str | None = None) -> list[Step]:
        """The steps possible from a state, for a role (None: every role but the system's)."""
        key = (state, role)
        if key not in self._available:  # the workflow is data that never changes: ask once
            self._available[key] = [
                self._steps[trigger]
                for trigger in self.machine().get_triggers(state)
                if (role is None and self._steps[trigger].who != ("system",))
                or (role is not None and role in self._steps[trigger].who)
            ]
        return list(self._available[key])

    def waiting(self, step: Step, subject: Any, given: Given) -> str | None:
        """Why a step waits for something stored to change (None: it does not wait)."""
        for name in step.conditions:
            if name in self.waits and (reason := self.guards[name](subject, given)):
                return reason
        return None

    def machine(self) -> Machine:
        """The one shared Machine of this kind, built on first use."""
        if self._machine is None:
            self._machine = Machine(
                model=None,
                states=list(self.states),
                initial=self.initial,
                transitions=[
                    {
                        "trigger": s.trigger,
                        "source": list(s.sources),
                        "dest": s.dest,
                        "conditions": [_admits(s)],
                    }
                    for s in self._steps.values()
                ],
                auto_transitions=False,
                send_event=True,
            )
        return self._machine


def _admits(step: Step) -> Callable[[EventData], bool]:
    def condition(event: EventData) -> bool:
        return bool(event.model.admits(step))

    return condition


class Workflow:
    """The object a Machine moves: it reads and writes the state of the snapshot it holds.

    Each thread keeps one per kind, added to the kind's shared Machine once, and binds the
    snapshot of the case at hand to it for the length of one trigger.
    """

    def __init__(self, definition: Definition) -> None:
        self.definition = definition
        self.subject: Any = None
        self.given: Given | None = None
        self.refusals: list[str] = []
        self.state: str = definition.initial

    def bind(self, subject: Any, given: Given | None) -> None:
        """Hold one case (or, with None, none)."""
        self.subject, self.given, self.refusals = subject, given, []
        if subject is not None:
            self.state = subject.state

    def admits(self, step: Step) -> bool:
        """Check every rule of a step at once and keep the reasons of those that fail."""
        assert self.given is not None
        self.refusals = refusals(step, self.definition, self.subject, self.given)
        return not self.refusals


_threads = threading.local()


def _bound(definition: Definition) -> Workflow:
    """This thread's workflow object for a kind, added to the kind's Machine once."""
    mine: dict[str, Workflow] = _threads.__dict__.setdefault("workflows", {})
    if definition.kind not in mine:
        workflow = Workflow(definition)
        definition.machine().add_model(workflow, initial=definition.initial)
        mine[definition.kind] = workflow
    return mine[definition.kind]


def fire(definition: Definition, subject: Any, trigger: str, given: Given, role: str) -> str:
    """Move a snapshot by a trigger through the shared Machine; the new state, or a refusal."""
    possible_step(definition, subject, trigger, role, given)
    workflow = _bound(definition)
    workflow.bind(subject, given)
    try:
        moved = definition.machine().events[trigger].trigger(workflow)
        dest, reasons = workflow.state, workflow.refusals
    finally:
        workflow.bind(None, None)
    if not moved:
        raise TransitionRefused(
            f"{definition.label} {subject.id} is in '{subject.state}'; '{trigger}' "
            f"{'; '.join(reasons)}. "
            + allowed_text(definition, subject.state, role, (subject, given))
        )
    return dest
