"""A small HTTP/1.1 server on loopback that a CRM dialect plugs into.

The server owns what every dialect shares: routing, request accounting by endpoint, the admin
endpoints tests and benchmarks read (``/__sandbox/*``, behind ``Authorization: Bearer <token>``),
and injected faults (delays, dropped connections, pages from the CDN in front of the CRM, errors
the dialect renders in its CRM's own shape). A dialect supplies routes, authentication and its
errors.

Like a CRM's front end it refuses what it cannot read: an unparseable ``Content-Length`` (400), a
body past `ServerLimits.max_body` (413), a request whose head does not arrive within
``header_seconds`` (the connection is closed, so a slowloris client holds one thread for seconds
and no other client waits); and no answer ever carries Python's exception text: a handler that
fails answers the dialect's own generic 500.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from sandbox.faults import Fault, FaultPlan
from sandbox.holds import Hold, HoldError, Holds

__all__ = [
    "ADMIN_PREFIX",
    "Dialect",
    "LoopbackServer",
    "Request",
    "RequestLog",
    "Response",
    "Route",
    "ServerLimits",
    "edge_response",
    "json_response",
]

ADMIN_PREFIX = "/__sandbox"
_POLL_SECONDS = 0.05  # how soon stop() is noticed (http.server's default is 0.5 s)
_LOG = logging.getLogger(__name__)
# the page Salesforce's edge has answered 420 with (airbyte source-salesforce, rate_limiting.py)
_EDGE_PAGE = (
    "<!DOCTYPE html><html><head><title>We are setting things up</title></head><body>"
    "<p>We are setting things up. This process can take a few minutes. This page will "
    "auto-refresh when ready. If it takes too long, please contact support or visit our "
    "<a>status page</a> for more information.</p></body></html>"
)
_FRONT_PAGES = {400: "Bad Request", 413: "Request Entity Too Large"}


@dataclass(frozen=True)
class ServerLimits:
    """What the front end accepts: body bytes, seconds for a request's head (from its first
    byte, or from the connection's opening), and seconds a kept-alive connection may idle."""

    max_body: int = 150 * 1024 * 1024  # Bulk API 2.0's largest upload
    header_seconds: float = 5.0
    keep_alive_seconds: float = 60.0


@dataclass(frozen=True)
class Request:
    """One parsed HTTP request."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    params: Mapping[str, str] = field(default_factory=dict)  # captured from the route pattern

    def json(self) -> Any:
        """The body parsed as JSON (None when empty)."""
        return json.loads(self.body) if self.body else None

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query-string argument."""
        values = self.query.get(name)
        return values[0] if values else default

    def bearer(self) -> str | None:
        """The token of an ``Authorization: Bearer ...`` header."""
        value = self.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass
class Response:
    """An HTTP response; ``body`` is bytes already encoded."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json;charset=UTF-8"


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response."""
    return Response(
        status, json.dumps(payload, separators=(",", ":")).encode(), dict(headers or {})
    )


def edge_response(status: int, html: bool) -> Response:
    """An answer from the CDN in front of the CRM: an HTML page, or no body at all."""
    body = _EDGE_PAGE.encode() if html else b""
    return Response(status, body, content_type="text/html;charset=UTF-8")


def _front_page(status: int) -> Response:
    """The front end's own refusal of a request it cannot read (before any route sees it)."""
    title = f"{status} {_FRONT_PAGES[status]}"
    page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
    return Response(status, page.encode(), content_type="text/html;charset=UTF-8")


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    """A method and a path pattern (named groups are passed as ``params``), and its handler.

    ``endpoint`` names the route in the request log ("query", "composite/sobjects", ...);
    ``public`` routes (logins) skip authentication.
    """

    method: str
    pattern: str
    endpoint: str
    handler: Handler
    public: bool = False

    def match(self, method: str, path: str) -> Mapping[str, str] | None:
        """The captured parameters when this route serves ``method path``."""
        if method != self.method:
            return None
        found = re.fullmatch(self.pattern, path)
        return found.groupdict() if found else None


class Dialect(Protocol):
    """What a CRM dialect gives the server."""

    def routes(self) -> list[Route]:
        """Every route the dialect serves."""
        ...

    def authenticate(self, request: Request) -> Response | None:
        """None when the request may proceed, else the CRM's own 401 response."""
        ...

    def fault_response(self, fault: Fault, request: Request) -> Response:
        """An injected error (429, 5xx, expired session) in the CRM's own shape."""
        ...

    def not_found(self, request: Request) -> Response:
        """The CRM's answer to a path it does not serve."""
        ...

    def decorate(self, request: Request, response: Response) -> None:
        """Add the headers the CRM puts on every response (limits, rate-limit counters)."""
        ...


class RequestLog:
    """Requests counted by (method, endpoint); thread-safe."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def record(self, method: str, endpoint: str) -> int:
        """Count one request; the total so far."""
        with self._lock:
            self._counts[(method, endpoint)] += 1
            return self.total_unlocked()

    def total_unlocked(self) -> int:
        """All requests counted (call with the lock held, or accept a racy read)."""
        return sum(self._counts.values())

    def snapshot(self) -> dict[str, int]:
        """Counts as ``{"GET query": 12, ...}``."""
        with self._lock:
            return {
                f"{method} {endpoint}": n for (method, endpoint), n in sorted(self._counts.items())
            }

    def count(self, endpoint: str, method: str | None = None) -> int:
        """Requests to one endpoint (any method unless given)."""
        with self._lock:
            return sum(
                n for (m, e), n in self._counts.items() if e == endpoint and method in (None, m)
            )

    def total(self) -> int:
        """All requests counted."""
        with self._lock:
            return self.total_unlocked()

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self._counts.clear()


class LoopbackServer:
    """Serves one dialect on 127.0.0.1 in a background thread."""

    def __init__(
        self,
        dialect: Dialect,
        faults: FaultPlan | None = None,
        port: int = 0,
        *,
        admin_token: str | None = None,
        limits: ServerLimits | None = None,
        about: Callable[[], Mapping[str, Any]] = dict,
    ) -> None:
        self.dialect = dialect
        self.about = about
        self.faults = faults or FaultPlan()
        self.log = RequestLog()
        self.holds = Holds()
        self.limits = limits or ServerLimits()
        # without a token given, no one can use the admin routes
        self._admin_token = admin_token or secrets.token_urlsafe(24)
        self._routes = dialect.routes()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler_class(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LoopbackServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(_POLL_SECONDS,), name="sandbox", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        self._httpd.serve_forever()

    def stop(self) -> None:
        """Stop serving and release the port (again: nothing happens)."""
        if self._stopped:
            return
        self._stopped = True
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @contextmanager
    def running(self) -> Iterator[LoopbackServer]:
        """Serve for the duration of a ``with`` block."""
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def dispatch(self, request: Request) -> Response | None:
        """The response to a request, or None to drop the connection (an injected fault)."""
        if request.path.startswith(ADMIN_PREFIX):
            return self._admin(request)
        route, params = self._route(request)
        if route is None:
            return self.dialect.not_found(request)
        request = Request(
            request.method, request.path, request.query, request.headers, request.body, params
        )
        total = self.log.record(request.method, route.endpoint)
        ticket = self.holds.pick(route.endpoint, request.method)
        seen = f"{request.method} {request.path}"
        if not self.holds.wait(ticket, "before", seen):
            return None
        fault = self.faults.draw(route.endpoint, request.method, total)
        if fault is not None:
            if fault.kind == "drop":
                return None
            if fault.kind == "edge":
                return edge_response(fault.status, fault.html)
            if fault.kind == "slow":
                time.sleep(fault.seconds)
            else:
                return self.dialect.fault_response(fault, request)
        response = self._answer(route, request)
        return response if self.holds.wait(ticket, "after", seen) else None

    def _answer(self, route: Route, request: Request) -> Response:
        """The route's answer; a sandbox bug answers the CRM's generic 500, never its text."""
        try:
            denied = None if route.public else self.dialect.authenticate(request)
            response = denied or route.handler(request)
        except Exception:
            _LOG.exception("sandbox bug serving %s %s", request.method, request.path)
            return self.dialect.fault_response(Fault("status", 500), request)
        self.dialect.decorate(request, response)
        return response

    def admitted(self, request: Request) -> bool:
        """Whether a request bears the admin token (``Authorization: Bearer <token>``)."""
        return secrets.compare_digest(request.bearer() or "", self._admin_token)

    def _route(self, request: Request) -> tuple[Route | None, Mapping[str, str]]:
        """The first route matching the request, with its captured parameters."""
        for route in self._routes:
            params = route.match(request.method, request.path)
            if params is not None:
                return route, params
        return None, {}

    def _admin(self, request: Request) -> Response:
        """``GET /__sandbox/requests`` (counts), ``POST /__sandbox/reset`` (clear counts),
        ``GET /__sandbox/about`` (what is served: dialect, org, process), ``/__sandbox/hold``
        and ``/__sandbox/release`` (`sandbox.holds`); only with the token."""
        if not self.admitted(request):
            return json_response(401, {"message": "the sandbox's admin routes need its token"})
        if request.method == "GET" and request.path == f"{ADMIN_PREFIX}/about":
            return json_response(200, dict(self.about()))
        if request.method == "GET" and request.path == f"{ADMIN_PREFIX}/requests":
            return json_response(
                200, {"total": self.log.total(), "by_endpoint": self.log.snapshot()}
            )
        if request.method == "POST" and request.path == f"{ADMIN_PREFIX}/reset":
            self.log.reset()
            return json_response(200, {"total": 0})
        if request.path in (f"{ADMIN_PREFIX}/hold", f"{ADMIN_PREFIX}/release"):
            return self._hold(request)
        return json_response(404, {"message": f"no admin endpoint {request.method} {request.path}"})

    def _hold(self, request: Request) -> Response:
        """Arm a hold, say what it holds, or let the held request go."""
        if request.method == "GET" and request.path == f"{ADMIN_PREFIX}/hold":
            return json_response(200, self.holds.status())
        try:
            body = request.json()
            if request.method == "POST" and request.path == f"{ADMIN_PREFIX}/hold":
                self.holds.arm(Hold.from_json(body))
                return json_response(200, self.holds.status())
            if request.method == "POST":
                drop = bool((body or {}).get("drop", False))
                return json_response(200, {"released": self.holds.release(drop)})
        except (HoldError, ValueError, AttributeError) as error:
            return json_response(400, {"message": str(error)})
        return json_response(404, {"message": f"no admin endpoint {request.method} {request.path}"})


def _handler_class(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    """A request handler bound to ``server`` (http.server wants a class)."""
    limits = server.limits

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the clients reuse pooled connections
        # headers and body leave in two writes; with Nagle on, a kept-alive connection then
        # waits ~40 ms for the client's delayed ACK on every response
        disable_nagle_algorithm = True
        timeout = limits.keep_alive_seconds  # any read that waits longer ends the connection

        def setup(self) -> None:
            super().setup()
            self.requests_served = 0
            self.head_late = threading.Event()
            self.watchdog: threading.Timer | None = None

        def handle_one_request(self) -> None:
            """One request, whose head must arrive within ``header_seconds`` of its first byte
            (of the connection's opening for the first): a client trickling it is cut off."""
            first = self.requests_served == 0
            self.connection.settimeout(limits.header_seconds if first else self.timeout)
            try:
                if not self.rfile.peek(1):  # the client closed the connection
                    self.close_connection = True
                    return
                self.connection.settimeout(self.timeout)
                self.watchdog = threading.Timer(limits.header_seconds, self._cut_off)
                self.watchdog.daemon = True
                self.watchdog.start()
                super().handle_one_request()
            except OSError:  # idle too long, cut off, or the client left mid-answer
                self.close_connection = True
            finally:
                if self.watchdog is not None:
                    self.watchdog.cancel()
                self.requests_served += 1

        def _cut_off(self) -> None:
            """The head took too long: end the connection under the reading thread."""
            self.head_late.set()
            with suppress(OSError):  # already closed
                self.connection.shutdown(socket.SHUT_RDWR)

        def _serve(self) -> None:
            assert self.watchdog is not None
            self.watchdog.cancel()  # the head is in; a large body may take its time
            if self.head_late.is_set():  # cut off while reading it: the head may be partial
                self.close_connection = True
                return
            length = _content_length(self.headers.get("Content-Length"))
            if length is None or length > limits.max_body:
                self.close_connection = True  # the body's end is unknown, or it is not read
                self._send(_front_page(400 if length is None else 413))
                return
            split = urlsplit(self.path)
            request = Request(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            response = server.dispatch(request)
            if response is None:
                self.close_connection = True
                self.connection.close()
                return
            self._send(response)

        def _send(self, response: Response) -> None:
            self.send_response(response.status)
            headers = {"Content-Type": response.content_type, **response.headers}
            if self.close_connection:
                headers["Connection"] = "close"
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the request log counts requests; stderr stays for the ready line."""

    return _Handler


def _content_length(value: str | None) -> int | None:
    """The body's length in bytes (0 without the header); None when it cannot be read."""
    if value is None:
        return 0
    text = value.strip()
    return int(text) if text.isdigit() and text.isascii() else None
