"""The azureml backend against the fake Azure ML of tests/fakeaml, through the real azure-ai-ml SDK."""
import pytest

from mlopsportal.backends import get_backend
from tests.fakeaml.fixtures import fake_aml  # noqa: F401 - the fixture
from workspaces.models import AzureMLWorkspace

WORKSPACE = {"subscription_id": "00000000-0000-0000-0000-000000000000", "resource_group": "rg-test",
             "workspace_name": "ws-test", "aks_compute": "aks-prod", "training_cluster": "cpu-cluster",
             "staging_on": "managed"}
CREDENTIAL = "tests.fakeaml.FakeCredential"


@pytest.fixture
def azure(fake_aml, settings, db):  # noqa: F811
    """This process on the azureml backend, its workspace set to the fake's."""
    settings.MLOPS_BACKEND = "azureml"
    settings.MLOPS_AZURE_CREDENTIAL = CREDENTIAL
    AzureMLWorkspace.objects.update_or_create(pk=1, defaults=WORKSPACE)
    backend = get_backend("azureml")
    backend.forget_clients()
    yield fake_aml
    backend.forget_clients()


@pytest.fixture
def azure_env(azure):
    """What a worker started by the test needs to be on the same backend and reach the same fake."""
    return {**azure.env(), "MLOPS_BACKEND": "azureml", "MLOPS_AZURE_CREDENTIAL": CREDENTIAL}


@pytest.fixture
def azure_worker(start_celery, azure_env):
    return start_celery("worker", **azure_env)
