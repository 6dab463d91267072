"""The store as the redesign made it: calls, organisations, people, cases, history, outbox, sweeps.

Revision ID: 0001
Revises: (none: the first)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("application_deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("earliest_start", sa.Date(), nullable=False),
        sa.Column("max_project_months", sa.Integer(), nullable=False),
        sa.Column("min_days", sa.Integer(), nullable=False),
        sa.Column("max_days", sa.Integer(), nullable=False),
        sa.Column("scale", sa.Integer(), nullable=False),
        sa.Column("weights", sa.JSON(), nullable=False),
        sa.Column("pass_mark", sa.Float(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "organisation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("contact_name", sa.String(), nullable=False),
        sa.Column("contact_email", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    with op.batch_alter_table("organisation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_organisation_country"), ["country"], unique=False)

    op.create_table(
        "sweep_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reminders", sa.Integer(), nullable=False),
        sa.Column("transitions", sa.Integer(), nullable=False),
        sa.Column("by_rule", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sweep_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sweep_run_day"), ["day"], unique=False)

    op.create_table(
        "call_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["call.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("call_change", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_call_change_call_id"), ["call_id"], unique=False)

    op.create_table(
        "case",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["case.id"],
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisation.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("case", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_case_application_id"), ["application_id"], unique=False
        )
        batch_op.create_index("ix_case_kind_state", ["kind", "state", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_case_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "participant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("email", sa.String(), nullable=False),
        sa.Column("profession", sa.String(), nullable=False),
        sa.Column("professional_background", sa.String(), nullable=False),
        sa.Column("training_needs", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisation.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_participant_email"), ["email"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_participant_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisation.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_user_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "application",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("applicant_id", sa.Integer(), nullable=False),
        sa.Column("coordinator_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("objectives", sa.String(), nullable=False),
        sa.Column("dissemination_plan", sa.String(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("grant_agreement_signed_on", sa.Date(), nullable=True),
        sa.Column("final_report_on", sa.Date(), nullable=True),
        sa.Column("approved_on", sa.Date(), nullable=True),
        sa.Column("resubmit_by", sa.Date(), nullable=True),
        sa.Column("scores", sa.JSON(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("evaluated_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["applicant_id"],
            ["organisation.id"],
        ),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["call.id"],
        ),
        sa.ForeignKeyConstraint(
            ["coordinator_id"],
            ["user.id"],
        ),
        sa.ForeignKeyConstraint(["id"], ["case.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("application", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_application_call_id"), ["call_id"], unique=False)
        batch_op.create_index(
            "ix_application_duplicate", ["applicant_id", "call_id", "digest"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_application_end_date"), ["end_date"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_application_resubmit_by"), ["resubmit_by"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_application_start_date"), ["start_date"], unique=False)

    op.create_table(
        "history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=True),
        sa.Column("dest", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(), nullable=True),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["case.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_history_case_id"), ["case_id"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("header_to", sa.String(), nullable=True),
        sa.Column("cc", sa.String(), nullable=True),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["case.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_claimed_by"), ["claimed_by"], unique=False)
        batch_op.create_index("ix_outbox_status_next", ["status", "next_attempt_at"], unique=False)

    op.create_table(
        "application_partner",
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["application.id"],
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisation.id"],
        ),
        sa.PrimaryKeyConstraint("application_id", "organisation_id"),
    )
    op.create_table(
        "mobility",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("objectives", sa.String(), nullable=False),
        sa.Column("content", sa.String(), nullable=False),
        sa.Column("language_preparation", sa.Boolean(), nullable=False),
        sa.Column("agreement_signed_on", sa.Date(), nullable=True),
        sa.Column("preparation_done", sa.Boolean(), nullable=True),
        sa.Column("departed_on", sa.Date(), nullable=True),
        sa.Column("returned_on", sa.Date(), nullable=True),
        sa.Column("interruption_reason", sa.String(), nullable=True),
        sa.Column("europass_ref", sa.String(), nullable=True),
        sa.Column("participant_report_on", sa.Date(), nullable=True),
        sa.Column("dissemination", sa.String(), nullable=True),
        sa.Column("stay_note", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["application.id"],
        ),
        sa.ForeignKeyConstraint(
            ["host_id"],
            ["organisation.id"],
        ),
        sa.ForeignKeyConstraint(["id"], ["case.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("mobility", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mobility_application_id"), ["application_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_mobility_end_date"), ["end_date"], unique=False)
        batch_op.create_index(batch_op.f("ix_mobility_returned_on"), ["returned_on"], unique=False)
        batch_op.create_index(batch_op.f("ix_mobility_start_date"), ["start_date"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mobility", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mobility_start_date"))
        batch_op.drop_index(batch_op.f("ix_mobility_returned_on"))
        batch_op.drop_index(batch_op.f("ix_mobility_end_date"))
        batch_op.drop_index(batch_op.f("ix_mobility_application_id"))

    op.drop_table("mobility")
    op.drop_table("application_partner")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_status_next")
        batch_op.drop_index(batch_op.f("ix_outbox_claimed_by"))
        batch_op.drop_index(batch_op.f("ix_outbox_case_id"))

    op.drop_table("outbox")
    with op.batch_alter_table("history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_history_case_id"))

    op.drop_table("history")
    with op.batch_alter_table("application", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_application_start_date"))
        batch_op.drop_index(batch_op.f("ix_application_resubmit_by"))
        batch_op.drop_index(batch_op.f("ix_application_end_date"))
        batch_op.drop_index("ix_application_duplicate")
        batch_op.drop_index(batch_op.f("ix_application_call_id"))

    op.drop_table("application")
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_organisation_id"))

    op.drop_table("user")
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_participant_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_participant_email"))

    op.drop_table("participant")
    with op.batch_alter_table("case", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_organisation_id"))
        batch_op.drop_index("ix_case_kind_state")
        batch_op.drop_index(batch_op.f("ix_case_application_id"))

    op.drop_table("case")
    with op.batch_alter_table("call_change", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_change_call_id"))

    op.drop_table("call_change")
    with op.batch_alter_table("sweep_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sweep_run_day"))

    op.drop_table("sweep_run")
    with op.batch_alter_table("organisation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organisation_country"))

    op.drop_table("organisation")
    op.drop_table("call")
