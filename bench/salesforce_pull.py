"""Benchmark: a full pull of the Salesforce sandbox through the unmodified simple-salesforce.

    python -m bench.salesforce_pull --accounts 20000

Pulls every field of Account, Lead, Contact, Task and Event with ``query_all_iter`` (2,000
records a page) from a generated org, twice: with the client's default ``OrderedDict`` records,
and with ``object_pairs_hook=dict`` (a public client option), which shows more of what the
server itself sustains.
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from typing import Any

from simple_salesforce import Salesforce

from bench.common import (
    add_world_options,
    emit,
    peak_rss_mb,
    progress,
    pull_figures,
    timed,
    world_of,
)
from sandbox.generator import generate_org
from sandbox.salesforce import SalesforceOptions, client_session
from sandbox.salesforce.schema import STANDARD_OBJECTS
from sandbox.service import RunningSandbox, start_sandbox

OBJECTS = ("Account", "Lead", "Contact", "Task", "Event")
TARGET_RECORDS_PER_SECOND = 20_000.0


def _pull(crm: RunningSandbox, **client_options: Any) -> dict[str, Any]:
    """Every record of every object, all fields, counted and timed."""
    client = Salesforce(
        instance_url=SalesforceOptions().instance_url,
        session_id=crm.token,
        session=client_session(crm.base_url),
        **client_options,
    )
    fields = {obj.name: ", ".join(f.name for f in obj.fields) for obj in STANDARD_OBJECTS}
    counts: dict[str, int] = {}
    with timed() as elapsed:
        for name in OBJECTS:
            counts[name] = sum(
                1 for _ in client.query_all_iter(f"SELECT {fields[name]} FROM {name}")
            )
            progress(f"  {name}: {counts[name]}")
    return pull_figures(counts, elapsed[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    add_world_options(parser)
    args = parser.parse_args()
    progress(f"generating {args.accounts} accounts")
    org = generate_org(args.accounts, args.seed, world=world_of(parser, args))
    with ExitStack() as serving:
        with timed() as startup:
            crm = serving.enter_context(start_sandbox("salesforce", org))
        progress(f"serving after {startup[0]:.1f} s; pull with the default OrderedDict records")
        ordered = _pull(crm)
        progress("pull with object_pairs_hook=dict")
        plain = _pull(crm, object_pairs_hook=dict)
    emit(
        {
            "accounts": args.accounts,
            "startup_seconds": round(startup[0], 2),
            "ordered_dict_records": ordered,
            "dict_records": plain,
            "target_records_per_second": TARGET_RECORDS_PER_SECOND,
            "peak_rss_mb": peak_rss_mb(),
        }
    )


if __name__ == "__main__":
    main()
