"""Production changes only through a promotion or a rollback: the serving services refuse everything else,
whoever asks and whatever the page shows."""
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from audit.models import AuditEvent
from deployments.models import Deployment, DeploymentProfile, Endpoint, Promotion
from deployments.serving import services
from models_registry.models import TrainingRun
from tests.conftest import running_promotion
from tests.models_registry.factories import make_model

pytestmark = pytest.mark.django_db
REFUSED = "production changes only through a promotion or a rollback"


@pytest.fixture
def world(engineer):
    """A production endpoint serving v2 as blue with v1 idle as green (the rollback target), and a staging one."""
    profile = DeploymentProfile.objects.create(name="p1")
    staging = services.endpoint_create(name="titanic-staging", stage="staging", profile=profile, actor=engineer)
    prod = services.endpoint_create(name="titanic-prod", stage="production", profile=profile, actor=engineer)
    model = make_model(engineer, name="titanic", versions=2)
    for version in model.versions.all():  # _spec needs a run whose code holds score.py; no worker starts it here
        version.training_run = TrainingRun.objects.create(
            experiment_name="e", example="titanic", params={}, compute_target="local", backend="local",
            timeout_seconds=60, status=TrainingRun.Status.SUCCEEDED, launched_by=engineer,
            backend_job_id=f"job-{version.version}")
        version.save(update_fields=["training_run"])
    v1, v2 = model.versions.order_by("version")
    rows = {}
    for endpoint, name, version, traffic in [(prod, "blue", v2, 100), (prod, "green", v1, 0),
                                             (staging, "blue", v2, 100), (staging, "green", v1, 0)]:
        rows[endpoint.stage, name] = Deployment.objects.create(
            endpoint=endpoint, name=name, model_version=version, status="healthy", traffic=traffic,
            scoring_url="http://127.0.0.1:1/score", backend_ref={"dir": "x", "port": 1})
    return {"prod": prod, "staging": staging, "v1": v1, "v2": v2, "rows": rows}


def serving(endpoint):
    return dict(endpoint.deployments.exclude(status__in=["deleting", "deleted"]).values_list("name", "traffic"))


def test_direct_delete_of_the_rollback_target_is_refused_and_rollback_still_works(world, engineer_client, engineer):
    """The repro of issue #10: the idle production deployment deleted by a direct POST left nothing to roll back to."""
    prod, green = world["prod"], world["rows"]["production", "green"]
    events = AuditEvent.objects.count()
    response = engineer_client.post(reverse("deployments:deployment_delete", args=[prod.name, green.pk]), follow=True)
    assert REFUSED in response.content.decode()
    green.refresh_from_db()
    assert green.status == "healthy" and AuditEvent.objects.count() == events
    target = services.endpoint_rollback(endpoint=prod, actor=engineer, reason="error rate up")
    assert target.pk == green.pk and serving(prod) == {"blue": 0, "green": 100}


@pytest.mark.parametrize("who", ["engineer", "admin_user"])
def test_every_direct_production_change_is_refused_in_the_service(request, world, who):
    actor = request.getfixturevalue(who)
    prod = world["prod"]
    with pytest.raises(ValidationError, match=REFUSED):
        services.deployment_delete(deployment=world["rows"]["production", "green"], actor=actor)
    with pytest.raises(ValidationError, match=REFUSED):
        services.endpoint_traffic_set(endpoint=prod, traffic={"blue": 50, "green": 50}, actor=actor)
    with pytest.raises(ValidationError, match=REFUSED):
        services.deployment_create(endpoint=prod, version=world["v1"], name="red", actor=actor)
    assert serving(prod) == {"blue": 100, "green": 0}
    assert not prod.deployments.filter(name="red").exists()
    assert not Deployment.objects.filter(status="deleting").exists()


def test_staging_changes_directly(world, engineer):
    staging = world["staging"]
    services.endpoint_traffic_set(endpoint=staging, traffic={"blue": 50, "green": 50}, actor=engineer)
    services.endpoint_traffic_set(endpoint=staging, traffic={"blue": 100}, actor=engineer)
    services.deployment_delete(deployment=world["rows"]["staging", "green"], actor=engineer)
    created = services.deployment_create(endpoint=staging, version=world["v1"], name="red", actor=engineer)
    assert created.status == "creating" and serving(staging) == {"blue": 100, "red": 0}


def test_the_promotion_targeting_the_endpoint_may_change_it(world, engineer):
    prod = world["prod"]
    promotion = running_promotion(prod, world["v1"], engineer)
    created = services.deployment_create(endpoint=prod, version=world["v1"], name="red", actor=engineer,
                                         start=False, promotion=promotion)
    services.deployment_delete(deployment=world["rows"]["production", "green"], actor=None, promotion=promotion)
    Deployment.objects.filter(pk=created.pk).update(status="healthy")
    services.endpoint_traffic_set(endpoint=prod, traffic={"blue": 90, "red": 10}, actor=None, promotion=promotion)
    assert serving(prod) == {"blue": 90, "red": 10}


def test_a_promotion_changes_only_its_own_production_endpoint(world, engineer):
    other = Endpoint.objects.create(name="other-prod", stage="production", profile=world["prod"].profile)
    promotion = running_promotion(other, world["v1"], engineer)
    with pytest.raises(ValidationError, match=REFUSED):
        services.endpoint_traffic_set(endpoint=world["prod"], traffic={"green": 100}, actor=None, promotion=promotion)
    with pytest.raises(ValidationError, match=REFUSED):
        services.deployment_delete(deployment=world["rows"]["production", "green"], actor=None, promotion=promotion)


def test_a_finished_promotion_deploys_nothing_more_to_production(world, engineer):
    promotion = running_promotion(world["prod"], world["v1"], engineer)
    Promotion.objects.filter(pk=promotion.pk).update(state=Promotion.State.FAILED)
    promotion.refresh_from_db()
    with pytest.raises(ValidationError, match="deploys nothing more"):
        services.deployment_create(endpoint=world["prod"], version=world["v1"], name="red", actor=engineer,
                                   promotion=promotion)
    # ...but its clean-up still puts traffic back and removes what it deployed.
    services.endpoint_traffic_set(endpoint=world["prod"], traffic={"green": 100}, actor=None, promotion=promotion)
    assert serving(world["prod"]) == {"blue": 0, "green": 100}


def test_a_deployment_a_promotion_in_progress_uses_is_not_deleted_from_under_it(world, engineer):
    staging_row = world["rows"]["staging", "green"]
    promotion = running_promotion(world["prod"], world["v1"], engineer)
    Promotion.objects.filter(pk=promotion.pk).update(staging_deployment=staging_row)
    with pytest.raises(ValidationError, match="which is in progress"):
        services.deployment_delete(deployment=staging_row, actor=engineer)
    staging_row.refresh_from_db()
    assert staging_row.status == "healthy"
    services.deployment_delete(deployment=staging_row, actor=None, promotion=promotion)  # the promotion retires it
    staging_row.refresh_from_db()
    assert staging_row.status == "deleting"


def test_django_admin_cannot_flip_the_stage_or_delete_a_production_endpoint(world, admin_client_):
    prod = world["prod"]
    page = admin_client_.get(reverse("admin:deployments_endpoint_change", args=[prod.pk])).content.decode()
    assert 'name="stage"' not in page  # shown read-only
    assert admin_client_.post(reverse("admin:deployments_endpoint_delete", args=[prod.pk]),
                              {"post": "yes"}).status_code == 403
    changelist = admin_client_.get(reverse("admin:deployments_endpoint_changelist")).content.decode()
    assert "delete_selected" not in changelist
    assert Endpoint.objects.filter(pk=prod.pk).exists() and serving(prod) == {"blue": 100, "green": 0}
    empty = Endpoint.objects.create(name="empty-staging", stage="staging", profile=prod.profile)
    admin_client_.post(reverse("admin:deployments_endpoint_delete", args=[empty.pk]), {"post": "yes"})
    assert not Endpoint.objects.filter(pk=empty.pk).exists()
