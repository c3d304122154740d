"""crm_user.role may be null (no team rule matched); activity.rep_touch (a rep's own touch).

Existing activities are not rep touches until they are pulled again (the server default).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 07:41:06.249996
"""

import sqlalchemy as sa
from alembic import op

__all__ = ["upgrade"]

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """crm_user.role may be null (no team rule matched); activity.rep_touch"""
    with op.batch_alter_table("activity", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("rep_touch", sa.Boolean(), nullable=False, server_default=sa.false())
        )

    with op.batch_alter_table("crm_user", schema=None) as batch_op:
        batch_op.alter_column("role", existing_type=sa.VARCHAR(), nullable=True)
