"""The lean HTTP/1.1 client (mlopsportal.lib.http1) and the router's answers when a deployment is slow, gone or
broken, against small servers on 127.0.0.1 that answer with exactly the bytes each test gives them."""
import asyncio
import json
import socket
import ssl
import struct

import pytest
from aiohttp import test_utils

from deployments.verification import stress as loadtest
from mlopsportal.backends.local import LocalBackend, router
from mlopsportal.lib import http1

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{"prediction": 1}'


class Canned:
    """A server answering each request it reads with the next of `answers` (bytes, or a list of parts written one
    by one); `close` after an answer hangs up. Records each request's raw bytes and which connection it came on."""

    def __init__(self, answers, *, hold: float = 0, close: bool = True, reset: bool = False,
                 tls: ssl.SSLContext | None = None):
        self.answers, self.hold, self.close, self.reset, self.tls = list(answers), hold, close, reset, tls
        self.requests: list[tuple[int, bytes]] = []
        self.connections = 0
        self.hung_up = None

    async def __aenter__(self):
        self.hung_up = asyncio.get_running_loop().create_future()
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/score"
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def _handle(self, reader, writer):
        self.connections += 1
        number = self.connections
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                self.requests.append((number, head + await reader.readexactly(length)))
                if self.hold:
                    try:  # wait `hold` seconds, watching for the caller to hang up meanwhile
                        if await asyncio.wait_for(reader.read(1), self.hold) == b"":
                            raise ConnectionResetError
                    except TimeoutError:
                        pass
                answer = self.answers.pop(0)
                for part in answer if isinstance(answer, list) else [answer]:
                    writer.write(part)
                    await writer.drain()
                if self.reset:  # hang up with a TCP reset instead of a clean close
                    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                if self.close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            if not self.hung_up.done():
                self.hung_up.set_result(number)
        writer.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url, body=b"{}", **target):
    async def go():
        connection = http1.Connection(http1.Target.from_url(url, **target))
        try:
            return await connection.post(body)
        finally:
            connection.close()
    return asyncio.run(go())


def test_posts_the_body_with_its_headers_and_reads_a_sized_answer():
    async def go():
        async with Canned([OK]) as server:
            target = http1.Target.from_url(server.url, {"Authorization": "Bearer k"}, keep_alive=False)
            reply = await http1.Connection(target).post(b'{"Pclass": 1}', http1.content_type_header("text/x\r\nX: 1"))
        return reply, server.requests

    reply, requests = asyncio.run(go())
    assert reply == (200, "application/json", b'{"prediction": 1}')
    head, body = requests[0][1].split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /score HTTP/1.1"
    assert {b"Connection: close", b"Authorization: Bearer k", b"Content-Type: text/xX: 1", b"Content-Length: 13"} <= set(lines)
    assert any(line.startswith(b"Host: 127.0.0.1:") for line in lines)
    assert body == b'{"Pclass": 1}'


def test_keeps_the_connection_alive_while_the_server_does_and_reconnects_when_it_closes():
    async def go():
        closing = OK.replace(b"Content-Length", b"Connection: close\r\nContent-Length")
        async with Canned([OK, OK, closing, OK], close=False) as server:
            connection = http1.Connection(http1.Target.from_url(server.url))
            replies = [await connection.post(b"{}") for _ in range(4)]
            connection.close()
        return replies, [number for number, _ in server.requests]

    replies, connections = asyncio.run(go())
    assert [r.status for r in replies] == [200] * 4
    assert connections == [1, 1, 1, 2]  # the third answer said close: the fourth request opened a new connection


def test_chunked_and_close_delimited_answers_are_read_whole():
    chunked = [b"HTTP/1.1 400 BAD REQUEST\r\nTransfer-Encoding: chunked\r\n\r\n", b"6\r\n{\"err\"\r\n",
               b"5\r\n: 1}\n\r\n0\r\n\r\n"]
    until_close = [b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", b"part one, ", b"part two"]

    async def go():
        async with Canned([chunked]) as first, Canned([until_close]) as second:
            return [await http1.Connection(http1.Target.from_url(s.url)).post(b"{}") for s in (first, second)]

    assert asyncio.run(go()) == [(400, "application/json", b'{"err": 1}\n'), (200, "text/plain", b"part one, part two")]


@pytest.mark.parametrize("answer, error, why", [
    (b"", http1.ServerDisconnected, "closed the connection before answering in full"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", http1.ServerDisconnected, "before answering in full"),
    (b"SMTP ready\r\n\r\n", http1.MalformedResponse, "answered with malformed HTTP"),
])
def test_broken_answers_raise(answer, error, why):
    async def go():
        async with Canned([answer]) as server:
            await http1.Connection(http1.Target.from_url(server.url)).post(b"{}")

    with pytest.raises(error, match=why):
        asyncio.run(go())


def test_interim_answers_are_skipped_and_an_unasked_protocol_switch_is_refused():
    final = b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}'

    async def go(answer):
        async with Canned([answer]) as server:
            return await http1.Connection(http1.Target.from_url(server.url)).post(b"{}")

    assert asyncio.run(go(b"HTTP/1.1 100 Continue\r\n\r\n" + final)) == (200, "application/json", b"{}")
    assert asyncio.run(go([b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", final])).status == 200
    with pytest.raises(http1.MalformedResponse, match="switched protocols"):
        asyncio.run(go(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"))


def test_length_comes_from_the_headers_not_from_trailers_and_a_reset_is_not_an_answer():
    identity = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n", b"until the end"]
    trailer = [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
               b"Trailer: Content-Type\r\n\r\n2\r\n{}\r\n0\r\nContent-Type: evil/x\r\n\r\n"]

    async def go(answer, **server):
        async with Canned([answer], **server) as canned:
            return await http1.Connection(http1.Target.from_url(canned.url)).post(b"{}")

    assert asyncio.run(go(identity)) == (200, "application/json", b"until the end")
    assert asyncio.run(go(trailer)) == (200, "application/json", b"{}")
    with pytest.raises(http1.ServerDisconnected):  # a body that ends at close, cut off by a reset
        asyncio.run(go([b"HTTP/1.1 200 OK\r\n\r\n", b'{"predictions": [1, 2,'], reset=True))


def test_a_connection_meant_for_one_call_is_closed_even_when_the_server_would_keep_it():
    async def go():
        async with Canned([OK, OK], close=False) as server:
            reply = await http1.Connection(http1.Target.from_url(server.url, keep_alive=False)).post(b"{}")
            await asyncio.wait_for(server.hung_up, 5)
        return reply

    assert asyncio.run(go()).status == 200


def test_refused_connection_and_oversized_answer_raise(monkeypatch):
    with pytest.raises(http1.ConnectError, match="refused the connection"):
        post(f"http://127.0.0.1:{free_port()}/score")
    monkeypatch.setattr(http1, "MAX_RESPONSE_BYTES", 1024)

    async def go():
        async with Canned([[b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n", b"x" * 4096]]) as server:
            await http1.Connection(http1.Target.from_url(server.url)).post(b"{}")

    with pytest.raises(http1.ResponseTooLarge, match="more than"):
        asyncio.run(go())

    async def endless_header():
        async with Canned([[b"HTTP/1.1 200 OK\r\nX-Pad: "] + [b"a" * 16384] * 8]) as server:
            await http1.Connection(http1.Target.from_url(server.url)).post(b"{}")

    with pytest.raises(http1.ResponseTooLarge, match="headers over 64 KiB"):
        asyncio.run(endless_header())


def test_target_parses_urls_and_refuses_headers_that_would_split_the_request():
    target = http1.Target.from_url("http://scoring.example.com/api/v1/score?verbose=1", {"X-A": "b"})
    assert (target.host, target.port) == ("scoring.example.com", 80)
    assert target.head == b"POST /api/v1/score?verbose=1 HTTP/1.1\r\nHost: scoring.example.com:80\r\nX-A: b\r\n"
    assert http1.Target.from_url("http://[::1]:9000/score").head.split(b"\r\n")[1] == b"Host: [::1]:9000"
    for bad in ("ftp://host/score", "/score", "http:///score"):
        with pytest.raises(ValueError, match="not an http"):
            http1.Target.from_url(bad)
    with pytest.raises(ValueError, match="plain http only"):  # TLS is aiohttp's (mlopsportal.lib.clients)
        http1.Target.from_url("https://scoring.example.com/score")
    for name, value in (("Authorization", "Bearer k\r\nX-Evil: 1"), ("X\nY", "v"), ("", "v"), ("A:B", "v")):
        with pytest.raises(ValueError, match="cannot be sent"):
            http1.Target.from_url("http://host/score", {name: value})
    for name in ("Host", "content-length", "Connection", "Transfer-Encoding"):
        with pytest.raises(ValueError, match="set by the client"):
            http1.Target.from_url("http://host/score", {name: "x"})
    odd = http1.Target.from_url("http://bücher.example/a b/score?q=1 2")
    assert odd.head.startswith(b"POST /a%20b/score?q=1%202 HTTP/1.1\r\nHost: xn--bcher-kva.example:80\r\n")
    for bad in ("http://a..b/score", f"http://{'x' * 64}.example/score", "http://host:99999/score"):
        with pytest.raises(ValueError, match="not a usable host"):
            http1.Target.from_url(bad)


def test_stress_engine_counts_transport_failures_by_kind_and_sends_its_headers():
    async def go():
        broken = [b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"]
        async with Canned([OK] * 3 + [b"garbage\r\n\r\n"], close=False) as server, Canned(broken) as cut_off:
            plan = loadtest.Plan(url=server.url, payloads=[b"{}"], concurrency=1, request_count=4,
                                 headers={"content-type": "application/json; charset=utf-8", "Authorization": "Bearer k"})
            mixed = await loadtest.run(plan)
            cut = await loadtest.run(loadtest.Plan(url=cut_off.url, payloads=[b"{}"], concurrency=1, request_count=1))
        return mixed, cut, server.requests

    mixed, cut, requests = asyncio.run(go())
    assert mixed.by_status == {"200": 3} and mixed.by_exception == {"MalformedResponse": 1} and mixed.failures == 1
    assert cut.by_exception == {"ServerDisconnected": 1}
    lines = requests[0][1].split(b"\r\n")
    assert b"content-type: application/json; charset=utf-8" in lines and b"Authorization: Bearer k" in lines
    assert not any(line.startswith(b"Content-Type:") for line in lines)  # the plan's own replaced the default


def test_router_answers_408_on_timeout_and_502_when_the_deployment_is_gone(tmp_path):
    """The router in-process, on a routes file the local backend wrote: a deployment slower than the endpoint's
    timeout gets 408 (and the router hangs up on it); one whose server is gone gets 502 naming it; both say which
    deployment."""
    backend = LocalBackend(root=tmp_path)

    async def go():
        async with Canned([OK], hold=2) as slow, Canned([OK]) as fine:
            urls = {"slow": slow.url, "gone": f"http://127.0.0.1:{free_port()}/score", "fine": fine.url}
            backend.endpoint_configure("e", auth_enabled=False, key="", timeout_ms=300)
            for name, url in urls.items():
                backend.deployment_route_set(endpoint_name="e", deployment_name=name, scoring_url=url)
            app = router.make_app(backend.routes_path, refresh=60)
            async with test_utils.TestClient(test_utils.TestServer(app)) as client:
                answers = {}
                for name in urls:
                    response = await client.post("/endpoints/e/score", data=b'{"a": 1}',
                                                 headers={router.DEPLOYMENT_HEADER: name})
                    answers[name] = (response.status, response.headers[router.DEPLOYMENT_HEADER], await response.text())
            await asyncio.wait_for(slow.hung_up, 5)
        return answers, fine.requests

    answers, received = asyncio.run(go())
    assert answers["slow"][:2] == (408, "slow")
    assert "longer than the endpoint's timeout (300 ms)" in json.loads(answers["slow"][2])["error"]
    assert answers["gone"][:2] == (502, "gone")
    assert json.loads(answers["gone"][2])["error"] == "Deployment gone refused the connection (ConnectionRefusedError)."
    assert answers["fine"] == (200, "fine", '{"prediction": 1}')
    assert received[0][1].endswith(b'\r\n\r\n{"a": 1}')


def test_local_traffic_apply_moves_the_routers_requests(tmp_path):
    """The local backend's traffic step is what the router routes by: weights written with endpoint_traffic_apply
    move requests from blue to green on a running router (no restart, no database), none at all is a 503; the key
    is checked when auth is on; an endpoint not in the table is a 404 and one added later is found on the miss."""
    backend = LocalBackend(root=tmp_path)
    blue_ok = OK.replace(b'{"prediction": 1}', b'{"prediction": 7}')

    async def go():
        async with Canned([blue_ok] * 20) as blue, Canned([OK] * 20) as green:
            backend.endpoint_configure("e", auth_enabled=True, key="k1", timeout_ms=5000)
            backend.deployment_route_set(endpoint_name="e", deployment_name="blue", scoring_url=blue.url)
            backend.deployment_route_set(endpoint_name="e", deployment_name="green", scoring_url=green.url)
            app = router.make_app(backend.routes_path, refresh=0.05)
            async with test_utils.TestClient(test_utils.TestServer(app)) as client:
                async def send(endpoint="e", key="k1"):
                    response = await client.post(f"/endpoints/{endpoint}/score", data=b"{}",
                                                 headers={"Authorization": f"Bearer {key}"})
                    return response.status, response.headers.get(router.DEPLOYMENT_HEADER), await response.text()

                async def settled(expected):  # the router checks the file every 0.05 s
                    for _ in range(100):
                        answer = await send()
                        if answer[:2] == expected:
                            return answer
                        await asyncio.sleep(0.02)
                    return answer

                seen = {"none yet": await send()}
                backend.endpoint_traffic_apply(endpoint_name="e", traffic={"blue": 100, "green": 0})
                seen["blue"] = await settled((200, "blue"))
                seen["blue again"] = [(await send())[1] for _ in range(5)]
                backend.endpoint_traffic_apply(endpoint_name="e", traffic={"blue": 0, "green": 100})
                seen["green"] = await settled((200, "green"))
                seen["green again"] = [(await send())[1] for _ in range(5)]
                seen["wrong key"] = (await send(key="k2"))[0]
                seen["unknown"] = (await send("later"))[0]
                backend.endpoint_configure("later", auth_enabled=False, key="", timeout_ms=5000)
                seen["later"] = (await send("later"))[0]  # found at once: a miss reads the table again
                backend.endpoint_traffic_apply(endpoint_name="e", traffic={"blue": 0, "green": 0})
                seen["no traffic"] = await settled((503, None))
        return seen

    seen = asyncio.run(go())
    assert seen["none yet"][0] == 503
    assert seen["blue"] == (200, "blue", '{"prediction": 7}') and seen["blue again"] == ["blue"] * 5
    assert seen["green"] == (200, "green", '{"prediction": 1}') and seen["green again"] == ["green"] * 5
    assert seen["wrong key"] == 401 and seen["unknown"] == 404 and seen["later"] == 503
    assert "takes traffic" in seen["no traffic"][2]
    table = json.loads(backend.routes_path.read_text())["endpoints"]
    assert table["e"]["traffic"] == {} and set(table["e"]["deployments"]) == {"blue", "green"}
    assert oct(backend.routes_path.stat().st_mode & 0o777) == "0o600"  # it holds the keys


def test_router_reads_again_before_saying_no_deployment_takes_traffic(tmp_path):
    """Traffic given to a deployment just before a request arrives: the router's table (refreshed only every minute
    here) is read again instead of answering 503, so a promotion that just finished serves at once."""
    backend = LocalBackend(root=tmp_path)

    async def go():
        async with Canned([OK, OK]) as blue:
            backend.endpoint_configure("e", auth_enabled=False, key="", timeout_ms=5000)
            backend.deployment_route_set(endpoint_name="e", deployment_name="blue", scoring_url=blue.url)
            app = router.make_app(backend.routes_path, refresh=60)
            async with test_utils.TestClient(test_utils.TestServer(app)) as client:  # read at start: no traffic
                backend.endpoint_traffic_apply(endpoint_name="e", traffic={"blue": 100})
                first = await client.post("/endpoints/e/score", data=b"{}")
                return first.status, first.headers.get(router.DEPLOYMENT_HEADER)

    assert asyncio.run(go()) == (200, "blue")
