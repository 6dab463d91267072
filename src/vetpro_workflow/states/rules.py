"""The rules of a step, said so that a person can act on them: every reason it cannot happen
now (`refusals`), whether the trigger is possible at all for this case and role
(`possible_step`), and what the person may do instead (`allowed_text`)."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from ..errors import NotAllowed, TransitionRefused
from .actors import ROLE_NAMES
from .facts import FACT_TYPES, shape
from .snapshots import Given

if TYPE_CHECKING:
    from .machine import Definition, Step

_NOTE_PURPOSE = {
    "request_changes": "what to change",
    "evaluate": "the assessment",
    "approve": "the quality assessment",
    "reject": "the reason",
    "withdraw": "why the application is withdrawn",
    "cancel": "why the mobility did not take place",
    "interrupt": "why the stay ended early",
}


def refusals(step: Step, definition: Definition, subject: Any, given: Given) -> list[str]:
    """The reasons a step cannot happen now (empty when every rule holds).

    Every rule is checked, not just up to the first that fails (unlike a chain of `conditions`
    in `transitions`), so that one refusal tells the person everything to put right.
    """
    # A required fact comes with the trigger: one recorded before does not count again.
    missing = [
        f"{name} ({shape(definition.kind, name)})"
        for name in step.required_facts
        if name not in given.fresh or given.facts.get(name) in (None, "")
    ]
    if step.note and not (given.note or "").strip():
        missing.append("a note saying " + _NOTE_PURPOSE.get(step.trigger, "why"))
    reasons = ["needs " + ", ".join(missing)] if missing else []
    reasons += [
        f"needs {name} not in the future ({value} is after today, {given.today})"
        for name in sorted(given.fresh)
        if FACT_TYPES[definition.kind][name] == "date"
        and isinstance(value := given.facts.get(name), date)
        and value > given.today
    ]
    for name in step.conditions:
        reason = definition.guards[name](subject, given)
        if reason:
            reasons.append(reason)
    return reasons


def allowed_text(
    definition: Definition, state: str, role: str, stored: tuple[Any, Given] | None = None
) -> str:
    """What a person of a role may fire from a state, said for a refusal; with the case and what
    is stored about it, without the steps that wait for something else to change."""
    mine = definition.available(state, role)
    waiting = {}
    if stored is not None:
        waiting = {s.trigger: r for s in mine if (r := definition.waiting(s, *stored))}
    ready = [s.trigger for s in mine if s.trigger not in waiting]
    who = "" if role == "system" else f" for {ROLE_NAMES[role]}"
    if ready:
        return f"Allowed now{who}: {', '.join(ready)}."
    if waiting:
        return f"Allowed now{who}: nothing ({'; '.join(f'{t} {r}' for t, r in waiting.items())})."
    others = [s.trigger for s in definition.available(state)]
    if others:
        return f"Allowed now{who}: nothing (others may: {', '.join(others)})."
    automatic = [s.trigger for s in definition.available(state, "system")]
    if automatic:
        return f"Allowed now: nothing by hand (it moves on by itself: {', '.join(automatic)})."
    return "Allowed now: nothing (the case is finished)."


def possible_step(
    definition: Definition, subject: Any, trigger: str, role: str, given: Given
) -> Step:
    """The step a trigger names, if the kind has it, it is possible from the case's state and the
    role may fire it."""
    state = subject.state
    name = f"{definition.label} {subject.id}"
    step = definition.step(trigger)
    article = "an" if definition.kind[0] in "aeiou" else "a"
    if step is None:
        raise TransitionRefused(
            f"{name} is in '{state}'; '{trigger}' is not a trigger of {article} "
            f"{definition.kind}. {allowed_text(definition, state, role, (subject, given))}"
        )
    if role not in step.who:
        who = " or ".join(ROLE_NAMES[r] for r in step.who)
        raise NotAllowed(
            f"'{trigger}' on {article} {definition.kind} is fired by {who}, not by "
            f"{ROLE_NAMES[role]}. {allowed_text(definition, state, role, (subject, given))}"
        )
    if state not in step.sources:
        raise TransitionRefused(
            f"{name} is in '{state}'; '{trigger}' is only possible from "
            f"{', '.join(step.sources)}. {allowed_text(definition, state, role, (subject, given))}"
        )
    return step
