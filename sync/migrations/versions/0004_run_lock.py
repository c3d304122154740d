"""Migrations take over from schema_meta; the run lock of each org.

schema_meta is set to 4, which every release before migrations refuses with a clear
message, so an older Handoff never runs against a schema it does not know.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

__all__ = ["upgrade"]

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Migrations take over from schema_meta; the run lock of each org."""
    op.create_table(
        "run_lock",
        sa.Column("org_key", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org_key"),
    )
    # releases before migrations refuse a schema_meta version other than theirs (1-3)
    op.execute("DELETE FROM schema_meta")
    op.execute("INSERT INTO schema_meta (id, schema_version) VALUES (1, 4)")
