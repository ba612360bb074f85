"""Every API route × {anonymous, bad token, expired token, read-only token, engineer, manager, admin}.

The routes are read from the URLconf: a route added later without a row here fails test_every_route_is_listed.
Refused calls (401, 403, or a rule of the portal: 400/409) change no row and write no audit event; allowed ones
answer 2xx and, for writes, do what they say."""
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.urls import get_resolver, reverse

from tests.test_access_matrix import _walk, world  # noqa: F401 - the world fixture
from tests.test_access_matrix import snapshot as rows_snapshot

pytestmark = pytest.mark.django_db

OK, FORBIDDEN, REFUSED, NOT_FOUND = "ok", "403", "refused", "404"
CALLERS = ("anonymous", "bad token", "expired token", "read-only token", "engineer", "manager", "admin")


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    args: Callable
    body: Callable | None
    engineer: str
    manager: str
    admin: str
    on: str = ""

    def __str__(self):
        return f"{self.method} {self.name}{f'[{self.on}]' if self.on else ''}"


def _read(name, args=lambda w: [], expected=OK):
    return Route(name, "GET", args, None, expected, expected, expected)


def _profile(w):
    return w.prod.profile


ROUTES = [
    _read("api:me"),
    _read("api:model-list"),
    _read("api:model-detail", lambda w: [w.model.name]),
    _read("api:version-list", lambda w: [w.model.name]),
    _read("api:version-detail", lambda w: [w.model.name, w.version.version]),
    # The rows of the world have no files on disk.
    _read("api:version-file", lambda w: [w.model.name, w.version.version, "model.bin"], NOT_FOUND),
    _read("api:run-list"),
    _read("api:run-detail", lambda w: [w.running_run.pk]),
    Route("api:run-list", "POST", lambda w: [], lambda w: {
        "example": "scripted", "experiment_name": "exp-api", "timeout_minutes": 5,
        "params": {"sleep": 0, "exit_code": 0, "outputs": "full", "score": 0.5}}, OK, FORBIDDEN, OK),
    Route("api:run-cancel", "POST", lambda w: [w.running_run.pk], lambda w: {}, OK, FORBIDDEN, OK),
    # The finished run has no files to copy: registering is refused by the backend, after the permission check.
    Route("api:run-register", "POST", lambda w: [w.finished_run.pk], lambda w: {"model": w.model.name},
          REFUSED, FORBIDDEN, REFUSED),
    _read("api:endpoint-list"),
    _read("api:endpoint-detail", lambda w: [w.prod.name]),
    Route("api:endpoint-key", "GET", lambda w: [w.prod.name], None, OK, FORBIDDEN, OK),
    Route("api:endpoint-traffic", "PUT", lambda w: [w.staging.name], lambda w: {"traffic": {"blue": 50, "green": 50}},
          OK, FORBIDDEN, OK, on="staging"),
    Route("api:endpoint-traffic", "PUT", lambda w: [w.prod.name], lambda w: {"traffic": {"blue": 50, "green": 50}},
          REFUSED, FORBIDDEN, REFUSED, on="production"),
    Route("api:endpoint-rollback", "POST", lambda w: [w.prod.name], lambda w: {"reason": "bad release"},
          OK, FORBIDDEN, OK, on="production"),
    Route("api:endpoint-rollback", "POST", lambda w: [w.staging.name], lambda w: {"reason": "bad release"},
          REFUSED, FORBIDDEN, REFUSED, on="staging"),
    _read("api:releases"),
    _read("api:promotion-list"),
    _read("api:promotion-detail", lambda w: [w.awaiting.pk]),
    Route("api:promotion-list", "POST", lambda w: [], lambda w: {
        "version": f"{w.model.name}:{w.version.version}", "production_endpoint": w.prod.name,
        "staging_endpoint": w.staging.name, "stress_profile": w.stress_profile.name, "reason": "faster"},
        OK, FORBIDDEN, OK),
    # The engineer asked for this promotion: a requester never decides their own.
    Route("api:promotion-decision", "POST", lambda w: [w.awaiting.pk],
          lambda w: {"decision": "approve", "comment": "evidence is good"}, FORBIDDEN, OK, OK),
    Route("api:promotion-cancel", "POST", lambda w: [w.awaiting.pk], lambda w: {"reason": "wrong version"},
          OK, FORBIDDEN, OK),
    _read("api:config-list", lambda w: ["profiles"]),
    _read("api:config-detail", lambda w: ["profiles", _profile(w).pk]),
    Route("api:config-list", "POST", lambda w: ["stress-profiles"], lambda w: {
        "values": {"model": w.model.pk, "name": "api-made", "payloads": [{"Pclass": 1}], "concurrency": 2,
                   "duration_seconds": 5, "shards": 1}, "note": "load for the API test"},
        FORBIDDEN, FORBIDDEN, OK),
    Route("api:config-detail", "PATCH", lambda w: ["profiles", _profile(w).pk],
          lambda w: {"base_revision": 0, "values": {"instance_count": 2}, "note": "more instances"},
          FORBIDDEN, FORBIDDEN, OK),
    Route("api:audit", "GET", lambda w: [], None, FORBIDDEN, OK, OK),
    _read("api:schema"),
]
# The docs page is a portal page (sign-in required): tested in test_api.py.
PAGES = {"api:docs"}


def snapshot() -> dict:
    """Every row, but the tokens' own (a call writes its token's last-used time)."""
    state = rows_snapshot()
    state.pop("api.ApiToken")
    return state


def _api_routes():
    return {name for name, route, _ in _walk(get_resolver().url_patterns) if name.startswith("api:")}


def test_every_route_is_listed():
    assert _api_routes() == {r.name for r in ROUTES} | PAGES


def _expected(route: Route, caller: str) -> str:
    if caller in ("anonymous", "bad token", "expired token"):
        return "401"
    if caller == "read-only token":
        return route.admin if route.method == "GET" else FORBIDDEN
    return getattr(route, caller)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_route_by_caller(world, callers, route, caller):  # noqa: F811 - world is the fixture
    from deployments.configs import revisions

    if route.method == "PATCH":  # the revision the caller read
        body = route.body(world)
        body["base_revision"] = revisions.revision_count(_profile(world))
    else:
        body = route.body(world) if route.body else None
    url = reverse(route.name, args=route.args(world))
    before = snapshot()
    response = callers[caller].call(route.method, url, body)
    after = snapshot()
    expected = _expected(route, caller)
    described = f"{route} by {caller}: {response.status_code} {response.content[:300]!r}"
    if expected == "401":
        assert response.status_code == 401, described
        assert response["Content-Type"] == "application/problem+json"
        assert response["WWW-Authenticate"].startswith("Bearer")
    elif expected == FORBIDDEN:
        assert response.status_code == 403, described
        assert response.json()["status"] == 403
    elif expected == REFUSED:
        assert response.status_code in (400, 409, 502), described
        assert response["Content-Type"] == "application/problem+json" and response.json()["detail"]
    elif expected == NOT_FOUND:
        assert response.status_code == 404, described
    else:
        assert 200 <= response.status_code < 300, described
        if route.method != "GET":
            assert after != before, f"{described}: changed nothing"
    if expected != OK:
        assert after == before, f"{described}: refused but changed rows"
