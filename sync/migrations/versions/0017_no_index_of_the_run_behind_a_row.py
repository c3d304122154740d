"""No index of the run behind a ledger, score or assignment row (``ix_*_run_id``).

No query reads those rows by run, and runs are never deleted (a delete is what a foreign key's
index would serve); the run log's events keep theirs, since `handoff logs RUN` reads them by
run. Each index cost every upsert a second entry to move: a rewritten ledger row leaves the
first run's entries at a random page. On the 200,000-account reference org, a cycle writing
3,000 records touched ~4,000 pages of these indexes alone.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 04:00:00.000000
"""

from alembic import op

__all__ = ["upgrade"]

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

DROPPED = (
    "ix_write_ledger_run_id",
    "ix_current_score_run_id",
    "ix_score_history_run_id",
    "ix_assignment_run_id",
)


def upgrade() -> None:
    """Drop the four indexes."""
    for name in DROPPED:
        op.execute(f"DROP INDEX IF EXISTS {name}")
