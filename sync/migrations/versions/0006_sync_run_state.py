"""The sync run's state: merges, our fields as pulled, dispositions on people, an empty stream's
cursor, a write ledger of one row a record, the scoring model and each account's current score.

The write ledger changes from one row per (record, field) to one row per record holding the
values last written, their hash, the signal keys behind them and the CRM's answer. Its rows are
carried over, not dropped: each record's fields become one row, settled "ok" (the old ledger only
kept values the CRM had accepted), its field names as our keys (a Salesforce or HubSpot name of
one of our fields as of this revision becomes the key it stands for), and no signal keys (None:
the old ledger did not keep them, so the first run after the upgrade does not rewrite a record
for its signals alone). A record the CRM still holds as last written is therefore not rewritten:
upgrading never makes Handoff rewrite the whole CRM.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from itertools import groupby
from typing import Any

import sqlalchemy as sa
from alembic import op

__all__ = ["upgrade"]

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

WRITE_STATUSES = ("pending", "ok", "retriable", "permanent")
CARRIED_BATCH = "revision 0006"  # the batch of every row carried over from the per-field ledger
_INSERT_ROWS = 1_000
# our fields' CRM names at this revision (Salesforce, HubSpot) -> our key; frozen here, as a
# migration must not change when the connectors' tables do
_FIELDS = (  # our key, its Salesforce name, its HubSpot name
    ("score", "Handoff_Score__c", "handoff_score"),
    ("tier", "Handoff_Tier__c", "handoff_tier"),
    ("signals", "Handoff_Signals__c", "handoff_signals"),
    ("topic", "Handoff_Topic__c", "handoff_topic"),
    ("model_version", "Handoff_Model_Version__c", "handoff_model_version"),
    ("scored_at", "Handoff_Scored_At__c", "handoff_scored_at"),
    ("sla_due", "Handoff_SLA_Due__c", "handoff_sla_due"),
    (
        "disqualification_reason",
        "Handoff_Disqualification_Reason__c",
        "handoff_disqualification_reason",
    ),
    ("matched_account_id", "Handoff_Matched_Account__c", "handoff_matched_account"),
    ("disposition", "Handoff_Disposition__c", "handoff_disposition"),
    ("reason_code", "Handoff_Reason_Code__c", "handoff_reason_code"),
)
_OUR_KEYS = {name: key for key, *names in _FIELDS for name in names}


def upgrade() -> None:
    """The sync run's state (see the module docstring), the write ledger's rows carried over."""
    _mirror_columns()
    _scoring_tables()
    with op.batch_alter_table("cursor", schema=None) as batch_op:
        batch_op.alter_column("value", existing_type=sa.DateTime(timezone=True), nullable=True)
    _one_row_a_record()


def _mirror_columns() -> None:
    """merged_into on every mirrored table; created_at and crm_owned on accounts; people's
    disposition and reason code (existing rows own nothing as pulled until pulled again)."""
    for table in ("account", "activity", "crm_user", "opportunity", "person"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("merged_into", sa.String(), nullable=True))
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(_crm_owned())
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disposition", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("reason_code", sa.String(), nullable=True))
        batch_op.add_column(_crm_owned())


def _crm_owned() -> sa.Column[Any]:
    return sa.Column("crm_owned", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))


def _scoring_tables() -> None:
    """The scoring models (the promoted one scores) and each live account's current score."""
    op.create_table(
        "model",
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("promoted", sa.Boolean(), nullable=False),
        sa.Column("changelog", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("version"),
    )
    op.create_table(
        "current_score",
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("tier", sa.String(), nullable=False),
        sa.Column("model_version", sa.String(), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disqualified_reason", sa.String(), nullable=True),
        sa.Column("topic", sa.String(), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["sync_run.id"]),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_index("ix_current_score_run_id", "current_score", ["run_id"], unique=False)


def _ledger_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("object", sa.String(), nullable=False),
        sa.Column("record_id", sa.String(), nullable=False),
        sa.Column("batch", sa.String(), nullable=False),
        sa.Column("values_hash", sa.String(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("code", sa.String(), nullable=True),
        sa.Column("message", sa.String(), nullable=True),
        sa.Column("intended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("run_id", sa.String(), nullable=True),
    ]


def _one_row_a_record() -> None:
    """The per-field ledger's rows into a per-record ledger: converted into a scratch table,
    the old table dropped, the new one created as a fresh database has it, the rows copied in."""
    scratch = op.create_table(
        "write_ledger_0006", *_ledger_columns(), sa.PrimaryKeyConstraint("object", "record_id")
    )
    bind = op.get_bind()
    old = sa.table(
        "write_ledger",
        *(sa.column(name) for name in ("object", "record_id", "field", "value", "run_id")),
        sa.column("written_at", sa.DateTime(timezone=True)),
    )
    rows = bind.execute(sa.select(old).order_by(old.c.object, old.c.record_id, old.c.field))
    for chunk in _chunks(_per_record(rows.mappings()), _INSERT_ROWS):
        bind.execute(scratch.insert(), chunk)
    with op.batch_alter_table("write_ledger", schema=None) as batch_op:
        batch_op.drop_index("ix_write_ledger_run_id")
    op.drop_table("write_ledger")
    op.create_table(
        "write_ledger",
        *_ledger_columns(),
        sa.CheckConstraint(
            f"status IN ({', '.join(repr(s) for s in WRITE_STATUSES)})",
            name="ck_write_ledger_status",
        ),
        sa.ForeignKeyConstraint(["run_id"], ["sync_run.id"]),
        sa.PrimaryKeyConstraint("object", "record_id"),
    )
    op.create_index("ix_write_ledger_run_id", "write_ledger", ["run_id"], unique=False)
    op.execute("INSERT INTO write_ledger SELECT * FROM write_ledger_0006")
    op.drop_table("write_ledger_0006")


def _per_record(rows: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """One new row per (object, record id) from its old rows, ordered by object and record."""
    for (obj, record_id), fields in groupby(rows, key=lambda r: (r["object"], r["record_id"])):
        fields = list(fields)
        values = {_OUR_KEYS.get(f["field"], f["field"]): json.loads(f["value"]) for f in fields}
        last = max(fields, key=lambda f: f["written_at"])
        yield {
            "object": obj,
            "record_id": record_id,
            "batch": CARRIED_BATCH,
            "values_hash": _values_hash(values),
            "values": values,
            "reasons": None,
            "status": "ok",
            "code": None,
            "message": None,
            "intended_at": last["written_at"],
            "settled_at": last["written_at"],
            "run_id": last["run_id"],
        }


def _values_hash(values: Mapping[str, Any]) -> str:
    """`sync.writeback.values_hash` as of this revision: the old values were canonical JSON."""
    text = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
