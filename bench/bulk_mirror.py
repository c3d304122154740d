"""Benchmark: a Salesforce first load through the mirror, Bulk pages read row by row or as columns.

    python -m bench.bulk_mirror [--accounts N] [--database sqlite|postgresql|URL]

An org generated at ``--accounts`` (the ``realistic`` world; 20,000 by default, about 1.2M
records) is served by the sandbox from a process of its own, as `bench.pipeline` serves it
(loopback HTTP, pacing on a simulated clock). The real connector pulls every stream whole
through the mirror stage (`sync.mirror.mirror_streams`) into an empty state database, twice in
the same run: reading each Bulk API result page a `Record` a row (``batches=False``), then as
columns, one `RecordBatch` a page; then the same pulls alone, their items dropped (the
connector's own share). Each is measured in wall seconds, in local seconds (less the
connector's HTTP exchanges, the sandbox's serving included) and in this process's CPU seconds
(the connector, the mirror and SQLite; polars' threads count, PostgreSQL's server does not):
records per second of each, and the batch path's speed-up.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import deque
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.common import add_world_options, emit, peak_rss_mb, progress, world_of
from bench.mirror import _database
from bench.pipeline import HttpWait, Served, SimulatedClock, connector, served
from connectors.countries import country_code
from connectors.protocol import Summary
from sandbox.generator import generate_org
from sandbox.org import save_org
from sync.mirror import mirror_streams
from sync.store import Store

PATHS = {"rows": False, "batches": True}  # how Bulk pages are read -> the connector's `batches`


def measure_pull(crm: Served, batches: bool) -> dict[str, Any]:
    """Every stream pulled whole and dropped: the connector's own share of the stage."""
    wait = HttpWait()
    pull = connector(crm, SimulatedClock(), wait, batches=batches)
    start, cpu = time.perf_counter(), time.process_time()
    summaries = [deque(pull.pull(stream), maxlen=1)[0] for stream in pull.streams]  # the last
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    records = sum(s.records for s in summaries if isinstance(s, Summary))
    return {
        "records": records,
        "seconds": round(seconds, 2),
        "local_seconds": round(seconds - wait.seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "records_per_cpu_s": round(records / cpu),
    }


def measure(crm: Served, database: str, batches: bool, now: Any) -> dict[str, Any]:
    """Every stream mirrored whole into an empty database; figures of the stage."""
    wait = HttpWait()
    pull = connector(crm, SimulatedClock(), wait, batches=batches)
    with _database(database) as url, Store.open(url) as store:
        start, cpu = time.perf_counter(), time.process_time()
        pulled = list(mirror_streams(store, pull, now))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    records = sum(p.summary.records for p in pulled if p.summary)
    local = seconds - wait.seconds
    return {
        "records": records,
        "stored": sum(p.stored for p in pulled),
        "seconds": round(seconds, 2),
        "http_seconds": round(wait.seconds, 2),
        "local_seconds": round(local, 2),
        "cpu_seconds": round(cpu, 2),
        "records_per_s": round(records / seconds),
        "records_per_local_s": round(records / local),
        "records_per_cpu_s": round(records / cpu),
        "by_stream": {p.stream: p.stored for p in pulled},
    }


def main() -> None:
    """Measure both paths on one org and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", default="sqlite", help="sqlite, postgresql or a URL")
    add_world_options(parser)
    args = parser.parse_args()
    progress(f"generating {args.accounts:,} accounts")
    org = generate_org(args.accounts, args.seed, world=world_of(parser, args))
    country_code("DE")  # the country index is built once per process, outside either timing
    load_before = os.getloadavg()[0]
    figures: dict[str, dict[str, Any]] = {}
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        save_org(org, folder / "org")
        crm = stack.enter_context(served("salesforce", folder / "org"))
        for name, batches in PATHS.items():
            progress(f"first load, Bulk pages read as {name}, into {args.database}")
            figures[name] = measure(crm, args.database, batches, org.manifest.end_at)
            progress(f"{name}: {figures[name]}")
        for name, batches in PATHS.items():
            progress(f"the pull alone, Bulk pages read as {name}")
            figures[name]["pull_only"] = measure_pull(crm, batches)
            progress(f"{name}, the pull alone: {figures[name]['pull_only']}")
    rows, columns = figures["rows"], figures["batches"]
    emit(
        {
            "accounts": args.accounts,
            "database": args.database,
            "records": columns["records"],
            "records_per_cpu_s": {name: f["records_per_cpu_s"] for name, f in figures.items()},
            "records_per_s": {name: f["records_per_s"] for name, f in figures.items()},
            "speedup_cpu": round(columns["records_per_cpu_s"] / rows["records_per_cpu_s"], 2),
            "speedup_wall": round(columns["records_per_s"] / rows["records_per_s"], 2),
            "pull_only_records_per_cpu_s": {
                name: f["pull_only"]["records_per_cpu_s"] for name, f in figures.items()
            },
            "same_rows_stored": rows["by_stream"] == columns["by_stream"],
            "paths": figures,
            "load_average": {"before": load_before, "after": os.getloadavg()[0]},
            "peak_rss_mb": peak_rss_mb(),
        }
    )


if __name__ == "__main__":
    main()
