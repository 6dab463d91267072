"""The store: calls, organisations, users, cases with their details, history and the outbox.

Every case, application or mobility, is a row of `Case` (so ids are unique across both kinds);
its details live in `Application` or `Mobility` under the same id. Times are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Index, Integer, TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp kept in UTC and always read back timezone-aware, on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc(**kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kw)


def _case_fk() -> Any:
    return Field(
        sa_column=Column(Integer, ForeignKey("case.id", ondelete="CASCADE"), primary_key=True)
    )


class Call(SQLModel, table=True):
    """A yearly call for proposals, with its deadline and rules for stays abroad."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=100)
    title: str
    application_deadline: datetime = _utc()
    earliest_start: date
    max_project_months: int
    min_days: int
    max_days: int


class Organisation(SQLModel, table=True):
    """An applicant or partner organisation."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=300)
    type: str
    country: str = Field(max_length=2)
    contact_name: str
    contact_email: str


class User(SQLModel, table=True):
    """Somebody who fires triggers: NA staff, or the coordinator of one organisation."""

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True, max_length=320)
    name: str = ""
    role: str  # staff | coordinator
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id")


class Participant(SQLModel, table=True):
    """A VET professional who goes abroad."""

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    name: str
    email: str = Field(index=True)
    profession: str
    professional_background: str
    training_needs: str


class Case(SQLModel, table=True):
    """What every application and mobility shares: id, kind, state and version."""

    __table_args__ = (Index("ix_case_kind_state", "kind", "state"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str  # application | mobility
    state: str
    version: int = 1
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    application_id: int | None = Field(default=None, foreign_key="case.id", index=True)
    created_at: datetime = _utc()
    updated_at: datetime = _utc()


class Application(SQLModel, table=True):
    """The project a coordinating organisation applies for, and its recorded facts."""

    id: int | None = _case_fk()
    call_id: int = Field(foreign_key="call.id", index=True)
    applicant_id: int = Field(foreign_key="organisation.id")
    coordinator_id: int = Field(foreign_key="user.id")
    title: str
    objectives: str
    dissemination_plan: str
    start_date: date = Field(index=True)
    end_date: date = Field(index=True)
    grant_agreement_signed_on: date | None = None
    final_report_on: date | None = None


class ApplicationPartner(SQLModel, table=True):
    """A partner organisation of an application."""

    application_id: int = Field(foreign_key="application.id", primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", primary_key=True)


class Mobility(SQLModel, table=True):
    """One participant's stay at one host, and its recorded facts."""

    id: int | None = _case_fk()
    application_id: int = Field(foreign_key="application.id", index=True)
    participant_id: int = Field(foreign_key="participant.id")
    host_id: int = Field(foreign_key="organisation.id")
    start_date: date = Field(index=True)
    end_date: date = Field(index=True)
    objectives: str
    content: str
    language_preparation: bool = False
    agreement_signed_on: date | None = None
    preparation_done: bool | None = None
    departed_on: date | None = None
    returned_on: date | None = Field(default=None, index=True)
    europass_ref: str | None = None
    participant_report_on: date | None = None
    dissemination: str | None = None


class History(SQLModel, table=True):
    """One move of a case: who fired which trigger, from which state to which, when, and why."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    version: int
    trigger: str
    source: str | None
    dest: str
    actor: str
    at: datetime = _utc()
    note: str | None = None
    facts: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class Outbox(SQLModel, table=True):
    """A notification to send after commit; `key` makes enqueueing it twice impossible."""

    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=400)
    case_id: int | None = Field(default=None, foreign_key="case.id", index=True)  # None: digest
    kind: str
    recipient: str
    cc: str | None = None
    context: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    status: str = "pending"  # pending | sent | undeliverable
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = _utc(default=None)
    claimed_by: str | None = None  # host:pid:token of the dispatcher sending it now
    claimed_until: datetime | None = _utc(default=None)
    created_at: datetime = _utc()
    sent_at: datetime | None = _utc(default=None)


class SweepRun(SQLModel, table=True):
    """One run of the deadline sweep: the day it swept and what it did (so the next catches up)."""

    id: int | None = Field(default=None, primary_key=True)
    day: date = Field(index=True)
    since: date
    started_at: datetime = _utc()
    finished_at: datetime = _utc()
    reminders: int = 0
    transitions: int = 0
    by_rule: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
