"""Incremental scoring state: each account's decayed signal sums kept between runs.

``account_signals`` holds one live account's sums, burst and recent activity (JSON), the run that
last updated them, the latest activity in them and whether a rescore of it awaits write-back;
``scoring_state`` is the single row naming the catalog and model behind them, the scoring cycle,
and when the score stage and the nightly rescore last ran. ``activity.scored_seq`` is the cycle
that first counted an activity (null until then: every activity of an upgraded database is new,
and the first run after the upgrade builds the sums from the mirror). ``synced_at`` is indexed on
the mirrored tables, so the score stage finds what changed since it ran without a scan.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

__all__ = ["upgrade"]

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_MIRRORED = ("account", "activity", "crm_user", "opportunity", "person")


def upgrade() -> None:
    """The scoring state's tables, activity.scored_seq, and synced_at indexed."""
    op.create_table(
        "account_signals",
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("sums", sa.JSON(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("high_water", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pending", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("account_id"),
    )
    with op.batch_alter_table("account_signals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_account_signals_pending",
            ["account_id"],
            unique=False,
            sqlite_where=sa.text("pending"),
            postgresql_where=sa.text("pending"),
        )
    op.create_table(
        "scoring_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("catalog", sa.String(), nullable=False),
        sa.Column("model_version", sa.String(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("nightly_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_scoring_state_single_row"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("activity", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scored_seq", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            "ix_activity_unscored",
            ["scored_seq"],
            unique=False,
            sqlite_where=sa.text("scored_seq IS NULL"),
            postgresql_where=sa.text("scored_seq IS NULL"),
        )
    for table in _MIRRORED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f"ix_{table}_synced_at", ["synced_at"], unique=False)
