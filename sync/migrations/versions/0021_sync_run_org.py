"""Each run names the CRM org it synced: ``org_id`` on ``sync_run`` (Salesforce's Organization
Id, HubSpot's Hub ID), so a state database is never synced against a second org of the same CRM
(a run refuses one whose runs name another). Runs kept from before this revision name none.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 23:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

__all__ = ["upgrade"]

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """One nullable column on sync_run, in code point order on PostgreSQL (0015)."""
    string = sa.String().with_variant(sa.String(collation="C"), "postgresql")
    op.add_column("sync_run", sa.Column("org_id", string, nullable=True))
