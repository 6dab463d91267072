"""The tables of the store, declared with SQLModel: the one description of the schema, from which
`vetpro init` creates it and the migrations are checked.

Every case, application or mobility, is a row of `Case` (so ids are unique across both kinds);
its details live in `Application` or `Mobility` under the same id. Times are timezone-aware UTC.
The runtime reads and writes these tables with plain SQL (`store.database`), not through the ORM.
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
    """A call for proposals of the National Agency: its deadline, its limits and its scoring."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=100)
    title: str
    application_deadline: datetime = _utc()
    earliest_start: date
    max_project_months: int
    min_days: int
    max_days: int
    scale: int = 10
    weights: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    pass_mark: float | None = None
    version: int = 1
    created_at: datetime = _utc()
    updated_at: datetime = _utc()


class CallChange(SQLModel, table=True):
    """One version of a call: who defined or changed it, when, why and what changed."""

    __tablename__ = "call_change"

    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(foreign_key="call.id", index=True)
    version: int
    actor: str
    at: datetime = _utc()
    note: str | None = None
    changes: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class Organisation(SQLModel, table=True):
    """An applicant or partner organisation."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=300)
    type: str
    country: str = Field(max_length=2, index=True)
    contact_name: str
    contact_email: str


class User(SQLModel, table=True):
    """Somebody who fires triggers: NA staff, or a coordinator of one organisation."""

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True, max_length=320)
    name: str = ""
    role: str  # staff | coordinator
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id", index=True)


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

    __table_args__ = (
        Index("ix_case_kind_state", "kind", "state", "id"),
        Index("ix_case_state_id", "state", "id"),  # lists filtered by state alone
    )

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

    __table_args__ = (Index("ix_application_duplicate", "applicant_id", "call_id", "digest"),)

    id: int | None = _case_fk()
    call_id: int = Field(foreign_key="call.id", index=True)
    applicant_id: int = Field(foreign_key="organisation.id")
    coordinator_id: int = Field(foreign_key="user.id")
    title: str
    objectives: str
    dissemination_plan: str
    start_date: date = Field(index=True)
    end_date: date = Field(index=True)
    digest: str = Field(max_length=64)  # of the document's content, to find duplicates
    grant_agreement_signed_on: date | None = None
    final_report_on: date | None = None
    approved_on: date | None = None
    resubmit_by: date | None = Field(default=None, index=True)
    scores: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    score: float | None = None
    evaluated_on: date | None = None


class ApplicationPartner(SQLModel, table=True):
    """A partner organisation of an application."""

    __tablename__ = "application_partner"

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
    interruption_reason: str | None = None
    europass_ref: str | None = None
    participant_report_on: date | None = None
    dissemination: str | None = None
    stay_note: str | None = None


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
    """A message to send after commit, to one address; `key` makes enqueueing it twice
    impossible. Its times (next attempt, claim, sending) are real time, never a rehearsed day."""

    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=400)
    case_id: int | None = Field(default=None, foreign_key="case.id", index=True)  # None: digest
    kind: str
    recipient: str  # the one envelope recipient
    header_to: str | None = None  # the To header when it names someone else (a copy)
    cc: str | None = None  # the Cc header
    context: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    status: str = "pending"  # pending | sent | undeliverable
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime = _utc()
    claimed_by: str | None = Field(default=None, index=True)  # host:pid:token of a sender
    claimed_until: datetime | None = _utc(default=None)
    created_at: datetime = _utc()
    sent_at: datetime | None = _utc(default=None)


class SweepRun(SQLModel, table=True):
    """One run of the deadline sweep: the day it swept and what it did (so the next catches up)."""

    __tablename__ = "sweep_run"

    id: int | None = Field(default=None, primary_key=True)
    day: date = Field(index=True)
    since: date
    started_at: datetime = _utc()
    finished_at: datetime = _utc()
    reminders: int = 0
    transitions: int = 0
    by_rule: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class Credential(SQLModel, table=True):
    """How a user signs in to the web workspace: an argon2id hash of their password (never the
    password), and whether the account is disabled. A table of its own beside `User`, added
    to older stores by a migration that creates tables only."""

    user_id: int = Field(foreign_key="user.id", primary_key=True)
    password_hash: str | None = None
    disabled: bool = False
    changed_at: datetime = _utc()


class ApiToken(SQLModel, table=True):
    """A personal API token: only the SHA-256 digest of the token is kept."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    digest: str = Field(unique=True, max_length=64)
    created_at: datetime = _utc()


class WebSession(SQLModel, table=True):
    """A signed-in browser: the digest of the session's random id, so sign-out and disabling a
    user end it on every web process."""

    __tablename__ = "web_session"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    digest: str = Field(unique=True, max_length=64)
    created_at: datetime = _utc()
    expires_at: datetime = _utc(index=True)


class SignInFailure(SQLModel, table=True):
    """A failed sign-in, kept for a while so that every web process throttles the same way."""

    __tablename__ = "sign_in_failure"
    __table_args__ = (
        Index("ix_sign_in_failure_email_at", "email", "at"),
        Index("ix_sign_in_failure_address_at", "address", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320)
    address: str = Field(max_length=100)
    at: datetime = _utc(index=True)


class Lease(SQLModel, table=True):
    """A named job that only one process may run at a time (the sweep): who holds it, until
    when. A holder that dies leaves it to expire (or, on its own host, to be taken over)."""

    name: str = Field(primary_key=True, max_length=100)
    holder: str = Field(max_length=300)
    until: datetime = _utc()
