"""Generated hostile input against the pages that take input: 0 server errors, 0 half-saved rows.

Hypothesis builds YAML documents (nested mappings and lists of odd scalars: huge integers, NaN and infinities, NUL and
control characters, long strings, anchors and aliases) and free text, and posts them to the profile import; it posts
random names, numbers and text to the deploy, traffic, try-it, model edit and search forms; and right form data with up
to three fields swapped for hostile values to the training launch, register-a-version, promote, approve/reject,
promotion cancel, rollback and workspace settings forms. Each request must answer below 500 (and so must the page a
redirect leads to), and one that is refused must leave the database as it was and queue nothing. The tasks a post
queues are recorded, not published (the `queued` fixture): no worker runs here. The named cases of issue #10 are in
tests/deployments/test_profile_import.py."""
import math

import pytest
import yaml
from django.conf import settings as django_settings
from django.test import TestCase
from django.urls import reverse
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from deployments.models import Deployment, DeploymentProfile, Endpoint, Promotion, PromotionStep, StressProfile
from deployments.promotions.services import ADVANCE
from mlopsportal.lib import queue
from models_registry.models import ModelVersion, RegisteredModel, TrainingRun
from tests.models_registry.factories import make_model, make_run
from workspaces.models import AzureMLWorkspace

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


# --- the forms that start work or change settings -------------------------------------------------------------------
MODEST = settings(FUZZ, max_examples=40)
VALID = object()  # stands for the one right value of a field (a row's pk, say), known only inside the test
ODD = st.sampled_from(["", " ", "\t\n", "nan", "NaN", "inf", "-inf", "1e309", "-0", "0x10", "٣", "１", "\u202e",
                       "\ufeff", "a\u0301", "\x7f", "\x1b[31m", "'; --", "<script>", "../..", "9" * 400])
HOSTILE = st.one_of(TEXT, ODD, st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(min_size=2001, max_size=3000))


@st.composite
def forms_of(draw, fields: dict):
    """A form's data: each field right (a strategy of right values, or VALID), then up to three of them swapped for
    hostile values (or left out), so that some posts are accepted and each refusal has few causes."""
    data = {name: draw(value if isinstance(value, st.SearchStrategy) else st.just(value))
            for name, value in fields.items()}
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True)):
        if draw(st.integers(0, 9)) == 0:
            del data[name]
        else:
            data[name] = draw(HOSTILE)
    return data


def filled(data: dict, valid: dict) -> dict:
    """`data` with VALID replaced by the field's right value from `valid`."""
    return {key: valid[key] if value is VALID else value for key, value in data.items()}


@pytest.fixture(autouse=True)
def queued(monkeypatch):
    """The tasks posts queue, by name: recorded instead of published (no worker runs here)."""
    sent = []
    monkeypatch.setattr(queue, "send_now", lambda name, *args, countdown=None: sent.append(name))
    return sent


def posted(client, url, data, queued):
    """POST, with the work it queues recorded (its on-commit callbacks run at the end of the request, as they would
    on commit), then GET the page it sends the user to: what the post saved and the message it left must show too."""
    queued.clear()
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(url, data)
    if response.status_code == 302:
        shown = client.get(response["Location"])
        assert shown.status_code < 500, (response["Location"], data)
    return response


def more_counts():
    return counts() + (TrainingRun.objects.count(), ModelVersion.objects.count(), Promotion.objects.count(),
                       PromotionStep.objects.count(), AzureMLWorkspace.history.count())


@MODEST
@given(data=forms_of({
    "example": "scripted", "experiment_name": st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    "compute_target": "local", "timeout_minutes": st.integers(1, 60), "register_as": st.sampled_from([VALID, ""]),
    "param_sleep": st.floats(0, 600), "param_exit_code": st.integers(0, 3),
    "param_outputs": st.sampled_from(["full", "none"]), "param_score": st.floats(0, 1),
}) | st.builds(lambda d, v: {**d, "param_" + "x" * 3: v}, st.just({"example": "scripted"}), HOSTILE))
@example(data={"example": "scripted", "experiment_name": "fuzz-exp", "compute_target": "local",
               "timeout_minutes": 10 ** 30, "register_as": "", "param_sleep": "nan", "param_exit_code": "1e309",
               "param_outputs": "full", "param_score": "inf"})
def test_training_launch_never_errors_and_refusals_change_nothing(engineer_client, engineer, data, queued):
    model = make_model(engineer, name="scripted") if not RegisteredModel.objects.filter(name="scripted").exists() \
        else RegisteredModel.objects.get(name="scripted")
    before = more_counts()
    response = posted(engineer_client, reverse("models_registry:run_launch"), filled(data, {"register_as": model.pk}),
                      queued)
    assert response.status_code < 500, data
    event(f"status {response.status_code}")
    if response.status_code == 302:  # launched: one queued run, and its start queued
        run = TrainingRun.objects.latest("pk")
        assert queued == ["models_registry.tasks.training_run_start"]
        assert response["Location"] == run.get_absolute_url()
        run.full_clean()
        assert math.isfinite(run.params["score"]) and math.isfinite(run.params["sleep"])
    else:
        assert response.status_code == 400
        assert more_counts() == before, data
        assert queued == [], data
    # Choosing an example redraws the form through htmx, with a GET of whatever the select sent.
    redrawn = engineer_client.get(reverse("models_registry:run_launch"), {"example": data.get("example", "")},
                                  HTTP_HX_REQUEST="true", HTTP_HX_TRIGGER_NAME="example")
    assert redrawn.status_code < 500, data
    assert redrawn.status_code == 400 or b"<html" not in redrawn.content  # 400: a NUL


@pytest.fixture
def finished_run(engineer):
    """A succeeded run whose job folder holds outputs, so registering it can succeed."""
    run = make_run(engineer)
    job_id = f"run-{run.pk}-fuzz"
    outputs = django_settings.MLOPS_ARTIFACT_ROOT / "jobs" / job_id / "outputs"
    outputs.mkdir(parents=True, exist_ok=True)
    (outputs / "model.bin").write_bytes(b"abc")
    TrainingRun.objects.filter(pk=run.pk).update(backend_job_id=job_id)
    run.refresh_from_db()
    return run


@MODEST
@given(data=forms_of({"model": st.sampled_from([VALID, ""]), "new_model_name": st.sampled_from(["fresh-model", ""]),
                      "description": TEXT}))
@example(data={"model": "", "new_model_name": "fresh-model", "description": "x" * 100_000})
@example(data={"model": 10 ** 30, "new_model_name": "", "description": ""})
def test_register_version_never_errors_and_refusals_change_nothing(engineer_client, engineer, finished_run, data,
                                                                   queued):
    existing = RegisteredModel.objects.get_or_create(name="churn", defaults={"created_by": engineer})[0]
    url = reverse("models_registry:run_register", args=[finished_run.pk])
    before = more_counts()
    data = filled(data, {"model": existing.pk})
    response = posted(engineer_client, url, data, queued)
    assert response.status_code < 500, data
    version = ModelVersion.objects.filter(training_run=finished_run).first()
    event("registered" if version is not None else "refused")
    if version is not None:  # registered: one version, and a new model only when one was named
        assert response["Location"] == version.get_absolute_url()
        version.full_clean()
        ModelVersion.objects.filter(pk=version.pk).delete()  # so the next example can register the run again
        RegisteredModel.objects.filter(name="fresh-model").delete()
    else:
        assert response.status_code in (302, 400), data
        assert response.get("Location") in (None, finished_run.get_absolute_url())
        assert more_counts() == before, data
        assert queued == [], data


@pytest.fixture
def pipeline(engineer):
    """Staging and production endpoints, a model with two versions and its stress profile."""
    profile = DeploymentProfile.objects.create(name="small", instance_count=1)
    staging = Endpoint.objects.create(name="t-staging", stage="staging", profile=profile, created_by=engineer)
    prod = Endpoint.objects.create(name="t-prod", stage="production", profile=profile, created_by=engineer)
    model = make_model(engineer, name="titanic", versions=2)
    stress = StressProfile.objects.create(model=model, name="quick", concurrency=2, duration_seconds=1,
                                          payloads=[{"Pclass": 1}])
    return staging, prod, model, stress


def settle(promotion_id):
    """Take a promotion out of the way of the next example (one active promotion per production endpoint)."""
    Promotion.objects.filter(pk=promotion_id).update(state=Promotion.State.CANCELED)


@MODEST
@given(data=forms_of({"production_endpoint": VALID, "staging_endpoint": VALID, "stress_profile": VALID,
                      "reason": TEXT.filter(str.strip)}))
@example(data={"production_endpoint": VALID, "staging_endpoint": VALID, "stress_profile": VALID,
               "reason": "x" * 2001})
@example(data={"production_endpoint": 10 ** 30, "staging_endpoint": -1, "stress_profile": "nan", "reason": "ok"})
def test_promote_never_errors_and_refusals_change_nothing(engineer_client, pipeline, data, queued):
    staging, prod, model, stress = pipeline
    version = model.latest_version
    before = more_counts()
    response = posted(engineer_client, reverse("deployments:version_promote", args=[model.name, version.version]),
                      filled(data, {"production_endpoint": prod.pk, "staging_endpoint": staging.pk,
                                    "stress_profile": stress.pk}), queued)
    assert response.status_code < 500, data
    promotion = Promotion.objects.filter(state__in=Promotion.ACTIVE).first()
    event("started" if promotion else "refused")
    if promotion is not None:  # started, and its first step queued
        assert response["Location"] == promotion.get_absolute_url()
        assert queued == [ADVANCE]
        promotion.full_clean()
        settle(promotion.pk)
    else:
        assert response.status_code == 400 or response["Location"] == version.get_absolute_url()  # 400: a NUL
        assert more_counts() == before, data
        assert queued == [], data


def awaiting_approval(pipeline, engineer):
    staging, prod, model, stress = pipeline
    promotion = Promotion.objects.create(version=model.latest_version, production_endpoint=prod,
                                         staging_endpoint=staging, stress_profile=stress, requested_by=engineer,
                                         approval_required=True, traffic_steps=[10, 50, 100],
                                         state=Promotion.State.AWAITING_APPROVAL, reason="fuzz")
    PromotionStep.objects.create(promotion=promotion, position=0, kind="approval", label="Approval",
                                 status="waiting")
    return promotion


def promotion_state(promotion):
    row = Promotion.objects.values("state", "decision", "decision_comment", "failure_reason").get(pk=promotion.pk)
    return row, list(promotion.steps.values_list("status", "detail"))


@MODEST
@given(data=forms_of({"decision": st.sampled_from(["approve", "reject"]), "comment": TEXT.filter(str.strip)}))
@example(data={"decision": "approve", "comment": " \t\u3000\u2028"})
@example(data={"decision": "Approve", "comment": "ok"})
@example(data={"decision": "reject", "comment": "x" * 2001})
def test_decide_never_errors_and_refusals_change_nothing(manager_client, engineer, pipeline, data, queued):
    promotion = Promotion.objects.filter(state=Promotion.State.AWAITING_APPROVAL).first() \
        or awaiting_approval(pipeline, engineer)
    before, state = more_counts(), promotion_state(promotion)
    response = posted(manager_client, reverse("deployments:promotion_decide", args=[promotion.pk]), data, queued)
    assert response.status_code < 500, data
    assert response.status_code == 400 or response["Location"] == promotion.get_absolute_url()  # 400: a NUL
    promotion.refresh_from_db()
    event(promotion.state)
    if promotion.state == Promotion.State.AWAITING_APPROVAL:  # refused
        assert promotion_state(promotion) == state, data
        assert more_counts() == before, data
        assert queued == [], data
    else:
        assert promotion.decision_comment.strip() and promotion.decided_by is not None
        assert queued == ([ADVANCE] if promotion.state == Promotion.State.RUNNING else [])
        settle(promotion.pk)


@MODEST
@given(reason=st.one_of(TEXT, HOSTILE))
@example(reason=" \t\u3000\u2028\x1c")
@example(reason="x" * 100_000)
def test_cancel_never_errors_and_refusals_change_nothing(engineer_client, engineer, pipeline, reason, queued):
    staging, prod, model, stress = pipeline
    promotion = Promotion.objects.filter(state=Promotion.State.RUNNING).first() or Promotion.objects.create(
        version=model.latest_version, production_endpoint=prod, staging_endpoint=staging, stress_profile=stress,
        requested_by=engineer, approval_required=False, traffic_steps=[10, 50, 100], reason="fuzz")
    before, state = more_counts(), promotion_state(promotion)
    response = posted(engineer_client, reverse("deployments:promotion_cancel", args=[promotion.pk]), {"reason": reason},
                      queued)
    assert response.status_code < 500, reason
    promotion.refresh_from_db()
    event(promotion.state)
    if promotion.state == Promotion.State.RUNNING:  # refused
        assert response.status_code in (302, 400)
        assert promotion_state(promotion) == state, reason
        assert more_counts() == before, reason
        assert queued == [], reason
    else:
        assert response.status_code == 302 and promotion.state == Promotion.State.CANCELED
        assert str(reason).split(), reason  # a blank reason is refused
        assert len(promotion.failure_reason) < 1000  # the reason is kept, cut to a length a page shows


@MODEST
@given(reason=st.one_of(TEXT, HOSTILE))
@example(reason=" \t\u3000\u2028\x1c")
@example(reason="x" * 100_000)
def test_rollback_never_errors_and_refusals_change_nothing(engineer_client, pipeline, reason, queued):
    staging, prod, model, stress = pipeline
    v1, v2 = model.versions.order_by("version")
    if not prod.deployments.exists():
        Deployment.objects.create(endpoint=prod, name="blue", model_version=v1, status="healthy", traffic=0)
        Deployment.objects.create(endpoint=prod, name="green", model_version=v2, status="healthy", traffic=100)
    before = more_counts()
    response = posted(engineer_client, reverse("deployments:endpoint_rollback", args=[prod.name]), {"reason": reason},
                      queued)
    assert response.status_code < 500, reason
    traffic = dict(prod.deployments.values_list("name", "traffic"))
    event("rolled back" if traffic["blue"] == 100 else "refused")
    if traffic["blue"] == 100:
        assert traffic == {"blue": 100, "green": 0}
        assert str(reason).split(), reason  # a blank reason is refused
        prod.deployments.update(traffic=0)
        prod.deployments.filter(name="green").update(traffic=100)
    else:
        assert response.status_code in (302, 400)
        assert traffic == {"blue": 0, "green": 100}, reason
        assert more_counts() == before, reason
        assert queued == [], reason


AZURE_NAME = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.()-]{0,20}", fullmatch=True)
COMPUTE = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{1,20}", fullmatch=True)


@MODEST
@given(data=forms_of({
    "subscription_id": st.uuids().map(str), "resource_group": AZURE_NAME, "workspace_name": AZURE_NAME,
    "aks_compute": COMPUTE, "training_cluster": COMPUTE, "staging_on": st.sampled_from(["managed", "kubernetes"]),
    "managed_instance_type": st.sampled_from(["Standard_DS3_v2", "Standard_F4s_v2"]),
    "training_environment": st.sampled_from(["azureml:AzureML-sklearn-1.5@latest", "azureml:mine:3"]),
    "inference_environment": st.sampled_from(["azureml:AzureML-sklearn-1.5@latest", "azureml:mine:3"]),
}))
@example(data={"subscription_id": "0" * 36, "resource_group": "rg", "workspace_name": "ws", "aks_compute": "aks",
               "training_cluster": "cpu", "staging_on": "managed", "managed_instance_type": "x" * 65,
               "training_environment": "azureml:e@latest", "inference_environment": "azureml:e@latest"})
def test_workspace_settings_never_error_and_refusals_change_nothing(admin_client_, data, queued):
    AzureMLWorkspace.load()  # the page makes the one row on first sight, refused or not
    before = more_counts()
    saved = AzureMLWorkspace.objects.filter(pk=1).values().first()
    response = posted(admin_client_, reverse("workspaces:workspace_detail"), data, queued)
    assert response.status_code < 500, data
    event(f"status {response.status_code}")
    workspace = AzureMLWorkspace.objects.get(pk=1)
    if response.status_code == 302:
        workspace.full_clean()
        assert all(getattr(workspace, name) == str(value).strip() for name, value in data.items()), data
    else:
        assert response.status_code == 400
        assert AzureMLWorkspace.objects.filter(pk=1).values().first() == saved, data
        assert more_counts() == before, data
        assert queued == [], data
