"""Binds a case snapshot to the one shared `transitions` Machine of its kind.

A Machine cannot be attached to a SQLModel row, so a small `Workflow` wrapper carries the state;
each kind has one Machine built from its TRANSITIONS data (auto_transitions off). Guards are pure
and explain themselves: a refusal names every rule that failed and the triggers allowed now.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from transitions import EventData, Machine

from ..errors import NotAllowed, TransitionRefused
from .dossier import Given
from .facts import FACT_TYPES

Guard = Callable[[Any, Given], "str | None"]
ROLES = ("coordinator", "staff", "system")
ROLE_NAMES = {"coordinator": "the coordinator", "staff": "NA staff", "system": "the system"}


@dataclass(frozen=True)
class Step:
    """One trigger of a workflow, as declared in its TRANSITIONS data."""

    trigger: str
    sources: tuple[str, ...]
    dest: str
    who: tuple[str, ...]
    conditions: tuple[str, ...]
    facts: tuple[str, ...]  # required facts; a trailing '?' marks an optional one
    note: bool  # a note is required

    @property
    def required_facts(self) -> tuple[str, ...]:
        return tuple(f for f in self.facts if not f.endswith("?"))

    @property
    def accepted_facts(self) -> tuple[str, ...]:
        return tuple(f.rstrip("?") for f in self.facts)


@dataclass
class Definition:
    """A kind of case: its states, its steps and its guards."""

    kind: str
    states: tuple[str, ...]
    initial: str
    transitions: Sequence[Mapping[str, Any]]
    guards: Mapping[str, Guard]
    _steps: dict[str, Step] = field(init=False, repr=False)
    _machine: Machine | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._steps = {}
        for t in self.transitions:
            sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
            step = Step(
                trigger=t["trigger"],
                sources=tuple(sources),
                dest=t["dest"],
                who=tuple(t["who"]),
                conditions=tuple(t.get("conditions", ())),
                facts=tuple(t.get("facts", ())),
                note=bool(t.get("note", False)),
            )
            unknown = [g for g in step.conditions if g not in self.guards]
            bad_facts = [f for f in step.accepted_facts if f not in FACT_TYPES]
            if step.trigger in self._steps or unknown or bad_facts:
                raise ValueError(f"bad {self.kind} transition {t!r}")
            self._steps[step.trigger] = step

    @property
    def label(self) -> str:
        return self.kind.capitalize()

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(self._steps.values())

    def step(self, trigger: str) -> Step | None:
        """The declared step for a trigger, or None if the kind has no such trigger."""
        return self._steps.get(trigger)

    def triggers_from(self, state: str, *, human: bool = True) -> list[str]:
        """The triggers possible from a state (by default those people fire, not the system)."""
        return [
            s.trigger
            for s in self._steps.values()
            if state in s.sources and (not human or s.who != ("system",))
        ]

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
    """The object a Machine moves: it reads and writes the state of the case snapshot it holds.

    Each thread keeps one per kind, added to the kind's shared Machine once, and binds the
    snapshot of the case at hand to it for the length of one trigger.
    """

    def __init__(self, definition: Definition) -> None:
        self.definition = definition
        self.subject: Any = None
        self.given: Given | None = None
        self.refusals: list[str] = []
        self._state: str = definition.initial

    def bind(self, subject: Any, given: Given | None) -> None:
        """Hold one case (or, with None, none)."""
        self.subject, self.given, self.refusals = subject, given, []
        if subject is not None:
            self._state = subject.state

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        self._state = value

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


def refusals(step: Step, definition: Definition, subject: Any, given: Given) -> list[str]:
    """The reasons a step cannot happen now (empty when every rule holds)."""
    missing = [
        f"{name} ({'YYYY-MM-DD' if FACT_TYPES[name] == 'date' else FACT_TYPES[name]})"
        for name in step.required_facts
        if given.facts.get(name) in (None, "")
    ]
    if step.note and not (given.note or "").strip():
        missing.append("a note (--note) saying " + _NOTE_PURPOSE.get(step.trigger, "why"))
    reasons = ["needs " + ", ".join(missing)] if missing else []
    reasons += [
        f"needs {name} not in the future ({value} is after today, {given.today})"
        for name in given.fresh
        if isinstance(value := given.facts.get(name), date) and value > given.today
    ]
    for name in step.conditions:
        reason = definition.guards[name](subject, given)
        if reason:
            reasons.append(reason)
    return reasons


_NOTE_PURPOSE = {
    "request_changes": "what to change",
    "approve": "the quality assessment",
    "reject": "the reason",
    "withdraw": "why the application is withdrawn",
    "cancel": "why the mobility did not take place",
}


def _allowed(definition: Definition, state: str) -> str:
    human = definition.triggers_from(state)
    if human:
        return ", ".join(human)
    automatic = definition.triggers_from(state, human=False)
    if automatic:
        return f"none by hand (it moves on by itself: {', '.join(automatic)})"
    return "none (the case is finished)"


def possible_step(definition: Definition, case_id: int, state: str, trigger: str) -> Step:
    """The step a trigger names, if it exists for the kind and is possible from the state."""
    name = f"{definition.label} {case_id}"
    step = definition.step(trigger)
    if step is None:
        raise TransitionRefused(
            f"{name} is in '{state}'; '{trigger}' is not a trigger of "
            f"{'an' if definition.kind[0] in 'aeiou' else 'a'} {definition.kind}. "
            f"Allowed now: {_allowed(definition, state)}."
        )
    if state not in step.sources:
        raise TransitionRefused(
            f"{name} is in '{state}'; '{trigger}' is only possible from "
            f"{', '.join(step.sources)}. Allowed now: {_allowed(definition, state)}."
        )
    return step


def fire(definition: Definition, subject: Any, trigger: str, given: Given) -> str:
    """Move a snapshot by a trigger through the shared Machine; the new state, or a refusal."""
    possible_step(definition, subject.id, subject.state, trigger)
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
            f"{'; '.join(reasons)}. Allowed now: {_allowed(definition, subject.state)}."
        )
    return dest


def check_role(definition: Definition, trigger: str, role: str, actor: str) -> None:
    """Refuse a trigger fired by someone whose role may not fire it."""
    step = definition.step(trigger)
    if step is not None and role not in step.who:
        who = " or ".join(ROLE_NAMES[r] for r in step.who)
        article = "an" if definition.kind[0] in "aeiou" else "a"
        raise NotAllowed(
            f"'{trigger}' on {article} {definition.kind} is fired by {who}; {actor} is {role}"
        )
