"""``ix_person_matched_account_id`` holds linked people only (``WHERE matched_account_id IS NOT
NULL``).

An incremental cycle looks orphans up by id: ``id IN (...) AND matched_account_id IS NULL``.
SQLite served the null test from this index, which held every orphan of the org, and walked all
of them for each lookup (on the reference org a cycle spent about half a second there); without
the nulls in it, the lookup goes by the id. Lookups of an account's people (``matched_account_id
= ?`` or ``IN (...)``) still use it: both databases know such a test implies the column is not
null. The index is smaller, and a first load, whose people are not linked yet, enters nothing.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 00:20:00.000000
"""

from alembic import op

__all__ = ["upgrade"]

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Drop the index and create it again over linked people only."""
    op.execute("DROP INDEX IF EXISTS ix_person_matched_account_id")
    op.execute(
        "CREATE INDEX ix_person_matched_account_id ON person (matched_account_id)"
        " WHERE matched_account_id IS NOT NULL"
    )
