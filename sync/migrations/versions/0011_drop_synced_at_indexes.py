"""The mirrored tables' ``synced_at`` indexes go: no query reads a range of ``synced_at`` since
changes are told by flags (0010), and each cost the mirror an index entry a row on a first load
and a move on every row an incremental cycle updates (its stamp changes every run).

``IF EXISTS``: a first load stopped before its indexes were built left them dropped already.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 16:10:00.000000
"""

from alembic import op

__all__ = ["upgrade"]

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_MIRRORED = ("account", "person", "activity", "opportunity", "crm_user")


def upgrade() -> None:
    """Drop ``ix_<table>_synced_at`` of every mirrored table; no row changes."""
    for table in _MIRRORED:
        op.execute(f"DROP INDEX IF EXISTS ix_{table}_synced_at")
