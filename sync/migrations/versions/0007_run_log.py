"""The run log's order and full re-pulls: each sync run gets a sequence number, whether it
re-pulled everything, and why.

Runs of a sandbox share a simulated start time, so `started_at` cannot order them; `seq` is
given by the store as each run starts (one run at a time per org holds the run lock). Runs kept
from before this revision are numbered in the order of their start (then id).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

__all__ = ["upgrade"]

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """`seq` (numbered by start for the runs kept), `full` and `full_reason` on sync_run."""
    with op.batch_alter_table("sync_run") as batch_op:
        batch_op.add_column(sa.Column("seq", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("full", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("full_reason", sa.String(), nullable=True))
    connection = op.get_bind()
    runs = sa.table("sync_run", sa.column("id", sa.String()), sa.column("seq", sa.Integer()))
    ids = connection.execute(sa.text("SELECT id FROM sync_run ORDER BY started_at, id")).scalars()
    numbered = [{"run": run_id, "number": number} for number, run_id in enumerate(ids, 1)]
    if numbered:
        statement = (
            sa.update(runs)
            .where(runs.c.id == sa.bindparam("run"))
            .values(seq=sa.bindparam("number"))
        )
        connection.execute(statement, numbered)
    with op.batch_alter_table("sync_run") as batch_op:
        batch_op.alter_column("seq", existing_type=sa.Integer(), nullable=False)
        batch_op.create_index("ix_sync_run_seq", ["seq"], unique=True)
