"""Deployment profiles imported from Azure ML v1 configs and v2 online-deployment YAML."""
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from audit.models import AuditEvent
from deployments.models import DeploymentProfile
from deployments.serving.profile_import import ProfileImportError, profile_from_yaml

SEED_AKS = (Path(__file__).resolve().parents[2] / "examples/titanic/deployment/aksDeploymentConfig.yml").read_text()

ACI = """computeType: ACI
containerResourceRequirements:
  cpu: 1
  memoryInGB: 2
authEnabled: false
sslEnabled: false
location: westeurope
"""

V2 = """$schema: https://azuremlschemas.azureedge.net/latest/kubernetesOnlineDeployment.schema.json
name: blue
endpoint_name: titanic-prod
model: azureml:titanic:1
instance_count: 2
scale_settings:
  type: target_utilization
  min_instances: 2
  max_instances: 5
  target_utilization_percentage: 60
  polling_interval: 10
request_settings:
  request_timeout_ms: 3000
  max_concurrent_requests_per_instance: 4
resources:
  requests:
    cpu: "500m"
    memory: "512Mi"
  limits:
    cpu: "1"
"""


def test_seed_aks_config_maps_to_the_documented_profile():
    result = profile_from_yaml(SEED_AKS)
    assert result.source == "Azure ML v1 AKS deployment config"
    assert result.fields == {"autoscale_enabled": True, "min_instances": 3, "max_instances": 6,
                             "target_utilization": 50, "instance_count": 3, "cpu_request": 0.5,
                             "memory_request_gb": 1.0, "auth_enabled": True, "request_timeout_ms": 60000,
                             "max_concurrent_requests_per_instance": 2}
    reported = [line.split(" ")[0] for line in result.not_imported]
    assert reported == ["autoScaler.refreshPeriodInSeconds", "appInsightsEnabled", "maxQueueWaitMs", "sslEnabled"]
    assert "maxQueueWaitMs (line 15): no v2 counterpart" in result.not_imported[2]


def test_aci_config():
    result = profile_from_yaml(ACI)
    assert result.fields == {"cpu_request": 1.0, "memory_request_gb": 2.0, "auth_enabled": False}
    assert [line.split(" ")[0] for line in result.not_imported] == ["sslEnabled", "location"]


def test_v2_online_deployment_yaml():
    result = profile_from_yaml(V2)
    assert result.fields == {"instance_count": 2, "autoscale_enabled": True, "min_instances": 2, "max_instances": 5,
                             "target_utilization": 60, "request_timeout_ms": 3000,
                             "max_concurrent_requests_per_instance": 4, "cpu_request": 0.5,
                             "memory_request_gb": 0.5}
    reported = {line.split(" ")[0] for line in result.not_imported}
    assert {"$schema", "name", "endpoint_name", "model", "scale_settings.polling_interval",
            "resources.limits.cpu"} == reported


@pytest.mark.parametrize("text, message", [
    ("computeType: AKS\nautoScaler:\n  minReplicas: [3\n", "Not valid YAML — line 4"),
    ("computeType: AKS\nautoScaler:\n  minReplicas: three\n", "autoScaler.minReplicas (line 3) must be a number"),
    ("computeType: AKS\nautoScaler:\n  minReplicas: 2.5\n", "must be a whole number"),
    ("computeType: AKS\nauthEnabled: yes please\n", "authEnabled (line 2) must be true or false"),
    ("computeType: VM\n", "computeType (line 1) must be AKS or ACI"),
    ("computeType: AKS\nautoScaler: 5\n", "autoScaler (line 2) must be a mapping of settings"),
    ("- a\n- b\n", "must be a mapping"),
    ("hello: world\n", "Not a deployment config"),
    ("resources:\n  requests:\n    cpu: lots\n", "is not a CPU amount"),
])
def test_bad_yaml_is_refused_with_the_line(text, message):
    with pytest.raises(ProfileImportError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        profile_from_yaml(text)


@pytest.mark.django_db
def test_admin_imports_seed_file_through_the_page(admin_client_, admin_user):
    url = reverse("deployments:profile_import")
    upload = SimpleUploadedFile("aksDeploymentConfig.yml", SEED_AKS.encode(), content_type="application/x-yaml")
    response = admin_client_.post(url, {"name": "titanic-aks", "file": upload})
    body = response.content.decode()
    assert response.status_code == 200 and "maxQueueWaitMs (line 15)" in body
    profile = DeploymentProfile.objects.get(name="titanic-aks")
    assert (profile.min_instances, profile.max_instances, profile.target_utilization) == (3, 6, 50)
    assert (float(profile.cpu_request), float(profile.memory_request_gb)) == (0.5, 1.0)
    assert profile.auth_enabled and profile.request_timeout_ms == 60000
    assert profile.max_concurrent_requests_per_instance == 2
    event = AuditEvent.objects.get(action="create", target_id=str(profile.pk))
    assert event.actor == admin_user and "maxQueueWaitMs" in " ".join(event.changes["not_imported"])


@pytest.mark.django_db
@pytest.mark.parametrize("data, message", [
    ({"name": "p", "text": "computeType: AKS\nautoScaler:\n  minReplicas: [3\n"}, "Not valid YAML — line 4"),
    ({"name": "p", "text": "computeType: AKS\nautoScaler:\n  autoscaleEnabled: true\n  minReplicas: 6\n"
                           "  maxReplicas: 3\n"}, "The minimum cannot be above the maximum."),
    ({"name": "p", "text": ""}, "Upload a YAML file or paste its text."),
    ({"name": "", "text": "computeType: ACI\n"}, "This field is required."),
])
def test_bad_import_saves_nothing(admin_client_, data, message):
    response = admin_client_.post(reverse("deployments:profile_import"), data)
    assert response.status_code == 400 and message in response.content.decode()
    assert not DeploymentProfile.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["engineer_client", "manager_client"])
def test_only_admins_import_profiles(request, who):
    client = request.getfixturevalue(who)
    url = reverse("deployments:profile_import")
    assert client.get(url).status_code == 403
    assert client.post(url, {"name": "p", "text": SEED_AKS}).status_code == 403
    assert not DeploymentProfile.objects.exists()
