"""The endpoint router: one stable scoring URL per endpoint, routed to its deployments by traffic weight.

    POST /endpoints/<endpoint>/score

Like Azure ML's online endpoints: the `azureml-model-deployment` request header picks a deployment directly; with the
endpoint's auth on, callers send `Authorization: Bearer <key>`; the response names the deployment that served it in
the same header. The routing table is the local backend's routes file (backend.py writes it as the portal creates
endpoints, makes deployments healthy and moves traffic); the router reads it again when it has changed, checked every
`refresh` seconds and on a request it cannot place, so a traffic change made in the portal is live within that time
without restarting anything. It reads no database.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from mlopsportal.lib.http1 import Connection, HTTPClientError, Target, content_type_header

log = logging.getLogger(__name__)
DEPLOYMENT_HEADER = "azureml-model-deployment"


@dataclass
class Route:
    auth_enabled: bool
    key: bytes
    timeout_s: float
    deployments: dict[str, Target]  # name -> where to send, for every deployment that answers
    names: list[str] = field(default_factory=list)  # deployments with traffic ...
    weights: list[int] = field(default_factory=list)  # ... and their percentages


def parse_table(data: dict) -> dict[str, Route]:
    """The routes of a routes file's contents: {"endpoints": {name: {"auth_enabled", "key", "timeout_ms",
    "deployments": {name: scoring URL}, "traffic": {name: percent}}}}."""
    table = {}
    for name, endpoint in data.get("endpoints", {}).items():
        if "auth_enabled" not in endpoint:  # traffic written before the endpoint's settings: not served yet
            continue
        table[name] = route = Route(
            auth_enabled=bool(endpoint["auth_enabled"]), key=str(endpoint.get("key", "")).encode(),
            timeout_s=endpoint.get("timeout_ms", 60_000) / 1000, deployments={})
        traffic = endpoint.get("traffic", {})
        for deployment, scoring_url in endpoint.get("deployments", {}).items():
            try:
                # One connection per call: the inference server's gunicorn sync workers close each one after answering.
                # Deployments are local (plain http on loopback): the lean client, never through a proxy.
                route.deployments[deployment] = Target.from_url(scoring_url, keep_alive=False)
            except ValueError:
                log.error("deployment %s of %s has an unusable scoring URL %r; not routed", deployment, name, scoring_url)
                continue
            if traffic.get(deployment):
                route.names.append(deployment)
                route.weights.append(traffic[deployment])
    return table


@dataclass
class RoutesFile:
    """The routes file, read again only when it has changed (it is replaced whole: another inode, size or mtime).
    Read in threads (the periodic refresh and a miss's may overlap): one at a time, so the table matches `seen`."""
    path: Path
    seen: tuple = ()
    table: dict[str, Route] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def load_table(self) -> dict[str, Route]:
        with self.lock:
            try:
                with open(self.path, "rb") as fh:
                    stat = os.fstat(fh.fileno())
                    mark = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
                    if mark != self.seen:
                        self.table, self.seen = parse_table(json.loads(fh.read())), mark
            except FileNotFoundError:  # nothing published yet: no endpoint is known
                self.table, self.seen = {}, ()
            return self.table


def _error(status: int, message: str, **headers) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


@dataclass
class Routing:
    """The router's state: the table and when it was read; a reload in flight, shared by requests that wait on it."""
    refresh: float
    routes: RoutesFile
    table: dict[str, Route] = field(default_factory=dict)
    loaded_from: float = 0.0
    reload: asyncio.Future | None = None
    reload_from: float = 0.0
    refresher: asyncio.Task | None = None

    def keep(self, table: dict[str, Route], started: float) -> None:
        if started >= self.loaded_from:
            self.table, self.loaded_from = table, started

    async def table_as_of(self, arrival: float) -> dict[str, Route]:
        """A routing table read from the routes file after `arrival`: a deployment made healthy (or an endpoint
        created) before a request came in is then known to it. Concurrent misses share one reload."""
        if self.loaded_from >= arrival:
            return self.table
        if self.reload is not None and self.reload_from >= arrival:
            await asyncio.shield(self.reload)
            return self.table
        started = asyncio.get_running_loop().time()
        task = asyncio.ensure_future(asyncio.to_thread(self.routes.load_table))
        self.reload, self.reload_from = task, started
        try:
            self.keep(await asyncio.shield(task), started)
        finally:
            if self.reload is task:
                self.reload = None
        return self.table

    async def refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh)
            try:
                started = asyncio.get_running_loop().time()
                self.keep(await asyncio.to_thread(self.routes.load_table), started)
            except Exception:  # a file that cannot be read must not stop routing with the last good table
                log.exception("could not refresh the routing table; keeping the previous one")


ROUTING = web.AppKey("routing", Routing)


async def score(request: web.Request) -> web.Response:
    arrival = asyncio.get_running_loop().time()
    name = request.match_info["endpoint"]
    routing = request.app[ROUTING]
    route = routing.table.get(name)
    if route is None:
        route = (await routing.table_as_of(arrival)).get(name)
    if route is None:
        return _error(404, f"No endpoint named {name}.")
    if route.auth_enabled:
        supplied = request.headers.get("Authorization", "")
        token = supplied[7:].encode() if supplied.startswith("Bearer ") else b""
        if not token or not hmac.compare_digest(token, route.key):
            return _error(401, "Missing or wrong key: send 'Authorization: Bearer <endpoint key>'.",
                          **{"WWW-Authenticate": "Bearer"})
    chosen = request.headers.get(DEPLOYMENT_HEADER)
    if chosen:
        if chosen not in route.deployments:
            route = (await routing.table_as_of(arrival)).get(name, route)
        if chosen not in route.deployments:
            return _error(404, f"Endpoint {name} has no serving deployment named {chosen}.")
    else:
        if not route.names:  # traffic may have been given to a deployment just before this request: read again
            route = (await routing.table_as_of(arrival)).get(name, route)
        if not route.names:
            return _error(503, f"No deployment of endpoint {name} takes traffic.")
        chosen = route.names[0] if len(route.names) == 1 else random.choices(route.names, route.weights)[0]
    body = await request.read()
    try:
        async with asyncio.timeout(route.timeout_s):
            reply = await Connection(route.deployments[chosen]).post(
                body, content_type_header(request.headers.get("Content-Type", "application/json")))
    except TimeoutError:
        return _error(408, f"Scoring took longer than the endpoint's timeout ({route.timeout_s * 1000:.0f} ms).",
                      **{DEPLOYMENT_HEADER: chosen})
    except HTTPClientError as exc:
        return _error(502, f"Deployment {chosen} {exc}.", **{DEPLOYMENT_HEADER: chosen})
    return web.Response(body=reply.body, status=reply.status,
                        headers={"Content-Type": reply.content_type, DEPLOYMENT_HEADER: chosen})


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _startup(app: web.Application) -> None:
    routing = app[ROUTING]
    started = asyncio.get_running_loop().time()
    routing.keep(await asyncio.to_thread(routing.routes.load_table), started)
    routing.refresher = asyncio.create_task(routing.refresh_forever())


async def _cleanup(app: web.Application) -> None:
    app[ROUTING].refresher.cancel()


def make_app(routes_path: Path, refresh: float = 0.25) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[ROUTING] = Routing(refresh=refresh, routes=RoutesFile(Path(routes_path)))
    app.router.add_post("/endpoints/{endpoint}/score", score)
    app.router.add_get("/", health)
    app.on_startup.append(_startup)
    app.on_cleanup.append(_cleanup)
    return app
