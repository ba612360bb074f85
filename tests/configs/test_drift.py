"""Drift on an endpoint: each live deployment as Azure reports it (the real SDK against the fake Azure ML), against
what it was deployed with, the profile revision that came from, and the profile now."""
import pytest
from django.urls import reverse

from deployments.models import Deployment, DeploymentProfile
from deployments.serving import drift, services
from mlopsportal.backends import get_backend
from tests.azureml.test_backend import poll_until_settled, version_on_azure
from tests.configs.test_config_pages import post_edit

pytestmark = [pytest.mark.django_db, pytest.mark.processes]


@pytest.fixture
def deployed(azure, engineer):
    profile = DeploymentProfile.objects.create(name="aks", instance_count=2, request_timeout_ms=30_000)
    prod = services.endpoint_create(name="titanic-prod", stage="production", profile=profile, actor=engineer)
    version = version_on_azure(engineer, get_backend("azureml"))
    deployment = Deployment.objects.create(endpoint=prod, name="blue", model_version=version, created_by=engineer,
                                           serving_settings=profile.serving_settings(),
                                           profile_revision=services._profile_revision(profile))
    assert services.deployment_start(deployment_id=deployment.pk)
    blue = poll_until_settled(deployment)
    assert blue.status == Deployment.Status.HEALTHY, blue.error
    return prod, blue


def test_no_drift_right_after_deploying(deployed, manager_client):
    prod, blue = deployed
    [entry] = drift.endpoint_drift(prod)
    assert entry.reported and not entry.platform_drift and not entry.profile_drift
    assert entry.made_from == entry.now == 1
    rows = {row.key: row for row in entry.rows}
    assert rows["instance_count"].reported == 2 and rows["request_timeout_ms"].reported == 30_000
    assert rows["cpu_request"].reported == 0.5 and rows["memory_request_gb"].reported == 1.0
    page = manager_client.get(reverse("deployments:endpoint_drift", args=[prod.name])).content.decode()
    assert "runs as deployed" in page and "matches the profile now" in page


def test_changed_in_azure_and_in_the_profile_both_show(deployed, azure, admin_client_, manager_client):
    prod, blue = deployed
    # Someone scales it in Azure ML studio and lengthens its timeout there.
    stored = azure.workspace.deployments[("titanic-prod", "blue")]
    stored["sku"]["capacity"] = 4
    stored["properties"]["requestSettings"]["requestTimeout"] = "PT45S"
    # An admin edits the profile: the deployment keeps what it runs.
    review, saved = post_edit(admin_client_, "profiles", prod.profile, note="faster timeout",
                              request_timeout_ms=10_000)
    assert saved.status_code == 302
    prod.refresh_from_db()
    [entry] = drift.endpoint_drift(prod)
    assert {row.key for row in entry.platform_drift} == {"instance_count", "request_timeout_ms"}
    assert {row.key for row in entry.profile_drift} == {"request_timeout_ms"}
    assert (entry.made_from, entry.now) == (1, 2)
    rows = {row.key: row for row in entry.rows}
    assert (rows["request_timeout_ms"].reported, rows["request_timeout_ms"].deployed,
            rows["request_timeout_ms"].made_from, rows["request_timeout_ms"].now) == (45_000, 30_000, 30_000, 10_000)
    page = manager_client.get(reverse("deployments:endpoint_drift", args=[prod.name])).content.decode()
    assert 'data-testid="platform-drift"' in page and 'data-testid="profile-drift"' in page
    assert "Instances, Request timeout (ms)" in page


def test_a_platform_that_does_not_answer_is_said(deployed, azure, manager_client):
    prod, _ = deployed
    azure.inject("GET", r"/onlineEndpoints/titanic-prod/deployments/blue$", 503, times=20,
                 body={"error": {"code": "ServiceUnavailable", "message": "Try again later."}})
    get_backend("azureml").forget_clients()
    page = manager_client.get(reverse("deployments:endpoint_drift", args=[prod.name]))
    assert page.status_code == 200 and "platform did not answer" in page.content.decode()
