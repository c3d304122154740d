"""Benchmark: the sandbox CRM's write path, records written per second at a given org size.

    python -m bench.sandbox_writes [--crm salesforce|hubspot] [--accounts N] [--calls K]

A generated org is served by the sandbox in a process of its own (as `bench.pipeline` serves
it); set-up creates Handoff's fields through the real connector, then unmodified clients write
Handoff's values to people picked at random across the table, as a first run's write-back does:
Salesforce through sObject Collections (simple-salesforce, 200 leads a call), HubSpot through
the batch update (100 contacts a call). Figures: records written per second over the calls
after the first (which may build what later calls reuse; its seconds are given apart), per-call
milliseconds, and a read after the writes that must see every one of them (a SOQL count on
Salesforce, batch reads on HubSpot) with its seconds.
Prints progress on stderr and one JSON object last.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import requests
from simple_salesforce import Salesforce

from bench.common import add_world_options, emit, progress, world_of
from bench.pipeline import HttpWait, Served, SimulatedClock, connector, generated_and_served
from bench.sync_run import SPEC
from sandbox.hubspot.ids import ID_BASES, archived_people, merged_people
from sandbox.org import Org
from sandbox.salesforce import SalesforceOptions, client_session
from sandbox.salesforce.ids import make_ids

_BATCH = {"salesforce": 200, "hubspot": 100}  # records per call (Collections, batch update)
_MARK = "AE"  # the tier every written record gets, so a read can count them
_Batch = Sequence[tuple[str, dict[str, Any]]]  # (id, values) of each record of a call
_Write = Callable[[_Batch], int]
_Count = Callable[[], int]


def _people(org: Org, crm: str, count: int, seed: int) -> list[str]:
    """``count`` CRM ids of people Handoff writes, at random: Salesforce's unconverted leads,
    HubSpot's live contacts (neither merged away nor archived)."""
    if crm == "salesforce":
        leads = org.people.filter((pl.col("kind") == "lead") & ~pl.col("is_converted"))
        numbers = leads["person_id"].to_numpy()
    else:
        survivors = merged_people(org.people).filter(pl.col("person_id") == pl.col("survivor_id"))
        archived = archived_people(org.people, org.activities).implode()
        numbers = survivors.filter(~pl.col("person_id").is_in(archived))["person_id"].to_numpy()
    picked = np.random.default_rng(seed).choice(numbers, min(count, len(numbers)), replace=False)
    if crm == "hubspot":
        return [str(ID_BASES["contacts"] + int(n)) for n in picked]
    return make_ids("Lead", picked).to_list()


def _accounts(org: Org, crm: str) -> list[str]:
    """CRM ids of the org's accounts (the lookup a lead is matched to)."""
    numbers = org.accounts["account_id"].to_numpy()
    if crm == "hubspot":
        return [str(ID_BASES["companies"] + int(n)) for n in numbers]
    return make_ids("Account", numbers).to_list()


def _values(crm: str, number: int, account: str, now: datetime) -> dict[str, Any]:
    """Handoff's values for one person, under the CRM's field names (HubSpot takes text)."""
    values = {
        "Score": number % 100,
        "Tier": _MARK,
        "Signals": f"Intent burst since 28 Nov (+{number % 30})\nPricing page visits (+12)",
        "Topic": "pricing",
        "Model_Version": "rules-1",
        "Scored_At": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "Matched_Account": account,
    }
    if crm == "hubspot":
        return {f"handoff_{name.lower()}": str(value) for name, value in values.items()}
    return {f"Handoff_{name}__c": value for name, value in values.items()}


def _salesforce_writer(sandbox: Served) -> tuple[_Write, _Count]:
    """A Collections update of a batch (records saved), and a count of the marked leads."""
    sf = Salesforce(
        instance_url=SalesforceOptions().instance_url,
        session_id=sandbox.token,
        session=client_session(sandbox.url),
    )

    def write(batch: _Batch) -> int:
        records = [{"attributes": {"type": "Lead"}, "Id": i, **values} for i, values in batch]
        body = {"allOrNone": False, "records": records}
        answer = sf.restful("composite/sobjects", method="PATCH", json=body)
        return sum(1 for result in answer if result["success"])

    def marked() -> int:
        soql = f"SELECT COUNT() FROM Lead WHERE Handoff_Tier__c = '{_MARK}'"
        return int(sf.query(soql)["totalSize"])

    return write, marked


def _hubspot_writer(sandbox: Served, ids: Sequence[str]) -> tuple[_Write, _Count]:
    """A batch update of contacts (records saved), and how many written ones read back marked.
    Plain HTTP with the body hubspot-api-client sends: the client's own model classes take
    longer than the sandbox does to answer, and this benchmark measures the sandbox."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {sandbox.token}"
    base = f"{sandbox.url}/crm/v3/objects/contacts/batch"

    def call(action: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        answer = session.post(f"{base}/{action}", json=body, timeout=600)
        answer.raise_for_status()
        results: list[dict[str, Any]] = answer.json()["results"]
        return results

    def write(batch: _Batch) -> int:
        return len(call("update", {"inputs": [{"id": i, "properties": v} for i, v in batch]}))

    def marked() -> int:
        count = 0
        for start in range(0, len(ids), 100):
            inputs = [{"id": i} for i in ids[start : start + 100]]
            results = call("read", {"inputs": inputs, "properties": ["handoff_tier"]})
            count += sum(1 for r in results if r["properties"].get("handoff_tier") == _MARK)
        return count

    return write, marked


def _measure(sandbox: Served, org: Org, calls: int, seed: int) -> dict[str, Any]:
    """Write ``calls`` batches and read them back; the figures."""
    crm, size = sandbox.crm, _BATCH[sandbox.crm]
    ids = _people(org, crm, calls * size, seed)
    accounts = _accounts(org, crm)
    now = datetime.now(UTC)
    rows = [(i, _values(crm, n, accounts[n % len(accounts)], now)) for n, i in enumerate(ids)]
    if crm == "salesforce":
        write, marked = _salesforce_writer(sandbox)
    else:
        write, marked = _hubspot_writer(sandbox, ids)
    seconds, saved = [], 0
    for start in range(0, len(rows), size):
        began = time.perf_counter()
        saved += write(rows[start : start + size])
        seconds.append(time.perf_counter() - began)
        if len(seconds) % 50 == 0:
            progress(f"{len(seconds)} calls, {sum(seconds[1:]) / (len(seconds) - 1):.3f} s a call")
    began = time.perf_counter()
    seen = marked()
    read_seconds = time.perf_counter() - began
    steady = seconds[1:] or seconds
    return {
        "records": len(rows),
        "saved": saved,
        "calls": len(seconds),
        "records_per_call": size,
        "first_call_seconds": round(seconds[0], 3),
        "call_ms_median": round(1000 * statistics.median(steady), 1),
        "call_ms_p95": round(1000 * float(np.percentile(steady, 95)), 1),
        "records_per_second": round(size * len(steady) / sum(steady)),
        "read_after_writes_seconds": round(read_seconds, 2),
        "read_after_writes_sees": seen,
    }


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crm", choices=("salesforce", "hubspot"), default="salesforce")
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=200, help="write calls to time")
    parser.add_argument("--seed", type=int, default=7)
    add_world_options(parser)
    args = parser.parse_args()
    world = world_of(parser, args)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        served_org = generated_and_served(args.crm, args.accounts, args.seed, world, Path(folder))
        with served_org as (saved, sandbox):
            org = saved.whole()
            progress("creating Handoff's fields")
            connector(sandbox, SimulatedClock(), HttpWait()).ensure_schema(SPEC)
            figures = _measure(sandbox, org, args.calls, args.seed)
    emit(
        {
            "crm": args.crm,
            "accounts": args.accounts,
            "people": org.people.height,
            **figures,
            "sandbox_peak_rss_mb": sandbox.peak_rss_mb[0] if sandbox.peak_rss_mb else None,
            "bench_seconds": round(time.perf_counter() - began, 1),
        }
    )


if __name__ == "__main__":
    main()
