"""The run's share of the CRM's daily API allowance, counted call by call.

Both CRMs report the day's usage on their responses (Salesforce ``Sforce-Limit-Info:
api-usage=N/M``, HubSpot ``X-HubSpot-RateLimit-Daily`` and ``-Daily-Remaining``). A run may
make ``share`` of the daily limit in calls; the call that would pass it is never sent and
`BudgetExhausted` stops the run at its last checkpoint instead.
"""

from __future__ import annotations

import math

from connectors.errors import BudgetExhausted
from connectors.protocol import Usage

__all__ = ["DEFAULT_SHARE", "Budget"]

DEFAULT_SHARE = 0.25


class Budget:
    """Calls this run made, the day's usage the CRM last reported, and what is left."""

    def __init__(self, share: float = DEFAULT_SHARE) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"budget share must be above 0 and at most 1, got {share}")
        self.share = share
        self.calls = 0
        self.daily_used: int | None = None
        self.daily_limit: int | None = None

    def observe(self, used: int, limit: int) -> None:
        """The day's usage as the CRM reported it on a response."""
        self.daily_used, self.daily_limit = used, limit

    @property
    def allowance(self) -> int | None:
        """Calls this run may make (None until the CRM has said its limit)."""
        if self.daily_limit is None:
            return None
        return math.floor(self.share * self.daily_limit)

    def spend(self) -> None:
        """Count one call about to be sent; refuse it when the run's share is used up."""
        allowance = self.allowance
        if allowance is not None and self.calls >= allowance:
            raise BudgetExhausted(
                f"this run made {self.calls} API calls, its share ({self.share:.0%}) of the "
                f"daily limit of {self.daily_limit}; it stops here and resumes next run"
            )
        if self.daily_used is not None and self.daily_limit is not None:
            if self.daily_used >= self.daily_limit:
                raise BudgetExhausted(
                    f"the org has used all {self.daily_limit} API calls of the day; "
                    "the run resumes when the allowance renews"
                )
            self.daily_used += 1
        self.calls += 1

    def usage(self, retries: int) -> Usage:
        """The figures for reporting."""
        allowance = self.allowance
        left = None if allowance is None else max(allowance - self.calls, 0)
        return Usage(self.calls, retries, self.daily_used, self.daily_limit, allowance, left)
