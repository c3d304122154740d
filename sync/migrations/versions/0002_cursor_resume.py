"""Schema version 2: a cursor keeps the page token of a stopped full load.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

__all__ = ["upgrade"]

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Schema version 2: a cursor keeps the page token of a stopped full load."""
    with op.batch_alter_table("cursor") as batch_op:
        batch_op.add_column(sa.Column("resume", sa.Text(), nullable=True))
