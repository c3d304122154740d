"""Frames are typed by the state tables: one definition of each object's fields."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import get_args

import polars as pl
import pytest
from sqlmodel import SQLModel, col, select

from scoring.config import FitField
from scoring.fit import FIRMOGRAPHICS
from sync.frames import UTC_STAMP, frame_schema, polars_type, read_columns, read_frame
from sync.state import Account, Opportunity
from sync.store import Store

STAMP = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
COUNTRIES = ("DE", None, "", "D,E", 'say "hi"', "two\nlines")  # what CSV must quote, and null


@pytest.mark.parametrize("table", sorted(SQLModel.metadata.tables.values(), key=str), ids=str)
def test_every_column_of_every_state_table_has_a_frame_type(table: object) -> None:
    for column in table.columns:  # type: ignore[attr-defined]
        assert polars_type(column.type) is not None


def test_what_scoring_reads_of_an_account_are_account_columns() -> None:
    columns = set(Account.__table__.columns.keys())  # type: ignore[attr-defined]
    assert set(FIRMOGRAPHICS) <= columns
    assert set(get_args(FitField)) <= columns


def test_a_frame_takes_its_names_and_types_from_the_statement() -> None:
    statement = select(
        col(Account.id).label("account_id"),
        Account.employees,
        Account.revenue,
        Account.is_customer,
        Account.created_at,
        Opportunity.close_date,
    )
    assert frame_schema(statement) == {
        "account_id": pl.String,
        "employees": pl.Int64,
        "revenue": pl.Float64,
        "is_customer": pl.Boolean,
        "created_at": UTC_STAMP,
        "close_date": pl.Date,
    }


def test_read_frame_types_rows_and_an_empty_result_alike(store: Store) -> None:
    statement = select(
        col(Opportunity.id).label("opportunity_id"), Opportunity.opened_at, Opportunity.close_date
    )
    with store.session() as session:
        empty = read_frame(session, statement)
        session.add(
            Opportunity(
                id="006A", crm_modified_at=STAMP, synced_at=STAMP, opened_at=STAMP,
                close_date=date(2026, 12, 1),
            )
        )  # fmt: skip
        session.flush()
        full = read_frame(session, statement)
    assert empty.height == 0 and empty.schema == full.schema
    assert full.row(0) == ("006A", STAMP, date(2026, 12, 1))


def test_read_columns_reads_text_and_numbers_as_read_frame_does_batch_by_batch(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sync.frames._BATCH_ROWS", 2)  # six rows: three batches (SQLite)
    statement = select(
        col(Account.id).label("account_id"), Account.employees, Account.revenue, Account.country
    )
    statement = statement.where(col(Account.name).like("A%")).order_by(col(Account.id))
    with store.session() as session:
        empty = read_columns(session, statement)
        session.add_all(
            Account(
                id=f"001{i}", name=f"A{i}", crm_modified_at=STAMP, synced_at=STAMP,
                employees=None if i == 2 else 10 * i, revenue=1.5 * i,
                country=COUNTRIES[i],
            )
            for i in range(len(COUNTRIES))
        )  # fmt: skip
        session.flush()
        full = read_columns(session, statement)
        expected = read_frame(session, statement)
        with pytest.raises(TypeError, match="created_at"):
            read_columns(session, select(Account.id, Account.created_at))
    assert empty.height == 0 and empty.schema == full.schema
    assert full.equals(expected)
