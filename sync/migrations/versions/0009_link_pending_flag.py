"""account, person and opportunity: link_pending, set by the mirror on every row it writes,
and link_basis, the hash of the fields matching read when the link stage last saw the row.

The link stage relinks only the people such rows can reach and clears the flag. Existing rows
start pending with no basis, so the first run after the upgrade links everyone once.

person: industry, employees and revenue, a lead's own company fields, which score an orphan lead
(empty until the person is pulled again).

pending_orphan: the orphan leads rescored on their own whose write-back is not done yet (only
the orphans a cycle touched are rescored, so one stopped before writing must be found again).
Every lead without an account at the upgrade starts pending: the first run after it scores and
writes each one, as the release that did not score orphans never did.

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
    """link_pending and link_basis on the three tables whose changes can change a link; the
    person's company fields; the orphans awaiting write-back."""
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
    op.create_table(
        "pending_orphan",
        sa.Column("person_id", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("person_id"),
    )
    op.execute(
        "INSERT INTO pending_orphan (person_id) SELECT id FROM person"
        " WHERE NOT is_deleted AND NOT is_converted AND matched_account_id IS NULL"
    )
