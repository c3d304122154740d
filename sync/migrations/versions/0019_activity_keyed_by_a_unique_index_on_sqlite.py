"""On SQLite, ``activity`` is keyed by a unique index on ``id`` (``ux_activity_id``) instead of
a primary key constraint.

A first load drops the table's secondary indexes and builds them after the load; a primary key
cannot be dropped, so each row went into its index as it was inserted. HubSpot's event ids are
random ("a randomly-generated ID for this event", its email events documentation), and a
random key's insert lands at a random place of an index larger than the page cache: 1M
activity rows took 11.8-11.9 s into the keyed table against 6.0-7.7 s into one without the
key whose unique index was built after the load (`sync.store.key_index`). The table is rebuilt as
SQLite's own procedure for a change ALTER TABLE cannot make says (a new table, the rows copied,
the old one dropped, the new one renamed: https://sqlite.org/lang_altertable.html), its indexes
made again. PostgreSQL keeps its primary key: nothing changes there.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 21:30:00.000000
"""

from alembic import op

__all__ = ["upgrade"]

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_COLUMNS = (
    "crm_modified_at, is_deleted, synced_at, id, type, occurred_at, person_id, account_id,"
    " topic, owner_id, subject, rep_touch, merged_into, scored_seq, link_pending"
)
_INDEXES = (
    "CREATE UNIQUE INDEX ux_activity_id ON activity (id)",
    "CREATE INDEX ix_activity_uncounted ON activity (scored_seq) WHERE scored_seq > 1",
    "CREATE INDEX ix_activity_recounted ON activity (id) WHERE link_pending",
    "CREATE INDEX ix_activity_person_occurred ON activity (person_id, occurred_at)",
    "CREATE INDEX ix_activity_account_occurred ON activity (account_id, occurred_at)"
    " WHERE account_id IS NOT NULL",
)


def upgrade() -> None:
    """Rebuild ``activity`` on SQLite without its primary key constraint, rows in their order."""
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        """CREATE TABLE _activity_keyed_by_index (
	crm_modified_at DATETIME NOT NULL,
	is_deleted BOOLEAN NOT NULL,
	synced_at DATETIME NOT NULL,
	id VARCHAR NOT NULL,
	type VARCHAR NOT NULL,
	occurred_at DATETIME NOT NULL,
	person_id VARCHAR,
	account_id VARCHAR,
	topic VARCHAR,
	owner_id VARCHAR,
	subject VARCHAR,
	rep_touch BOOLEAN DEFAULT 0 NOT NULL,
	merged_into VARCHAR,
	scored_seq BIGINT NOT NULL,
	link_pending BOOLEAN DEFAULT 0 NOT NULL
)"""
    )
    op.execute(
        f"INSERT INTO _activity_keyed_by_index ({_COLUMNS})"
        f" SELECT {_COLUMNS} FROM activity ORDER BY rowid"
    )
    op.execute("DROP TABLE activity")
    op.execute("ALTER TABLE _activity_keyed_by_index RENAME TO activity")
    for statement in _INDEXES:
        op.execute(statement)
