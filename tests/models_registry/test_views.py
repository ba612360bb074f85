"""Every registry page: who may see it, who may act, what bad input does, and the htmx partials."""
import pytest
from django.urls import reverse

from audit.models import AuditEvent
from models_registry.models import ModelVersion, RegisteredModel, TrainingRun
from tests.api.conftest import ApiClient, make_token

from .factories import make_model, make_run

pytestmark = pytest.mark.django_db

READ_PAGES = [
    ("models_registry:model_list", lambda m, r: []),
    ("models_registry:model_detail", lambda m, r: [m.name]),
    ("models_registry:version_detail", lambda m, r: [m.name, 1]),
    ("models_registry:run_list", lambda m, r: []),
    ("models_registry:run_detail", lambda m, r: [r.pk]),
]


@pytest.fixture
def objects(engineer):
    return make_model(engineer, versions=2), make_run(engineer)


@pytest.mark.parametrize("name, args", READ_PAGES)
def test_anonymous_is_sent_to_login(client, objects, name, args):
    url = reverse(name, args=args(*objects))
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name, args", READ_PAGES)
def test_outsider_without_role_is_refused(outsider_client, objects, name, args):
    assert outsider_client.get(reverse(name, args=args(*objects))).status_code == 403


@pytest.mark.parametrize("name, args", READ_PAGES)
@pytest.mark.parametrize("who", ["engineer_client", "manager_client", "admin_client_"])
def test_every_role_reads_every_page(request, objects, name, args, who):
    client = request.getfixturevalue(who)
    response = client.get(reverse(name, args=args(*objects)))
    assert response.status_code == 200


def test_login_page_is_public(client):
    assert client.get(reverse("login")).status_code == 200


def test_model_list_shows_latest_version_metric_and_author(engineer_client, engineer):
    make_model(engineer, name="churn", versions=3)
    make_model(engineer, name="empty-model")
    body = engineer_client.get(reverse("models_registry:model_list")).content.decode()
    assert "churn" in body and "v3" in body and "0.5300" in body and engineer.username in body
    assert "No versions yet" in body


def test_model_list_search_and_htmx_partial(engineer_client, engineer):
    make_model(engineer, name="churn", versions=1)
    make_model(engineer, name="fraud", versions=1)
    url = reverse("models_registry:model_list")
    body = engineer_client.get(url, {"q": "fra"}).content.decode()
    assert "fraud" in body and "churn" not in body
    partial = engineer_client.get(url, {"q": "chu"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="model-table")
    text = partial.content.decode()
    assert "<html" not in text and 'id="model-table"' in text and "churn" in text


def test_model_list_paginates(engineer_client, engineer):
    for i in range(30):
        make_model(engineer, name=f"model-{i:02d}")
    body = engineer_client.get(reverse("models_registry:model_list")).content.decode()
    assert "Page 1 of 2" in body
    assert engineer_client.get(reverse("models_registry:model_list"), {"page": 2}).status_code == 200


def test_model_detail_has_chart_of_key_metric_per_version(engineer_client, engineer):
    model = make_model(engineer, versions=3)
    body = engineer_client.get(reverse("models_registry:model_detail", args=[model.name])).content.decode()
    assert body.count('class="chart-point') == 3
    assert "v3: 0.5300" in body


def test_unknown_model_is_404(engineer_client):
    assert engineer_client.get(reverse("models_registry:model_detail", args=["nope"])).status_code == 404


def test_version_detail_shows_lineage_and_checksums(engineer_client, engineer):
    model = make_model(engineer, versions=1)
    run = make_run(engineer)
    ModelVersion.objects.filter(model=model).update(training_run=run, dataset_sha256="d" * 64)
    body = engineer_client.get(reverse("models_registry:version_detail", args=[model.name, 1])).content.decode()
    assert f"run #{run.pk}" in body and "b" * 64 in body and "d" * 16 in body


def test_run_detail_htmx_polls_until_terminal(engineer_client, engineer):
    run = make_run(engineer, status=TrainingRun.Status.RUNNING)
    url = reverse("models_registry:run_detail", args=[run.pk])
    live = engineer_client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="run-live")
    assert live.status_code == 200 and 'hx-trigger="every 2s"' in live.content.decode()
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingRun.Status.FAILED, error="boom: exit 2")
    done = engineer_client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="run-live")
    assert done.status_code == 286  # htmx stops polling
    assert "boom: exit 2" in done.content.decode() and "every 2s" not in done.content.decode()


def test_run_list_polls_only_while_something_runs(engineer_client, engineer):
    url = reverse("models_registry:run_list")
    make_run(engineer)
    assert engineer_client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="run-table").status_code == 286
    make_run(engineer, status=TrainingRun.Status.RUNNING)
    assert engineer_client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="run-table").status_code == 200


# --- launching ----------------------------------------------------------------------------------------------------
def launch_data(**overrides):
    data = {"example": "scripted", "experiment_name": "exp-one", "compute_target": "local", "timeout_minutes": 5,
            "register_as": "", "param_sleep": "0", "param_exit_code": "0", "param_outputs": "full",
            "param_score": "0.5"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_launch_form_shows_example_parameters(engineer_client):
    body = engineer_client.get(reverse("models_registry:run_launch"), {"example": "titanic"}).content.decode()
    for name in ("n_estimators", "max_depth", "cv_folds", "random_state"):
        assert f'name="param_{name}"' in body


def test_launch_form_swaps_parameters_when_example_changes(engineer_client):
    response = engineer_client.get(reverse("models_registry:run_launch"), {"example": "scripted"},
                                   HTTP_HX_REQUEST="true", HTTP_HX_TRIGGER_NAME="example")
    body = response.content.decode()
    assert "<html" not in body and 'name="param_exit_code"' in body and "n_estimators" not in body


@pytest.mark.parametrize("overrides, message", [
    ({"param_score": "abc"}, "Enter a number."),
    ({"param_score": "1.5"}, "less than or equal to 1"),
    ({"param_exit_code": "2.5"}, "Enter a whole number."),
    ({"param_sleep": "-1"}, "greater than or equal to 0"),
    ({"param_outputs": "everything"}, "Select a valid choice"),
    ({"param_learning_rate": "0.1"}, "Unknown parameter(s) for scripted: learning_rate"),
    ({"experiment_name": "Bad Name!"}, "lowercase letters"),
    ({"timeout_minutes": "0"}, "greater than or equal to 1"),
    ({"compute_target": "gpu-cluster"}, "Select a valid choice"),
    ({"example": "nope"}, "Select a valid choice"),
])
def test_launch_rejects_bad_input_and_creates_nothing(engineer_client, overrides, message):
    response = engineer_client.post(reverse("models_registry:run_launch"), launch_data(**overrides))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not TrainingRun.objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("who", ["manager_client", "outsider_client"])
def test_launch_refused_for_roles_that_may_not(request, who):
    client = request.getfixturevalue(who)
    assert client.get(reverse("models_registry:run_launch")).status_code == 403
    assert client.post(reverse("models_registry:run_launch"), launch_data()).status_code == 403
    assert not TrainingRun.objects.exists()


def test_launch_anonymous_post_goes_to_login(client):
    response = client.post(reverse("models_registry:run_launch"), launch_data())
    assert response.status_code == 302 and reverse("login") in response["Location"]
    assert not TrainingRun.objects.exists()


def test_launch_requires_csrf_token(engineer):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(engineer)
    assert client.post(reverse("models_registry:run_launch"), launch_data()).status_code == 403
    assert not TrainingRun.objects.exists()


# --- registering, editing, canceling ------------------------------------------------------------------------------
def test_manual_register_refused_for_manager(manager_client, engineer):
    run = make_run(engineer)
    model = make_model(engineer)
    url = reverse("models_registry:run_register", args=[run.pk])
    assert manager_client.post(url, {"model": model.pk}).status_code == 403
    assert not ModelVersion.objects.exists()


def test_manual_register_bad_input_changes_nothing(engineer_client, engineer):
    run = make_run(engineer)
    url = reverse("models_registry:run_register", args=[run.pk])
    response = engineer_client.post(url, {"new_model_name": "Not OK"}, follow=True)
    assert "lowercase letters" in response.content.decode()
    response = engineer_client.post(url, {}, follow=True)
    assert "Choose a model, or name a new one." in response.content.decode()
    assert not RegisteredModel.objects.exists() and not ModelVersion.objects.exists()


def test_manual_register_of_failed_run_is_refused(engineer_client, engineer):
    run = make_run(engineer, status=TrainingRun.Status.FAILED)
    response = engineer_client.post(reverse("models_registry:run_register", args=[run.pk]),
                                    {"new_model_name": "fresh"}, follow=True)
    assert "Only a succeeded run can be registered" in response.content.decode()
    assert not RegisteredModel.objects.exists()  # the new model is not left behind


def test_model_edit_is_audited_and_refused_to_manager(engineer_client, manager_client, engineer):
    model = make_model(engineer)
    url = reverse("models_registry:model_edit", args=[model.name])
    data = {"description": "new words", "key_metric": "other", "key_metric_goal": "max"}
    assert manager_client.post(url, data).status_code == 403
    assert engineer_client.post(url, data).status_code == 302
    model.refresh_from_db()
    assert model.description == "new words" and model.key_metric == "other"
    event = AuditEvent.objects.get(action="update")
    assert event.actor == engineer and event.changes["key_metric"] == ["score", "other"]
    page = engineer_client.get(reverse("models_registry:model_detail", args=[model.name])).content.decode()
    assert "changed description, key_metric" in page


def test_model_edit_bad_input(engineer_client, engineer):
    model = make_model(engineer)
    url = reverse("models_registry:model_edit", args=[model.name])
    response = engineer_client.post(url, {"description": "x", "key_metric": "", "key_metric_goal": "sideways"})
    assert response.status_code == 200 and "This field is required." in response.content.decode()
    model.refresh_from_db()
    assert model.description == "churn model"


def test_cancel_refused_to_manager_and_finished_run_says_so(manager_client, engineer_client, engineer):
    run = make_run(engineer, status=TrainingRun.Status.QUEUED)
    url = reverse("models_registry:run_cancel", args=[run.pk])
    assert manager_client.post(url).status_code == 403
    assert engineer_client.get(url).status_code == 405
    engineer_client.post(url)
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.CANCELED
    response = engineer_client.post(url, follow=True)
    assert "has already finished" in response.content.decode()


def test_manager_sees_no_action_buttons(manager_client, engineer):
    model = make_model(engineer, versions=1)
    run = make_run(engineer)
    pages = [reverse("models_registry:model_detail", args=[model.name]),
             reverse("models_registry:run_detail", args=[run.pk])]
    for url in pages:
        body = manager_client.get(url).content.decode()
        assert "Launch training" not in body and "Register version" not in body and ">Edit<" not in body


def test_forbidden_page_explains_roles(outsider_client):
    body = outsider_client.get(reverse("models_registry:model_list")).content.decode()
    assert "has no role yet" in body


def test_csrf_failure_page_says_nothing_changed(engineer):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(engineer)
    response = client.post(reverse("models_registry:run_launch"), launch_data())
    assert response.status_code == 403 and "Nothing was changed" in response.content.decode()


# --- artifacts ----------------------------------------------------------------------------------------------------
@pytest.fixture
def job_outputs(settings):
    """A finished local job's outputs, as the supervisor leaves them."""
    outputs = settings.MLOPS_ARTIFACT_ROOT / "jobs" / "run-77-exp-one" / "outputs"
    outputs.mkdir(parents=True, exist_ok=True)
    (outputs / "model.bin").write_bytes(b"weights")
    (outputs / "metrics.json").write_text('{"score": 0.5}')
    return outputs


def test_manual_register_then_download_with_checksum(engineer_client, engineer, job_outputs):
    run = make_run(engineer, backend_job_id="run-77-exp-one")
    response = engineer_client.post(reverse("models_registry:run_register", args=[run.pk]),
                                    {"new_model_name": "fresh", "description": "by hand"})
    version = ModelVersion.objects.get(model__name="fresh")
    assert response.status_code == 302 and response["Location"] == version.get_absolute_url()
    assert version.version == 1 and version.description == "by hand" and version.training_run == run
    assert AuditEvent.objects.filter(action="register", target_id=str(version.pk), actor=engineer).exists()

    url = reverse("models_registry:version_download", args=["fresh", 1, "model.bin"])
    download = engineer_client.get(url)
    assert b"".join(download.streaming_content) == b"weights"
    assert download["X-Checksum-SHA256"] == next(f["sha256"] for f in version.artifact_files if f["path"] == "model.bin")
    assert "attachment" in download["Content-Disposition"]
    through_api = ApiClient(make_token(engineer)).get(reverse("api:version-file", args=["fresh", 1, "model.bin"]))
    assert b"".join(through_api.streaming_content) == b"weights"
    assert through_api["X-Checksum-SHA256"] == download["X-Checksum-SHA256"]
    assert through_api["Content-Disposition"] == download["Content-Disposition"]

    again = engineer_client.post(reverse("models_registry:run_register", args=[run.pk]), {"model": version.model.pk},
                                 follow=True)
    assert "already registered" in again.content.decode()
    assert ModelVersion.objects.count() == 1


def test_download_of_unknown_file_is_404(engineer_client, engineer):
    make_model(engineer, versions=1)
    for path in ["nope.bin", "../../etc/passwd"]:
        url = reverse("models_registry:version_download", args=["churn", 1, path])
        assert engineer_client.get(url).status_code == 404


def test_download_needs_login(client, engineer):
    make_model(engineer, versions=1)
    url = reverse("models_registry:version_download", args=["churn", 1, "model.bin"])
    assert client.get(url).status_code == 302


def test_key_metric_must_be_one_its_versions_report(engineer_client, engineer):
    model = make_model(engineer, versions=2)
    url = reverse("models_registry:model_edit", args=[model.name])
    response = engineer_client.post(url, {"description": "x", "key_metric": "scroe", "key_metric_goal": "max"})
    body = response.content.decode()
    assert response.status_code == 200 and "No version of churn reports &#x27;scroe&#x27;" in body
    assert "its versions report other, score" in body
    model.refresh_from_db()
    assert model.key_metric == "score" and model.description == "churn model"
    assert engineer_client.post(url, {"description": "x", "key_metric": "other", "key_metric_goal": "max"}
                                ).status_code == 302
