"""activity.scored_seq: the scoring cycle that counts an activity, set when the mirror inserts
it (the one after the last that ran), so a cycle counts what is new by becoming the last rather
than by writing its number on every row it counted (on the reference org's first run, an UPDATE
of 10M rows and of their index); activity.link_pending: set on the rows the mirror updates, not
on those it inserts, so a first load flags none.

Activities counted keep their cycle; those not counted yet get the next cycle's, so none is
counted twice and none is lost. The column is NOT NULL from here on (SQLite copies the table
once). Its index holds only activities of the cycles after the first (the first reads the whole
history), the flag's every flagged row: on a first load, none.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

__all__ = ["upgrade"]

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_NEXT_CYCLE = "(SELECT COALESCE(MAX(seq), 0) + 1 FROM scoring_state)"


def _where(condition: str) -> dict[str, sa.TextClause]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def upgrade() -> None:
    """The next cycle on the activities not counted yet, the column required, the new indexes."""
    op.execute(f"UPDATE activity SET scored_seq = {_NEXT_CYCLE} WHERE scored_seq IS NULL")
    with op.batch_alter_table("activity", schema=None) as batch_op:
        batch_op.drop_index("ix_activity_unscored", **_where("scored_seq IS NULL"))
        batch_op.drop_index(
            "ix_activity_recounted", **_where("link_pending AND scored_seq IS NOT NULL")
        )
        batch_op.alter_column("scored_seq", existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_index(
            "ix_activity_uncounted", ["scored_seq"], unique=False, **_where("scored_seq > 1")
        )
        batch_op.create_index(
            "ix_activity_recounted", ["id"], unique=False, **_where("link_pending")
        )
