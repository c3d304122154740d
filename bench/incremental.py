"""The incremental phase of `bench.connectors`: sync cycles over simulated time after a full pull.

The sandbox and the connector share a `SimClock` that starts at the org's end (its "now"), so
the full pull happens then. Each cycle then replays ``INTERVAL`` of the org's own activity rate:
per stream, the records the org changed in its last ``RATE_DAYS`` days, per minute, times the
interval's minutes (a Poisson draw), edited through the CRM's real client at times spread over
the interval. At the interval's end every stream is pulled from its saved cursor, and pulled
again from the same cursors by a connector without an overlap window (pulls change nothing):
the overlap's extra read calls are the difference, ``extra_calls_share`` their share of the
cycle's read calls, and ``share`` the records read again in the window over all records the
cycle delivered. HubSpot's owners and events cannot be written through its API, so they get
no new activity (their window is still read).

The first cycle follows the full pull; the second is the steady state a 15-minute schedule
lives in. Under steady activity a window of ``w`` minutes re-reads about ``w`` minutes of
changes per ``interval`` minutes delivered, plus the records at each stream's bound; they come
on the pages the pull reads anyway, so they cost calls only when they fill a page of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from hubspot import HubSpot
from simple_salesforce import Salesforce

from connectors.protocol import Checkpoint, Connector, Cursor, Item, Record, Summary, expanded
from sandbox.salesforce import SalesforceOptions, client_session
from sandbox.service import RunningSandbox

__all__ = ["INTERVAL", "RATE_DAYS", "Pulled", "SimClock", "calls_of", "cycle"]

INTERVAL = timedelta(minutes=15)
RATE_DAYS = 30
# (CRM, stream) -> the field an edit sets and its value; streams absent here are read-only
EDITS: dict[tuple[str, str], tuple[str, Any]] = {
    ("salesforce", "User"): ("Department", "Inside Sales - EMEA"),
    ("salesforce", "Account"): ("Phone", "+49 30 1234567"),
    ("salesforce", "Lead"): ("Title", "Head of Security"),
    ("salesforce", "Contact"): ("Title", "CFO"),
    ("salesforce", "Opportunity"): ("Amount", 48_000.0),
    ("salesforce", "Task"): ("Description", "Left a voicemail"),
    ("salesforce", "Event"): ("Description", "Moved to Thursday"),
    ("salesforce", "CampaignMember"): ("Status", "Attended"),
    ("hubspot", "companies"): ("phone", "+49 30 1234567"),
    ("hubspot", "contacts"): ("jobtitle", "Head of Security"),
    ("hubspot", "deals"): ("dealname", "Renewal 2027"),
    ("hubspot", "calls"): ("hs_call_title", "Follow-up call"),
    ("hubspot", "emails"): ("hs_email_subject", "Re: pricing"),
    ("hubspot", "meetings"): ("hs_meeting_title", "Security review"),
}


class SimClock:
    """The time of day of the sandbox and the connector, moved by the benchmark."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Pulled:
    """What the pulls so far left: each stream's cursor, live ids and recent change count."""

    since: datetime  # the start of the org's last RATE_DAYS days
    cursors: dict[str, Cursor] = field(default_factory=dict)
    ids: dict[str, list[str]] = field(default_factory=dict)
    recent: dict[str, int] = field(default_factory=dict)

    def take(self, stream: str, items: Iterable[Item]) -> Summary:
        """Follow one full pull: remember its last cursor, ids and recent changes."""
        ids, recent, summary = [], 0, None
        for item in expanded(items):
            if isinstance(item, Record):
                ids.append(item.id)
                recent += item.modified_at >= self.since
            elif isinstance(item, Checkpoint):
                self.cursors[stream] = item.cursor
            elif isinstance(item, Summary):
                summary = item
        self.ids[stream], self.recent[stream] = ids, recent
        assert summary is not None
        return summary


def cycle(
    crm: str,
    connector: Connector,
    without_overlap: Connector,
    sandbox: RunningSandbox,
    clock: SimClock,
    pulled: Pulled,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """One sync cycle: an interval of activity, then every stream pulled from its cursor (and
    again without the overlap window, for the calls that window costs)."""
    start = clock.now
    edits = _plan(crm, pulled, start, rng)
    edit = _editor(crm, sandbox)
    for at, stream, record_id in edits:
        clock.now = at
        edit(stream, record_id)
    clock.now = start + INTERVAL
    before = dict(pulled.cursors)
    calls_without = calls_of(without_overlap, before)
    sandbox.server.log.reset()
    delivered = reread = 0
    by_stream: dict[str, int] = {}
    for stream in connector.streams:
        items = list(connector.pull(stream, before[stream]))
        pulled.cursors[stream] = next(
            i.cursor for i in reversed(items) if isinstance(i, Checkpoint)
        )
        summary = items[-1]
        assert isinstance(summary, Summary)
        delivered += summary.records
        reread += summary.reread
        by_stream[stream] = summary.reread
    return {
        "changes": len(edits),
        "delivered": delivered,
        "reread": reread,
        "reread_by_stream": {s: n for s, n in by_stream.items() if n},
        "share": round(reread / max(delivered, 1), 4),
        "calls": sandbox.server.log.total(),
        "calls_without_overlap": calls_without,
        "extra_calls_share": round(
            (sandbox.server.log.total() - calls_without) / max(sandbox.server.log.total(), 1), 4
        ),
        "archive_list_calls": sum(
            sandbox.server.log.count(name, "GET")
            for name, stream in connector.streams.items()
            if stream.api == "objects"
        ),
    }


def calls_of(connector: Connector, cursors: dict[str, Cursor]) -> int:
    """The calls of pulling every stream from ``cursors`` (its pulls' summaries, added up)."""
    calls = 0
    for stream in connector.streams:
        summary = list(connector.pull(stream, cursors[stream]))[-1]
        assert isinstance(summary, Summary)
        calls += summary.calls
    return calls


def _plan(
    crm: str, pulled: Pulled, start: datetime, rng: np.random.Generator
) -> list[tuple[datetime, str, str]]:
    """The interval's edits at the org's rate: (when, stream, record id), in time order."""
    minutes = INTERVAL.total_seconds() / 60
    edits = []
    for stream, ids in pulled.ids.items():
        if (crm, stream) not in EDITS or not ids:
            continue
        rate = pulled.recent[stream] / (RATE_DAYS * 24 * 60)
        count = int(rng.poisson(rate * minutes))
        offsets, picks = rng.uniform(0, 1, count), rng.integers(0, len(ids), count)
        for offset, index in zip(offsets, picks, strict=True):
            edits.append((start + INTERVAL * float(offset), stream, ids[int(index)]))
    return sorted(edits)


def _editor(crm: str, sandbox: RunningSandbox) -> Callable[[str, str], None]:
    """A function that edits one record through the CRM's own client."""
    if crm == "salesforce":
        client = Salesforce(
            instance_url=SalesforceOptions().instance_url,
            session_id=sandbox.token,
            session=client_session(sandbox.base_url),
        )

        def salesforce_edit(stream: str, record_id: str) -> None:
            name, value = EDITS[(crm, stream)]
            getattr(client, stream).update(record_id, {name: value})

        return salesforce_edit
    objects = HubSpot(access_token=sandbox.token, host=sandbox.base_url).crm.objects.basic_api

    def hubspot_edit(stream: str, record_id: str) -> None:
        name, value = EDITS[(crm, stream)]
        objects.update(stream, record_id, {"properties": {name: str(value)}})

    return hubspot_edit
