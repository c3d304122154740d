"""Benchmark: one connector against a sandbox org, counted in API calls, then under a 429 storm.

    python -m bench.connectors --crm salesforce [--accounts 20000] [--faults storm.toml]
    python -m bench.connectors --crm hubspot --tier professional  # no events API: history

Phases, each on the sandbox's own request log:

1. a full pull of every stream: ``read_calls`` against ``read_floor``, the sum over streams of
   ceil(records / page size) with the query APIs' page sizes (Salesforce REST query 2,000;
   HubSpot list and events 100, owners 500, email events 1,000). Salesforce reads large loads
   through Bulk API 2.0 (50,000 rows a page after the first REST page), so it is also held to
   ``read_floor_per_api``, the same sum with the page size of the API each stream was read
   with; ``records_per_s`` is records over that wall time;
2. two incremental sync cycles, each after 15 simulated minutes of the org's own activity
   (`bench.incremental`): ``overlap_extra_reads_share``, the read calls the 5-minute overlap
   window adds (the same pulls from the same cursors by a connector without a window are the
   baseline) over the cycle's read calls, in the steady-state second cycle (``_first``: the
   cycle right after the full pull); ``overlap_reread_records_share``, the records the window
   delivers again over all records delivered; ``incremental_calls`` and ``archive_list_calls``
   per cycle;
3. set-up, twice (the second must change nothing);
4. a write of every account's scores: ``write_calls`` against ``write_floor`` (ceil(updates /
   200) Salesforce, ceil(updates / 100) HubSpot), then the same values again:
   ``rerun_write_calls`` (the connector alone writes them again; the sync's ledger is what
   skips unchanged values), and a write below the bulk threshold (``collection_write_*``);
5. a pull of the accounts under a 429 storm (``--faults``, else 429 x5 with Retry-After 1 s on
   the read endpoint): ``retries``, and ``calls_inside_retry_after`` (must be 0).

The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import SecretStr

from bench.common import add_world_options, emit, peak_rss_mb, progress, timed, world_of
from bench.incremental import RATE_DAYS, Pulled, SimClock, calls_of, cycle
from connectors.budget import Budget
from connectors.config import HubSpotSettings, SalesforceSettings
from connectors.http import Exchange, HttpPolicy
from connectors.hubspot import LIST_PAGE, HubSpotConnector
from connectors.protocol import Connector, Record, SchemaSpec, Update, records
from connectors.salesforce import BULK_PAGE_SIZE, PAGE_SIZE, SalesforceConnector
from sandbox.faults import FaultPlan, FaultRule, load_faults
from sandbox.generator import generate_org
from sandbox.org import Org
from sandbox.salesforce import SalesforceOptions, client_session
from sandbox.service import RunningSandbox, start_sandbox

SPEC = SchemaSpec(
    ("Nurture", "SDR", "AE", "Disqualified"),
    ("Wrong Persona", "Existing Customer", "No Budget", "Bad Timing", "Competitor", "Other"),
)
ACCOUNT_STREAM = {"salesforce": "Account", "hubspot": "companies"}
PEOPLE_STREAM = {"salesforce": "Lead", "hubspot": "contacts"}
READ_ENDPOINT = {"salesforce": "query", "hubspot": "companies"}
WRITE_BATCH = {"salesforce": 200, "hubspot": 100}
COLLECTION_UPDATES = 1_000  # below the Salesforce bulk write threshold
HUBSPOT_PAGES = {"owners": 500, "events": 100, "email_events": 1000}
STORM = FaultRule("status", status=429, retry_after=1, count=5)


def _connector(
    crm: str, sandbox: RunningSandbox, policy: HttpPolicy, overlap_minutes: int = 5
) -> Connector:
    """The connector for ``crm``, logged in to the sandbox, with its overlap window."""
    if crm == "salesforce":
        options = SalesforceOptions()
        settings = SalesforceSettings(
            auth="client_credentials",
            instance_url=options.instance_url,
            client_id=options.consumer_key,
            client_secret=SecretStr(options.consumer_secret),
            overlap_minutes=overlap_minutes,
        )
        return SalesforceConnector(
            settings, session=client_session(sandbox.base_url), policy=policy
        )
    settings_hs = HubSpotSettings(token=SecretStr(sandbox.token), overlap_minutes=overlap_minutes)
    return HubSpotConnector(settings_hs, host=sandbox.base_url, policy=policy)


@contextmanager
def _serving(
    crm: str,
    org: Org,
    faults: FaultPlan | None = None,
    clock: SimClock | None = None,
    tier: str = "unlimited",
) -> Iterator[RunningSandbox]:
    options: dict[str, Any] = {"tier": tier} if crm == "hubspot" else {}
    if clock is not None:
        options["clock"] = clock
    with start_sandbox(crm, org, faults=faults, **options) as sandbox:
        yield sandbox


def _page_floor(crm: str, stream: str, records: int) -> int:
    """ceil(records / page size) of the query API."""
    if crm == "hubspot":
        return math.ceil(records / HUBSPOT_PAGES.get(stream, LIST_PAGE))
    return math.ceil(records / PAGE_SIZE)


def _api_floor(crm: str, stream: str, records: int, bulk_jobs: int) -> int:
    """ceil(records / page size) for the API the stream was read with."""
    if bulk_jobs:
        return 1 + math.ceil(max(records - PAGE_SIZE, 0) / BULK_PAGE_SIZE)
    return _page_floor(crm, stream, records)


def _pull_all(
    crm: str, connector: Connector, sandbox: RunningSandbox, pulled: Pulled
) -> dict[str, Any]:
    """Every stream, full: records, calls and the floor (``pulled`` keeps the cursors)."""
    log = sandbox.server.log
    log.reset()
    counts: dict[str, int] = {}
    floor = api_floor = 0
    with timed() as elapsed:
        for stream in connector.streams:
            jobs = log.count("jobs/query", "POST")
            counts[stream] = pulled.take(stream, connector.pull(stream)).records
            jobs = log.count("jobs/query", "POST") - jobs
            floor += _page_floor(crm, stream, counts[stream])
            api_floor += _api_floor(crm, stream, counts[stream], jobs)
            progress(f"  {stream}: {counts[stream]} records, {log.total()} calls so far")
    total = sum(counts.values())
    return {
        "records": counts,
        "read_calls": log.total(),
        "read_floor": floor,
        "read_floor_per_api": api_floor,
        "records_per_s": round(total / elapsed[0]),
        "pull_seconds": round(elapsed[0], 2),
    }


def _scores(ids: list[str], at: datetime) -> list[Update]:
    """A score for every record, as a sync run would write it."""
    return [
        Update(
            record_id,
            {
                "score": float(n % 101),
                "tier": ("Nurture", "SDR", "AE")[n % 3],
                "signals": "Visited pricing 3x in 7 days (+15)\nIndustry: Fintech (+8)",
                "topic": "security",
                "model_version": "rules-1",
                "scored_at": at,
                "sla_due": at,
            },
        )
        for n, record_id in enumerate(ids)
    ]


def _calls(sandbox: RunningSandbox, work: Callable[[], object]) -> int:
    """API calls ``work`` made."""
    sandbox.server.log.reset()
    work()
    return sandbox.server.log.total()


def _write(crm: str, connector: Connector, sandbox: RunningSandbox) -> dict[str, Any]:
    """Set-up twice, every account scored, the same again, and a batch under the bulk line."""
    setup_calls = _calls(sandbox, lambda: connector.ensure_schema(SPEC))
    rerun = connector.ensure_schema(SPEC)
    accounts = [r.id for r in _records(connector, ACCOUNT_STREAM[crm])]
    people = [r.id for r in _records(connector, PEOPLE_STREAM[crm])][:COLLECTION_UPDATES]
    updates = _scores(accounts, datetime.now(UTC))
    results: list[Any] = []
    write_calls = _calls(
        sandbox, lambda: results.extend(connector.push(ACCOUNT_STREAM[crm], updates))
    )
    rerun_calls = _calls(sandbox, lambda: connector.push(ACCOUNT_STREAM[crm], updates))
    few = _scores(people, datetime.now(UTC))
    collection_calls = _calls(sandbox, lambda: connector.push(PEOPLE_STREAM[crm], few))
    batch = WRITE_BATCH[crm]
    return {
        "setup_calls": setup_calls,
        "setup_rerun_changed": rerun.changed,
        "updates": len(updates),
        "updates_failed": sum(1 for r in results if not r.ok),
        "write_calls": write_calls,
        "write_floor": math.ceil(len(updates) / batch),
        "rerun_write_calls": rerun_calls,
        "collection_write_calls": collection_calls,
        "collection_write_floor": math.ceil(len(few) / batch),
    }


def _records(connector: Connector, stream: str) -> list[Record]:
    return records(connector.pull(stream))


def _storm(crm: str, org: Org, faults: Path | None) -> dict[str, Any]:
    """The accounts pulled under a 429 storm; whether any call went inside a Retry-After."""
    plan = load_faults(faults) if faults else FaultPlan([_storm_rule(crm)])
    exchanges: list[Exchange] = []
    policy = HttpPolicy(budget=Budget(), listener=exchanges.append)
    with _serving(crm, org, plan) as sandbox:
        connector = _connector(crm, sandbox, policy)
        pulled = len(_records(connector, ACCOUNT_STREAM[crm]))
    refused = [e for e in exchanges if e.retry_after]
    inside = sum(
        1
        for e in refused
        for later in exchanges[exchanges.index(e) + 1 :]
        if later.started < e.finished + (e.retry_after or 0)
    )
    return {
        "storm_records": pulled,
        "retries": policy.retries,
        "refused_with_retry_after": len(refused),
        "calls_inside_retry_after": inside,
    }


def _storm_rule(crm: str) -> FaultRule:
    return FaultRule(
        STORM.kind,
        status=STORM.status,
        retry_after=STORM.retry_after,
        endpoint=READ_ENDPOINT[crm],
        count=STORM.count,
    )


def _incremental_figures(cycles: list[dict[str, Any]]) -> dict[str, Any]:
    """The incremental phase's figures: the steady-state share, and each cycle in full."""
    first, steady = cycles
    return {
        "overlap_extra_reads_share": steady["extra_calls_share"],
        "overlap_extra_reads_share_first": first["extra_calls_share"],
        "overlap_reread_records_share": steady["share"],
        "overlap_reread_records_share_first": first["share"],
        "incremental_cycles": cycles,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--crm", choices=sorted(ACCOUNT_STREAM), required=True)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--faults", type=Path, help="a faults file for the storm phase")
    parser.add_argument(
        "--tier", default="unlimited", help="HubSpot portal tier (professional: no events API)"
    )
    add_world_options(parser)
    args = parser.parse_args()
    progress(f"generating {args.accounts} accounts")
    org = generate_org(args.accounts, args.seed, world=world_of(parser, args))
    started = time.perf_counter()
    clock = SimClock(org.manifest.end_at)
    with _serving(args.crm, org, clock=clock, tier=args.tier) as sandbox:
        policy = HttpPolicy(budget=Budget(1.0), wall=clock)
        connector = _connector(args.crm, sandbox, policy)
        progress(f"{args.crm}: full pull of every stream")
        pulled = Pulled(org.manifest.end_at - timedelta(days=RATE_DAYS))
        reads = _pull_all(args.crm, connector, sandbox, pulled)
        progress("incremental cycles")
        rng = np.random.default_rng(args.seed)
        without = _connector(args.crm, sandbox, HttpPolicy(budget=Budget(1.0), wall=clock), 0)
        calls_of(without, pulled.cursors)  # its describes and look-ups, before it is measured
        cycles = [
            cycle(args.crm, connector, without, sandbox, clock, pulled, rng) for _ in range(2)
        ]
        progress("set-up and writes")
        writes = _write(args.crm, connector, sandbox)
        usage = connector.usage()
    progress("429 storm")
    storm = _storm(args.crm, org, args.faults)
    emit(
        {
            "crm": args.crm,
            "accounts": args.accounts,
            "tier": args.tier if args.crm == "hubspot" else None,
            **reads,
            "read_ratio": round(reads["read_calls"] / reads["read_floor"], 3),
            "read_ratio_per_api": round(reads["read_calls"] / reads["read_floor_per_api"], 3),
            **_incremental_figures(cycles),
            **writes,
            "write_ratio": round(writes["write_calls"] / writes["write_floor"], 3),
            **storm,
            "api_calls": usage.calls,
            "seconds": round(time.perf_counter() - started, 1),
            "peak_rss_mb": peak_rss_mb(),
        }
    )


if __name__ == "__main__":
    main()
