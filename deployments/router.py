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

from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector, web

log = logging.getLogger(__name__)
DEPLOYMENT_HEADER = "azureml-model-deployment"


@dataclass
class Route:
    auth_enabled: bool
    key: bytes
    timeout_s: float
    deployments: dict[str, str]  # name -> scoring URL of every deployment that answers
    names: list[str] = field(default_factory=list)  # deployments with traffic ...
    weights: list[int] = field(default_factory=list)  # ... and their percentages


def load_table() -> dict[str, Route]:
    """Read endpoints and their serving deployments (runs in a thread: the ORM is synchronous)."""
    from django.db import close_old_connections

    from .models import Deployment, Endpoint

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
        route.deployments[deployment.name] = deployment.scoring_url
        if deployment.traffic:
            route.names.append(deployment.name)
            route.weights.append(deployment.traffic)
    close_old_connections()
    return table


def _error(status: int, message: str, **headers) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


async def _table_as_of(app: web.Application, arrival: float) -> dict[str, Route]:
    """A routing table read from the database after `arrival`: a deployment made healthy (or an endpoint created)
    before a request came in is then known to it. Concurrent misses share one reload."""
    if app["loaded_from"] >= arrival:
        return app["table"]
    pending = app.get("reload")
    if pending is not None and app["reload_from"] >= arrival:
        await asyncio.shield(pending)
        return app["table"]
    loop = asyncio.get_running_loop()
    started = loop.time()
    task = asyncio.ensure_future(asyncio.to_thread(load_table))
    app["reload"], app["reload_from"] = task, started
    try:
        table = await asyncio.shield(task)
        if started >= app["loaded_from"]:
            app["table"], app["loaded_from"] = table, started
    finally:
        if app.get("reload") is task:
            app["reload"] = None
    return app["table"]


async def score(request: web.Request) -> web.Response:
    arrival = asyncio.get_running_loop().time()
    name = request.match_info["endpoint"]
    route = request.app["table"].get(name)
    if route is None:
        route = (await _table_as_of(request.app, arrival)).get(name)
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
            route = (await _table_as_of(request.app, arrival)).get(name, route)
        if chosen not in route.deployments:
            return _error(404, f"Endpoint {name} has no serving deployment named {chosen}.")
    elif route.names:
        chosen = route.names[0] if len(route.names) == 1 else random.choices(route.names, route.weights)[0]
    else:
        return _error(503, f"No deployment of endpoint {name} takes traffic.")
    body = await request.read()
    headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
    try:
        # asyncio's own timeout: one timer per request (aiohttp's ClientTimeout costs several).
        async with asyncio.timeout(route.timeout_s):
            async with request.app["client"].post(route.deployments[chosen], data=body, headers=headers) as upstream:
                payload = await upstream.read()
                return web.Response(body=payload, status=upstream.status, headers={
                    "Content-Type": upstream.headers.get("Content-Type", "application/json"),
                    DEPLOYMENT_HEADER: chosen})
    except TimeoutError:
        return _error(408, f"Scoring took longer than the endpoint's timeout ({route.timeout_s * 1000:.0f} ms).",
                      **{DEPLOYMENT_HEADER: chosen})
    except ClientError as exc:
        return _error(502, f"Deployment {chosen} did not answer: {exc.__class__.__name__}.",
                      **{DEPLOYMENT_HEADER: chosen})


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _refresh_forever(app: web.Application) -> None:
    while True:
        await asyncio.sleep(app["refresh"])
        try:
            started = asyncio.get_running_loop().time()
            table = await asyncio.to_thread(load_table)
            if started >= app["loaded_from"]:
                app["table"], app["loaded_from"] = table, started
        except Exception:  # a database hiccup must not stop routing with the last good table
            log.exception("could not refresh the routing table; keeping the previous one")


async def _startup(app: web.Application) -> None:
    app["client"] = ClientSession(connector=TCPConnector(limit=0, keepalive_timeout=30), auto_decompress=False,
                                  skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
                                  timeout=ClientTimeout(total=None, connect=None, sock_read=None, sock_connect=None))
    app["loaded_from"] = asyncio.get_running_loop().time()
    app["table"] = await asyncio.to_thread(load_table)
    app["reload"] = None
    app["refresher"] = asyncio.create_task(_refresh_forever(app))


async def _cleanup(app: web.Application) -> None:
    app["refresher"].cancel()
    await app["client"].close()


def make_app(refresh: float = 0.25) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app["refresh"] = refresh
    app.router.add_post("/endpoints/{endpoint}/score", score)
    app.router.add_get("/", health)
    app.on_startup.append(_startup)
    app.on_cleanup.append(_cleanup)
    return app
