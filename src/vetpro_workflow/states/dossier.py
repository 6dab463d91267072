"""Snapshots of a case as its guards and prompts read it: plain frozen data, no database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


@dataclass(frozen=True)
class Partner:
    """A host organisation abroad named in the application."""

    name: str
    country: str
    type: str


@dataclass(frozen=True)
class MobilityFile:
    """One participant's period abroad, with what its guards need of its application."""

    id: int
    state: str
    version: int
    application_id: int
    application_state: str
    project_title: str
    project_start: date
    project_end: date
    applicant_name: str
    coordinator_name: str
    coordinator_email: str
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


@dataclass(frozen=True)
class ApplicationFile:
    """One mobility project, with its call, partners and mobilities."""

    id: int
    state: str
    version: int
    title: str
    applicant_name: str
    applicant_type: str
    applicant_country: str
    coordinator_name: str
    coordinator_email: str
    call_code: str
    application_deadline: datetime
    earliest_start: date
    max_project_months: int
    min_days: int
    max_days: int
    start_date: date
    end_date: date
    objectives: str
    dissemination_plan: str
    partners: tuple[Partner, ...]
    mobilities: tuple[MobilityFile, ...]
    facts: Mapping[str, Any] = field(default_factory=dict)

    kind = "application"

    def active_mobilities(self) -> tuple[MobilityFile, ...]:
        """The mobilities that still count: every one that was not cancelled."""
        return tuple(m for m in self.mobilities if m.state != "cancelled")


@dataclass(frozen=True)
class Given:
    """What comes with a trigger: its facts (recorded ones merged with new ones), note and date."""

    facts: Mapping[str, Any]
    note: str | None
    today: date
    now: datetime
    fresh: frozenset[str] = frozenset()  # the facts given with this trigger, not recorded before
