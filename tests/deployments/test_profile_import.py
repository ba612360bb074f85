"""Deployment profiles imported from Azure ML v1 configs and v2 online-deployment YAML."""
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
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
                             "target_utilization": 50, "polling_interval_seconds": 1, "instance_count": 3,
                             "cpu_request": 0.5, "memory_request_gb": 1.0, "auth_enabled": True,
                             "request_timeout_ms": 60000, "max_concurrent_requests_per_instance": 2,
                             "max_queue_wait_ms": 180000}
    assert result.defaults == []  # the seed sets every setting itself
    reported = [line.split(" ")[0] for line in result.not_imported]
    assert reported == ["appInsightsEnabled", "sslEnabled"]
    assert "sslEnabled (line 16): on Kubernetes endpoints TLS is the Azure ML extension's setting" in \
        result.not_imported[1]


def test_v1_defaults_apply_to_what_a_config_leaves_out():
    """azureml-core's AKS defaults: autoscale on (1 to 10 replicas at 70%) unless numReplicas is given."""
    result = profile_from_yaml("computeType: AKS\ncontainerResourceRequirements:\n  cpu: 1\n")
    assert result.fields == {"autoscale_enabled": True, "min_instances": 1, "max_instances": 10,
                             "target_utilization": 70, "polling_interval_seconds": 1, "instance_count": 1,
                             "cpu_request": 1.0, "memory_request_gb": 0.5, "auth_enabled": True,
                             "request_timeout_ms": 60000, "max_concurrent_requests_per_instance": 1,
                             "max_queue_wait_ms": 500}
    assert "autoScaler.maxReplicas: 10 (v1's default)" in result.defaults
    assert "containerResourceRequirements.cpu: 1 (v1's default)" not in result.defaults
    fixed = profile_from_yaml("computeType: AKS\nnumReplicas: 4\n")
    assert fixed.fields["autoscale_enabled"] is False and fixed.fields["instance_count"] == 4
    assert "max_instances" not in fixed.fields


@pytest.mark.parametrize("memory, gb", [('"1Gi"', 1.07), ('"512Mi"', 0.54), ('"2G"', 2.0), ("1073741824", 1.07),
                                        ('"1500M"', 1.5)])
def test_v2_memory_is_a_kubernetes_quantity(memory, gb):
    """A bare v2 number is bytes, and Gi is 1.07 GB: the profile keeps GB."""
    result = profile_from_yaml(f"resources:\n  requests:\n    memory: {memory}\n")
    assert result.fields["memory_request_gb"] == gb


def test_v2_instance_type_names_the_clusters_instance_type_and_a_vm_size_is_reported():
    kube = profile_from_yaml("instance_type: cpu-large\ninstance_count: 2\n")
    assert kube.fields == {"kubernetes_instance_type": "cpu-large", "instance_count": 2}
    managed = profile_from_yaml("instance_type: Standard_DS3_v2\ninstance_count: 2\n")
    assert "kubernetes_instance_type" not in managed.fields
    assert managed.not_imported[0].startswith("instance_type (line 1): a managed endpoint's VM size")


def test_aci_config():
    result = profile_from_yaml(ACI)
    assert result.fields == {"cpu_request": 1.0, "memory_request_gb": 2.0, "auth_enabled": False}
    assert [line.split(" ")[0] for line in result.not_imported] == ["sslEnabled", "location"]
    assert "managed online endpoints always serve HTTPS" in result.not_imported[0]


def test_v2_online_deployment_yaml():
    result = profile_from_yaml(V2)
    assert result.fields == {"instance_count": 2, "autoscale_enabled": True, "min_instances": 2, "max_instances": 5,
                             "target_utilization": 60, "request_timeout_ms": 3000,
                             "max_concurrent_requests_per_instance": 4, "cpu_request": 0.5,
                             "memory_request_gb": 0.54, "polling_interval_seconds": 10}
    reported = {line.split(" ")[0] for line in result.not_imported}
    assert {"$schema", "name", "endpoint_name", "model", "resources.limits"} == reported


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
    assert response.status_code == 200 and "sslEnabled (line 16)" in body
    profile = DeploymentProfile.objects.get(name="titanic-aks")
    assert (profile.min_instances, profile.max_instances, profile.target_utilization) == (3, 6, 50)
    assert (float(profile.cpu_request), float(profile.memory_request_gb)) == (0.5, 1.0)
    assert profile.auth_enabled and profile.request_timeout_ms == 60000
    assert profile.max_concurrent_requests_per_instance == 2
    assert (profile.max_queue_wait_ms, profile.polling_interval_seconds) == (180000, 1)
    event = AuditEvent.objects.get(action="create", target_id=str(profile.pk))
    assert event.actor == admin_user and "sslEnabled" in " ".join(event.changes["not_imported"])


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


# --- hostile input: cheap to send, expensive to process -------------------------------------------------------------
LIST_BOMB = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{c}: &{c} [{','.join(['*' + p] * 10)}]\n" for p, c in zip("abcde", "bcdef", strict=True)) + "computeType: AKS\n"
MAP_BOMB = "computeType: AKS\na: &a {k0: 1, k1: 1}\n" + "".join(
    f"{c}: &{c} {{{', '.join(f'k{i}: *{p}' for i in range(10))}}}\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
HOSTILE = [
    (LIST_BOMB, "line 1, column 4: YAML anchors (&name) are not accepted"),
    (MAP_BOMB, "line 2, column 4: YAML anchors (&name) are not accepted"),
    ("computeType: AKS\nx: 1\ny: *x\n", "line 3, column 4: YAML aliases (*name) are not accepted"),
    ("computeType: AKS\n" + "".join(f"k{i}: {i}\n" for i in range(4000)), "more than 2000 values"),
    ("computeType: AKS\nnumReplicas: .nan\n", "numReplicas (line 2) must be a number, not nan"),
    ("computeType: AKS\nnumReplicas: .inf\n", "numReplicas (line 2) must be a number, not inf"),
    ("computeType: AKS\nnumReplicas: -.inf\n", "numReplicas (line 2) must be a number, not -inf"),
    ("computeType: AKS\nnumReplicas: " + "9" * 5000 + "\n", "line 2, column 14: a value longer than 2000"),
    ("computeType: AKS\nnumReplicas: " + "9" * 40 + "\n", "line 2, column 14: the number '99999999999999999999"),
    ("computeType: AKS\nnumReplicas: 1.0e+300\n", "numReplicas (line 2): 1e+300 is far out of range"),
    ("resources:\n  requests:\n    cpu: '1.2.3'\n", "resources.requests.cpu (line 3): '1.2.3' is not a CPU amount"),
    ("resources:\n  requests:\n    memory: 1Zi\n", "resources.requests.memory (line 3): '1Zi' is not a memory amount"),
    ("computeType: AKS\nx: " + "[" * 1200 + "]" * 1200 + "\n", "nested more than 20 levels deep"),
    ("computeType: AKS\nx: " + "{a: " * 1200 + "1" + "}" * 1200 + "\n", "nested more than 20 levels deep"),
    ("computeType: '" + "A" * 1500 + "'\n", "must be AKS or ACI, not 'AAAA"),
    ('computeType: AKS\n"\\0": 1\n', "line 2, column 1: a NUL character"),  # found by tests/test_fuzz.py
    ("\x1b", "Not valid YAML — "),  # a control character: the reader refuses it (found by the fuzz test too)
]


@pytest.mark.parametrize("text, message", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_yaml_is_refused_with_the_line_and_a_short_message(text, message):
    with pytest.raises(ProfileImportError) as refused:
        profile_from_yaml(text)
    assert message in str(refused.value) and len(str(refused.value)) < 300


def test_unknown_keys_are_reported_up_to_a_limit():
    text = "computeType: AKS\n" + "".join(f"k{i}: {i}\n" for i in range(300))
    result = profile_from_yaml(text)
    assert len(result.not_imported) == 51 and result.not_imported[-1] == "… and 250 more settings the portal does not map"


@pytest.mark.django_db
@pytest.mark.parametrize("text, message", HOSTILE[:4] + HOSTILE[7:8], ids=range(5))
def test_hostile_yaml_through_the_page_gets_a_small_refusal_and_saves_nothing(admin_client_, text, message):
    before = AuditEvent.objects.count()
    response = admin_client_.post(reverse("deployments:profile_import"), {"name": "p", "text": text})
    body = response.content.decode()
    assert response.status_code == 400 and message.replace("&", "&amp;") in body.replace("&#x27;", "'")
    assert len(response.content) < 10_000 + len(text)  # the page, the message and the textarea echoing the input
    assert body.count("Not accepted —") == 1  # said once
    assert not DeploymentProfile.objects.exists() and AuditEvent.objects.count() == before


@pytest.mark.django_db
def test_decimal_amounts_are_kept_as_written(admin_user):
    """0.1 or 0.3 CPU is not a float's 0.1000000000000000055…, which the profile's two decimal places refuse."""
    from deployments.serving import services

    profile, _ = services.profile_import(name="small", text="computeType: AKS\ncontainerResourceRequirements:\n"
                                                            "  cpu: 0.3\n  memoryInGB: 0.7\n", actor=admin_user)
    assert (str(profile.cpu_request), str(profile.memory_request_gb)) == ("0.3", "0.7")
    with pytest.raises(ValidationError, match="no more than 2 decimal places"):
        services.profile_import(name="fine", text="computeType: ACI\ncontainerResourceRequirements:\n  cpu: 0.125\n",
                                actor=admin_user)
