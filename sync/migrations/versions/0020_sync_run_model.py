"""The run log names the model that scored each run, and why it did: ``model_version`` and
``model_reason`` on ``sync_run`` (`handoff logs RUN` shows them; the first run may train the
model, and a RevOps reader asks which one wrote the scores). Runs kept from before this revision
have neither.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 19:15:00.000000
"""

import sqlalchemy as sa
from alembic import op

__all__ = ["upgrade"]

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Two nullable columns on sync_run (SQLite adds them in place), in code point order on
    PostgreSQL as every text column is (0015)."""
    string = sa.String().with_variant(sa.String(collation="C"), "postgresql")
    prose = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
    op.add_column("sync_run", sa.Column("model_version", string, nullable=True))
    op.add_column("sync_run", sa.Column("model_reason", prose, nullable=True))
