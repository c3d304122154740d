"""Holding one chosen request of the sandbox CRM until a test lets it go: a deterministic point
at which to kill the client (a crash test kills Handoff, never the CRM).

    POST /__sandbox/hold     {"endpoint": "composite/sobjects", "method": "PATCH", "after": 1,
                              "when": "after"}      # arm: hold the 2nd matching request
    GET  /__sandbox/hold     {"armed": true, "held": "PATCH /services/...", "released": false}
    POST /__sandbox/release  {"drop": true}         # let it go, or close it unanswered

``endpoint`` is an fnmatch pattern over the route's name (as in the request log and the faults
file); ``after`` matching requests pass first. ``when = "before"`` holds the request before the
CRM acts on it, ``"after"`` once it has acted (a write has landed) but before it answers.
Released, the request goes on (or, with ``drop``, its connection is closed without an answer:
held "before", the CRM never acts on it). One hold is armed at a time; it catches one request.
A request held longer than `MAX_HOLD_SECONDS` is dropped, so a forgotten hold never wedges a
sandbox.
"""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["MAX_HOLD_SECONDS", "Hold", "HoldError", "Holds"]

MAX_HOLD_SECONDS = 300.0
When = Literal["before", "after"]
_WHEN = ("before", "after")


class HoldError(ValueError):
    """A hold that cannot be armed as asked."""


@dataclass(frozen=True)
class Hold:
    """Which request to hold: the first matching one after ``after`` others, and when."""

    endpoint: str = "*"
    method: str | None = None
    after: int = 0
    when: When = "before"

    @classmethod
    def from_json(cls, body: Any) -> Hold:
        """A hold from an admin request's JSON body; a clear error for a malformed one."""
        if not isinstance(body, dict):
            raise HoldError("a hold is a JSON object: endpoint, method, after, when")
        unknown = set(body) - set(cls.__dataclass_fields__)
        if unknown:
            raise HoldError(f"unknown key(s) {sorted(unknown)}")
        after, when = body.get("after", 0), body.get("when", "before")
        if not isinstance(after, int) or after < 0:
            raise HoldError("after must be a whole number of requests >= 0")
        if when not in _WHEN:
            raise HoldError(f"when must be one of {', '.join(_WHEN)}")
        return cls(str(body.get("endpoint", "*")), body.get("method"), after, when)

    def matches(self, endpoint: str, method: str) -> bool:
        """Whether a request to ``endpoint`` with ``method`` counts toward this hold."""
        return fnmatch.fnmatchcase(endpoint, self.endpoint) and self.method in (None, method)


class _Ticket:
    """The request a hold caught: which one (once held), and whether it was let go."""

    def __init__(self, when: When) -> None:
        self.when = when
        self.request: str | None = None
        self.released = False
        self.drop = False


class Holds:
    """The armed hold and the request it caught; thread-safe."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._hold: Hold | None = None
        self._seen = 0
        self._ticket: _Ticket | None = None

    def arm(self, hold: Hold) -> None:
        """Hold the request ``hold`` picks (a request an earlier hold holds is let go)."""
        with self._changed:
            self._let_go(drop=False)
            self._hold, self._seen, self._ticket = hold, 0, None

    def pick(self, endpoint: str, method: str) -> object | None:
        """A ticket when this request is the one the armed hold waits for, else None."""
        with self._changed:
            hold = self._hold
            if hold is None or self._ticket is not None or not hold.matches(endpoint, method):
                return None
            self._seen += 1
            if self._seen <= hold.after:
                return None
            self._ticket = _Ticket(hold.when)
            return self._ticket

    def wait(self, ticket: object | None, when: When, request: str) -> bool:
        """Hold the request at ``when`` if it is the caught one; False: drop it unanswered."""
        if not isinstance(ticket, _Ticket):
            return True
        with self._changed:
            if ticket.when != when:
                return True
            ticket.request = request
            self._changed.notify_all()
            released = self._changed.wait_for(lambda: ticket.released, MAX_HOLD_SECONDS)
            return released and not ticket.drop

    def release(self, drop: bool = False) -> bool:
        """Let the held request go on, or (``drop``) close it without an answer; whether one
        was held."""
        with self._changed:
            return self._let_go(drop)

    def _let_go(self, drop: bool) -> bool:
        ticket = self._ticket
        if ticket is None or ticket.request is None or ticket.released:
            return False
        ticket.released, ticket.drop = True, drop
        self._changed.notify_all()
        return True

    def status(self) -> dict[str, Any]:
        """What is armed, which request is held (method and path) and whether it was let go."""
        with self._changed:
            hold, ticket = self._hold, self._ticket
            return {
                "armed": None if hold is None else dict(hold.__dict__),
                "held": None if ticket is None else ticket.request,
                "released": ticket is not None and ticket.released,
            }
