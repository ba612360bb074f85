"""The sync reads a backend's typed Inventory and nothing Azure-specific: on the in-memory fake it finds what was
made outside the portal, in seconds. (tests/azureml/test_flows.py runs it against the fake Azure ML.)"""
import pytest

from deployments.models import Deployment, Endpoint
from mlopsportal import examples
from mlopsportal.backends.base import ServingSpec
from mlopsportal.backends.fake import FakeBackend
from models_registry.models import ModelVersion
from workspaces import sync
from workspaces.models import AzureMLWorkspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake(fake):
    FakeBackend.configure(platform_serves=True)
    return fake


def made_outside(backend, *, deployment_polls=0):
    """A version, an endpoint and a deployment of it, made on the platform without the portal."""
    backend.training_submit(job_name="job-outside", example=examples.get_example("scripted"), params={},
                            compute_target="fake", experiment_name="e", timeout_seconds=60)
    assert backend.training_status("job-outside").state == "succeeded"
    artifact = backend.model_register(job_id="job-outside", model_name="scripted", version=3)
    ref = backend.deployment_create(ServingSpec(
        endpoint_name="found-prod", deployment_name="blue", artifact_uri=artifact.uri, code_job_id="job-outside",
        scoring_script="score.py", settings={}, stage="production")).ref
    return artifact, ref


def test_sync_on_a_backend_without_an_inventory_does_nothing(settings):
    settings.MLOPS_BACKEND = "local"
    assert sync.azureml_sync() == []
    assert not AzureMLWorkspace.objects.exists()


def test_sync_takes_in_what_the_fake_platform_holds(fake):
    artifact, ref = made_outside(fake)
    fake.deployment_advance(ref)
    fake.endpoint_traffic_apply(endpoint_name="found-prod", traffic={"blue": 100})
    assert fake.endpoint_traffic_applied(endpoint_name="found-prod", traffic={"blue": 100})

    findings = sync.azureml_sync()
    assert "scripted v3 was registered in Azure ML outside the portal" in findings, findings
    version = ModelVersion.objects.get(model__name="scripted", version=3)
    assert version.artifact_uri == artifact.uri and version.changed_outside
    endpoint = Endpoint.objects.get(name="found-prod")
    assert endpoint.stage == Endpoint.Stage.PRODUCTION and endpoint.key == fake.endpoint_access("found-prod").key
    deployment = endpoint.deployments.get()
    assert (deployment.name, deployment.status, deployment.model_version) == ("blue", Deployment.Status.HEALTHY,
                                                                              version)
    assert deployment.backend_ref == ref and deployment.traffic == 100
    assert sync.azureml_sync() == []  # taken in: nothing new the second time
    assert AzureMLWorkspace.load().sync_ok


def test_a_deployment_still_starting_waits_for_the_next_sync(fake):
    FakeBackend.configure(deployment_polls=1)
    _, ref = made_outside(fake)
    sync.azureml_sync()
    assert not Deployment.objects.exists()  # busy on the platform: look again next time
    fake.deployment_advance(ref)
    fake.deployment_advance(ref)
    sync.azureml_sync()
    assert Deployment.objects.get().status == Deployment.Status.HEALTHY
