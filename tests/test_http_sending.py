"""The sender under the HTTP layer (`sources/_common/sending.py`): what it skips of
`httpx.Client` must not change what a request does. Real HTTP on loopback throughout."""

from __future__ import annotations

import gzip
import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from simulators.base import Request, Response, route
from sources._common.auth import BearerAuth
from sources._common.errors import AuthError
from sources._common.http import ApiClient, HttpSettings
from sources._common.report import RunReport
from tests.test_http_layer import FAST, TOKEN, TinySim, client_for


class EchoSim(TinySim):
    """The HTTP layer's small simulator (its token), with answers the sender must read."""

    name = "echo"

    @route("GET", "/echo")
    def echo(self, request: Request):
        return {"query": request.query, "user_agent": request.headers.get("User-Agent"),
                "accept": request.headers.get("Accept")}

    @route("GET", "/gzipped")
    def gzipped(self, request: Request):
        body = gzip.compress(orjson.dumps({"items": [{"id": i} for i in range(50)]}))
        return Response(200, body, {"Content-Encoding": "gzip"})

    @route("GET", "/moved")
    def moved(self, request: Request):
        return Response(301, None, {"Location": f"{self.base_url}/echo?moved=yes"})

    @route("GET", "/unchanged")
    def unchanged(self, request: Request):
        return Response(304, None)

    @route("POST", "/form")
    def form(self, request: Request):
        return {"form": request.body}


@pytest.fixture
def sim(start_sim):
    return start_sim(EchoSim)


def test_the_client_headers_params_and_auth_are_sent(sim):
    with client_for(sim) as client:
        body = client.get("echo", params={"page": 2, "q": "a b&c", "skip": None}).body
    assert body == {"query": {"page": "2", "q": "a b&c"}, "user_agent": "meeting-elt",
                    "accept": "application/json"}


def test_a_gzip_encoded_body_is_decoded(sim):
    with client_for(sim) as client:
        assert client.get("gzipped").body == {"items": [{"id": i} for i in range(50)]}


def test_a_redirect_is_followed_with_the_credentials_on_the_same_host(sim):
    with client_for(sim) as client:
        answer = client.get("moved")
    assert answer.status == 200 and answer.body["query"] == {"moved": "yes"}
    assert [entry.path for entry in sim.log] == ["/moved", "/moved", "/echo"]  # sent again through httpx


def test_a_3xx_without_a_location_is_answered_once_as_it_is(sim):
    with client_for(sim) as client:
        answer = client.request("GET", "unchanged", accept=lambda a: a.status == 304)
    assert answer.status == 304
    assert [entry.path for entry in sim.log] == ["/unchanged"]


def test_a_wrong_token_is_still_an_auth_error(sim):
    client = ApiClient(sim.base_url, BearerAuth("tok_wrong_000000000"), RunReport("test"), HttpSettings(**FAST))
    with client, pytest.raises(AuthError) as raised:
        client.get("echo")
    assert "tok_wrong" not in str(raised.value)


class CountingTransport(httpx.HTTPTransport):
    """A user's own transport (here a real one that counts): requests must go through it."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        return super().handle_request(request)


def test_a_transport_of_the_users_own_carries_every_request(sim):
    transport = CountingTransport()
    client = ApiClient(sim.base_url, BearerAuth(TOKEN), RunReport("test"), HttpSettings(**FAST),
                       transport=transport)
    with client:
        assert client.get("echo", params={"n": 1}).body["query"] == {"n": "1"}
        assert client.request("POST", "form", data={"a": "1"}).status == 200
    assert transport.sent == 2


class _ForwardProxy(BaseHTTPRequestHandler):
    """A plain HTTP forward proxy: the request line carries the absolute URL."""

    forwarded: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        target = urlsplit(self.path)
        type(self).forwarded.append(self.path)
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
        upstream.request("GET", target.path + (f"?{target.query}" if target.query else ""), headers=headers)
        answer = upstream.getresponse()
        payload = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection"):
                self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()

    def log_message(self, *args: object) -> None:
        pass


def test_a_proxy_from_the_environment_is_used(sim, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ForwardProxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _ForwardProxy.forwarded = []
    try:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
        with client_for(sim) as client:
            assert client.get("echo", params={"via": "proxy"}).body["query"] == {"via": "proxy"}
        assert _ForwardProxy.forwarded == [f"{sim.base_url}/echo?via=proxy"]
    finally:
        server.shutdown()
        server.server_close()
