"""Start the sandbox CRM: a dialect over a generated org, served on loopback.

    with start_sandbox("hubspot", generate_org(2000, 7)) as crm:
        client = HubSpot(access_token=crm.token, host=crm.base_url)

Used by ``handoff sandbox serve``, the tests' fixtures and the benchmarks.
"""

from __future__ import annotations

import importlib
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox.faults import FaultPlan
from sandbox.http import Dialect, LoopbackServer
from sandbox.org import Org

__all__ = ["CRMS", "Clock", "RunningSandbox", "make_dialect", "start_sandbox", "utc_now"]

Clock = Callable[[], datetime]
# crm -> the module whose ``make_dialect(org, token, faults, clock)`` builds its dialect
CRMS = {"salesforce": "sandbox.salesforce", "hubspot": "sandbox.hubspot"}


@dataclass(frozen=True)
class RunningSandbox:
    """A sandbox CRM being served: where it is, how to authenticate, what it was asked."""

    crm: str
    server: LoopbackServer
    dialect: Dialect
    token: str
    org: Org

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return self.server.base_url

    def request_counts(self) -> dict[str, int]:
        """Requests served so far by "METHOD endpoint"."""
        return self.server.log.snapshot()


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
    dialect = make_dialect(crm, org, token, plan, clock, **options)
    server = LoopbackServer(
        dialect, plan, port, admin_token=token, about=lambda: {"crm": crm, **about()}
    )
    with server.running():
        yield RunningSandbox(crm, server, dialect, token, org)
