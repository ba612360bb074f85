"""The endpoint router: one stable scoring URL per endpoint, routed to its deployments by traffic weight.

    POST /endpoints/<endpoint>/score

Like Azure ML's online endpoints: the `azureml-model-deployment` request header picks a deployment directly; with the
endpoint's auth on, callers send `Authorization: Bearer <key>`; the response names the deployment that served it in
the same header. The routing table is read from the database every `refresh` seconds, so a traffic change made in the
portal is live within that time without restarting anything.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import random
from dataclasses import dataclass, field

from aiohttp import web
from django.db import close_old_connections

from deployments.models import Deployment, Endpoint
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


def load_table() -> dict[str, Route]:
    """Read endpoints and their serving deployments (runs in a thread: the ORM is synchronous)."""
    close_old_connections()
    table = {}
    for endpoint in Endpoint.objects.select_related("profile"):
        table[endpoint.name] = Route(
            auth_enabled=endpoint.auth_enabled, key=endpoint.key.encode(),
            timeout_s=endpoint.profile.request_timeout_ms / 1000, deployments={})
    serving = Deployment.objects.filter(status__in=[Deployment.Status.HEALTHY, Deployment.Status.UNHEALTHY]
                                        ).exclude(scoring_url="").select_related("endpoint")
    for deployment in serving:
        route = table[deployment.endpoint.name]
        try:
            # One connection per call: the inference server's gunicorn sync workers close each one after answering.
            # Deployments are local (plain http on loopback): the lean client, never through a proxy.
            route.deployments[deployment.name] = Target.from_url(deployment.scoring_url, keep_alive=False)
        except ValueError:
            log.error("deployment %s has an unusable scoring URL %r; not routed", deployment, deployment.scoring_url)
            continue
        if deployment.traffic:
            route.names.append(deployment.name)
            route.weights.append(deployment.traffic)
    close_old_connections()
    return table


def _error(status: int, message: str, **headers) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


@dataclass
class Routing:
    """The router's state: the table and when it was read; a reload in flight, shared by requests that wait on it."""
    refresh: float
    table: dict[str, Route] = field(default_factory=dict)
    loaded_from: float = 0.0
    reload: asyncio.Future | None = None
    reload_from: float = 0.0
    refresher: asyncio.Task | None = None

    def keep(self, table: dict[str, Route], started: float) -> None:
        if started >= self.loaded_from:
            self.table, self.loaded_from = table, started

    async def table_as_of(self, arrival: float) -> dict[str, Route]:
        """A routing table read from the database after `arrival`: a deployment made healthy (or an endpoint
        created) before a request came in is then known to it. Concurrent misses share one reload."""
        if self.loaded_from >= arrival:
            return self.table
        if self.reload is not None and self.reload_from >= arrival:
            await asyncio.shield(self.reload)
            return self.table
        started = asyncio.get_running_loop().time()
        task = asyncio.ensure_future(asyncio.to_thread(load_table))
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
                self.keep(await asyncio.to_thread(load_table), started)
            except Exception:  # a database hiccup must not stop routing with the last good table
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
    elif route.names:
        chosen = route.names[0] if len(route.names) == 1 else random.choices(route.names, route.weights)[0]
    else:
        return _error(503, f"No deployment of endpoint {name} takes traffic.")
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
    routing.keep(await asyncio.to_thread(load_table), started)
    routing.refresher = asyncio.create_task(routing.refresh_forever())


async def _cleanup(app: web.Application) -> None:
    app[ROUTING].refresher.cancel()


def make_app(refresh: float = 0.25) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[ROUTING] = Routing(refresh=refresh)
    app.router.add_post("/endpoints/{endpoint}/score", score)
    app.router.add_get("/", health)
    app.on_startup.append(_startup)
    app.on_cleanup.append(_cleanup)
    return app
