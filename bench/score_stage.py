"""Benchmark: the score stage alone, incremental against a full rescore, on a generated org.

    python -m bench.score_stage [--accounts 20000] [--new 1000] [--database URL]

The org's CRM-visible records are written into a fresh state database as the mirror holds them
(leads linked by the product's own `link_people`); then, at the org's end: the first score stage
(every account's sums built in one pass), a cycle with ``--new`` new activities (on accounts
that already have activity, 15 minutes later, as the mirror would store them), the same moment
rescored in full from the mirror (`score_book`, the baseline), and a nightly rescore a day later.
``incremental_score_seconds`` is the score stage of the cycle with new activity, and ``speedup``
the full rescore's time over it; ``*_cpu_seconds`` the process's CPU time for each, a steadier
figure on a machine whose cores are shared (SQLite works inside the process; a PostgreSQL
server's time is not in it). `score_stage_figures` serves other benchmarks (bench.pipeline)
given a store they filled.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bench.common import emit, peak_rss_mb, progress, timed
from bench.sync_run import CONFIG
from sandbox.generator import generate_org
from sandbox.org import Org
from sync.linking import link_people
from sync.scoring_state import ScoringSetup, score_book, score_cycle, settle
from sync.state import Account, Activity, Opportunity, Person
from sync.store import Store

__all__ = ["add_activities", "fill_mirror", "score_stage_figures"]

INTERVAL = timedelta(minutes=15)


def fill_mirror(store: Store, org: Org) -> None:
    """The org's accounts, people, opportunities and activities as mirror rows; people linked."""
    now = org.manifest.end_at
    tables: list[tuple[Any, pl.DataFrame]] = [
        (Account, _accounts(org.accounts)),
        (Person, _people(org.people)),
        (Opportunity, _opportunities(org.opportunities)),
        (Activity, _activities(org.activities)),
    ]
    for model, frame in tables:
        progress(f"mirror: {frame.height:,} {model.__tablename__} rows")
        rows = frame.with_columns(
            crm_modified_at=pl.lit(now), synced_at=pl.lit(now), is_deleted=pl.lit(False)
        )
        with store.session() as session:
            store.upsert(session, model, rows.iter_rows(named=True))
    progress("linking people")
    with store.session() as session:
        link_people(session, CONFIG.matching)


def _ids(column: str, prefix: str) -> pl.Expr:
    return (pl.lit(prefix) + pl.col(column).cast(pl.String)).alias(column)


def _accounts(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        _ids("account_id", "a").alias("id"),
        "name", "website", "domain", "country", "region", "industry", "employees", "revenue",
        _ids("parent_id", "a"), "is_customer", "is_competitor", "created_at",
    )  # fmt: skip


def _people(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        _ids("person_id", "p").alias("id"),
        "kind", "email", "company", "country", "phone",
        pl.when(pl.col("kind") == "contact").then(_ids("account_id", "a")).alias("account_id"),
        "is_converted", _ids("converted_account_id", "a"),
    )  # fmt: skip


def _opportunities(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        _ids("opportunity_id", "o").alias("id"),
        _ids("account_id", "a"), "opened_at", pl.col("close_at").dt.date().alias("close_date"),
        "is_closed", "is_won",
    )  # fmt: skip


def _activities(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        _ids("activity_id", "t").alias("id"),
        pl.col("type").cast(pl.String), pl.col("topic").cast(pl.String), "occurred_at",
        _ids("person_id", "p"), _ids("account_id", "a"),
    )  # fmt: skip


def add_activities(store: Store, org: Org, count: int, now: datetime, seed: int = 3) -> None:
    """``count`` new activities in the interval before ``now``, each like a random existing one
    (same person, account, type and topic), stored as the mirror stores new rows."""
    rng = np.random.default_rng(seed)
    like = _activities(org.activities).sample(count, seed=seed)
    offsets = np.sort(rng.uniform(0, INTERVAL.total_seconds(), count))
    start = now - INTERVAL
    rows = like.with_columns(
        id=pl.lit("new") + pl.int_range(count).cast(pl.String),
        occurred_at=pl.Series([start + timedelta(seconds=float(s)) for s in offsets]),
        crm_modified_at=pl.lit(now),
        synced_at=pl.lit(now),
        is_deleted=pl.lit(False),
    )
    with store.session() as session:
        store.upsert(session, Activity, rows.iter_rows(named=True))


def score_stage_figures(
    store: Store, org: Org, setup: ScoringSetup, new: int, start: datetime
) -> dict[str, Any]:
    """Seconds of the score stage: the first (full build), a cycle with ``new`` activities, a
    full rescore at that moment, a nightly rescore; and the accounts each rescored."""
    figures: dict[str, Any] = {}

    def stage(name: str, now: datetime, **options: Any) -> None:
        progress(name)
        cpu = time.process_time()
        with store.session() as session, timed() as seconds:
            cycle = score_cycle(session, setup, now, **options)
            settle(session, cycle.book.account_ids)
        figures[f"{name}_seconds"] = round(seconds[0], 3)
        figures[f"{name}_cpu_seconds"] = round(time.process_time() - cpu, 3)
        figures[f"{name}_rescored"] = len(cycle.book.account_ids)

    stage("first_score", start)
    later = start + INTERVAL
    add_activities(store, org, new, later)
    stage("incremental_score", later)
    progress("full rescore (baseline)")
    with store.session() as session, timed() as seconds:
        score_book(session, setup, later)
    figures["full_rescore_seconds"] = round(seconds[0], 3)
    figures["speedup"] = round(
        figures["full_rescore_seconds"] / max(figures["incremental_score_seconds"], 1e-9), 1
    )
    stage("nightly_score", later + timedelta(days=1))
    return figures


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--new", type=int, default=1_000, help="new activities in the cycle")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", help="state database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    progress(f"generating an org of {args.accounts:,} accounts")
    org = generate_org(args.accounts, args.seed)
    with tempfile.TemporaryDirectory() as folder:
        url = args.database or f"sqlite:///{Path(folder) / 'state.db'}"
        with Store.open(url) as store:
            fill_mirror(store, org)
            figures = score_stage_figures(store, org, CONFIG.scoring, args.new, org.manifest.end_at)
    emit(
        {
            "accounts": args.accounts,
            "activities": org.activities.height,
            "new_activities": args.new,
            "database": "postgresql" if url.startswith("postgresql") else "sqlite",
            **figures,
            "peak_rss_mb": peak_rss_mb(),
        }
    )


if __name__ == "__main__":
    main()
