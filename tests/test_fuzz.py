"""Generated hostile input against the pages that take input: 0 server errors, 0 half-saved rows.

Hypothesis builds YAML documents (nested mappings and lists of odd scalars: huge integers, NaN and infinities, NUL and
control characters, long strings, anchors and aliases) and free text, and posts them to the profile import; it posts
random names, numbers and text to the deploy, traffic, try-it, model edit and search forms. Each request must answer
below 500, and one that is refused must leave the database as it was. The named cases of issue #10 are in
tests/deployments/test_profile_import.py."""
import math

import pytest
import yaml
from django.urls import reverse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from deployments.models import Deployment, DeploymentProfile, Endpoint
from models_registry.models import RegisteredModel
from tests.models_registry.factories import make_model

pytestmark = pytest.mark.django_db
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)  # what a browser can send
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
                    st.floats(allow_nan=True, allow_infinity=True), TEXT,
                    st.sampled_from(["500m", "1.2.3", "1Gi", "1Zi", "-1", ".nan", "AKS", "ACI", "target_utilization"]))
KEYS = st.one_of(st.sampled_from(["computeType", "numReplicas", "autoScaler", "autoscaleEnabled", "minReplicas",
                                  "maxReplicas", "containerResourceRequirements", "cpu", "memoryInGB",
                                  "scale_settings", "type", "instance_count", "resources", "requests", "memory",
                                  "request_settings", "request_timeout_ms", "scoringTimeoutMs"]), TEXT)
DOCUMENTS = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                           st.dictionaries(KEYS, inner, max_size=6)), max_leaves=30)


def dumped(document) -> str:
    try:
        return yaml.safe_dump(document, allow_unicode=True)
    except (yaml.YAMLError, ValueError):
        return repr(document)


def counts():
    return (DeploymentProfile.objects.count(), Deployment.objects.count(), Endpoint.objects.count(),
            RegisteredModel.objects.count(), AuditEvent.objects.count())


@FUZZ
@given(text=st.one_of(DOCUMENTS.map(dumped), TEXT,
                      st.builds(lambda a, b: f"x: &a {a}\ny: [*a, *a]\nz: {b}\n", TEXT, TEXT)))
@example(text="computeType: AKS\nnumReplicas: .nan\n")
@example(text="a: &a [x,x]\nb: &b [*a,*a]\ncomputeType: AKS\n")
@example(text="computeType: AKS\nnumReplicas: " + "9" * 5000)
def test_profile_import_never_errors_and_saves_whole_or_nothing(admin_client_, text):
    before = counts()
    response = admin_client_.post(reverse("deployments:profile_import"), {"name": "fuzzed", "text": text})
    assert response.status_code < 500
    if response.status_code == 200 and DeploymentProfile.objects.filter(name="fuzzed").exists():
        profile = DeploymentProfile.objects.get(name="fuzzed")
        profile.full_clean()  # what was saved is a valid profile
        assert all(math.isfinite(float(getattr(profile, f))) for f in ("cpu_request", "memory_request_gb"))
        DeploymentProfile.objects.filter(pk=profile.pk).delete()
    else:
        assert counts() == before
    assert len(response.content) < 20_000 + 2 * len(text.encode())


@pytest.fixture
def world(engineer):
    profile = DeploymentProfile.objects.create(name="small", instance_count=1)
    staging = Endpoint.objects.create(name="t-staging", stage="staging", profile=profile, created_by=engineer)
    model = make_model(engineer, name="titanic", versions=1)
    Deployment.objects.create(endpoint=staging, name="blue", model_version=model.latest_version, status="healthy",
                              traffic=100)
    return staging, model


@FUZZ
@given(name=TEXT, endpoint=st.one_of(st.integers(-5, 10 ** 12), TEXT), blue=st.one_of(TEXT, st.integers()),
       payload=TEXT, q=TEXT, metric=TEXT)
@example(name="csrfmiddlewaretoken", endpoint=1, blue="100", payload='{"a": NaN}', q="\x00", metric="\x00")
def test_forms_never_error_and_refusals_change_nothing(engineer_client, world, name, endpoint, blue, payload, q,
                                                       metric):
    staging, model = world
    version = model.latest_version
    requests = [
        (reverse("deployments:version_deploy", args=[model.name, version.version]), {"endpoint": endpoint,
                                                                                    "name": name}),
        (reverse("deployments:endpoint_traffic", args=[staging.name]), {"traffic-blue": blue}),
        (reverse("deployments:endpoint_try", args=[staging.name]), {"payload": payload, "deployment": name}),
        (reverse("models_registry:model_edit", args=[model.name]), {"description": payload, "key_metric": metric,
                                                                    "key_metric_goal": name}),
    ]
    for url, data in requests:
        before = counts()
        traffic = dict(staging.deployments.values_list("name", "traffic"))
        response = engineer_client.post(url, data)
        assert response.status_code < 500, (url, data)
        if response.status_code >= 400 or (response.status_code == 200 and url.endswith("/edit/")):
            assert counts() == before, (url, data)  # refused: nothing saved, nothing audited
            assert dict(staging.deployments.values_list("name", "traffic")) == traffic
    assert engineer_client.get(reverse("models_registry:model_list"), {"q": q}).status_code < 500
    Deployment.objects.exclude(name="blue").delete()
