"""account, person and opportunity: link_pending, set by the mirror on every row it writes,
and link_basis, the hash of the fields matching read when the link stage last saw the row.

The link stage relinks only the people such rows can reach and clears the flag. Existing rows
start pending with no basis, so the first run after the upgrade links everyone once.

person: industry, employees and revenue, a lead's own company fields, which score an orphan lead
(empty until the person is pulled again).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 09:13:00.112024
"""

import sqlalchemy as sa
from alembic import op

__all__ = ["upgrade"]

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TABLES = ("account", "opportunity", "person")


def upgrade() -> None:
    """link_pending and link_basis on the three tables whose changes can change a link."""
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("link_pending", sa.Boolean(), nullable=False, server_default=sa.true())
            )
            batch_op.add_column(sa.Column("link_basis", sa.String(), nullable=True))
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.add_column(sa.Column("industry", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("employees", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("revenue", sa.Float(), nullable=True))
