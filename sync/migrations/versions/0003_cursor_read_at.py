"""Schema version 3: a cursor keeps when it read and when it last listed the archive.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

__all__ = ["upgrade"]

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Schema version 3: a cursor keeps when it read and when it last listed the archive."""
    with op.batch_alter_table("cursor") as batch_op:
        batch_op.add_column(sa.Column("read_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("archive_read_at", sa.DateTime(timezone=True), nullable=True))
