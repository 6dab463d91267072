"""Snapshots of a project as its guards, cascade and prompts read it: plain frozen data.

The application is the aggregate: it holds its call's rules, its partners and its mobilities, and
every move of any of its cases is decided on one snapshot of it, loaded by the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar

from .facts import CRITERIA

DEFAULT_WEIGHTS: Mapping[str, float] = dict.fromkeys(CRITERIA, 1)


@dataclass(frozen=True)
class Partner:
    """A host organisation abroad named in the application."""

    name: str
    country: str
    type: str


@dataclass(frozen=True)
class CallRules:
    """What an application's call decides: its deadline, the limits of projects and stays, and
    how applications are scored."""

    code: str
    title: str
    deadline: datetime
    earliest_start: date
    max_project_months: int
    min_days: int = 7
    max_days: int = 42
    scale: int = 10
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    pass_mark: float | None = None  # points of the weighted total; None: 60 % of the maximum

    @property
    def max_total(self) -> float:
        """The highest weighted total an evaluation can reach."""
        return self.scale * sum(self.weights.values())

    @property
    def mark(self) -> float:
        """The weighted total an evaluation must reach for the application to be approved."""
        return self.pass_mark if self.pass_mark is not None else round(0.6 * self.max_total, 2)


@dataclass(frozen=True)
class MobilitySnapshot:
    """One participant's period abroad, inside its application."""

    id: int
    state: str
    version: int
    application_id: int
    participant_name: str
    participant_email: str
    profession: str
    professional_background: str
    training_needs: str
    host_name: str
    host_country: str
    start_date: date
    end_date: date
    objectives: str
    content: str
    language_preparation: bool
    facts: Mapping[str, Any] = field(default_factory=dict)

    kind = "mobility"

    @property
    def title(self) -> str:
        return f"{self.participant_name} at {self.host_name}"


@dataclass(frozen=True)
class ApplicationSnapshot:
    """One mobility project with its call, partners and mobilities."""

    id: int
    state: str
    version: int
    organisation_id: int
    title: str
    applicant_name: str
    applicant_type: str
    applicant_country: str
    coordinator_name: str
    coordinator_email: str
    call: CallRules
    start_date: date
    end_date: date
    objectives: str
    dissemination_plan: str
    partners: tuple[Partner, ...] = ()
    mobilities: tuple[MobilitySnapshot, ...] = ()
    facts: Mapping[str, Any] = field(default_factory=dict)

    kind = "application"

    def live_mobilities(self) -> tuple[MobilitySnapshot, ...]:
        """The mobilities that still count: every one that was not cancelled."""
        return tuple(m for m in self.mobilities if m.state != "cancelled")

    def case(self, case_id: int) -> ApplicationSnapshot | MobilitySnapshot | None:
        """The application itself or one of its mobilities, by id."""
        if case_id == self.id:
            return self
        return next((m for m in self.mobilities if m.id == case_id), None)


Snapshot = ApplicationSnapshot | MobilitySnapshot
T = TypeVar("T", ApplicationSnapshot, MobilitySnapshot)


def made(cls: type[T], values: dict[str, Any]) -> T:
    """A snapshot from every one of its fields, without running `__init__` (these snapshots
    validate nothing there): how the store makes the many it reads, and `evolve` a changed one."""
    snapshot = object.__new__(cls)
    snapshot.__dict__.update(values)
    return snapshot


def evolve(snapshot: T, **changes: Any) -> T:
    """A snapshot with some fields changed: `dataclasses.replace` without running `__init__`
    again (these snapshots validate nothing there), which was a third of a move's decision."""
    return made(type(snapshot), {**snapshot.__dict__, **changes})


@dataclass(frozen=True)
class Given:
    """What comes with a trigger: its facts (recorded ones merged with the new ones), the note,
    the business day and instant, and the project the case belongs to."""

    facts: Mapping[str, Any]
    note: str | None
    today: date
    now: datetime
    project: ApplicationSnapshot
    fresh: frozenset[str] = frozenset()  # the facts given with this trigger
