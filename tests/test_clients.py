"""Which client sends to a target (mlopsportal.lib.clients), and aiohttp's side of it: through a proxy, over TLS, and
its failures counted by the stress engine as the lean client's are. Against small servers and a proxy on 127.0.0.1."""
import asyncio
import ssl
from urllib.parse import urlsplit

import pytest

from deployments.verification import stress as loadtest
from mlopsportal.lib import clients, http1
from tests.fakeaml import certs
from tests.test_http1 import OK, Canned, free_port

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch):
    """Each test sets the proxy variables it means; none come from the machine running the tests."""
    for name in PROXY_VARIABLES + ("REQUESTS_CA_BUNDLE",):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def tls(tmp_path):
    """A self-signed certificate (for 127.0.0.1 and *.blob.core.windows.net): (server context, certificate path)."""
    cert, key = certs.generate(tmp_path)
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    return server_side, str(cert)


class Proxy:
    """An http proxy for tests: CONNECT opens a tunnel to `upstream_port` on 127.0.0.1 whatever host is asked for
    (unless `refuse` is given, which it answers instead), and a plain request goes on to the same port as it came.
    Records the head of the first request on each connection."""

    def __init__(self, upstream_port: int, refuse: bytes = b""):
        self.upstream_port, self.refuse, self.heads = upstream_port, refuse, []

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def _handle(self, reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        if self.refuse:
            writer.write(self.refuse)
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        if head.startswith(b"CONNECT "):
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            up_writer.write(head)

        async def pipe(source, sink):
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except ConnectionError:
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def port_of(server: Canned) -> int:
    return urlsplit(server.url).port


def kind(url):
    return clients.client_for(url).kind


def header_lines(request: bytes) -> set[bytes]:
    return set(request.split(b"\r\n\r\n")[0].split(b"\r\n"))


def test_loopback_plain_http_goes_to_the_lean_client_and_the_rest_to_aiohttp(monkeypatch):
    for url in ("http://127.0.0.1:8100/endpoints/e/score", "http://127.5.0.1/score", "http://localhost:9/score",
                "http://LOCALHOST:9/score", "http://[::1]:9/score"):
        assert kind(url) == clients.LEAN, url
    for url in ("https://127.0.0.1:8443/score", "https://titanic.westeurope.inference.ml.azure.com/score",
                "http://scoring.example/score", "http://192.0.2.7/score", "http://[2001:db8::1]/score"):
        assert kind(url) == clients.AIOHTTP, url
    assert isinstance(clients.client_for("http://127.0.0.1:9/score").sender(), clients.LeanSender)
    assert isinstance(clients.client_for("http://scoring.example/score").sender(), clients.AiohttpSender)

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")  # for https only: loopback http stays lean
    assert kind("http://127.0.0.1:9/score") == clients.LEAN and kind("https://127.0.0.1:9/score") == clients.AIOHTTP
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.corp:3128")  # a proxy applies to loopback too, unless exempted
    assert kind("http://127.0.0.1:9/score") == clients.AIOHTTP
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    assert kind("http://127.0.0.1:9/score") == clients.LEAN and kind("http://localhost:9/score") == clients.LEAN
    assert kind("http://scoring.example/score") == clients.AIOHTTP


def test_what_cannot_be_sent_is_refused_before_sending(monkeypatch):
    for url in ("ftp://host/score", "/score", "http:///score"):
        with pytest.raises(ValueError, match="not an http"):
            clients.client_for(url)
    for url in ("http://127.0.0.1:99999/score", "https://host:99999/score"):
        with pytest.raises(ValueError, match="not a usable"):
            clients.client_for(url)
    for url in ("http://127.0.0.1/score", "https://scoring.example/score"):  # both clients' headers are checked
        with pytest.raises(ValueError, match="cannot be sent"):
            clients.client_for(url, {"Authorization": "Bearer k\r\nX-Evil: 1"})
        with pytest.raises(ValueError, match="set by the client"):
            clients.client_for(url, {"Host": "elsewhere"})
    for proxy in ("socks5://proxy.corp:1080", "proxy.corp:3128"):  # aiohttp would speak HTTP to either
        monkeypatch.setenv("HTTP_PROXY", proxy)
        with pytest.raises(ValueError, match=r"only http://\[user:pass@\]host:port proxies can be used"):
            clients.client_for("http://scoring.example/score")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/bundle.pem")
    with pytest.raises(ValueError, match="REQUESTS_CA_BUNDLE='/nonexistent/bundle.pem' cannot be read"):
        clients.client_for("https://scoring.example/score")


def test_a_stress_run_that_cannot_send_says_why_instead_of_crashing(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "socks5://proxy.corp:1080")
    result = asyncio.run(loadtest.run(loadtest.Plan(url="http://scoring.example/score", payloads=[b"{}"],
                                                    concurrency=2, request_count=10)))
    summary = result.summary()
    assert summary["requests"] == 0 and list(summary["by_exception"]) == [
        "cannot send: only http://[user:pass@]host:port proxies can be used, not 'socks5://proxy.corp:1080' "
        "(HTTP_PROXY)"]
    assert loadtest.check_thresholds(summary, p95_ms_max=100, error_rate_max=0, min_rps=None) == ["no request was made"]


def test_plain_http_through_the_proxy_goes_by_aiohttp_and_no_proxy_sends_it_direct_by_the_lean_client(monkeypatch):
    async def go():
        async with Canned([OK] * 6, close=False) as server, Proxy(port_of(server)) as proxy:
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
            plan = loadtest.Plan(url=f"{server.url}?x=1", payloads=[b"{}"], concurrency=1, request_count=3,
                                 headers={"Authorization": "Bearer k"})
            proxied = await loadtest.run(plan)
            through_proxy = len(proxy.heads)
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
            direct = await loadtest.run(plan)
        return proxied, direct, through_proxy, proxy.heads, server.requests, port_of(server)

    proxied, direct, through_proxy, heads, requests, port = asyncio.run(go())
    assert proxied.by_status == {"200": 3} and direct.by_status == {"200": 3}
    assert through_proxy == len(heads) == 1  # one connection, kept alive, and nothing more once NO_PROXY exempts
    assert heads[0].startswith(f"POST http://127.0.0.1:{port}/score?x=1 HTTP/1.1\r\n".encode())
    by_proxy, by_lean = [r for _, r in requests[:3]], [r for _, r in requests[3:]]
    assert all(any(line.startswith(b"User-Agent: Python/") and b"aiohttp/" in line for line in header_lines(r))
               and b"Authorization: Bearer k" in header_lines(r) for r in by_proxy)
    assert all(r.startswith(b"POST /score?x=1 HTTP/1.1\r\n") and not any(
        line.lower().startswith(b"user-agent") for line in header_lines(r)) for r in by_lean)


def test_https_goes_through_the_proxy_in_a_tunnel_with_the_proxys_credentials(tls, monkeypatch):
    server_side, cert = tls
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)
    url = "https://scoring.blob.core.windows.net/score"  # a name the certificate carries; only the proxy resolves it

    async def go(**proxy):
        async with Canned([OK] * 2, tls=server_side, close=False) as server, Proxy(port_of(server), **proxy) as tunnel:
            monkeypatch.setenv("HTTPS_PROXY", f"http://eve:p%40ss@127.0.0.1:{tunnel.port}")
            result = await loadtest.run(loadtest.Plan(url=url, payloads=[b"{}"], concurrency=1, request_count=2,
                                                      headers={"Authorization": "Bearer k"}))
            return result, tunnel.heads, server.requests

    assert clients.client_for(url).kind == clients.AIOHTTP
    result, heads, requests = asyncio.run(go())
    assert result.by_status == {"200": 2} and len(requests) == 2
    assert heads[0].startswith(b"CONNECT scoring.blob.core.windows.net:443 HTTP/1.1\r\n")
    assert b"Proxy-Authorization: Basic ZXZlOnBAc3M=" in header_lines(heads[0])  # eve:p@ss, to the proxy only
    assert b"Proxy-Authorization" not in requests[0][1] and b"Authorization: Bearer k" in header_lines(requests[0][1])

    refused, heads, requests = asyncio.run(go(refuse=b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"))
    assert refused.by_exception == {"ConnectError": 2} and not requests and len(heads) == 2


def test_tls_is_verified_against_the_system_store_and_requests_ca_bundle(tls, monkeypatch):
    server_side, cert = tls

    async def go():
        async with Canned([OK], tls=server_side) as server:
            sender = clients.client_for(server.url).sender()
            try:
                return await sender.post(b"{}")
            finally:
                await sender.aclose()

    with pytest.raises(http1.ConnectError, match="failed the TLS handshake"):  # the system's store does not know it
        asyncio.run(go())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)
    assert asyncio.run(go()) == (200, "application/json", b'{"prediction": 1}')


def test_aiohttps_failures_are_counted_as_the_lean_clients_are(tls, monkeypatch):
    """The same broken answers as tests/test_http1.py gives the lean client, over TLS so that aiohttp sends them."""
    server_side, cert = tls
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)
    monkeypatch.setattr(http1, "MAX_RESPONSE_BYTES", 1024)

    async def run(answers, *, timeout_s=5.0, **server):
        async with Canned(answers, tls=server_side, **server) as canned:
            return await loadtest.run(loadtest.Plan(url=canned.url, payloads=[b"{}"], concurrency=1,
                                                    request_count=len(answers), timeout_s=timeout_s))

    def failures(answers, **server):
        return dict(asyncio.run(run(answers, **server)).by_exception)

    mixed = asyncio.run(run([OK, OK, b"garbage\r\n\r\n"], close=False))
    assert mixed.by_status == {"200": 2} and mixed.by_exception == {"MalformedResponse": 1} and mixed.failures == 1
    assert failures([b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"]) == {"ServerDisconnected": 1}
    assert failures([b""]) == {"ServerDisconnected": 1}
    assert failures([[b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n", b"x" * 4096]]) == {"ResponseTooLarge": 1}
    assert failures([[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"800\r\n" + b"x" * 2048 + b"\r\n",
                      b"0\r\n\r\n"]]) == {"ResponseTooLarge": 1}  # no length said beforehand
    assert failures([[b"HTTP/1.1 200 OK\r\nX-Pad: ", b"a" * 70_000, b"\r\n\r\n"]]) == {"ResponseTooLarge": 1}
    assert failures([OK], hold=2, timeout_s=0.3) == {"TimeoutError": 1}
    refused = asyncio.run(loadtest.run(loadtest.Plan(url=f"https://127.0.0.1:{free_port()}/score", payloads=[b"{}"],
                                                     concurrency=2, request_count=4)))
    assert refused.by_exception == {"ConnectError": 4} and refused.failures == 4
