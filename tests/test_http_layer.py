"""The shared HTTP layer, against a small simulator over real HTTP on loopback."""

from __future__ import annotations

import logging
import time

import pytest

from simulators.base import HttpError, Request, Response, Simulator, route
from sources._common.auth import BearerAuth
from sources._common.concurrency import map_ordered
from sources._common.errors import (
    AuthError,
    BudgetExhausted,
    NotFoundError,
    PaginationLoop,
    RateLimitError,
    ScopeError,
    TransientError,
)
from sources._common.http import ApiClient, HttpSettings, _Retryable, parse_retry_after
from sources._common.pacing import Pacer
from sources._common.paginators import (
    CursorPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageNumberPaginator,
)
from sources._common.redaction import redact, redact_url, register_secret
from sources._common.report import RunReport

TOKEN = "tok_secret_0123456789"
FAST = {"backoff_initial_seconds": 0.001, "backoff_max_seconds": 0.01}


class TinySim(Simulator):
    name = "tiny"

    def __init__(self, n_items: int = 23, **kw) -> None:
        super().__init__(**kw)
        self.items = [{"id": i} for i in range(n_items)]
        self.loop_cursor = False

    def authenticate(self, request: Request):
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            raise HttpError(401, "bad token")
        return "user"

    @route("GET", "/ok")
    def ok(self, request: Request):
        return {"ok": True}

    @route("GET", "/forbidden")
    def forbidden(self, request: Request):
        raise HttpError(403, "Token does not have the 'transcripts' scope")

    @route("GET", "/missing")
    def missing(self, request: Request):
        raise HttpError(404, "nope")

    @route("GET", "/limited")
    def limited(self, request: Request):
        return Response(429, {"error": {"retry_after": 0.3}})

    @route("GET", "/long-limit")
    def long_limit(self, request: Request):
        return Response(429, {}, {"Retry-After": "3600"})

    @route("GET", "/cursor")
    def cursor(self, request: Request):
        start = int(request.query.get("cursor") or 0)
        page = self.items[start:start + 5]
        nxt = None if start + 5 >= len(self.items) else ("0" if self.loop_cursor else str(start + 5))
        return {"data": page, "next": nxt}

    @route("GET", "/offset")
    def offset(self, request: Request):
        off, lim = int(request.query["offset"]), int(request.query["limit"])
        return {"data": self.items[off:off + lim], "total": len(self.items)}

    @route("GET", "/pages")
    def pages(self, request: Request):
        page, size = int(request.query["page"]), int(request.query["size"])
        chunk = self.items[(page - 1) * size: page * size]
        nxt = f"{self.base_url}/pages?page={page + 1}&size={size}" if page * size < len(self.items) else None
        return {"results": chunk, "next": nxt}


@pytest.fixture
def sim(start_sim):
    return start_sim(TinySim)


def client_for(sim: Simulator, **settings) -> ApiClient:
    return ApiClient(sim.base_url, BearerAuth(TOKEN), RunReport("test"),
                     HttpSettings(**{**FAST, **settings}))


@pytest.mark.parametrize("fault", ["5xx", "429", "drop", "truncate"])
def test_retries_transient_faults_then_succeeds(sim, fault):
    sim.faults.script = [fault, fault]
    client = client_for(sim)
    assert client.get("ok").body == {"ok": True}
    assert [r.fault for r in sim.log] == [fault, fault, None]
    assert client.report.retries == 2


def test_retries_timeouts(sim):
    sim.faults.slow_seconds = 0.5
    sim.faults.script = ["slow"]
    client = client_for(sim, timeout_seconds=0.2)
    assert client.get("ok").body == {"ok": True}
    assert client.report.status_counts["timeout"] == 1


def test_gives_up_after_max_retries_with_a_redacted_message(sim):
    sim.faults.script = ["5xx"] * 3
    client = client_for(sim, max_retries=2)
    with pytest.raises(TransientError) as err:
        client.get("ok", params={"token": "leaky-query-secret"})
    assert "leaky-query-secret" not in str(err.value)
    assert len(sim.log) == 3


def test_honours_retry_after_from_the_body(sim):
    client = client_for(sim, max_retries=1)
    started = time.monotonic()
    with pytest.raises(RateLimitError):
        client.get("limited")
    assert time.monotonic() - started >= 0.3
    assert len(sim.log) == 2


def test_caps_retry_after_and_stops_cleanly(sim):
    client = client_for(sim, retry_after_max_seconds=5)
    started = time.monotonic()
    with pytest.raises(RateLimitError) as err:
        client.get("long-limit")
    assert time.monotonic() - started < 2
    assert err.value.retry_after == pytest.approx(3600)
    assert len(sim.log) == 1


def test_backoff_is_capped_exponential_with_full_jitter_and_retry_after_wins(sim):
    client = client_for(sim, backoff_initial_seconds=1, backoff_max_seconds=5, retry_after_max_seconds=30)
    for attempt, cap in ((1, 1), (2, 2), (3, 4), (4, 5), (9, 5)):
        delays = [client._delay(_Retryable("5xx"), attempt) for _ in range(500)]
        assert 0 <= min(delays) < cap * 0.2 and cap * 0.8 < max(delays) <= cap, (attempt, cap)
    # the server's Retry-After, capped, plus at most a tenth of the backoff as jitter
    told = [client._delay(_Retryable("429", retry_after=7), 3) for _ in range(200)]
    assert min(told) >= 7 and max(told) <= 7 + 0.4
    assert 30 <= client._delay(_Retryable("429", retry_after=3600), 1) <= 30.1


def test_parse_retry_after_accepts_seconds_and_http_dates():
    assert parse_retry_after("7") == 7
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past
    assert parse_retry_after("soon") is None


def test_wrong_token_raises_auth_error_without_the_token(sim, caplog):
    client = ApiClient(sim.base_url, BearerAuth("wrong_token_abcdef"), RunReport("t"), HttpSettings(**FAST))
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthError) as err:
        client.get("ok")
    assert "wrong_token_abcdef" not in str(err.value) + caplog.text
    assert "secrets.toml" in str(err.value)
    assert len(sim.log) == 1  # never retried


def test_403_and_404_are_typed_and_not_retried(sim):
    client = client_for(sim)
    with pytest.raises(ScopeError):
        client.get("forbidden")
    with pytest.raises(NotFoundError):
        client.get("missing")
    assert len(sim.log) == 2


def test_an_accepted_error_answer_is_returned_not_raised_nor_retried(sim):
    client = client_for(sim, max_retries=1)
    answer = client.get("missing", accept=lambda a: a.status == 404)
    assert answer.status == 404 and len(sim.log) == 1
    with pytest.raises(NotFoundError):  # without it, the same answer is the typed error
        client.get("missing")
    # an answer it does not accept keeps its retries and its error
    with pytest.raises(RateLimitError):
        client.get("limited", accept=lambda a: a.status == 404)
    assert len(sim.log) == 4


def test_request_budget_stops_cleanly(sim):
    client = client_for(sim, max_requests=2)
    client.get("ok")
    client.get("ok")
    with pytest.raises(BudgetExhausted):
        client.get("ok")
    assert len(sim.log) == 2


def test_cursor_pagination_reads_every_page_once(sim):
    client = client_for(sim)
    pages = list(client.paginate("cursor", paginator=CursorPaginator("next", "cursor"), items_path="data"))
    assert [i["id"] for p in pages for i in p.items] == list(range(23))
    assert len(sim.log) == 5


def test_cursor_pagination_detects_a_loop(sim):
    sim.loop_cursor = True
    client = client_for(sim)
    with pytest.raises(PaginationLoop):
        list(client.paginate("cursor", paginator=CursorPaginator("next", "cursor"), items_path="data"))


def test_offset_pagination_stops_at_total(start_sim):
    sim = start_sim(TinySim, n_items=20)
    client = client_for(sim)
    pages = list(client.paginate("offset", paginator=OffsetPaginator(5, total_path="total"), items_path="data"))
    assert sum(len(p.items) for p in pages) == 20
    assert len(sim.log) == 4  # no empty fifth page


def test_page_number_and_next_url_pagination(sim):
    client = client_for(sim)
    by_number = list(client.paginate("pages", paginator=PageNumberPaginator(page_size=10),
                                     items_path="results"))
    sim.clear_log()
    by_url = list(client.paginate("pages", paginator=NextUrlPaginator("next"), items_path="results",
                                  params={"page": 1, "size": 10}))
    assert [len(p.items) for p in by_number] == [10, 10, 3]
    assert [i for p in by_url for i in p.items] == [i for p in by_number for i in p.items]
    assert len(sim.log) == 3


def test_pacer_spaces_requests_to_the_configured_rate():
    now = [0.0]
    sleeps = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    pacer = Pacer(60, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        pacer.acquire()
    assert now[0] == pytest.approx(4.0)  # 60/min: one a second after the first


def test_pacer_holds_after_a_retry_after():
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    pacer = Pacer(None, clock=lambda: now[0], sleep=sleep)
    pacer.hold(2.5)
    pacer.acquire()
    assert now[0] == pytest.approx(2.5)


def test_redaction_masks_secrets_and_sensitive_query_params():
    register_secret("super-secret-value-42")
    assert "super-secret-value-42" not in redact("failed with super-secret-value-42 inside")
    assert "abc123xyz" not in redact_url("https://h/x?api_key=abc123xyz&page=2")
    assert "page=2" in redact_url("https://h/x?api_key=abc123xyz&page=2")
    assert "hunter2" not in redact_url("https://user:hunter2@h/x")
    assert "Bearer ***" in redact("Authorization: Bearer mt_abcdef123456")


def test_an_answers_url_is_redacted_when_read(sim):
    answer = client_for(sim).get("ok?api_key=leaky-path-key-77&page=2")
    assert answer.body == {"ok": True}
    assert "leaky-path-key-77" not in answer.url and "page=2" in answer.url
    assert "leaky-path-key-77" not in repr(answer)


def test_map_ordered_keeps_order_and_hands_back_exceptions():
    def work(n: int) -> int:
        time.sleep(0.01 * (5 - n % 5))
        if n == 3:
            raise ValueError("three")
        return n * 10

    results = list(map_ordered(work, range(8), workers=4))
    assert [item for item, _ in results] == list(range(8))
    assert isinstance(results[3][1], ValueError)
    assert results[7][1] == 70


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "no-such-host.invalid"])
def test_a_host_that_never_answers_fails_within_seconds_not_after_every_retry(host):
    from sources._common.errors import UnreachableError

    base = f"http://{host.format(port=_closed_port())}"
    client = ApiClient(base, None, RunReport("t"), HttpSettings(max_retries=8, backoff_initial_seconds=0.5,
                                                               backoff_max_seconds=30))
    started = time.monotonic()
    with pytest.raises(UnreachableError) as caught:
        client.get("anything")
    assert time.monotonic() - started < 10
    assert "cannot reach" in str(caught.value) and "check base_url" in str(caught.value)


def test_a_dropped_connection_after_the_host_answered_is_retried_as_usual(sim):
    sim.faults.script = [None, "drop", "drop", "drop"]
    client = client_for(sim, max_retries=4)
    client.get("ok")
    assert client.get("ok").status == 200  # three drops, then an answer: not "unreachable"


def test_a_cli_run_against_a_closed_port_exits_1_in_seconds(tmp_path):
    import subprocess
    import sys

    env = {"SOURCES__MEETRIC_PARTNER__BASE_URL": f"http://127.0.0.1:{_closed_port()}",
           "SOURCES__MEETRIC_PARTNER__API_TOKEN": "mt_x", "PATH": "/usr/bin:/bin",
           "RUNTIME__DLTHUB_TELEMETRY": "false"}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "meetric_partner",
                           "--duckdb-file", str(tmp_path / "w.duckdb"), "--pipelines-dir", str(tmp_path / "p")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert time.monotonic() - started < 30  # python start-up and dlt import included
    assert "cannot reach 127.0.0.1" in proc.stdout


def test_clients_share_one_tls_context_built_as_httpx_builds_it(monkeypatch, tmp_path):
    """Building a TLS context loads the CA bundle (tens of ms with SSL_CERT_FILE set); a run
    builds a client per source, account and checkpoint round, so they share one."""
    import ssl

    import sources._common.http as http_module

    monkeypatch.setattr(http_module, "_SSL_CONTEXT", None)
    clients = [ApiClient("https://example.invalid", None, RunReport("t"), HttpSettings(**FAST)) for _ in range(2)]
    try:
        contexts = [c._http._transport._pool._ssl_context for c in clients]
        assert isinstance(contexts[0], ssl.SSLContext) and contexts[0] is contexts[1]
        assert contexts[0].verify_mode == ssl.CERT_REQUIRED and contexts[0].check_hostname
        assert contexts[0].cert_store_stats()["x509_ca"] > 0  # the CAs were loaded
    finally:
        for c in clients:
            c.close()
