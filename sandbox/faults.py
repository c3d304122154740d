"""Fault injection for the sandbox CRM: a schedule of failures read from a TOML file.

[[fault]]
kind = "status"    # status | slow | drop | expire_session | lock | limit | edge | bulk_unsupported
status = 503       # status, edge: the HTTP status to answer (500, 503, ...; edge: 406, 420)
retry_after = 2    # status: seconds, sent as Retry-After where the CRM sends it
endpoint = "query" # which endpoints (fnmatch pattern over the route's name); default "*"
method = "GET"     # which method; default any
after = 10         # let this many matching requests through first; default 0
count = 5          # how many matching requests fail, then the fault is spent; 0 = forever

kind = "slow" takes ``seconds``; "drop" closes the connection without an answer;
"expire_session" takes ``after`` (total requests) and expires the session once;
"lock" takes ``records`` (ids) and ``times`` (failures per record before a write succeeds);
"limit" takes ``limit = "daily"`` or ``"concurrent"``: the CRM's own refusal for that limit
(Salesforce: 403 REQUEST_LIMIT_EXCEEDED, "TotalRequests" or "ConcurrentPerOrgLongTxn"; HubSpot:
429 with the DAILY or TEN_SECONDLY_ROLLING policy);
"edge" is an answer from the CDN in front of the CRM, not from its API: ``status`` with an
empty body, or with ``html = true`` an HTML page (Salesforce's edge sends 406 and 420 so);
"bulk_unsupported" takes ``objects``: Bulk API jobs on them are refused (400 INVALIDENTITY).
"""

from __future__ import annotations

import fnmatch
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FAULT_KINDS", "LIMITS", "Fault", "FaultError", "FaultPlan", "FaultRule", "load_faults"]

FAULT_KINDS = (
    "status",
    "slow",
    "drop",
    "expire_session",
    "lock",
    "limit",
    "edge",
    "bulk_unsupported",
)
LIMITS = ("daily", "concurrent")
_CONSULTED = ("lock", "bulk_unsupported")  # asked by the dialect about a record or an object


class FaultError(ValueError):
    """A faults file that cannot be understood."""


@dataclass(frozen=True)
class Fault:
    """One injected failure, for the server or the dialect to act on."""

    kind: str
    status: int = 0
    retry_after: float | None = None
    seconds: float = 0.0
    limit: str = "daily"
    html: bool = False


@dataclass(frozen=True)
class FaultRule:
    """A scheduled failure: which requests it hits and how."""

    kind: str
    status: int = 0
    retry_after: float | None = None
    seconds: float = 0.0
    endpoint: str = "*"
    method: str | None = None
    after: int = 0
    count: int = 0
    records: tuple[str, ...] = ()
    times: int = 1
    limit: str = "daily"
    html: bool = False
    objects: tuple[str, ...] = ()

    def matches(self, endpoint: str, method: str) -> bool:
        """Whether a request to ``endpoint`` with ``method`` is one this rule counts."""
        return fnmatch.fnmatchcase(endpoint, self.endpoint) and self.method in (None, method)

    def fault(self) -> Fault:
        """The failure this rule injects."""
        return Fault(self.kind, self.status, self.retry_after, self.seconds, self.limit, self.html)


@dataclass
class FaultPlan:
    """Rules plus their running counters; thread-safe."""

    rules: list[FaultRule] = field(default_factory=list)
    _seen: dict[int, int] = field(default_factory=dict)
    _locks_left: dict[str, int] = field(default_factory=dict)
    _mutex: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for rule in self.rules:
            if rule.kind == "lock":
                self._locks_left.update(dict.fromkeys(rule.records, rule.times))

    def draw(self, endpoint: str, method: str, total_requests: int) -> Fault | None:
        """The fault for this request, if any rule fires (the first that does wins)."""
        with self._mutex:
            for index, rule in enumerate(self.rules):
                if rule.kind in _CONSULTED:
                    continue
                if rule.kind == "expire_session":
                    if total_requests > rule.after and self._seen.get(index, 0) == 0:
                        self._seen[index] = 1
                        return rule.fault()
                    continue
                if rule.matches(endpoint, method) and self._fires(index, rule):
                    return rule.fault()
        return None

    def _fires(self, index: int, rule: FaultRule) -> bool:
        """Count a matching request against the rule; whether it falls in the failing window."""
        seen = self._seen.get(index, 0) + 1
        self._seen[index] = seen
        return seen > rule.after and (rule.count == 0 or seen <= rule.after + rule.count)

    def refuses_bulk(self, sobject: str) -> bool:
        """Whether Bulk API jobs on ``sobject`` are refused as for an object it does not serve."""
        return any(r.kind == "bulk_unsupported" and sobject in r.objects for r in self.rules)

    def locked(self, record_id: str) -> bool:
        """Whether a write to ``record_id`` fails with a lock error this time."""
        with self._mutex:
            left = self._locks_left.get(record_id, 0)
            if left <= 0:
                return False
            self._locks_left[record_id] = left - 1
            return True


def load_faults(path: Path) -> FaultPlan:
    """Read a faults file; errors name the file, the entry and what is wrong."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise FaultError(f"{path}: {error}") from error
    unknown = set(raw) - {"fault"}
    if unknown:
        raise FaultError(
            f"{path}: unknown section(s) {sorted(unknown)}; expected [[fault]] entries"
        )
    return FaultPlan(
        [_rule(path, number, entry) for number, entry in enumerate(raw.get("fault", []), 1)]
    )


def _rule(path: Path, number: int, entry: dict[str, Any]) -> FaultRule:
    """One [[fault]] entry as a rule."""
    where = f"{path}: [[fault]] #{number}"
    kind = entry.get("kind")
    if kind not in FAULT_KINDS:
        raise FaultError(f"{where} kind must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
    known = {f for f in FaultRule.__dataclass_fields__}
    unknown = set(entry) - known
    if unknown:
        raise FaultError(f"{where} unknown key(s) {sorted(unknown)}")
    if kind in ("status", "edge") and not 400 <= int(entry.get("status", 0)) <= 599:
        raise FaultError(f"{where} status must be an HTTP error status (400-599)")
    if kind == "limit" and entry.get("limit", "daily") not in LIMITS:
        raise FaultError(f"{where} limit must be one of {', '.join(LIMITS)}")
    if kind == "bulk_unsupported" and not entry.get("objects"):
        raise FaultError(f"{where} objects must name the objects Bulk API refuses")
    values = {
        **entry,
        "records": tuple(entry.get("records", ())),
        "objects": tuple(entry.get("objects", ())),
    }
    try:
        return FaultRule(**values)
    except TypeError as error:
        raise FaultError(f"{where} {error}") from error
