"""Frames are typed by the state tables: one definition of each object's fields."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import get_args

import polars as pl
import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, SQLModel, col, select

from scoring.config import FitField
from scoring.fit import FIRMOGRAPHICS
from sync.frames import (
    UTC_STAMP,
    ReadApart,
    frame_schema,
    polars_type,
    read_column_batches,
    read_columns,
    read_frame,
)
from sync.state import Account, Opportunity
from sync.store import Store

STAMP = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
# what CSV must quote, null, and text out of ASCII
COUNTRIES = ("DE", None, "", "D,E", 'say "hi"', "two\nlines", "Österreich", "日本")


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


def _accounts(count: int, country: Callable[[int], str | None]) -> list[Account]:
    return [
        Account(
            id=f"001{i:05d}", name=f"A{i}", crm_modified_at=STAMP, synced_at=STAMP,
            employees=None if i % 3 else i, revenue=0.5 * i, country=country(i),
        )
        for i in range(count)
    ]  # fmt: skip


_READ = select(
    col(Account.id).label("account_id"), Account.employees, Account.revenue, Account.country
).order_by(col(Account.id))


def test_a_read_apart_gives_the_rows_the_session_reads(store: Store) -> None:
    # text null in the first 1,500 rows: typed by the first rows only, the column would be
    # taken for a number and its text refused
    late = _accounts(1_500, lambda i: None) + _accounts(len(COUNTRIES), COUNTRIES.__getitem__)
    for n, account in enumerate(late[1_500:]):
        account.id = f"002{n}"
    with store.session() as session:
        session.add_all(late)
    with store.session() as session:
        through = read_columns(session, _READ)
        apart = pl.concat(read_column_batches(session, _READ, apart=10_000))
        started = ReadApart.start(session, _READ, 10_000)  # None on PostgreSQL: it copies
        taken = started.frame() if started is not None else None
        # a literal out of ASCII written into the statement reads as the session reads it
        foreign = _READ.where(col(Account.country).in_(['say "hi"', "Österreich", "日本"]))
        foreign_apart = pl.concat(read_column_batches(session, foreign, apart=10))
        foreign_through = read_columns(session, foreign)
    if store.engine.dialect.name == "sqlite":
        assert taken is not None and taken.equals(through)
    assert through.height == 1_500 + len(COUNTRIES)
    assert apart.equals(through)
    assert foreign_through.height == 3 and foreign_apart.equals(foreign_through)


def test_a_read_apart_is_not_made_where_its_process_would_not_see_what_the_session_sees(
    tmp_path: Path,
) -> None:
    in_memory = create_engine("sqlite://", poolclass=StaticPool)
    SQLModel.metadata.create_all(in_memory, tables=[Account.__table__])  # type: ignore[list-item]
    with Session(in_memory) as session:
        session.add_all(_accounts(3, str))
        session.commit()
        assert ReadApart.start(session, _READ, 10_000) is None
    with _holding(tmp_path, 3) as store, store.session() as session:
        unwritten = ReadApart.start(session, _READ, 10_000)
        assert unwritten is not None
        unwritten.cancel()
        session.add_all(_accounts(5, str)[3:])
        session.flush()  # written, not committed: only the session sees them
        assert ReadApart.start(session, _READ, 10_000) is None
        assert pl.concat(read_column_batches(session, _READ, apart=10_000)).height == 5


def test_a_read_apart_that_fails_is_logged_and_read_through_the_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("sync.frames._READER", "raise SystemExit('no ADBC driver here')")
    with _holding(tmp_path, 4) as store:
        with store.session() as session, caplog.at_level(logging.WARNING, "sync.frames"):
            read = pl.concat(read_column_batches(session, _READ, apart=10_000))
        with store.session() as session:
            assert read.equals(read_frame(session, _READ))
    assert "reading apart failed" in caplog.text and "no ADBC driver here" in caplog.text


def test_a_read_apart_given_up_stops_its_process_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sync.frames._READER", "import time; time.sleep(60)")
    with _holding(tmp_path, 2) as store, store.session() as session:
        started = ReadApart.start(session, _READ, 10_000)
    assert started is not None
    process, folder = started._process, Path(started._folder.name)
    assert process.poll() is None and folder.is_dir()
    started.cancel()
    assert process.returncode is not None and not folder.exists()


@contextmanager
def _holding(tmp_path: Path, accounts: int) -> Iterator[Store]:
    """A SQLite file store holding ``accounts`` accounts, committed."""
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        with store.session() as session:
            session.add_all(_accounts(accounts, str))
        yield store
