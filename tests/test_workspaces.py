"""The Azure ML workspace page: who may see and edit it, bad input, and what "Test connection" says."""
import pytest
from azure.identity import CredentialUnavailableError
from django.urls import reverse

from audit.models import AuditEvent
from mlopsportal.backends import get_backend
from workspaces.models import AzureMLWorkspace

URL = reverse("workspaces:workspace_detail")
TEST_URL = reverse("workspaces:workspace_test")
GOOD = {"subscription_id": "00000000-0000-0000-0000-000000000000", "resource_group": "rg-test",
        "workspace_name": "ws-test", "aks_compute": "aks-prod", "training_cluster": "cpu-cluster",
        "staging_on": "managed", "managed_instance_type": "Standard_DS3_v2",
        "training_environment": "azureml:AzureML-sklearn-1.5@latest",
        "inference_environment": "azureml:AzureML-sklearn-1.5@latest"}


class SignedOut:
    """What DefaultAzureCredential does on a machine where nobody signed in."""

    def get_token(self, *scopes, **kwargs):
        raise CredentialUnavailableError("DefaultAzureCredential failed to retrieve a token from the included "
                                         "credentials.")


@pytest.fixture(autouse=True)
def _fresh_clients():
    get_backend("azureml").forget_clients()
    yield
    get_backend("azureml").forget_clients()


def test_every_role_sees_the_page_but_only_admins_get_the_form(engineer_client, manager_client, admin_client_):
    for client in (engineer_client, manager_client):
        response = client.get(URL)
        assert response.status_code == 200
        assert b"Test connection" not in response.content and b"<form method=\"post\">" not in response.content
    response = admin_client_.get(URL)
    assert b"Test connection" in response.content and b'name="subscription_id"' in response.content


def test_only_admins_change_the_settings_or_test_the_connection(engineer_client, manager_client):
    for client in (engineer_client, manager_client):
        assert client.post(URL, GOOD).status_code == 403
        assert client.post(TEST_URL).status_code == 403
    assert AzureMLWorkspace.load().workspace_name == ""
    assert not AuditEvent.objects.exists()


def test_admin_saves_the_settings_and_the_change_is_audited(admin_client_, admin_user):
    response = admin_client_.post(URL, GOOD)
    assert response.status_code == 302
    workspace = AzureMLWorkspace.load()
    assert (workspace.workspace_name, workspace.aks_compute, workspace.updated_by) == ("ws-test", "aks-prod", admin_user)
    event = AuditEvent.objects.get()
    assert event.actor == admin_user and "workspace_name" in event.changes


@pytest.mark.parametrize("field,value,message", [
    ("subscription_id", "my-subscription", b"A subscription ID looks like"),
    ("aks_compute", "aks prod!", b"2\xe2\x80\x9332 letters"),
    ("staging_on", "somewhere", b"Select a valid choice"),
])
def test_bad_settings_are_refused_with_a_message_and_change_nothing(admin_client_, field, value, message):
    admin_client_.post(URL, GOOD)
    response = admin_client_.post(URL, {**GOOD, field: value})
    assert response.status_code == 400
    assert message in response.content
    assert getattr(AzureMLWorkspace.load(), field) == GOOD[field]


def test_test_connection_names_what_is_missing(admin_client_):
    admin_client_.post(URL, {**GOOD, "workspace_name": "", "training_cluster": ""})
    admin_client_.post(TEST_URL)
    workspace = AzureMLWorkspace.load()
    assert not workspace.check_ok
    assert workspace.check_results == [{"check": "Settings", "ok": False,
                                        "message": "Missing: workspace name, training cluster.", "facts": {}}]
    assert b"Missing: workspace name, training cluster." in admin_client_.get(URL).content


def test_test_connection_says_how_to_sign_in_when_no_credential_works(admin_client_, settings):
    settings.MLOPS_AZURE_CREDENTIAL = "tests.test_workspaces.SignedOut"
    admin_client_.post(URL, GOOD)
    admin_client_.post(TEST_URL)
    workspace = AzureMLWorkspace.load()
    failed = workspace.check_results[-1]
    assert (failed["check"], failed["ok"]) == ("Credentials", False)
    assert "az login" in failed["message"] and "AZURE_CLIENT_ID" in failed["message"]
