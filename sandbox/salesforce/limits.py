"""The org's daily API request allowance, counted as Salesforce counts it.

Every authenticated REST call counts one; the count is reported on every response as
``Sforce-Limit-Info: api-usage=N/M`` and in ``/limits``; past ``M`` calls are refused with 403
REQUEST_LIMIT_EXCEEDED until the day (UTC, by the sandbox clock) turns.
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

__all__ = ["LIMIT_INFO_HEADER", "STATIC_LIMITS", "ApiUsage"]

LIMIT_INFO_HEADER = "Sforce-Limit-Info"
# limits reported by /limits that the sandbox does not count: name -> Max (= Remaining)
STATIC_LIMITS: dict[str, int] = {
    "DailyBulkApiBatches": 15_000,
    "DailyBulkV2QueryFileStorageMB": 976_562,
    "DailyBulkV2QueryJobs": 10_000,
    "DataStorageMB": 1_024,
    "FileStorageMB": 20_480,
    "HourlyTimeBasedWorkflow": 1_000,
    "MassEmail": 5_000,
    "SingleEmail": 5_000,
}


class ApiUsage:
    """API calls made today; thread-safe."""

    def __init__(self, limit: int, clock: Callable[[], datetime]) -> None:
        self.limit = limit
        self._clock = clock
        self._day: date | None = None
        self._used = 0
        self._lock = threading.Lock()

    def consume(self) -> bool:
        """Count one call; False (and not counted) when today's allowance is spent."""
        with self._lock:
            self._roll()
            if self._used >= self.limit:
                return False
            self._used += 1
            return True

    def used(self) -> int:
        """Calls counted today."""
        with self._lock:
            self._roll()
            return self._used

    def header(self) -> str:
        """The ``Sforce-Limit-Info`` value."""
        return f"api-usage={self.used()}/{self.limit}"

    def limits(self) -> dict[str, Any]:
        """The ``/limits`` resource."""
        daily = {"Max": self.limit, "Remaining": max(self.limit - self.used(), 0)}
        static = {name: {"Max": n, "Remaining": n} for name, n in STATIC_LIMITS.items()}
        return dict(sorted({"DailyApiRequests": daily, **static}.items()))

    def _roll(self) -> None:
        """Start a new count when the UTC day has turned."""
        today = self._clock().date()
        if today != self._day:
            self._day, self._used = today, 0
