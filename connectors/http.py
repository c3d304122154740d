"""The one HTTP policy both connectors use: timeouts, retries, Retry-After, pacing, the budget.

Every call to a CRM goes through `HttpPolicy.call`, which

* waits while a ``Retry-After`` is running (for every call, not only the one refused),
* paces calls under the CRM's rolling windows (HubSpot's 10 seconds) instead of bouncing off
  429s, and counts them against the run's `Budget`,
* retries what `connectors.errors.classify` calls retriable (429, 5xx, an edge's 406 / 420,
  Salesforce's concurrent long-request limit, timeouts, dropped connections, locked rows) with
  exponential backoff and full jitter, never sooner than the CRM's ``Retry-After``, at most
  ``attempts`` times,
* logs in again once when the session has expired, and
* never retries the org's spent daily allowance (`DailyLimitReached`): like `BudgetExhausted`,
  it stops the run at its last checkpoint.

This module is the only place that sleeps: ``sleep`` and ``clock`` are injected, so tests
move a fake clock instead of waiting. Retries use tenacity and nothing else.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import orjson
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
    wait_random_exponential,
)

from connectors.budget import Budget
from connectors.errors import (
    ApiError,
    AuthError,
    BudgetExhausted,
    ConnectorError,
    PaginationError,
    RetriableError,
    TransportError,
)
from connectors.protocol import WriteResult

__all__ = ["Exchange", "HttpPolicy", "PageTokens", "RetrySettings", "read_json"]

_LOG = logging.getLogger(__name__)

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)  # what `HttpPolicy.settle` keys a batch's records by
Sleep = Callable[[float], None]
Clock = Callable[[], float]
Wall = Callable[[], datetime]


@dataclass(frozen=True)
class RetrySettings:
    """How hard to try: attempts per call, the backoff range and every request's timeout."""

    attempts: int = 6
    base_seconds: float = 0.5
    max_seconds: float = 60.0
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    poll_attempts: int = 40
    poll_max_seconds: float = 30.0

    @property
    def timeout(self) -> tuple[float, float]:
        """(connect, read) seconds, as requests and urllib3 take them."""
        return (self.connect_timeout, self.read_timeout)


@dataclass(frozen=True)
class Exchange:
    """One attempt as sent: when (on the policy's clock), and what came back."""

    started: float
    finished: float
    error: ApiError | TransportError | None
    retry_after: float | None


class PageTokens:
    """A paginator's memory: it refuses a page token it has already been handed."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def next(self, token: str | None) -> str | None:
        """The token to fetch next, or None at the end; a repeated token is an error."""
        if token is None:
            return None
        if token in self._seen:
            raise PaginationError(f"the server repeated the page token {token!r}")
        self._seen.add(token)
        return token


class _Window:
    """A rolling window: at most ``calls`` sends in any ``seconds``."""

    def __init__(self, calls: int, seconds: float) -> None:
        self.calls, self.seconds = calls, seconds
        self.sent: deque[float] = deque()


class HttpPolicy:
    """Sends calls under the policy; holds the run's retry count and budget."""

    def __init__(
        self,
        settings: RetrySettings | None = None,
        *,
        budget: Budget | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        wall: Wall = lambda: datetime.now(UTC),
        listener: Callable[[Exchange], None] | None = None,
    ) -> None:
        self.settings = settings or RetrySettings()
        self.budget = budget or Budget()
        self.retries = 0
        self._sleep, self._clock, self._wall = sleep, clock, wall
        self._listener = listener
        self._not_before = 0.0
        self._windows: dict[str, _Window] = {}

    @property
    def timeout(self) -> tuple[float, float]:
        """Every request's (connect, read) timeout."""
        return self.settings.timeout

    def now(self) -> datetime:
        """The time of day on the injected wall clock (when a pull began reading, say)."""
        return self._wall()

    def call(
        self,
        send: Callable[[], T],
        *,
        windows: tuple[str, ...] = ("api",),
        metered: bool = True,
        reauth: Callable[[], None] | None = None,
    ) -> T:
        """``send()`` under the policy; on an expired session, ``reauth()`` then one more go.

        ``windows`` names the pacing windows the call counts in (see `pace`).
        """
        try:
            return self._retrying(send, windows, metered)
        except AuthError:
            if reauth is None:
                raise
            reauth()
            return self._retrying(send, windows, metered)

    def pace(self, window: str, calls: int, seconds: float) -> None:
        """Keep calls counted in ``window`` to ``calls`` in any ``seconds`` from now on."""
        current = self._windows.get(window)
        if current is None or (current.calls, current.seconds) != (calls, seconds):
            fresh = _Window(max(calls, 1), seconds)
            fresh.sent = current.sent if current else deque()
            self._windows[window] = fresh

    def hold(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (a Retry-After, or a window the CRM says is full)."""
        self._not_before = max(self._not_before, self._clock() + seconds)

    def retry_after(self, value: str | None) -> float | None:
        """Seconds a ``Retry-After`` header asks for (a number or an HTTP date)."""
        if not value:
            return None
        try:
            seconds = float(value)
        except ValueError:
            seconds = math.nan
        if math.isfinite(seconds):
            return max(seconds, 0.0)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max((when - self._wall()).total_seconds(), 0.0)

    def poll(self, check: Callable[[], T | None]) -> T:
        """Call ``check`` until it answers something, waiting longer between tries (a job)."""
        retrying = Retrying(
            stop=stop_after_attempt(self.settings.poll_attempts),
            wait=wait_exponential(multiplier=0.5, max=self.settings.poll_max_seconds),
            retry=retry_if_result(lambda answer: answer is None),
            sleep=self._sleep,
            retry_error_callback=_give_up_polling,
        )
        answer: T = retrying(check)
        return answer

    def settle(
        self, send: Callable[[list[K]], Mapping[K, WriteResult]], ids: Iterable[K]
    ) -> dict[K, WriteResult]:
        """Send a batch, then again only its records answered retriable, with backoff (a
        record's key: its id, or whatever else the connector tells records apart by)."""
        results: dict[K, WriteResult] = {}
        resent: Counter[K] = Counter()  # sends after the first (every record is sent once)
        pending = list(dict.fromkeys(ids))

        def round_() -> list[K]:
            nonlocal pending
            try:
                answered = send(pending)
            except BudgetExhausted as stop:
                raise BudgetExhausted(str(stop), [*results.values(), *stop.results]) from stop
            if results:  # a round after the first
                resent.update(pending)
            results.update(answered)
            pending = [i for i in pending if answered[i].status == "retriable"]
            return pending

        if round_():  # some records answered retriable: tenacity takes over (see `_retrying`)
            first = [pending]
            Retrying(
                stop=stop_after_attempt(self.settings.attempts),
                wait=self._backoff,
                retry=retry_if_result(bool),
                sleep=self._sleep,
                before_sleep=self._count,
                retry_error_callback=lambda state: (
                    state.outcome.result() if state.outcome else None
                ),
            )(lambda: first.pop() if first else round_())
        if not resent and all(r.attempts == 1 for r in results.values()):
            return results  # each sent once, as made
        return {  # a copy only where the count differs
            i: r if r.attempts == 1 + resent[i] else replace(r, attempts=1 + resent[i])
            for i, r in results.items()
        }

    def _retrying(self, send: Callable[[], T], windows: tuple[str, ...], metered: bool) -> T:
        """``send`` once, tenacity taking over only after a retriable failure, which it meets
        as its first attempt (not sent again): ~1 µs a call instead of tenacity's ~20 µs."""
        try:
            return self._attempt(send, windows, metered)
        except (RetriableError, TransportError) as error:
            failed: list[BaseException] = [error]

        def again() -> T:
            if failed:
                raise failed.pop()
            return self._attempt(send, windows, metered)

        retrying = Retrying(
            stop=stop_after_attempt(self.settings.attempts),
            wait=self._wait,
            retry=retry_if_exception_type((RetriableError, TransportError)),
            sleep=self._sleep,
            before_sleep=self._count,
            reraise=True,
        )
        result: T = retrying(again)
        return result

    def _attempt(self, send: Callable[[], T], windows: tuple[str, ...], metered: bool) -> T:
        """One send: after any hold and the pacing windows, counted against the budget."""
        self._wait_for_hold()
        for name in windows:
            self._wait_for_window(name)
        if metered:
            self.budget.spend()
        started = self._clock()
        try:
            result = send()
        except (ApiError, TransportError) as error:
            retry_after = error.retry_after if isinstance(error, ApiError) else None
            if isinstance(error, RetriableError) and retry_after:
                self.hold(retry_after)
            self._report(started, error, retry_after)
            raise
        self._report(started, None, None)
        return result

    def _wait_for_hold(self) -> None:
        left = self._not_before - self._clock()
        if left > 0:
            self._sleep(left)

    def _wait_for_window(self, name: str) -> None:
        window = self._windows.get(name)
        if window is None:
            return
        now = self._clock()
        while window.sent and window.sent[0] <= now - window.seconds:
            window.sent.popleft()
        if len(window.sent) >= window.calls:
            self._sleep(window.sent[0] + window.seconds - now)
            window.sent.popleft()
        window.sent.append(self._clock())

    def _wait(self, state: RetryCallState) -> float:
        """Backoff with full jitter, and never before a running Retry-After ends."""
        return max(self._backoff(state), self._not_before - self._clock(), 0.0)

    def _backoff(self, state: RetryCallState) -> float:
        jitter = wait_random_exponential(
            multiplier=self.settings.base_seconds, max=self.settings.max_seconds
        )
        return float(jitter(state))

    def _count(self, state: RetryCallState) -> None:
        """Count a retry, and say it in the log (`[logging] level`: INFO and below)."""
        self.retries += 1
        outcome, action = state.outcome, state.next_action
        error = outcome.exception() if outcome is not None and outcome.failed else None
        why = error if error is not None else "records refused for now, sent again"
        wait = action.sleep if action is not None else 0.0
        _LOG.info("retry %d in %.1f s: %s", state.attempt_number, wait, why)

    def _report(
        self, started: float, error: ApiError | TransportError | None, retry_after: float | None
    ) -> None:
        if self._listener is not None:
            self._listener(Exchange(started, self._clock(), error, retry_after))


def read_json(body: bytes | str, otherwise: Callable[[bytes | str], Any] = json.loads) -> Any:
    """A CRM's JSON answer read by orjson (two to three times faster than json on a page of
    records); what orjson refuses (a byte order mark, NaN, a number beyond a double, a lone
    surrogate, bytes not UTF-8) read by ``otherwise``, the way every answer was read before.
    orjson reads an integer beyond 64 bits as a float where json keeps it whole: neither CRM
    sends one (Salesforce's numbers hold at most 18 digits; HubSpot's ids and times are 64-bit
    integers and its property values text), and a search for such runs of digits would take
    longer than the page's whole reading."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return otherwise(body)


def _give_up_polling(state: RetryCallState) -> None:
    raise ConnectorError(f"the job did not finish after {state.attempt_number} checks")
