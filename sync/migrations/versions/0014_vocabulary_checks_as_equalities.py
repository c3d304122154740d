"""Closed-vocabulary CHECK constraints written as equalities joined by OR, not ``IN (...)``.

SQLite evaluates a CHECK's ``IN`` list by building a lookup table for it each time the insert
statement runs, which is once a row of a bulk insert: a run log's two checks made its inserts
three times as costly as with none, and the write ledger's one cost it a third. Joined
equalities cost about nothing, and allow exactly the same values. The constraints keep their
names; on SQLite each table is copied once (batch mode), on PostgreSQL each constraint is dropped
and added again.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 20:15:00.000000
"""

from alembic import op

__all__ = ["upgrade"]

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# (table, column, the values allowed), as the constraints of revisions 0001 and 0006 allow them
_VOCABULARIES = (
    ("person", "kind", ("lead", "contact")),
    ("crm_user", "role", ("marketing", "sdr", "ae", "manager")),
    ("sync_run", "status", ("running", "succeeded", "failed", "stopped")),
    ("sla_clock", "status", ("open", "met", "breached", "escalated", "cancelled")),
    ("disposition", "disposition", ("Accepted", "Rejected", "Recycled")),
    ("write_ledger", "status", ("pending", "ok", "retriable", "permanent")),
    ("run_event", "stage", ("pull", "match", "score", "route", "sla", "write")),
    ("run_event", "action", ("pulled", "matched", "scored", "written", "skipped", "failed")),
)


def upgrade() -> None:
    """Each vocabulary's constraint replaced by its equalities, under the same name."""
    for table in dict.fromkeys(table for table, _, _ in _VOCABULARIES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for _, column, values in (v for v in _VOCABULARIES if v[0] == table):
                name = f"ck_{table}_{column}"
                batch_op.drop_constraint(name, type_="check")
                batch_op.create_check_constraint(name, _either(column, values))


def _either(column: str, values: tuple[str, ...]) -> str:
    """``column = 'a' OR column = 'b' ...``."""
    return " OR ".join(f"{column} = '{value}'" for value in values)
