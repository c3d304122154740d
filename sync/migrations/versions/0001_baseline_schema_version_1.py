"""Baseline: the tables of schema version 1, the first release (before migrations).

Rendered by autogenerate from the models of that release; later revisions add what came after.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

__all__ = ["upgrade"]

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """The mirror, score history, routing, SLA clocks, write ledger, cursors and run log."""
    op.create_table(
        "account",
        sa.Column("crm_modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("website", sa.String(), nullable=True),
        sa.Column("domain", sa.String(), nullable=True),
        sa.Column("country", sa.String(), nullable=True),
        sa.Column("region", sa.String(), nullable=True),
        sa.Column("industry", sa.String(), nullable=True),
        sa.Column("employees", sa.Integer(), nullable=True),
        sa.Column("revenue", sa.Float(), nullable=True),
        sa.Column("parent_id", sa.String(), nullable=True),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.Column("is_customer", sa.Boolean(), nullable=False),
        sa.Column("is_competitor", sa.Boolean(), nullable=False),
        sa.Column("disposition", sa.String(), nullable=True),
        sa.Column("reason_code", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_account_domain"), ["domain"], unique=False)
        batch_op.create_index(batch_op.f("ix_account_parent_id"), ["parent_id"], unique=False)

    op.create_table(
        "activity",
        sa.Column("crm_modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("person_id", sa.String(), nullable=True),
        sa.Column("account_id", sa.String(), nullable=True),
        sa.Column("topic", sa.String(), nullable=True),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.Column("subject", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("activity", schema=None) as batch_op:
        batch_op.create_index(
            "ix_activity_account_occurred", ["account_id", "occurred_at"], unique=False
        )
        batch_op.create_index(
            "ix_activity_person_occurred", ["person_id", "occurred_at"], unique=False
        )

    op.create_table(
        "crm_user",
        sa.Column("crm_modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("territory", sa.String(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("out_of_office", sa.Boolean(), nullable=False),
        sa.Column("manager_id", sa.String(), nullable=True),
        sa.CheckConstraint(
            "role IN ('marketing', 'sdr', 'ae', 'manager')", name="ck_crm_user_role"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "cursor",
        sa.Column("connector", sa.String(), nullable=False),
        sa.Column("object", sa.String(), nullable=False),
        sa.Column("value", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ids_at_value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connector", "object"),
    )
    op.create_table(
        "disposition",
        sa.Column("object", sa.String(), nullable=False),
        sa.Column("record_id", sa.String(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disposition", sa.String(), nullable=False),
        sa.Column("reason_code", sa.String(), nullable=True),
        sa.Column("source", sa.String(), nullable=True),
        sa.CheckConstraint(
            "disposition IN ('Accepted', 'Rejected', 'Recycled')", name="ck_disposition_disposition"
        ),
        sa.PrimaryKeyConstraint("object", "record_id", "recorded_at"),
    )
    op.create_table(
        "opportunity",
        sa.Column("crm_modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=True),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("stage", sa.String(), nullable=True),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("close_date", sa.Date(), nullable=True),
        sa.Column("is_closed", sa.Boolean(), nullable=False),
        sa.Column("is_won", sa.Boolean(), nullable=False),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("opportunity", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_opportunity_account_id"), ["account_id"], unique=False)

    op.create_table(
        "person",
        sa.Column("crm_modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("first_name", sa.String(), nullable=True),
        sa.Column("last_name", sa.String(), nullable=True),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("company", sa.String(), nullable=True),
        sa.Column("title", sa.String(), nullable=True),
        sa.Column("phone", sa.String(), nullable=True),
        sa.Column("country", sa.String(), nullable=True),
        sa.Column("city", sa.String(), nullable=True),
        sa.Column("account_id", sa.String(), nullable=True),
        sa.Column("is_converted", sa.Boolean(), nullable=False),
        sa.Column("converted_account_id", sa.String(), nullable=True),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.Column("matched_account_id", sa.String(), nullable=True),
        sa.Column("match_rule", sa.String(), nullable=True),
        sa.Column("match_confidence", sa.Float(), nullable=True),
        sa.Column("orphan_reason", sa.String(), nullable=True),
        sa.CheckConstraint("kind IN ('lead', 'contact')", name="ck_person_kind"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_person_matched_account_id"), ["matched_account_id"], unique=False
        )

    op.create_table(
        "schema_meta",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_schema_meta_single_row"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "sync_run",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("connector", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'stopped')", name="ck_sync_run_status"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "assignment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("owner_id", sa.String(), nullable=False),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("tier", sa.String(), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("run_id", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["sync_run.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_assignment_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_assignment_run_id"), ["run_id"], unique=False)
        batch_op.create_index(
            "uq_assignment_current",
            ["account_id"],
            unique=True,
            sqlite_where=sa.text("ended_at IS NULL"),
            postgresql_where=sa.text("ended_at IS NULL"),
        )

    op.create_table(
        "run_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("object", sa.String(), nullable=True),
        sa.Column("record_id", sa.String(), nullable=True),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("detail", sa.String(), nullable=True),
        sa.CheckConstraint(
            "action IN ('pulled', 'matched', 'scored', 'written', 'skipped', 'failed')",
            name="ck_run_event_action",
        ),
        sa.CheckConstraint(
            "stage IN ('pull', 'match', 'score', 'route', 'sla', 'write')",
            name="ck_run_event_stage",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["sync_run.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("run_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_event_run_id"), ["run_id"], unique=False)

    op.create_table(
        "score_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("tier", sa.String(), nullable=False),
        sa.Column("model_version", sa.String(), nullable=False),
        sa.Column("disqualified_reason", sa.String(), nullable=True),
        sa.Column("topic", sa.String(), nullable=True),
        sa.Column("contributions", sa.JSON(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["sync_run.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("score_history", schema=None) as batch_op:
        batch_op.create_index(
            "ix_score_history_account_scored", ["account_id", "scored_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_score_history_run_id"), ["run_id"], unique=False)

    op.create_table(
        "sla_clock",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("owner_id", sa.String(), nullable=False),
        sa.Column("tier", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_touch_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'met', 'breached', 'escalated', 'cancelled')",
            name="ck_sla_clock_status",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sla_clock", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sla_clock_account_id"), ["account_id"], unique=False)
        batch_op.create_index(
            "uq_sla_clock_open",
            ["account_id"],
            unique=True,
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        )

    op.create_table(
        "write_ledger",
        sa.Column("object", sa.String(), nullable=False),
        sa.Column("record_id", sa.String(), nullable=False),
        sa.Column("field", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["sync_run.id"],
        ),
        sa.PrimaryKeyConstraint("object", "record_id", "field"),
    )
    with op.batch_alter_table("write_ledger", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_write_ledger_run_id"), ["run_id"], unique=False)
