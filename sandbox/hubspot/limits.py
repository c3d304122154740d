"""Private-app rate limits per token: a rolling 10-second window, a daily count, search per second.

Figures from https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines
(per 10 seconds / per day); CRM search is limited to 5 requests a second per token. The
"unlimited" tier is the sandbox's own, for throughput tests: nothing is refused, headers still
come. The event analytics API (events v3) comes with Enterprise only
(https://developers.hubspot.com/docs/api/events/event-analytics: "Marketing Hub Enterprise ...
only"); below it the portal answers 403 (events.py). "unlimited" serves it, as Enterprise does.
Time comes from the injected clock, so tests move the window without sleeping.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from sandbox.hubspot.store import Clock

__all__ = ["SEARCH_PER_SECOND", "TIERS", "WINDOW_SECONDS", "RateLimiter", "Tier"]

WINDOW_SECONDS = 10.0
SEARCH_PER_SECOND = 5


@dataclass(frozen=True)
class Tier:
    """A subscription's limits; ``enforced`` is False only for the sandbox's unlimited tier;
    ``events_api``: whether the portal may read the event analytics API."""

    per_ten_seconds: int
    per_day: int
    enforced: bool = True
    events_api: bool = False


TIERS = {
    "starter": Tier(100, 250_000),
    "professional": Tier(190, 625_000),
    "enterprise": Tier(190, 1_000_000, events_api=True),
    "unlimited": Tier(1_000_000_000, 1_000_000_000, enforced=False, events_api=True),
}


class RateLimiter:
    """Counts admitted requests of one token and refuses those over a limit."""

    def __init__(self, tier: str, clock: Clock) -> None:
        if tier not in TIERS:
            raise ValueError(f"unknown HubSpot tier {tier!r}; expected one of {', '.join(TIERS)}")
        self.tier = TIERS[tier]
        self._clock = clock
        self._recent: deque[float] = deque()
        self._searches: deque[float] = deque()
        self._day: tuple[object, int] = (None, 0)
        self._lock = threading.Lock()

    def admit(self, search: bool) -> str | None:
        """Count a request; the policy it breaks (and is refused by) if any."""
        now = self._clock()
        stamp, day = now.timestamp(), now.date()
        with self._lock:
            self._expire(stamp)
            used_today = self._day[1] if self._day[0] == day else 0
            policy = self._broken(used_today, search) if self.tier.enforced else None
            if policy is None:
                self._day = (day, used_today + 1)
                if self.tier.enforced:  # unlimited: only the daily count, for the headers
                    self._recent.append(stamp)
                    self._searches.extend([stamp] if search else [])
            return policy

    def _broken(self, used_today: int, search: bool) -> str | None:
        """The first limit one more request would break."""
        if used_today >= self.tier.per_day:
            return "DAILY"
        if len(self._recent) >= self.tier.per_ten_seconds:
            return "TEN_SECONDLY_ROLLING"
        if search and len(self._searches) >= SEARCH_PER_SECOND:
            return "SECONDLY"
        return None

    def _expire(self, stamp: float) -> None:
        """Forget requests that left their windows."""
        while self._recent and self._recent[0] <= stamp - WINDOW_SECONDS:
            self._recent.popleft()
        while self._searches and self._searches[0] <= stamp - 1.0:
            self._searches.popleft()

    def headers(self) -> dict[str, str]:
        """The ``X-HubSpot-RateLimit-*`` headers as of now."""
        now = self._clock()
        stamp = now.timestamp()
        with self._lock:
            self._expire(stamp)
            used_today = self._day[1] if self._day[0] == now.date() else 0
            in_window = len(self._recent)
            last_second = sum(1 for t in self._recent if t > stamp - 1.0)
        per_second = self.tier.per_ten_seconds // 10
        return {
            "X-HubSpot-RateLimit-Daily": str(self.tier.per_day),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.tier.per_day - used_today)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(WINDOW_SECONDS * 1000)),
            "X-HubSpot-RateLimit-Max": str(self.tier.per_ten_seconds),
            "X-HubSpot-RateLimit-Remaining": str(max(0, self.tier.per_ten_seconds - in_window)),
            "X-HubSpot-RateLimit-Secondly": str(per_second),
            "X-HubSpot-RateLimit-Secondly-Remaining": str(max(0, per_second - last_second)),
        }
