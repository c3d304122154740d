"""Start the sandbox CRM: a dialect over a generated org, served on loopback.

    with start_sandbox("hubspot", generate_org(2000, 7)) as crm:
        client = HubSpot(access_token=crm.token, host=crm.base_url)

Used by ``handoff sandbox serve``, the tests' fixtures and the benchmarks. Tests and benchmarks
can commit writes late (`RunningSandbox.committing_late`): stamped before the moment they
become visible, as a real CRM's transaction is.
"""

from __future__ import annotations

import importlib
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.faults import FaultPlan
from sandbox.http import Dialect, LoopbackServer
from sandbox.org import Org

__all__ = [
    "CRMS",
    "Clock",
    "RunningSandbox",
    "StampClock",
    "make_dialect",
    "start_sandbox",
    "utc_now",
]

Clock = Callable[[], datetime]
# crm -> the module whose ``make_dialect(org, token, faults, clock)`` builds its dialect
CRMS = {"salesforce": "sandbox.salesforce", "hubspot": "sandbox.hubspot"}


class StampClock:
    """The clock a dialect stamps writes with: the sandbox's clock, less a lag while a test
    commits late (Salesforce takes SystemModstamp before the transaction commits; HubSpot's
    search shows a write some time after its stamp)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.lag = timedelta(0)

    def __call__(self) -> datetime:
        return self._clock() - self.lag


@dataclass(frozen=True)
class RunningSandbox:
    """A sandbox CRM being served: where it is, how to authenticate, what it was asked."""

    crm: str
    server: LoopbackServer
    dialect: Dialect
    token: str
    org: Org
    clock: StampClock

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return self.server.base_url

    def request_counts(self) -> dict[str, int]:
        """Requests served so far by "METHOD endpoint"."""
        return self.server.log.snapshot()

    @contextmanager
    def committing_late(self, lag: timedelta) -> Iterator[None]:
        """Writes inside the block are stamped ``lag`` before they become visible."""
        self.clock.lag = lag
        try:
            yield
        finally:
            self.clock.lag = timedelta(0)


def utc_now() -> datetime:
    """The wall clock, in UTC (the sandbox is an entry point, so it may read it)."""
    return datetime.now(UTC)


def make_dialect(
    crm: str, org: Org, token: str, faults: FaultPlan, clock: Clock, **options: Any
) -> Dialect:
    """The dialect of ``crm`` over ``org``; ``options`` are the dialect's own (e.g. ``tier``)."""
    if crm not in CRMS:
        raise ValueError(f"unknown sandbox CRM {crm!r}; expected one of {', '.join(CRMS)}")
    module = importlib.import_module(CRMS[crm])
    dialect: Dialect = module.make_dialect(org, token, faults, clock, **options)
    return dialect


@contextmanager
def start_sandbox(
    crm: str,
    org: Org,
    *,
    token: str | None = None,
    faults: FaultPlan | None = None,
    port: int = 0,
    clock: Clock = utc_now,
    about: Callable[[], Mapping[str, Any]] = dict,
    **options: Any,
) -> Iterator[RunningSandbox]:
    """Serve ``org`` in ``crm``'s dialect on 127.0.0.1 for the duration of a ``with`` block.

    ``GET /__sandbox/about`` answers ``{"crm": crm}`` with what ``about()`` adds (the org's
    directory, the process: what a client checks before trusting a sandbox it found)."""
    token = token or secrets.token_urlsafe(24)
    plan = faults or FaultPlan()
    stamps = StampClock(clock)
    dialect = make_dialect(crm, org, token, plan, stamps, **options)
    server = LoopbackServer(
        dialect, plan, port, admin_token=token, about=lambda: {"crm": crm, **about()}
    )
    with server.running():
        yield RunningSandbox(crm, server, dialect, token, org, stamps)
