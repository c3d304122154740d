"""account and person: owned_changed, set by the mirror when our fields as the CRM holds them
change; the link stage compares those rows with the write ledger (`sync.echoes`).

The mirror now sets ``link_pending`` on an updated account or person only when a value other than
our fields and the stamps changes, so the echo of our own write-back is not relinked, rescored and
diffed each cycle. Existing rows start unflagged: what the mirror flagged before the upgrade stays
``link_pending``, and the ledger is kept as it is (nothing is rewritten, in it or in the CRM).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 16:05:00.000000
"""

import sqlalchemy as sa
from alembic import op

__all__ = ["upgrade"]

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_TABLES = ("account", "person")


def upgrade() -> None:
    """The flag, false on every row, and its partial index."""
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("owned_changed", sa.Boolean(), nullable=False, server_default=sa.false())
            )
            batch_op.create_index(
                f"ix_{table}_owned_changed",
                ["id"],
                unique=False,
                sqlite_where=sa.text("owned_changed"),
                postgresql_where=sa.text("owned_changed"),
            )
