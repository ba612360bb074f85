"""Which HTTP client sends to a scoring URL: one choice per target, the same for its functional tests and its stress
runs (`client_for`).

- A plain-http URL on a loopback address (127.0.0.0/8, ::1, localhost) that no proxy of the environment applies to
  goes through the lean client (mlopsportal.lib.http1): on the local backend the client shares a small machine with
  the server under test, and there its lower CPU per request is what keeps the stress engine near wrk
  (benchmarks/bench_serving.py). The lean client never goes through a proxy.
- Everything else (https, another host, any target HTTP_PROXY / HTTPS_PROXY names a proxy for and NO_PROXY does not
  exempt: every Azure ML endpoint) goes through aiohttp's client with trust_env=True, which takes the proxy from the
  environment itself (a CONNECT tunnel for https, credentials in the proxy URL). It trusts the system's certificates
  (OpenSSL's default locations, which SSL_CERT_FILE and SSL_CERT_DIR move) plus the bundle REQUESTS_CA_BUNDLE names
  when set, the one the Azure SDK is given.

A sender (`Client.sender()`) is one simulated user: one connection, kept alive while the server allows it, one
request at a time, each under the client's timeout. Neither client follows redirects, decompresses for the lean
one, or retries: what the target answers is what is counted. Failures raise the same kinds whichever client sent:
http1's ConnectError, ServerDisconnected, MalformedResponse, ResponseTooLarge, or TimeoutError.
"""
from __future__ import annotations

import asyncio
import ipaddress
import os
import ssl
import urllib.request
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
from aiohttp import http_exceptions

from . import http1
from .http1 import ConnectError, MalformedResponse, Reply, ResponseTooLarge, ServerDisconnected

LEAN, AIOHTTP = "http1", "aiohttp"


class Sender(Protocol):
    async def post(self, body: bytes) -> Reply:
        """POST `body` with the client's headers; raises HTTPClientError or TimeoutError when there is no answer."""

    async def aclose(self) -> None:
        """Close the connection; the sender is not used after this."""


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def proxy_for(scheme: str, host: str) -> str | None:
    """The proxy URL that aiohttp's trust_env takes for this target (HTTP_PROXY or HTTPS_PROXY, unless NO_PROXY
    exempts the host), if any. Raises ValueError for one it would misuse: aiohttp speaks HTTP to any proxy, so a
    socks5:// or scheme-less value would be sent requests it does not understand, and it ignores https:// ones."""
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(scheme)
    if not proxy or urllib.request.proxy_bypass_environment(host, proxies):
        return None
    parts = urlsplit(proxy)
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise ValueError(f"only http://[user:pass@]host:port proxies can be used, not {proxy!r} "
                         f"({scheme.upper()}_PROXY)")
    return proxy


def tls_context() -> ssl.SSLContext:
    """The system's trusted certificates, plus those of REQUESTS_CA_BUNDLE when it names a file."""
    context = ssl.create_default_context()
    bundle = os.environ.get("REQUESTS_CA_BUNDLE")
    if bundle:
        try:
            context.load_verify_locations(cafile=bundle)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"REQUESTS_CA_BUNDLE={bundle!r} cannot be read as certificates ({exc})") from exc
    return context


@dataclass(frozen=True)
class Client:
    """How to send to one URL with fixed headers; `sender()` makes one connection's worth of it."""
    url: str
    kind: str  # LEAN or AIOHTTP
    timeout_s: float
    headers: dict[str, str] = field(default_factory=dict)
    target: http1.Target | None = None  # the lean client's
    tls: ssl.SSLContext | None = None  # aiohttp's, for https

    def sender(self) -> Sender:
        if self.kind == LEAN:
            return LeanSender(self.target, self.timeout_s)
        return AiohttpSender(self)


def client_for(url: str, headers: dict[str, str] | None = None, *, timeout_s: float = 30.0) -> Client:
    """The client for `url`. Raises ValueError when nothing can be sent: a URL or header that cannot be, a proxy
    setting that cannot be used, an unreadable REQUESTS_CA_BUNDLE."""
    headers = dict(headers or {})
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    for name, value in headers.items():
        http1.check_header(name, value)
    try:
        parts.port  # noqa: B018 (urlsplit checks the port only when asked for it)
    except ValueError as exc:
        raise ValueError(f"not a usable port in {url!r} ({exc})") from exc
    proxy = proxy_for(parts.scheme, parts.hostname)  # raises for a proxy setting aiohttp would misuse
    if parts.scheme == "http" and proxy is None and is_loopback(parts.hostname):
        return Client(url=url, kind=LEAN, timeout_s=timeout_s, headers=headers,
                      target=http1.Target.from_url(url, headers))
    return Client(url=url, kind=AIOHTTP, timeout_s=timeout_s, headers=headers,
                  tls=tls_context() if parts.scheme == "https" else None)


class LeanSender(http1.Connection):
    def __init__(self, target: http1.Target, timeout_s: float):
        super().__init__(target)
        self.timeout_s = timeout_s

    async def post(self, body: bytes, headers: bytes = b"") -> Reply:
        async with asyncio.timeout(self.timeout_s):
            return await super().post(body, headers)

    async def aclose(self) -> None:
        self.close()


class AiohttpSender:
    def __init__(self, client: Client):
        self.client = client
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # One connection per sender (limit=1), kept alive between requests; headers up to the lean client's cap.
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1, ssl=self.client.tls or True),
            trust_env=True, timeout=aiohttp.ClientTimeout(total=self.client.timeout_s),
            max_line_size=http1.MAX_HEAD_BYTES, max_field_size=http1.MAX_HEAD_BYTES)

    async def post(self, body: bytes) -> Reply:
        if self._session is None:
            self._session = self._open()
        try:
            async with self._session.post(self.client.url, data=body, headers=self.client.headers,
                                          allow_redirects=False) as response:
                return Reply(response.status, response.headers.get("Content-Type", "application/json"),
                             await _read_capped(response))
        except TimeoutError as exc:  # aiohttp's own timeouts subclass it: one kind, as for the lean client
            raise TimeoutError(f"no answer within {self.client.timeout_s:g} s") from exc
        except aiohttp.ClientError as exc:
            raise _failure(exc) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    limit = http1.MAX_RESPONSE_BYTES
    too_large = ResponseTooLarge(f"answered with more than {limit // 2**20} MiB")
    if response.content_length is not None and response.content_length > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _failure(exc: aiohttp.ClientError) -> http1.HTTPClientError:
    """aiohttp's exception as the kind the lean client raises for the same thing."""
    if isinstance(exc, aiohttp.ClientHttpProxyError):  # the proxy answered CONNECT with other than 200
        return ConnectError(f"the proxy refused the tunnel ({exc.status} {exc.message})")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return ConnectError(f"could not be looked up ({exc.os_error})")
    if isinstance(exc, aiohttp.ClientSSLError):  # an untrusted certificate, a failed handshake
        return ConnectError(f"failed the TLS handshake ({exc})")
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return ConnectError(f"refused the connection through the proxy ({exc.os_error.__class__.__name__})")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectError(f"refused the connection ({exc.os_error.__class__.__name__})")
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError)):
        return ServerDisconnected(f"closed the connection before answering in full ({exc.__class__.__name__})")
    if isinstance(exc, aiohttp.ClientResponseError):  # the status line or headers could not be parsed
        # A header line over max_field_size: LineTooLong from aiohttp's Python parser, only its words from the C one.
        if isinstance(exc.__cause__, http_exceptions.LineTooLong) or exc.message.startswith("Got more than"):
            return ResponseTooLarge(f"answered with a header line over {http1.MAX_HEAD_BYTES // 1024} KiB")
        return MalformedResponse(f"answered with malformed HTTP ({exc.message})")
    return http1.HTTPClientError(f"failed ({exc.__class__.__name__}: {exc})")
