"""What changed is tracked by flags and hand-over rows, not by ``synced_at`` times, so a run at the
same moment as the one before (the sandbox's fixed present) takes only what changed since.

activity.link_pending: set by the mirror on every activity row it writes, as on the linkable
tables; the score stage clears it, so a counted activity flagged again was edited, deleted or
moved (indexed for just those rows). Rows counted and synced since the last score stage start
flagged, the rest not.

pending_rescore: what the link stage hands the score stage in the transaction that clears the
mirror's flags (changed records, relinked accounts), deleted by the score stage in its own. Rows
linked already but synced since the last score stage are handed over at the upgrade.

person.link_status and tally: each person's status as counted, and totals kept by what changed
(people per link status, accounts per tier); the tally starts empty and is counted once.

person.match_link / match_domain / match_name, account.match_name, account_domain and
name_variant: the matching keys, indexed, so the link stage reads only the people and accounts a
change reaches; link_state: the keys are complete, and the matching settings the links were made
with. Both start empty: the first run after the upgrade relinks everyone once and stores them.

link_pending indexed (partial) on account, person and opportunity; run_event.at indexed for the
retention delete each run.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 12:18:45.807062
"""

import sqlalchemy as sa
from alembic import op

__all__ = ["upgrade"]

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_LINKABLE = ("account", "opportunity", "person")
_SCORED_AT = "(SELECT scored_at FROM scoring_state WHERE id = 1)"


def _pending_where(condition: str) -> dict[str, sa.TextClause]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def upgrade() -> None:
    """The hand-over and tally tables, the flags and their indexes, and their first values."""
    op.create_table(
        "pending_rescore",
        sa.Column("object", sa.String(), nullable=False),
        sa.Column("record_id", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("object", "record_id"),
    )
    op.create_table(
        "tally",
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key"),
    )
    op.create_table(
        "account_domain",
        sa.Column("domain", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("domain", "account_id"),
    )
    with op.batch_alter_table("account_domain", schema=None) as batch_op:
        batch_op.create_index("ix_account_domain_account_id", ["account_id"], unique=False)
    op.create_table(
        "name_variant",
        sa.Column("variant", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("variant", "key"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "link_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("settings", sa.String(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_link_state_single_row"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("match_name", sa.String(), nullable=True))
        batch_op.create_index("ix_account_match_name", ["match_name"], unique=False)
    with op.batch_alter_table("person", schema=None) as batch_op:
        for key in ("match_link", "match_domain", "match_name"):
            batch_op.add_column(sa.Column(key, sa.String(), nullable=True))
            batch_op.create_index(f"ix_person_{key}", [key], unique=False)
    for table in _LINKABLE:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(
                f"ix_{table}_link_pending", ["id"], unique=False, **_pending_where("link_pending")
            )
        op.execute(
            f"INSERT INTO pending_rescore (object, record_id) SELECT '{table}', id FROM {table}"
            f" WHERE NOT link_pending AND synced_at >= {_SCORED_AT}"
        )
    with op.batch_alter_table("activity", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("link_pending", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute(
        "UPDATE activity SET link_pending = TRUE"
        f" WHERE scored_seq IS NOT NULL AND synced_at >= {_SCORED_AT}"
    )
    with op.batch_alter_table("activity", schema=None) as batch_op:
        batch_op.create_index(
            "ix_activity_recounted",
            ["id"],
            unique=False,
            **_pending_where("link_pending AND scored_seq IS NOT NULL"),
        )
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.add_column(sa.Column("link_status", sa.String(), nullable=True))
    op.execute(
        "UPDATE person SET link_status = CASE"
        " WHEN matched_account_id IS NOT NULL THEN 'linked'"
        " WHEN match_rule IS NOT NULL THEN 'review'"
        " ELSE 'orphan:' || COALESCE(orphan_reason, 'None') END"
        " WHERE NOT is_deleted AND link_basis IS NOT NULL"
    )
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.create_index(
            "ix_person_in_review", ["id"], unique=False, **_pending_where("link_status = 'review'")
        )
    with op.batch_alter_table("run_event", schema=None) as batch_op:
        batch_op.create_index("ix_run_event_at", ["at"], unique=False)
