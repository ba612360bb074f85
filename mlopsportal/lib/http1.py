"""A small HTTP/1.1 client for the two hot paths that send one kind of request over and over to a server on this
machine: the router's call to a deployment, and the stress engine's load on a loopback target (the choice of client
per target is mlopsportal.lib.clients'). Responses are parsed by httptools (llhttp, Node.js's parser).

Why not aiohttp's client here: on a 2-core machine, the client's CPU per request comes out of the server under
test, and aiohttp spends about 0.4 ms of CPU on each request to a server that closes its connections (as Azure ML's
inference server does: gunicorn sync workers) against 0.13 ms for this. Measured against that server serving the
Titanic forest, one caller at a time: the server's own time per request is the same for both, and the caller sees
0.8 ms more per request through aiohttp than through wrk, 0.1-0.4 ms more through this. That difference is most of
what routing adds and of the gap between the stress engine and wrk (benchmarks/bench_serving.py).

What it does: POST with a fixed set of headers over plain TCP; one connection kept alive while the server allows it
and opened again when it does not; answers with a length, chunked, or ending when the server closes. What it does
not do: TLS, proxies, redirects, compression, cookies, or retrying a request (a stress test must count what failed).
Targets that need TLS or a proxy go through aiohttp's client (mlopsportal.lib.clients).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import quote, urlsplit

import httptools

MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # body
MAX_HEAD_BYTES = 64 * 1024  # status line and headers
URL_SAFE = "/%:@!$&'()*+,;=-._~?"  # what stays as it is in a path or query; anything else is percent-encoded
SET_BY_CLIENT = {"host", "content-length", "connection", "transfer-encoding"}


class HTTPClientError(Exception):
    """The server could not be reached, or broke off or garbled its answer. Subclasses name what happened (the
    stress engine counts failures by class name)."""


class ConnectError(HTTPClientError):
    pass


class ServerDisconnected(HTTPClientError):
    pass


class MalformedResponse(HTTPClientError):
    pass


class ResponseTooLarge(HTTPClientError):
    pass


class Reply(NamedTuple):
    status: int
    content_type: str
    body: bytes


def _authority(host: str, port: int) -> str:
    return f"{f'[{host}]' if ':' in host else host}:{port}"


def check_header(name: str, value: str) -> None:
    """Raises ValueError for a header that would split the request or that the client sets itself."""
    if any(c in f"{name}{value}" for c in "\r\n\0") or not name or ":" in name:
        raise ValueError(f"header {name!r} cannot be sent")
    if name.lower() in SET_BY_CLIENT:
        raise ValueError(f"header {name!r} is set by the client itself")


@dataclass(frozen=True)
class Target:
    """A URL and the headers every request to it carries, taken apart and encoded once."""
    host: str
    port: int
    keep_alive: bool
    head: bytes  # the request line and fixed headers, each line ending in CRLF

    @property
    def authority(self) -> str:
        return _authority(self.host, self.port)

    @classmethod
    def from_url(cls, url: str, headers: dict[str, str] | None = None, *, keep_alive: bool = True) -> Target:
        parts = urlsplit(url)
        if parts.scheme == "https":
            raise ValueError(f"the lean client speaks plain http only, not {url!r}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not an http URL: {url!r}")
        try:
            host = parts.hostname.encode("idna").decode("ascii")
            port = parts.port or 80
        except (UnicodeError, ValueError) as exc:
            raise ValueError(f"not a usable host and port in {url!r} ({exc})") from exc
        path = quote(parts.path or "/", safe=URL_SAFE) + (f"?{quote(parts.query, safe=URL_SAFE)}" if parts.query else "")
        lines = [f"POST {path} HTTP/1.1", f"Host: {_authority(host, port)}"]
        if not keep_alive:
            lines.append("Connection: close")
        for name, value in (headers or {}).items():
            check_header(name, value)
            lines.append(f"{name}: {value}")
        head = "".join(f"{line}\r\n" for line in lines).encode("latin-1")
        return cls(host=host, port=port, keep_alive=keep_alive, head=head)


class _Protocol(asyncio.Protocol):
    """One connection; collects the answer to the request in flight as httptools parses it."""

    def __init__(self):
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.keep_alive = False
        self._reply: asyncio.Future | None = None

    def expect(self, reply: asyncio.Future) -> None:
        self._reply = reply
        self._parser = httptools.HttpResponseParser(self)
        self.keep_alive = False
        self._start_answer()

    def _start_answer(self) -> None:
        self._content_type = "application/json"  # what score.py answers when the server says nothing
        self._chunks: list[bytes] = []
        self._size = 0
        self._head_size = 0
        self._headers_done = False
        self._has_length = False
        self._chunked = False
        self._length_known = False  # Content-Length or chunked; otherwise the body ends when the server closes

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._reply is None or self._reply.done():
            self.transport.close()  # bytes nobody asked for: this connection cannot be trusted any more
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(MalformedResponse("switched protocols without being asked to"))
        except httptools.HttpParserError as exc:
            self._fail(MalformedResponse(f"answered with malformed HTTP ({exc})"))
        else:
            if not self._headers_done:
                self._head_size += len(data)
                if self._head_size > MAX_HEAD_BYTES:
                    self._fail(ResponseTooLarge(f"answered with headers over {MAX_HEAD_BYTES // 1024} KiB"))
        if self._reply.done() and self._reply.exception() is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if exc is None and self._reply is not None and self._headers_done and not self._length_known:
            self._finish()  # a body without a length ends when the server closes the connection cleanly
        self._fail(ServerDisconnected("closed the connection before answering in full"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if self._headers_done:
            return  # a trailer after a chunked body: the answer's headers are already known
        name = name.lower()
        if name == b"content-type":
            self._content_type = value.decode("latin-1")
        elif name == b"content-length":
            self._has_length = True
        elif name == b"transfer-encoding":
            self._chunked = value.strip().lower().endswith(b"chunked")

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._length_known = self._has_length or self._chunked

    def on_body(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > MAX_RESPONSE_BYTES:
            self._fail(ResponseTooLarge(f"answered with more than {MAX_RESPONSE_BYTES // 2**20} MiB"))
            self.transport.close()
            return
        self._chunks.append(chunk)

    def on_message_complete(self) -> None:
        if 100 <= self._parser.get_status_code() < 200:
            self._start_answer()  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            return
        self.keep_alive = self._parser.should_keep_alive()
        self._finish()

    def _finish(self) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.set_result(Reply(self._parser.get_status_code(), self._content_type, b"".join(self._chunks)))

    def _fail(self, error: HTTPClientError) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(error)


class Connection:
    """Requests to one target, one at a time, over a connection kept open while the server allows it. Cancelling a
    request (a timeout) closes the connection: what the server sends next would belong to the abandoned request."""

    def __init__(self, target: Target):
        self.target = target
        self._protocol: _Protocol | None = None

    async def post(self, body: bytes, headers: bytes = b"") -> Reply:
        """POST `body`; `headers` are extra header lines for this request only (CRLF-terminated, already checked)."""
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = self._protocol = await self._connect()
        reply = asyncio.get_running_loop().create_future()
        protocol.expect(reply)
        protocol.transport.write(b"%s%sContent-Length: %d\r\n\r\n%s" % (self.target.head, headers, len(body), body))
        try:
            answer = await reply
        except BaseException:
            self.close()
            raise
        if not (protocol.keep_alive and self.target.keep_alive):
            self.close()
        return answer

    async def _connect(self) -> _Protocol:
        try:
            _, protocol = await asyncio.get_running_loop().create_connection(_Protocol, self.target.host,
                                                                             self.target.port)
        except OSError as exc:
            raise ConnectError(f"refused the connection ({exc.__class__.__name__})") from exc
        except ValueError as exc:  # a host name the resolver will not take
            raise ConnectError(f"could not be looked up ({exc})") from exc
        return protocol

    def close(self) -> None:
        if self._protocol is not None:
            self._protocol.transport.close()
            self._protocol = None


def content_type_header(value: str) -> bytes:
    """A Content-Type header line for Connection.post, from a value that came in on a request."""
    return b"Content-Type: %s\r\n" % value.encode("latin-1", "replace").translate(None, b"\r\n\0")
