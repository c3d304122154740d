"""Every text column sorts by code point on PostgreSQL (``COLLATE "C"``), as SQLite and Python do.

A PostgreSQL server set up with a language's rules (``en_US.UTF-8``, most installs' default, or an
ICU locale) sorts ``001Dn000000000a`` before ``001Dn000000000B``; Python and SQLite put it after.
The score stage lines accounts read in the database's id order up with ids Python sorted, so on
such a server Salesforce's mixed-case ids gave accounts one another's firmographics. Our text is
ids, keys and codes, never prose a person reads in the database's order, so code point order is
right for all of it (and compares bytes, faster than a language's rules). A collation-only change
rewrites no row; the columns' indexes are rebuilt. SQLite already compares text by its bytes.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 23:40:00.000000
"""

from alembic import op
from sqlalchemy import text

__all__ = ["upgrade"]

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# every collatable column of this schema's tables not yet in "C", with its type as declared
_NOT_C = text(
    """
    SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_collation l ON l.oid = a.attcollation
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attnum > 0
      AND NOT a.attisdropped AND a.attcollation <> 0 AND l.collname IS DISTINCT FROM 'C'
      AND c.relname <> 'alembic_version'
    ORDER BY c.relname, a.attnum
    """
)


def upgrade() -> None:
    """On PostgreSQL, each table's text columns altered to ``COLLATE "C"`` in one statement."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    columns: dict[str, list[str]] = {}
    for table, column, declared in bind.execute(_NOT_C):
        columns.setdefault(table, []).append(f'ALTER COLUMN "{column}" TYPE {declared} COLLATE "C"')
    for table, changes in columns.items():
        op.execute(f'ALTER TABLE "{table}" ' + ", ".join(changes))
