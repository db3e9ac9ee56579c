"""The simulator framework: routing, a movable clock, fault injection, a request log.

A vendor simulator subclasses `Simulator`, declares routes with `@route`, keeps its data
in plain attributes, and overrides `authenticate` and `error_body`. `start()` serves it on
a free loopback port in a background thread; tests drive it through its methods
(`advance`, `faults`, the data) while the source talks to it over real HTTP.
"""

from __future__ import annotations

import contextlib
import email.utils
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

# The malformed records that every simulator can serve, one of each kind, with
# `add_bad_records() -> {kind: id of the record as the source names it}` (DESIGN.md: a bad
# record never fails a run and is never dropped silently). Real APIs send each of these now
# and then; tests load an account holding all of them and expect every one kept or named.
BAD_RECORD_KINDS = (
    "number_as_string",       # a documented number sent as text ("293")
    "bad_timestamp",          # an unparsable instant ("2026-13-45T25:61:00Z", "yesterday")
    "empty_timestamp",        # an instant sent as ""
    "object_as_json_string",  # a documented object sent as its JSON text
    "type_change",            # a field whose type differs from the other records'
    "segment_null_text",      # a transcript segment whose text is null
    "segment_no_start",       # a transcript segment without its start time
)


def vendor_instant(value: datetime, style: int = 0) -> str:
    """An instant in one of the shapes the APIs really send: 0 `Z` with milliseconds,
    1 a `+02:00` offset, 2 `Z` without a fraction."""
    value = value.astimezone(UTC)
    if style == 1:
        return (value + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+02:00"
    if style == 2:
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class SimClock:
    """Real time plus an offset that tests move forward (`advance(days=1)`)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._offset = timedelta(0)
        if start is not None:
            self._offset = start - datetime.now(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, **delta: float) -> None:
        with self._lock:
            self._offset += timedelta(**delta)


@dataclass
class Faults:
    """Fault rates (0–1) applied to every request, from a seeded RNG, plus scripted ones.

    `script` is a list of fault names consumed one per request before the random draw
    ("5xx", "429", "drop", "truncate", "slow", or None for a clean answer).
    """

    error_5xx: float = 0.0
    rate_429: float = 0.0
    drop: float = 0.0
    truncate: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 2.0
    retry_after: str = "0"
    seed: int = 0
    script: list[str | None] = field(default_factory=list)
    exempt: Callable[[str], bool] = lambda path: False

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def draw(self, path: str) -> str | None:
        with self._lock:
            if self.script:
                return self.script.pop(0)
            if self.exempt(path):
                return None
            roll = self._rng.random()
        for name, rate in (("5xx", self.error_5xx), ("429", self.rate_429), ("drop", self.drop),
                           ("truncate", self.truncate), ("slow", self.slow)):
            if roll < rate:
                return name
            roll -= rate
        return None


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    params: dict[str, str] = field(default_factory=dict)  # from the route pattern
    principal: Any = None  # what `authenticate` returned


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class HttpError(Exception):
    """Raised by handlers: becomes an error answer in the vendor's shape."""

    def __init__(self, status: int, message: str, code: str | None = None,
                 headers: dict[str, str] | None = None, extra: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers = headers or {}
        self.extra = extra or {}


def route(method: str, pattern: str) -> Callable:
    """Marks a simulator method as the handler of `method` + path regex `pattern`."""

    def mark(fn: Callable) -> Callable:
        fn._route = (method, re.compile(f"^{pattern}$"))
        return fn

    return mark


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, str]
    status: int
    fault: str | None


class Simulator:
    """Base of every vendor simulator."""

    name = "simulator"

    def __init__(self, *, seed: int = 0, clock: SimClock | None = None,
                 latency_seconds: float = 0.0) -> None:
        self.seed = seed
        self.latency_seconds = latency_seconds  # added to every answer, like a real network
        self.rng = random.Random(seed)
        self.clock = clock or SimClock()
        self.faults = Faults()
        self.log: list[LoggedRequest] = []
        self.lock = threading.RLock()
        self._routes = [
            getattr(self, n)._route + (getattr(self, n),)
            for n in dir(type(self))
            if callable(getattr(type(self), n, None)) and hasattr(getattr(type(self), n), "_route")
        ]
        self._server: ThreadingHTTPServer | None = None
        self.base_url = ""

    # ---------------------------------------------------------------- to override
    def authenticate(self, request: Request) -> Any:
        """Returns the principal for the request or raises HttpError(401)."""
        return None

    def error_body(self, error: HttpError) -> Any:
        return {"error": {"code": error.code, "message": error.message}}

    def source_config(self) -> dict[str, Any]:
        """The source arguments (base_url and credentials) that point a source at this simulator."""
        raise NotImplementedError

    def before_handle(self, request: Request) -> dict[str, str]:
        """Rate limiting hook: raise HttpError(429) or return headers to add."""
        return {}

    # ---------------------------------------------------------------- helpers
    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, **delta: float) -> None:
        self.clock.advance(**delta)

    def requests(self, method: str | None = None, pattern: str | None = None) -> list[LoggedRequest]:
        """Logged requests matching a method and a path regex."""
        rx = re.compile(pattern) if pattern else None
        with self.lock:
            return [r for r in self.log if (method is None or r.method == method)
                    and (rx is None or rx.search(r.path))]

    def status_counts(self) -> Counter:
        with self.lock:
            return Counter(r.status for r in self.log)

    def clear_log(self) -> None:
        with self.lock:
            self.log.clear()

    # ---------------------------------------------------------------- dispatch
    def dispatch(self, request: Request) -> Response:
        extra_headers: dict[str, str] = {}
        try:
            request.principal = self.authenticate(request)
            extra_headers = self.before_handle(request)
            for method, rx, handler in self._routes:
                match = rx.match(request.path)
                if match and method == request.method:
                    request.params = match.groupdict()
                    result = handler(request)
                    response = result if isinstance(result, Response) else Response(200, result)
                    response.headers = {**extra_headers, **response.headers}
                    return response
            raise HttpError(404, f"no route for {request.method} {request.path}", "not_found")
        except HttpError as err:
            # an error answer carries the rate-limit headers too, as the real APIs' do
            return Response(err.status, self.error_body(err), {**extra_headers, **err.headers})

    # ---------------------------------------------------------------- serving
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serves on a free loopback port in a daemon thread; returns the base URL."""
        server = _QuietServer((host, port), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        # a short poll interval: `stop()` waits up to one interval (0.5 s by default, per test)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         name=f"sim-{self.name}", daemon=True).start()
        self.base_url = f"http://{host}:{server.server_address[1]}"
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up (a killed run, a timed-out request) are normal here, not errors."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


def _make_handler(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # headers and body leave in separate writes: without this, Nagle's algorithm and
            # the client's delayed ACK add ~40 ms to every keep-alive answer
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def date_time_string(self, timestamp: float | None = None) -> str:
            # the `Date` header tells the simulator's (movable) time, as a real server's tells its own
            return email.utils.formatdate(sim.now().timestamp() if timestamp is None else timestamp,
                                          usegmt=True)

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            ctype = self.headers.get("Content-Type", "")
            if raw and "json" in ctype:
                body = orjson.loads(raw)
            elif raw:
                body = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
            else:
                body = None
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            request = Request(self.command, parts.path, query, dict(self.headers.items()), body)
            fault = sim.faults.draw(parts.path)
            if fault == "5xx":
                self._send(Response(503, {"message": "injected failure"}), request, fault)
                return
            if fault == "429":
                self._send(Response(429, {"message": "injected rate limit"},
                                    {"Retry-After": sim.faults.retry_after}), request, fault)
                return
            if sim.latency_seconds:
                time.sleep(sim.latency_seconds)
            if fault == "slow":
                time.sleep(sim.faults.slow_seconds)
            response = sim.dispatch(request)
            if fault == "drop":
                self._log(request, response.status, fault)
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._send(response, request, fault)

        def _log(self, request: Request, status: int, fault: str | None) -> None:
            with sim.lock:
                sim.log.append(LoggedRequest(request.method, request.path, request.query, status, fault))

        def _send(self, response: Response, request: Request, fault: str | None) -> None:
            self._log(request, response.status, fault)
            # bytes are sent as they are (an encoded body); anything else as JSON
            payload = response.body if isinstance(response.body, bytes) else (
                b"" if response.body is None else orjson.dumps(response.body))
            self.send_response(response.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            if fault == "truncate":
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    return Handler
