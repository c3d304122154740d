"""Benchmark: the mirror's store side, a first load and an incremental cycle, on two databases.

    python -m bench.mirror [--rows N] [--changes N] [--database sqlite|postgresql|URL ...]

For each database, an org generated to hold about ``--rows`` records is served by the Salesforce
sandbox from a process of its own, as `bench.pipeline` serves it (`bench.pipeline.served`: real
loopback HTTP, pacing on a simulated clock), and pulled once, whole, by the real connector. Then:

- **First load.** The records pulled are replayed, checkpoints and all, into empty tables through
  `sync.mirror.mirror_streams`; only the store side is timed (the replay costs nothing), the
  secondary indexes built after the load included: ``mirror_first_load_rows_per_s``, the median
  of three loads into empty databases (each load's rate in ``first_loads_rows_per_s``). The same-run
  baseline is the path the mirror took before, `Store.upsert` of a dict per row (SQLAlchemy
  Core), on a quarter of the same records into another empty database:
  ``first_load_vs_orm_upsert`` is the ratio.
- **Incremental.** ``--changes`` new tasks, and a tenth as many account and lead edits, are made
  through simple-salesforce (sObject Collections, 200 a call); then every stream is mirrored from
  its saved cursor by the real connector over HTTP. The time spent inside the connector's pull
  (requests, the sandbox answering in its process, conversion) is the pull's own time and the rest
  of the stage, measured in the same run, is the mirror's (upserts, re-read checks, cursor
  commits); the pull's HTTP seconds are reported apart (``http_seconds``):
  ``mirror_incremental_overhead`` = store seconds / pull seconds (goal <= 0.25), the median of
  four such cycles after a first (the steady state, with the overlap window's re-reads; every
  cycle is reported: one alone, a tenth of a second on a shared machine, is too noisy). On
  PostgreSQL the mirror's statements run in a writer thread while the next stream is pulled, so
  the store seconds are the time the stage takes beyond its pull (what a run waits for), not all
  the store's work: the CPU seconds of the process's other threads meanwhile are reported apart
  (``writer_cpu_seconds``: that writer, and polars formatting a large column; SQLite stores in the
  pull's thread). The pull's own time may include up to that much waiting for the interpreter lock
  they held, so ``overhead_bound`` charges all of it to the mirror: (store + writer CPU) / (pull -
  writer CPU), an upper bound.

PostgreSQL runs in a throwaway schema of the given database (default: database ``test`` on
127.0.0.1), dropped after. `measure_mirror` is the importable entry point (`bench.pipeline`).
The machine's load average is reported with the figures: the times are wall-clock (the first load
also per second of this process's CPU time, all its threads, which a busy machine distorts less;
PostgreSQL's own server processes are not in it).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
from psycopg import sql
from simple_salesforce import Salesforce
from sqlalchemy.engine import make_url

from bench.common import emit, progress
from bench.pipeline import HttpWait, Served, SimulatedClock, served
from bench.pipeline import connector as pipeline_connector
from connectors.protocol import (
    FULL_LOAD,
    Connector,
    Cursor,
    Item,
    Record,
    records,
)
from connectors.streams import WRITTEN_BACK, Stream
from sandbox.generator import generate_org
from sandbox.org import Org, save_org
from sandbox.salesforce import SalesforceOptions, client_session
from sync.mirror import ENTITY_TABLES, mirror_streams
from sync.store import Store, plain_value

__all__ = ["DEFAULT_CHANGES", "DEFAULT_ROWS", "main", "measure_mirror"]

DEFAULT_ROWS = 200_000
DEFAULT_CHANGES = 1_000
SEED = 7
PG_ROLES = ("postgres", "root")  # the first that can connect serves the "postgresql" shorthand
_PILOT_ACCOUNTS = 100  # a small org sized first, to learn the records an account brings
_BASELINE_SHARE = 4  # the ORM-era baseline stores every 4th record
_BATCH = 200  # records per sObject Collections call
# incremental cycles after the first load; those after the first are the steady state, and
# the median of their overheads is reported (the first also absorbs the load's own aftermath,
# such as SQLite checkpointing its write-ahead log; one cycle's tenth of a second, measured on a
# shared machine, can be off by half)
_CYCLES = 5
_LOADS = 3  # first loads of the same records; the median is reported (`_first_loads`)


def measure_mirror(
    dialect_url: str, *, rows: int = DEFAULT_ROWS, changes: int = DEFAULT_CHANGES
) -> dict[str, Any]:
    """The mirror's first-load speed and incremental overhead on one database.

    ``dialect_url`` is ``"sqlite"`` (a temporary file), ``"postgresql"`` (database ``test`` on
    127.0.0.1), or a database URL: a SQLite file that does not exist yet, or a PostgreSQL
    database in which a throwaway schema is made and dropped after. ``rows`` sizes the org (about
    that many records), ``changes`` the new tasks of the incremental cycle. Returns
    ``mirror_first_load_rows_per_s``, ``mirror_incremental_overhead`` and their details.
    """
    org = _org_of(rows)
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        save_org(org, folder / "org")
        crm = stack.enter_context(served("salesforce", folder / "org"))
        wait = HttpWait()
        connector = pipeline_connector(crm, SimulatedClock(), wait)
        progress(f"pulling an org of {org.counts()['accounts']:,} accounts once")
        pulls = {stream: list(connector.pull(stream)) for stream in connector.streams}
        url = stack.enter_context(_database(dialect_url))
        baseline_url = stack.enter_context(_database(dialect_url))
        store = stack.enter_context(Store.open(url))
        now = org.manifest.end_at
        first = _first_loads(store, dialect_url, connector.streams, pulls, now)
        first["orm_upsert_rows_per_s"] = _orm_upsert_rate(baseline_url, connector, pulls, now)
        first["first_load_vs_orm_upsert"] = round(
            first["mirror_first_load_rows_per_s"] / first["orm_upsert_rows_per_s"], 2
        )
        del pulls
        cycles = [_incremental(store, connector, crm, wait, changes, now) for _ in range(_CYCLES)]
    steady = [cycle["store_seconds"] / cycle["pull_seconds"] for cycle in cycles[1:]]
    return {
        "database": make_url(url).get_backend_name(),
        **first,
        "incremental": cycles,
        "mirror_incremental_overhead": round(statistics.median(steady), 3),
        "overhead_bound": round(statistics.median(c["overhead_bound"] for c in cycles[1:]), 3),
    }


def _org_of(rows: int) -> Org:
    """A generated org of about ``rows`` records, as the Salesforce streams deliver them."""
    pilot = generate_org(_PILOT_ACCOUNTS, SEED).counts()
    per_account = sum(n for name, n in pilot.items() if name != "dispositions") / _PILOT_ACCOUNTS
    accounts = max(_PILOT_ACCOUNTS, math.ceil(rows / per_account))
    progress(f"generating an org of {accounts:,} accounts (about {rows:,} records)")
    return generate_org(accounts, SEED)


@contextmanager
def _database(dialect_url: str) -> Iterator[str]:
    """The URL of an empty database for ``dialect_url`` (see `measure_mirror`), gone after."""
    if dialect_url == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/state.db"
        return
    url = make_url(_pg_shorthand() if dialect_url == "postgresql" else dialect_url)
    if url.get_backend_name() == "sqlite":
        yield dialect_url
        return
    schema = f"bench_mirror_{uuid4().hex[:12]}"
    conninfo = {
        "host": url.host,
        "port": url.port,
        "dbname": url.database,
        "user": url.username,
        "password": url.password,
    }
    with psycopg.connect(autocommit=True, **{k: v for k, v in conninfo.items() if v}) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            options = {"options": f"-csearch_path={schema}"}
            yield url.update_query_dict(options).render_as_string(hide_password=False)
        finally:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def _pg_shorthand() -> str:
    """Database ``test`` on 127.0.0.1 as the first role that can connect."""
    for role in PG_ROLES:
        try:
            with psycopg.connect(host="127.0.0.1", dbname="test", user=role, connect_timeout=3):
                return f"postgresql://{role}@127.0.0.1:5432/test"
        except psycopg.OperationalError:
            continue
    raise SystemExit("PostgreSQL is not reachable at 127.0.0.1:5432 (database test)")


class _Replay:
    """A connector that delivers recorded pulls again, at no cost."""

    crm = "salesforce"

    def __init__(self, streams: Mapping[str, Stream], pulls: Mapping[str, Sequence[Item]]):
        self.streams = streams
        self._pulls = pulls

    def pull(self, stream: str, cursor: Cursor = FULL_LOAD) -> Iterator[Item]:
        yield from self._pulls[stream]


def _first_loads(
    store: Store,
    dialect_url: str,
    streams: Mapping[str, Stream],
    pulls: Mapping[str, Sequence[Item]],
    now: datetime,
) -> dict[str, Any]:
    """`_LOADS` first loads of the same records, the first into ``store`` (which the
    incremental cycles go on from), the others into empty databases of their own: the median
    load's figures, and every load's rate (one load of a fifth of a second, on a shared
    machine, passes or misses the goal by chance)."""
    loads = [_first_load(store, streams, pulls, now)]
    sqlite = make_url(store.url).get_backend_name() == "sqlite"
    for _ in range(_LOADS - 1):  # a SQLite file named by URL is the first load's: a temporary one
        with _database("sqlite" if sqlite else dialect_url) as url, Store.open(url) as other:
            loads.append(_first_load(other, streams, pulls, now))
    rates = [load["mirror_first_load_rows_per_s"] for load in loads]
    median = sorted(loads, key=lambda load: load["mirror_first_load_rows_per_s"])[len(loads) // 2]
    return {**median, "first_loads_rows_per_s": rates}


def _first_load(
    store: Store, streams: Mapping[str, Stream], pulls: Mapping[str, Sequence[Item]], now: datetime
) -> dict[str, Any]:
    """The records pulled, stored into empty tables; timed on the store side alone."""
    replay = _Replay(streams, pulls)
    progress(f"first load into {store.url.split(':')[0]}")
    start, cpu = time.perf_counter(), time.process_time()
    mirrored = list(mirror_streams(store, replay, now))  # type: ignore[arg-type]
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    stored = sum(p.stored for p in mirrored)
    assert all(p.first_load for p in mirrored), "a first load went the upsert way"
    return {
        "rows": stored,
        "first_load_seconds": round(seconds, 2),
        "mirror_first_load_rows_per_s": round(stored / seconds),
        # against this process's CPU time, which other processes on the machine do not slow
        # down as much: SQLite's whole work, PostgreSQL's client side only
        "first_load_rows_per_cpu_s": round(stored / cpu),
    }


def _orm_upsert_rate(
    url: str, connector: Connector, pulls: Mapping[str, Sequence[Item]], now: datetime
) -> int:
    """Rows per second of the path the mirror took before: a dict per row through
    `Store.upsert`, a transaction per checkpoint, on every `_BASELINE_SHARE`th record."""
    count, seconds = 0, 0.0
    with Store.open(url) as store:
        progress("baseline: the ORM-era upsert of dict rows")
        for name, items in pulls.items():
            model = ENTITY_TABLES[connector.streams[name].entity]
            columns = set(model.__table__.c.keys())  # type: ignore[attr-defined]
            pulled = records(items)
            sample = [_dict_row(r, columns, now) for r in islice(pulled, 0, None, _BASELINE_SHARE)]
            start = time.perf_counter()
            for page in _pages(sample, 10_000):
                with store.session() as session:
                    store.upsert(session, model, page)
            seconds += time.perf_counter() - start
            count += len(sample)
    return round(count / seconds)


def _dict_row(record: Record, columns: set[str], now: datetime) -> dict[str, Any]:
    """A record as the mirror's dict row before plain tuples."""
    owned = WRITTEN_BACK if "crm_owned" in columns else ()
    row = {k: v for k, v in record.values.items() if k in columns and k not in owned}
    if owned:
        row["crm_owned"] = {
            k: plain_value(v) for k in owned if (v := record.values.get(k)) is not None
        }
    row.update(
        id=record.id,
        crm_modified_at=record.modified_at,
        synced_at=now,
        is_deleted=False,
        merged_into=None,
    )
    return row


def _pages(rows: Sequence[dict[str, Any]], size: int) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


class _Timed:
    """A connector whose pulls are timed: the seconds spent producing items."""

    def __init__(self, connector: Connector) -> None:
        self.crm = connector.crm
        self.streams = connector.streams
        self._connector = connector
        self.seconds = 0.0

    def pull(self, stream: str, cursor: Cursor = FULL_LOAD) -> Iterator[Item]:
        items = self._connector.pull(stream, cursor)
        while True:
            start = time.perf_counter()
            item = next(items, None)
            self.seconds += time.perf_counter() - start
            if item is None:
                return
            yield item


def _incremental(
    store: Store, connector: Connector, crm: Served, wait: HttpWait, changes: int, now: datetime
) -> dict[str, Any]:
    """``changes`` new tasks and some edits, then every stream mirrored from its cursor:
    the pull's own time against the mirror's."""
    made = _make_changes(store, crm, changes)
    timed = _Timed(connector)
    progress(f"incremental cycle after {made:,} changes")
    http = wait.seconds
    start, cpu, own = time.perf_counter(), time.process_time(), time.thread_time()
    mirrored = list(mirror_streams(store, timed, now))  # type: ignore[arg-type]
    total = time.perf_counter() - start
    # CPU of the process's other threads meanwhile: the mirror's writer, polars' own (the
    # sandbox and the database answer from processes of their own)
    writer = max(0.0, (time.process_time() - cpu) - (time.thread_time() - own))
    pull, added = timed.seconds, total - timed.seconds
    return {
        "changes": made,
        "records_pulled": sum(p.summary.records for p in mirrored if p.summary),
        "stored": sum(p.stored for p in mirrored),
        "reread_skipped": sum(p.reread_skipped for p in mirrored),
        "pull_seconds": round(pull, 4),
        "http_seconds": round(wait.seconds - http, 4),
        "store_seconds": round(added, 4),
        "writer_cpu_seconds": round(writer, 4),
        "overhead_bound": round((added + writer) / max(pull - writer, 1e-9), 3),
    }


def _make_changes(store: Store, crm: Served, changes: int) -> int:
    """New tasks on leads, and a tenth as many account and lead edits, through the CRM's own
    client in batches; the number of changes made."""
    client = Salesforce(
        instance_url=SalesforceOptions().instance_url,
        session_id=crm.token,
        session=client_session(crm.url),
    )
    with store.engine.connect() as connection:
        people = "SELECT id FROM person WHERE kind = 'lead' LIMIT 5000"
        leads = [r[0] for r in connection.exec_driver_sql(people)]
        firms = [r[0] for r in connection.exec_driver_sql("SELECT id FROM account LIMIT 5000")]
    edits = max(1, changes // 10)
    tasks = [
        {"attributes": {"type": "Task"}, "Subject": "Visited pricing page", "Type": "Web Visit"}
        | {"TaskSubtype": "Task", "WhoId": leads[n % len(leads)]}
        for n in range(changes)
    ]
    phones = [{"attributes": {"type": "Account"}, "Id": i, "Phone": "+49 30 1"} for i in firms]
    titles = [{"attributes": {"type": "Lead"}, "Id": i, "Title": "CFO"} for i in leads]
    made = _send(client, "POST", tasks)
    made += _send(client, "PATCH", phones[:edits]) + _send(client, "PATCH", titles[:edits])
    return made


def _send(client: Salesforce, method: str, records: Sequence[dict[str, Any]]) -> int:
    """Records created (POST) or updated (PATCH) through sObject Collections; how many took."""
    done = 0
    for start in range(0, len(records), _BATCH):
        batch = list(records[start : start + _BATCH])
        results = client.restful(
            "composite/sobjects", method=method, json={"allOrNone": False, "records": batch}
        )
        done += sum(1 for result in results if result["success"])
    return done


def main() -> None:
    """Measure every database asked for and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="records of the org")
    parser.add_argument("--changes", type=int, default=DEFAULT_CHANGES, help="new tasks")
    parser.add_argument(
        "--database",
        action="append",
        help="sqlite, postgresql or a database URL (repeatable; default: sqlite and postgresql)",
    )
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    results = {
        db: measure_mirror(db, rows=args.rows, changes=args.changes)
        for db in args.database or ["sqlite", "postgresql"]
    }
    emit(
        {
            "mirror_first_load_rows_per_s": {
                db: r["mirror_first_load_rows_per_s"] for db, r in results.items()
            },
            "mirror_incremental_overhead": {
                db: r["mirror_incremental_overhead"] for db, r in results.items()
            },
            "overhead_bound": {db: r["overhead_bound"] for db, r in results.items()},
            "goals": {"first_load_rows_per_s": 150_000, "incremental_overhead": 0.25},
            "load_average": {"before": load_before, "after": os.getloadavg()[0]},
            "cores": os.cpu_count(),
            "by_database": results,
        }
    )


if __name__ == "__main__":
    main()
