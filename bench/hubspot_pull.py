"""Benchmark: a full pull of the HubSpot sandbox through the unmodified hubspot-api-client.

    python -m bench.hubspot_pull --accounts 20000

Pulls companies, contacts, calls, emails, meetings (CRM objects v3, 100 a page) and the web and
marketing events (events v3, 100 a page) of a generated org served on the "unlimited" tier, twice:
with the client's model deserialization, and with ``_preload_content=False`` (raw JSON parsed
with ``json.loads``), which shows what the server itself sustains.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from typing import Any

from hubspot import HubSpot

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
from sandbox.service import start_sandbox

OBJECTS = ("companies", "contacts", "calls", "emails", "meetings")
TARGET_RECORDS_PER_SECOND = 20_000.0


def _pages(fetch: Callable[[str | None], tuple[int, str | None]]) -> Iterator[int]:
    """Record counts of each page until ``paging.next`` is absent."""
    after: str | None = None
    while True:
        count, after = fetch(after)
        yield count
        if after is None:
            return


def _models(client: HubSpot, object_name: str) -> Callable[[str | None], tuple[int, str | None]]:
    def fetch(after: str | None) -> tuple[int, str | None]:
        if object_name == "events":
            page = client.events.events_api.get_page(limit=100, after=after)
        else:
            page = client.crm.objects.basic_api.get_page(object_name, limit=100, after=after)
        return len(page.results), page.paging.next.after if page.paging else None

    return fetch


def _raw(client: HubSpot, object_name: str) -> Callable[[str | None], tuple[int, str | None]]:
    def fetch(after: str | None) -> tuple[int, str | None]:
        kwargs: dict[str, Any] = {"limit": 100, "after": after, "_preload_content": False}
        if object_name == "events":
            response = client.events.events_api.get_page(**kwargs)
        else:
            response = client.crm.objects.basic_api.get_page(object_name, **kwargs)
        page = json.loads(response.data)
        return len(page["results"]), page.get("paging", {}).get("next", {}).get("after")

    return fetch


def _pull(
    client: HubSpot, how: Callable[..., Callable[[str | None], tuple[int, str | None]]]
) -> dict[str, Any]:
    """Every object and the events, counted and timed."""
    counts: dict[str, int] = {}
    with timed() as elapsed:
        for name in (*OBJECTS, "events"):
            counts[name] = sum(_pages(how(client, name)))
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
    with start_sandbox("hubspot", org, tier="unlimited") as crm:
        client = HubSpot(access_token=crm.token, host=crm.base_url)
        progress("pull with model deserialization")
        models = _pull(client, _models)
        progress("pull with _preload_content=False")
        raw = _pull(client, _raw)
    emit(
        {
            "accounts": args.accounts,
            "with_models": models,
            "raw_json": raw,
            "target_records_per_second": TARGET_RECORDS_PER_SECOND,
            "peak_rss_mb": peak_rss_mb(),
        }
    )


if __name__ == "__main__":
    main()
