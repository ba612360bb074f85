"""Every action URL × {anonymous, engineer, manager, admin}, on production and staging objects.

The URLconf is read, not listed by hand: a URL added later that is in neither ACTIONS nor READ_ONLY fails
test_every_url_is_in_the_matrix, and one listed as read-only that does change something fails
test_read_only_urls_change_nothing. A request that is refused (anonymous: the login page; a role without the
permission: 403; a production change outside a promotion or a rollback: refused with a message) changes no row and
writes no audit event; a request the role may make does what it says.
"""
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.apps import apps
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from deployments.models import Deployment, DeploymentProfile, Endpoint, Promotion, PromotionStep, StressProfile
from deployments.serving import services
from models_registry.models import TrainingRun
from tests.models_registry.factories import make_model, make_run
from workspaces.forms import WorkspaceForm
from workspaces.models import AzureMLWorkspace

pytestmark = pytest.mark.django_db

ALLOWED, FORBIDDEN, REFUSED = "allowed", "403", "refused"
ROLES = ("engineer", "manager", "admin")
PROFILE_YAML = """computeType: AKS
autoScaler:
  autoscaleEnabled: true
  minReplicas: 1
  maxReplicas: 3
containerResourceRequirements:
  cpu: 0.5
  memoryInGB: 1
"""


@dataclass
class World:
    prod: Endpoint
    staging: Endpoint
    other_prod: Endpoint
    rows: dict
    model: object
    version: object
    running_run: TrainingRun
    finished_run: TrainingRun
    stress_profile: StressProfile
    awaiting: Promotion
    extra: dict = field(default_factory=dict)


@pytest.fixture
def world(engineer, admin_user):
    """A production endpoint serving v2 (blue, 100%) with v1 idle as its rollback target (green), a staging endpoint
    laid out the same, a promotion awaiting approval on another production endpoint, a running and a finished run."""
    profile = DeploymentProfile.objects.create(name="p1")
    staging = services.endpoint_create(name="t-staging", stage="staging", profile=profile, actor=engineer)
    prod = services.endpoint_create(name="t-prod", stage="production", profile=profile, actor=engineer)
    other_prod = services.endpoint_create(name="t-other-prod", stage="production", profile=profile, actor=engineer)
    model = make_model(engineer, name="titanic", versions=2, key_metric="cv_accuracy")
    for version in model.versions.all():  # something the serving services can deploy (no worker starts it here)
        version.training_run = make_run(engineer, backend_job_id=f"job-{version.version}",
                                        experiment_name=f"exp-{version.version}")
        version.save(update_fields=["training_run"])
    v1, v2 = model.versions.order_by("version")
    rows = {}
    for endpoint, name, version, traffic in [(prod, "blue", v2, 100), (prod, "green", v1, 0),
                                             (staging, "blue", v2, 100), (staging, "green", v1, 0)]:
        rows[endpoint.stage, name] = Deployment.objects.create(
            endpoint=endpoint, name=name, model_version=version, status="healthy", traffic=traffic,
            scoring_url="http://127.0.0.1:1/score", backend_ref={"dir": f"{endpoint.name}-{name}", "port": 1})
    stress_profile = StressProfile.objects.create(name="quick", model=model, concurrency=1, duration_seconds=1,
                                                  payloads=[{"Pclass": 1}])
    awaiting = Promotion.objects.create(version=v2, staging_endpoint=staging, production_endpoint=other_prod,
                                        requested_by=engineer, approval_required=True, reason="better",
                                        state=Promotion.State.AWAITING_APPROVAL)
    PromotionStep.objects.create(promotion=awaiting, position=0, kind="approval", label="Approval",
                                 status=PromotionStep.Status.WAITING)
    return World(prod=prod, staging=staging, other_prod=other_prod, rows=rows, model=model, version=v2,
                 running_run=make_run(engineer, status=TrainingRun.Status.RUNNING, example="scripted"),
                 finished_run=make_run(engineer, backend_job_id="job-unregistered", experiment_name="exp-free"),
                 stress_profile=stress_profile, awaiting=awaiting)


@dataclass(frozen=True)
class Action:
    url: str  # the URL's name
    on: str  # "production", "staging" or "-": the kind of object the request is about
    args: Callable[[World], list]
    data: Callable[[World], dict]
    engineer: str
    manager: str
    admin: str
    changes: bool | None = True  # an allowed request changes rows or the audit log (None: not checked here)

    def __str__(self):
        return f"{self.url}[{self.on}]"


def _endpoint(w: World, on: str) -> Endpoint:
    return w.prod if on == "production" else w.staging


def _workspace_form(w: World) -> dict:
    initial = WorkspaceForm(instance=AzureMLWorkspace.load()).initial
    return {**{k: v for k, v in initial.items() if k in WorkspaceForm.Meta.fields}, "resource_group": "rg-one"}


def _config_edit(w: World, slug: str, obj, **changes) -> dict:
    """A config edit as posted after its review (with the review's digest), changing `changes`."""
    import copy

    from deployments.configs.forms import form_class
    from deployments.configs.kinds import KINDS
    from deployments.configs.views import review_digest
    from tests.configs.test_config_pages import form_data

    data = {**form_data(slug, obj, **changes), "note": "access matrix"}
    form = form_class(KINDS[slug])(data, instance=copy.copy(obj))
    assert form.is_valid(), form.errors
    return {**data, "reviewed": review_digest(KINDS[slug], form)}


def _config_revert(w: World) -> dict:
    """Revision 2 of the stress profile (concurrency 3), to revert to revision 1 from."""
    w.stress_profile.concurrency = 3
    w.stress_profile._change_reason = "for the matrix"
    w.stress_profile.save()
    return {"note": "back"}


def _capacity_test(w: World, status: str):
    """A capacity test of staging's blue: running, or done with a confirmed knee."""
    from deployments.models import CapacityTest
    from tests.deployments.test_capacity import finished_test

    if status == "done":
        return finished_test(w.rows["staging", "blue"], w.version)
    return CapacityTest.objects.create(deployment=w.rows["staging", "blue"], model_version=w.version,
                                       p95_slo_ms=100, payloads=[{"Pclass": 1}], instances=1)


def _capacity_proposal(w: World):
    from deployments.configs import services as configs

    return configs.capacity_proposal_make(test=_capacity_test(w, "done"), profile=w.prod.profile, target_rps=100,
                                          p95_slo_ms=100, actor=None)


def _engineer_token(w: World):
    from django.contrib.auth import get_user_model

    from api.tokens import token_create

    if "token" not in w.extra:
        user = get_user_model().objects.get(username="eve-engineer")
        w.extra["token"], _ = token_create(user=user, name="pipeline", days=30, read_only=False)
    return w.extra["token"]


def _webhook(w: World):
    from webhooks.models import Subscription

    return Subscription.objects.get_or_create(name="pipeline", defaults={
        "url": "http://127.0.0.1:9/hook", "events": ["rollback"]})[0]


def _webhook_delivery(w: World):
    from webhooks.models import Delivery

    return Delivery.objects.create(subscription=_webhook(w), event="rollback", payload={"id": "x"},
                                   status=Delivery.Status.FAILED, attempts=7)


def _capacity_form(w: World, on: str) -> dict:
    return {"deployment": w.rows[on, "blue"].pk, "p95_slo_ms": 100, "error_rate_max": 0.01, "step_seconds": 5,
            "start_rps": 5, "max_rps": 100, "max_in_flight": 8, "payloads_from": w.stress_profile.pk}


E, M, A = "engineer", "manager", "admin"
ACTIONS = [
    Action("logout", "-", lambda w: [], lambda w: {}, ALLOWED, ALLOWED, ALLOWED, changes=False),
    Action("models_registry:model_edit", "-", lambda w: [w.model.name],
           lambda w: {"description": "edited", "key_metric": "cv_accuracy", "key_metric_goal": "max"},
           ALLOWED, FORBIDDEN, ALLOWED),
    Action("models_registry:run_launch", "-", lambda w: [],
           lambda w: {"example": "scripted", "experiment_name": "exp-new", "compute_target": "local",
                      "timeout_minutes": 5, "param_sleep": 0, "param_exit_code": 0, "param_outputs": "full",
                      "param_score": 0.5}, ALLOWED, FORBIDDEN, ALLOWED),
    Action("models_registry:run_cancel", "-", lambda w: [w.running_run.pk], lambda w: {},
           ALLOWED, FORBIDDEN, ALLOWED),
    # Registering copies the run's files, which these rows do not have: the refusal of that is tested elsewhere.
    Action("models_registry:run_register", "-", lambda w: [w.finished_run.pk],
           lambda w: {"model": w.model.pk}, ALLOWED, FORBIDDEN, ALLOWED, changes=None),
    *[Action("deployments:endpoint_key", on, lambda w, on=on: [_endpoint(w, on).name], lambda w: {},
             ALLOWED, FORBIDDEN, ALLOWED) for on in ("production", "staging")],
    # "Try it" sends one scoring request (no router runs here, so it says the endpoint did not answer).
    *[Action("deployments:endpoint_try", on, lambda w, on=on: [_endpoint(w, on).name],
             lambda w: {"payload": "{}"}, ALLOWED, FORBIDDEN, ALLOWED, changes=False)
      for on in ("production", "staging")],
    Action("deployments:endpoint_traffic", "staging", lambda w: [w.staging.name],
           lambda w: {"traffic-blue": 50, "traffic-green": 50}, ALLOWED, FORBIDDEN, ALLOWED),
    Action("deployments:endpoint_traffic", "production", lambda w: [w.prod.name],
           lambda w: {"traffic-blue": 50, "traffic-green": 50}, REFUSED, FORBIDDEN, REFUSED),
    Action("deployments:deployment_delete", "staging",
           lambda w: [w.staging.name, w.rows["staging", "green"].pk], lambda w: {}, ALLOWED, FORBIDDEN, ALLOWED),
    Action("deployments:deployment_delete", "production",
           lambda w: [w.prod.name, w.rows["production", "green"].pk], lambda w: {}, REFUSED, FORBIDDEN, REFUSED),
    Action("deployments:endpoint_rollback", "production", lambda w: [w.prod.name], lambda w: {"reason": "bad"},
           ALLOWED, FORBIDDEN, ALLOWED),
    Action("deployments:endpoint_rollback", "staging", lambda w: [w.staging.name], lambda w: {"reason": "bad"},
           REFUSED, FORBIDDEN, REFUSED),
    Action("deployments:version_deploy", "staging", lambda w: [w.model.name, w.version.version],
           lambda w: {"endpoint": w.staging.pk, "name": "red"}, ALLOWED, FORBIDDEN, ALLOWED),
    Action("deployments:version_deploy", "production", lambda w: [w.model.name, w.version.version],
           lambda w: {"endpoint": w.prod.pk, "name": "red"}, REFUSED, FORBIDDEN, REFUSED),
    Action("deployments:version_promote", "production", lambda w: [w.model.name, w.version.version],
           lambda w: {"production_endpoint": w.prod.pk, "staging_endpoint": w.staging.pk,
                      "stress_profile": w.stress_profile.pk, "reason": "better"}, ALLOWED, FORBIDDEN, ALLOWED),
    Action("deployments:version_promote", "staging", lambda w: [w.model.name, w.version.version],
           lambda w: {"production_endpoint": w.staging.pk, "staging_endpoint": w.staging.pk,
                      "stress_profile": w.stress_profile.pk, "reason": "better"}, REFUSED, FORBIDDEN, REFUSED),
    Action("deployments:profile_import", "-", lambda w: [], lambda w: {"name": "imported", "text": PROFILE_YAML},
           FORBIDDEN, FORBIDDEN, ALLOWED),
    Action("deployments:promotion_decide", "production", lambda w: [w.awaiting.pk],
           lambda w: {"decision": "approve", "comment": "evidence is good"}, FORBIDDEN, ALLOWED, ALLOWED),
    Action("deployments:promotion_cancel", "production", lambda w: [w.awaiting.pk],
           lambda w: {"reason": "wrong version"}, ALLOWED, FORBIDDEN, ALLOWED),
    Action("workspaces:workspace_detail", "-", lambda w: [], _workspace_form, FORBIDDEN, FORBIDDEN, ALLOWED),
    # Each user's own notification settings: everyone may set theirs (and only theirs).
    Action("user_settings", "-", lambda w: [], lambda w: {"time_zone": "Europe/Paris"}, ALLOWED, ALLOWED, ALLOWED),
    Action("notifications:settings", "-", lambda w: [], lambda w: {"email": "on", "events": ["rollback"]},
           ALLOWED, ALLOWED, ALLOWED),
    # Configurations: admins only. The profile is the production endpoint's too: saving it changes what the next
    # promotion deploys, not what production runs.
    Action("deployments:config_edit", "production", lambda w: ["profiles", w.prod.profile.pk],
           lambda w: _config_edit(w, "profiles", w.prod.profile, instance_count=2), FORBIDDEN, FORBIDDEN, ALLOWED),
    Action("deployments:config_edit", "-", lambda w: ["endpoints", w.prod.pk],
           lambda w: _config_edit(w, "endpoints", w.prod, approval_required=False), FORBIDDEN, FORBIDDEN, ALLOWED),
    Action("deployments:config_create", "-", lambda w: ["stress-profiles"],
           lambda w: {**_config_edit(w, "stress-profiles", StressProfile(model=w.model, name="new", payloads=[1])),
                      "model": w.model.pk}, FORBIDDEN, FORBIDDEN, ALLOWED),
    Action("deployments:config_revert", "-", lambda w: ["stress-profiles", w.stress_profile.pk, 1], _config_revert,
           FORBIDDEN, FORBIDDEN, ALLOWED),
    # A config rollout is a promotion of the serving version with the profile's new settings: admins start it.
    Action("deployments:endpoint_config_rollout", "production", lambda w: [w.prod.name],
           lambda w: {"staging_endpoint": w.staging.pk, "stress_profile": w.stress_profile.pk, "reason": "settings"},
           FORBIDDEN, FORBIDDEN, ALLOWED),
    # A YAML read into the profile is only reviewed here: it is saved through config_edit.
    Action("deployments:config_import", "-", lambda w: ["profiles", w.prod.profile.pk],
           lambda w: {"text": "instance_count: 3\n"}, FORBIDDEN, FORBIDDEN, ALLOWED, changes=False),
    Action("workspaces:workspace_test", "-", lambda w: [], lambda w: {}, FORBIDDEN, FORBIDDEN, ALLOWED),
    # Capacity tests load staging only (a production deployment is not among the choices); admins size profiles.
    Action("deployments:capacity_new", "staging", lambda w: [], lambda w: _capacity_form(w, "staging"),
           ALLOWED, FORBIDDEN, ALLOWED),
    Action("deployments:capacity_new", "production", lambda w: [], lambda w: _capacity_form(w, "production"),
           REFUSED, FORBIDDEN, REFUSED),
    Action("deployments:capacity_stop", "staging", lambda w: [_capacity_test(w, "running").pk], lambda w: {},
           ALLOWED, FORBIDDEN, ALLOWED),
    Action("deployments:capacity_propose", "-", lambda w: [_capacity_test(w, "done").pk],
           lambda w: {"profile": w.prod.profile.pk, "target_rps": 50, "p95_slo_ms": 100},
           FORBIDDEN, FORBIDDEN, ALLOWED),
    Action("deployments:capacity_apply", "production", lambda w: [_capacity_proposal(w).pk], lambda w: {},
           FORBIDDEN, FORBIDDEN, ALLOWED),
    # API tokens: everyone makes their own; the owner or an admin revokes one (here the engineer's).
    Action("api_pages:token_list", "-", lambda w: [], lambda w: {"name": "ci", "days": 30}, ALLOWED, ALLOWED, ALLOWED),
    Action("api_pages:token_revoke", "-", lambda w: [_engineer_token(w).key_id], lambda w: {},
           ALLOWED, FORBIDDEN, ALLOWED),
    # Webhooks: admins only (their pages show the signing secrets).
    Action("webhooks:subscription_list", "-", lambda w: [],
           lambda w: {"name": "ci", "url": "http://127.0.0.1:9/hook", "events": ["rollback"], "active": "on"},
           FORBIDDEN, FORBIDDEN, ALLOWED),
    Action("webhooks:subscription_delete", "-", lambda w: [_webhook(w).pk], lambda w: {},
           FORBIDDEN, FORBIDDEN, ALLOWED),
    Action("webhooks:delivery_redeliver", "-", lambda w: [_webhook_delivery(w).pk], lambda w: {},
           FORBIDDEN, FORBIDDEN, ALLOWED),
]

# URLs that only show something: a POST to them must change nothing. Each with the arguments to reach it.
READ_ONLY = {
    "": lambda w: [],  # the root: a redirect to the models list
    "models_registry:model_list": lambda w: [],
    "models_registry:model_detail": lambda w: [w.model.name],
    "models_registry:version_detail": lambda w: [w.model.name, w.version.version],
    "models_registry:version_download": lambda w: [w.model.name, w.version.version, "model.bin"],
    "models_registry:run_list": lambda w: [],
    "models_registry:run_detail": lambda w: [w.running_run.pk],
    "deployments:endpoint_list": lambda w: [],
    "deployments:endpoint_detail": lambda w: [w.prod.name],
    "deployments:deployment_logs": lambda w: [w.prod.name, w.rows["production", "blue"].pk],
    "deployments:promotion_list": lambda w: [],
    "deployments:promotion_inbox": lambda w: [],
    "deployments:endpoint_releases": lambda w: [w.prod.name],
    "deployments:releases_as_of": lambda w: [],
    "models_registry:model_timeline": lambda w: [w.model.name],
    "audit:audit_log": lambda w: [],
    "deployments:promotion_report": lambda w: [w.awaiting.pk],
    "models_registry:version_compare": lambda w: [w.model.name],
    "deployments:promotion_detail": lambda w: [w.awaiting.pk],
    "deployments:config_index": lambda w: [],
    "deployments:endpoint_drift": lambda w: [w.prod.name],
    "deployments:config_yaml": lambda w: ["profiles", w.prod.profile.pk],
    "deployments:config_detail": lambda w: ["profiles", w.prod.profile.pk],
    "deployments:config_diff": lambda w: ["profiles", w.prod.profile.pk],
    "deployments:capacity_list": lambda w: [],
    "deployments:capacity_detail": lambda w: [_capacity_test(w, "done").pk],
    "api_pages:token_list_all": lambda w: [],
    "webhooks:subscription_detail": lambda w: [_webhook(w).pk],
}
PUBLIC = {"login"}  # the only view marked login_not_required; its throttling is tested in tests/test_login.py
# Django admin checks its own permissions (staff only, per model); tested in tests/test_audit.py and
# tests/deployments/test_production_guard.py. The API answers JSON, not pages: its own matrix is
# tests/api/test_api_access.py.
NOT_HERE = ("admin", "api")


def _walk(patterns, prefix="", namespace=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}:{entry.namespace}" if namespace and entry.namespace else (
                entry.namespace or namespace)
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else (entry.name or "")
            yield name, prefix + str(entry.pattern), entry.callback


def _portal_urls():
    return {name: (route, callback) for name, route, callback in _walk(get_resolver().url_patterns)
            if name.split(":")[0] not in NOT_HERE}


def test_every_url_is_in_the_matrix():
    urls = _portal_urls()
    listed = {a.url for a in ACTIONS} | set(READ_ONLY) | PUBLIC
    assert set(urls) - listed == set(), "URLs missing from the access matrix: add a row to ACTIONS or READ_ONLY"
    assert listed - set(urls) == set(), "rows for URLs that no longer exist"
    public = {name for name, (_, callback) in urls.items() if getattr(callback, "login_required", True) is False}
    assert public == PUBLIC


def snapshot() -> dict:
    """Every row of the portal's own apps (and users and groups), field by field, and the audit log."""
    state = {}
    for app in ("auth", "accounts", "audit", "models_registry", "deployments", "workspaces", "notifications", "api",
                "webhooks"):
        for model in apps.get_app_config(app).get_models():
            state[model._meta.label] = sorted(map(repr, model.objects.order_by("pk").values_list()))
    return state


def _client(request, role):
    if role == "anonymous":
        return Client()
    client = Client()
    client.force_login(request.getfixturevalue({"admin": "admin_user"}.get(role, role)))
    return client


@pytest.mark.parametrize("role", ["anonymous", *ROLES])
@pytest.mark.parametrize("action", ACTIONS, ids=str)
def test_action_by_role(request, world, action, role):
    client = _client(request, role)
    url = reverse(action.url, args=action.args(world))
    data = action.data(world)
    before = snapshot()
    response = client.post(url, data)
    after = snapshot()
    expected = "login" if role == "anonymous" else getattr(action, role)
    if expected == "login":
        assert response.status_code == 302 and response["Location"].startswith(reverse("login") + "?next=")
    elif expected == FORBIDDEN:
        assert response.status_code == 403
    elif expected == REFUSED:
        assert response.status_code in (302, 400), response.status_code
        shown = client.get(response["Location"]) if response.status_code == 302 else response
        assert b'<li class="error"' in shown.content or b"errorlist" in shown.content
    else:
        assert response.status_code in (200, 302, 400) and response.status_code != 403
        if action.changes is not None:
            assert (after != before) is action.changes, f"{action} by {role}: changes={after != before}"
    if expected != ALLOWED:
        assert after == before, f"{action} refused for {role} but changed rows"


@pytest.mark.parametrize("name", sorted(READ_ONLY))
def test_read_only_urls_change_nothing(request, world, name):
    url = reverse(name, args=READ_ONLY[name](world)) if name else "/"
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("login"))
    admin = _client(request, "admin")
    reachable = (200, 302, 404) if name == "models_registry:version_download" else (200, 302)  # no file on disk
    assert admin.get(url).status_code in reachable
    before = snapshot()
    response = admin.post(url, {"name": "x", "traffic": 0})
    assert response.status_code in (302, 405) and snapshot() == before
