"""The azureml backend's calls as the fake Azure ML sees them (method, path, api-version, body), and its faults."""
import threading
import time
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditEvent
from deployments.models import Deployment, DeploymentProfile, Endpoint
from deployments.serving import services
from deployments.serving.profile_import import profile_from_yaml
from mlopsportal import examples
from mlopsportal.backends import BackendError, get_backend
from models_registry.models import ModelVersion, RegisteredModel, TrainingRun
from tests.conftest import running_promotion, wait_for
from workspaces.models import AzureMLWorkspace
from workspaces.services import workspace_connection_test

pytestmark = pytest.mark.django_db
SEED_AKS = (Path(__file__).resolve().parents[2] / "examples/titanic/deployment/aksDeploymentConfig.yml").read_text()
SMALL = {"n_estimators": 20, "cv_folds": 2}


def train(backend, job_name: str, params=SMALL):
    backend.training_submit(job_name=job_name, example=examples.get_example("titanic"), params=params,
                            compute_target="cpu-cluster", experiment_name="titanic", timeout_seconds=300)
    statuses = []

    def finished():
        statuses.append(backend.training_status(job_name))
        return statuses[-1].finished

    wait_for(finished, timeout=120, interval=0.5, message=f"job {job_name}")
    return statuses[-1]


def version_on_azure(user, backend, job_name="job-serving"):
    """A version trained and registered through the fake, as the training flow leaves it."""
    status = train(backend, job_name)
    assert status.state == "succeeded", status.error
    run = TrainingRun.objects.create(
        experiment_name="titanic", example="titanic", params=SMALL, compute_target="cpu-cluster", backend="azureml",
        timeout_seconds=300, status=TrainingRun.Status.SUCCEEDED, launched_by=user, backend_job_id=job_name,
        metrics=status.metrics)
    model, _ = RegisteredModel.objects.get_or_create(name="titanic")
    number = model.versions.count() + 1
    artifact = backend.model_register(job_id=job_name, model_name="titanic", version=number)
    return ModelVersion.objects.create(model=model, version=number, artifact_uri=artifact.uri,
                                       artifact_sha256=artifact.sha256, training_run=run, created_by=user)


def test_connection_check_passes_on_the_fake_and_names_a_missing_compute(azure, admin_user):
    workspace = workspace_connection_test(actor=admin_user)
    assert workspace.check_ok, workspace.check_results
    assert [r["check"] for r in workspace.check_results] == ["Settings", "Credentials", "Workspace", "AKS compute",
                                                             "Training cluster"]
    AzureMLWorkspace.objects.filter(pk=1).update(aks_compute="aks-missing")
    workspace = workspace_connection_test(actor=admin_user)
    failed = workspace.check_results[-1]
    assert not workspace.check_ok and failed["check"] == "AKS compute"
    assert "no compute named aks-missing" in failed["message"] and "Attach" in failed["message"]


def test_training_job_as_sent_and_its_outputs(azure):
    backend = get_backend("azureml")
    params = {**SMALL, "max_features": "log2"}
    status = train(backend, "job-sent", params=params)
    assert status.state == "succeeded", status.error
    assert 0.6 < status.metrics["cv_accuracy"] <= 1
    assert "Wrote model.pkl and metrics.json" in status.log  # the script's own output, from the job's logs output
    put = azure.find("PUT", r"/jobs/job-sent$")[-1]
    assert put.api_version == "2025-01-01-preview"
    props = put.body["properties"]
    assert props["jobType"] == "Command"
    assert props["computeId"].endswith("/computes/cpu-cluster")
    assert props["environmentId"] == "azureml:AzureML-sklearn-1.5@latest"
    assert props["experimentName"] == "titanic"
    assert "--data data/titanic.csv" in props["command"] and "${{outputs.model}}" in props["command"]
    assert props["inputs"]["max_features"] == {"jobInputType": "literal", "value": "log2"}
    assert props["outputs"]["model"]["uri"].endswith("/paths/mlops-portal/jobs/job-sent/model/")
    assert props["codeId"] and "/codes/" in props["codeId"]
    # A retried submit finds its job and sends nothing new.
    puts = len(azure.find("PUT", r"/jobs/"))
    backend.training_submit(job_name="job-sent", example=examples.get_example("titanic"), params=params,
                            compute_target="cpu-cluster", experiment_name="titanic", timeout_seconds=300)
    assert len(azure.find("PUT", r"/jobs/")) == puts
    # A job of that name that this run did not submit (other parameters: another portal, a reset database).
    with pytest.raises(BackendError, match="already has a job named job-sent that this run did not submit"):
        backend.training_submit(job_name="job-sent", example=examples.get_example("titanic"), params=SMALL,
                                compute_target="cpu-cluster", experiment_name="titanic", timeout_seconds=300)
    assert len(azure.find("PUT", r"/jobs/")) == puts


def test_register_from_the_job_output_uploads_nothing(azure):
    backend = get_backend("azureml")
    assert train(backend, "job-reg").state == "succeeded"
    blob_puts = len(blob_writes(azure))
    artifact = backend.model_register(job_id="job-reg", model_name="titanic", version=1)
    assert artifact.uri == "azureml:titanic:1"
    assert {f.path for f in artifact.files} == {"model.pkl", "metrics.json", "features.json"}
    put = azure.find("PUT", r"/models/titanic/versions/1$")[-1]
    assert put.body["properties"]["modelUri"] == "azureml://jobs/job-reg/outputs/model"
    assert len(blob_writes(azure)) == blob_puts
    with backend.artifact_open(artifact.uri, "metrics.json") as fh:
        assert b"cv_accuracy" in fh.read()


def blob_writes(azure):
    return [r for r in azure.find("PUT", r".") if "blob" in r.host]


def test_throttling_is_retried_after_the_time_azure_asks(azure):
    backend = get_backend("azureml")
    azure.inject("GET", r"/computes/cpu-cluster$", 429, headers={"Retry-After": "1"})
    started = time.monotonic()
    assert backend.client().compute.get("cpu-cluster").name == "cpu-cluster"
    assert time.monotonic() - started >= 0.9
    assert len(azure.find("GET", r"/computes/cpu-cluster$")) == 2  # a short Retry-After is waited out in the call


def test_errors_are_translated_transient_or_permanent_with_the_service_message(azure):
    backend = get_backend("azureml")
    azure.inject("GET", r"/jobs/job-x$", 503, times=10)
    with pytest.raises(BackendError) as transient:
        backend.training_status("job-x")
    assert not transient.value.permanent and "503" in str(transient.value)

    with pytest.raises(BackendError) as missing:
        backend.training_status("job-never-submitted")
    assert missing.value.permanent and "job-never-submitted" in str(missing.value)

    azure.inject("POST", r"/jobs/job-y/cancel$", 409, times=10,
                 body={"error": {"code": "Conflict", "message": "Another operation is in progress."}})
    with pytest.raises(BackendError) as conflict:
        backend.training_cancel("job-y")
    assert not conflict.value.permanent and "Another operation is in progress." in str(conflict.value)
    assert conflict.value.retry_after == 10  # no Retry-After sent: look again in 10 s

    azure.inject("GET", r"/jobs/job-z$", 429, headers={"Retry-After": "30"})
    with pytest.raises(BackendError) as throttled:  # too long to wait in the call: the task is rescheduled
        backend.training_status("job-z")
    assert not throttled.value.permanent and throttled.value.retry_after == 30
    assert throttled.value.retry_countdown(0) == 30
    assert len(azure.find("GET", r"/jobs/job-z$")) == 1


def test_a_credential_that_cannot_sign_in_is_a_permanent_error_that_says_how(azure, settings):
    settings.MLOPS_AZURE_CREDENTIAL = "tests.test_workspaces.SignedOut"
    with pytest.raises(BackendError) as refused:
        get_backend("azureml").training_status("job-a")
    assert refused.value.permanent and "az login" in str(refused.value)
    assert not azure.find("GET", r"/jobs/job-a$")  # nothing was sent without a token


def test_refused_code_upload_fails_the_submit_instead_of_hanging(azure):
    backend = get_backend("azureml")
    azure.inject("PUT", r".", 403, times=50, host_regex=r"blob",
                 body={"error": {"code": "AuthorizationFailure", "message": "This request is not authorized."}})
    started = time.monotonic()
    with pytest.raises(BackendError) as refused:
        backend.training_submit(job_name="job-403", example=examples.get_example("titanic"), params=SMALL,
                                compute_target="cpu-cluster", experiment_name="titanic", timeout_seconds=300)
    assert time.monotonic() - started < 60
    assert refused.value.permanent and "job-403" in str(refused.value)
    assert "storage account refused" in str(refused.value) and "Storage Blob Data Contributor" in str(refused.value)
    assert not azure.find("PUT", r"/jobs/job-403$")


@pytest.fixture
def kube_profile(db):
    """The seed's aksDeploymentConfig.yml, imported."""
    return DeploymentProfile.objects.create(name="aks", **profile_from_yaml(SEED_AKS).fields)


def poll_until_settled(deployment, timeout=90):
    def settled():
        services.deployment_poll(deployment_id=deployment.pk)
        deployment.refresh_from_db()
        return deployment.status != Deployment.Status.CREATING

    wait_for(settled, timeout=timeout, interval=0.5, message=f"{deployment} to settle")
    return deployment


def start(endpoint, version, name, user):
    deployment = Deployment.objects.create(endpoint=endpoint, name=name, model_version=version,
                                           serving_settings=endpoint.profile.serving_settings(), created_by=user)
    assert services.deployment_start(deployment_id=deployment.pk)
    return deployment


def test_kubernetes_deployment_as_sent_serves_through_the_endpoint(azure, engineer, kube_profile):
    backend = get_backend("azureml")
    version = version_on_azure(engineer, backend)
    prod = services.endpoint_create(name="titanic-prod", stage="production", profile=kube_profile, actor=engineer)
    blue = poll_until_settled(start(prod, version, "blue", engineer))
    assert blue.status == Deployment.Status.HEALTHY, blue.error

    endpoint_put = azure.find("PUT", r"/onlineEndpoints/titanic-prod$")[0]
    assert endpoint_put.body["properties"]["compute"].endswith("/computes/aks-prod")
    assert endpoint_put.body["properties"]["authMode"] in ("Key", "key")
    assert endpoint_put.api_version == "2022-02-01-preview"
    put = azure.find("PUT", r"/onlineEndpoints/titanic-prod/deployments/blue$")[0]
    assert put.api_version == "2023-04-01-preview"
    props = put.body["properties"]
    assert props["endpointComputeType"] == "Kubernetes"
    assert props["model"].endswith("/models/titanic/versions/1")
    assert props["codeConfiguration"]["scoringScript"] == "score.py"
    assert props["codeConfiguration"]["codeId"] == azure_job_code(azure, "job-serving")
    # The seed's values in Azure's units: 1 GB is 1G (not 1Gi), 1 s polling, 180 000 ms of queue wait.
    assert props["containerResourceRequirements"]["containerResourceRequests"] == {"cpu": "0.5", "memory": "1G"}
    assert props["containerResourceRequirements"]["containerResourceLimits"] == {"cpu": "0.5", "memory": "1G"}
    assert props["instanceType"] == "defaultinstancetype"  # named, not left to chance
    assert put.body["sku"]["capacity"] == 3  # the instance count
    assert props["scaleSettings"] == {"scaleType": "TargetUtilization", "minInstances": 3, "maxInstances": 6,
                                      "targetUtilizationPercentage": 50, "pollingInterval": "PT1S"}
    assert props["requestSettings"] == {"requestTimeout": "PT1M", "maxConcurrentRequestsPerInstance": 2,
                                        "maxQueueWait": "PT3M"}
    assert props["environmentVariables"] == {"WORKER_COUNT": "2"}  # else one worker serves them one at a time

    prod.refresh_from_db()
    assert prod.platform_scoring_url.startswith("http://127.0.0.1:") and len(prod.key) > 10
    services.endpoint_traffic_set(endpoint=prod, traffic={"blue": 100}, actor=engineer,
                                  promotion=running_promotion(prod, blue.model_version, engineer))
    traffic_put = azure.find("PUT", r"/onlineEndpoints/titanic-prod$")[-1]
    assert traffic_put.body["properties"]["traffic"] == {"blue": 100}
    wait_for(lambda: backend.endpoint_traffic_applied(endpoint_name="titanic-prod", traffic={"blue": 100}),
             timeout=20, message="traffic applied")
    result = services.endpoint_invoke(endpoint=prod, payload_text='{"Pclass": 1, "Sex": 0, "Age": 38, "SibSp": 1, '
                                      '"Parch": 0, "Fare": 71.2833, "Embarked": 2}')
    assert result["status"] == 200 and '"prediction": 1' in result["body"], result
    assert "init has completed" in backend.deployment_logs(blue.backend_ref, 50)

    with pytest.raises(ValidationError, match="production changes only through a promotion or a rollback"):
        services.deployment_delete(deployment=blue, actor=engineer)
    with pytest.raises(ValidationError, match="still takes 100%"):
        services.deployment_delete(deployment=blue, actor=None,
                                   promotion=running_promotion(prod, blue.model_version, engineer))


def azure_job_code(azure, job_name):
    return azure.find("PUT", rf"/jobs/{job_name}$")[-1].body["properties"]["codeId"]


def test_deployment_whose_operation_fails_is_failed_with_the_reason(azure, engineer, kube_profile):
    backend = get_backend("azureml")
    version = version_on_azure(engineer, backend)
    staging = services.endpoint_create(name="titanic-staging", stage="staging", profile=kube_profile, actor=engineer)
    azure.fail_operation(r"/onlineEndpoints/titanic-staging/deployments/green", "Not enough quota for Standard_DS3_v2.",
                         code="QuotaExceeded")
    green = poll_until_settled(start(staging, version, "green", engineer))
    assert green.status == Deployment.Status.FAILED
    # The operation's own error: container logs are empty for quota, image and validation failures. It stays on
    # the row after the failed deployment is removed from Azure.
    assert "Azure ML reports the deployment failed: QuotaExceeded: Not enough quota for Standard_DS3_v2." in green.error
    assert azure.find("DELETE", r"/onlineEndpoints/titanic-staging/deployments/green$")
    assert "/mfeOperationsStatus/" in green.backend_ref["operation"]
    put = azure.find("PUT", r"/onlineEndpoints/titanic-staging/deployments/green$")[0]
    assert put.body["properties"]["endpointComputeType"] == "Managed"
    assert put.body["properties"]["instanceType"] == "Standard_DS3_v2"

    # Refused when asked (quota, validation): failed at once, in the service's own words.
    azure.inject("PUT", r"/onlineEndpoints/titanic-staging/deployments/blue$", 400,
                 body={"error": {"code": "QuotaExceeded", "message": "Not enough quota for Standard_DS3_v2 in "
                                                                     "westeurope."}})
    blue = poll_until_settled(start(staging, version, "blue", engineer))
    assert blue.status == Deployment.Status.FAILED
    assert "Not enough quota for Standard_DS3_v2 in westeurope." in blue.error


def test_deployment_that_never_becomes_healthy_times_out_and_is_removed(azure, engineer, kube_profile, settings):
    backend = get_backend("azureml")
    version = version_on_azure(engineer, backend)
    AzureMLWorkspace.objects.filter(pk=1).update(staging_on="kubernetes")  # staging on the AKS compute too
    staging = services.endpoint_create(name="titanic-staging", stage="staging", profile=kube_profile, actor=engineer)
    azure.hold_deployments = True
    settings.MLOPS_DEPLOY_TIMEOUT_SECONDS = 3
    blue = poll_until_settled(start(staging, version, "blue", engineer))
    assert blue.status == Deployment.Status.FAILED and "Not healthy after 3 s" in blue.error
    assert azure.find("DELETE", r"/onlineEndpoints/titanic-staging/deployments/blue$")
    endpoint_put = azure.find("PUT", r"/onlineEndpoints/titanic-staging$")[0]
    assert endpoint_put.body["properties"]["compute"].endswith("/computes/aks-prod")
    put = azure.find("PUT", r"/onlineEndpoints/titanic-staging/deployments/blue$")[0]
    assert put.body["properties"]["endpointComputeType"] == "Kubernetes"


def test_azure_reasons_in_error_details_are_shown(azure, admin_user):
    """Azure ML says "The request is invalid." at the top and the reason in details[] (azure-sdk-for-python#35109)."""
    azure.inject("GET", r"/workspaces/ws-test$", 400, body={"error": {
        "code": "UserError", "message": "The request is invalid.",
        "details": [{"code": "Conflict", "message": "OnlineEndpoint titanic-prod already exists in cluster aks-prod.",
                     "details": [{"code": "Inner", "message": "Pick another endpoint name."}]}]}})
    workspace = workspace_connection_test(actor=admin_user)
    failed = workspace.check_results[-1]
    assert failed["check"] == "Workspace" and not failed["ok"]
    assert "The request is invalid. — OnlineEndpoint titanic-prod already exists in cluster aks-prod. — Pick " \
           "another endpoint name." in failed["message"]


@pytest.fixture
def fixed_profile(db):
    """The seed's replicas without autoscale: 3 fixed instances."""
    return DeploymentProfile.objects.create(
        name="aks-fixed", instance_count=3, autoscale_enabled=False, cpu_request=0.5, memory_request_gb=1,
        request_timeout_ms=60000, max_concurrent_requests_per_instance=2)


def test_fixed_kubernetes_deployment_says_default_scale(azure, engineer, fixed_profile, capsys):
    """With no scaleSettings Azure autoscales a Kubernetes deployment; a fixed profile must say Default."""
    backend = get_backend("azureml")
    version = version_on_azure(engineer, backend, job_name="job-fixed")
    prod = services.endpoint_create(name="titanic-prod", stage="production", profile=fixed_profile, actor=engineer)
    blue = poll_until_settled(start(prod, version, "blue", engineer))
    assert blue.status == Deployment.Status.HEALTHY, blue.error
    put = azure.find("PUT", r"/onlineEndpoints/titanic-prod/deployments/blue$")[0]
    assert put.body["properties"]["scaleSettings"] == {"scaleType": "Default"}
    assert put.body["sku"]["capacity"] == 3
    reported = azure.workspace.deployments[("titanic-prod", "blue")]["properties"]["scaleSettings"]
    assert reported["scaleType"] == "Default"

    # A traffic update that fails in Azure is sent again, not waited on forever.
    azure.fail_operation(r"/onlineEndpoints/titanic-prod$", "Traffic update failed: the router is restarting.")
    services.endpoint_traffic_set(endpoint=prod, traffic={"blue": 100}, actor=engineer,
                                  promotion=running_promotion(prod, blue.model_version, engineer))
    wait_for(lambda: azure.workspace.endpoints["titanic-prod"]["properties"]["provisioningState"] == "Failed",
             timeout=20, message="the traffic update to fail")
    assert "titanic-prod Failed, routing nothing (its last update failed; it was sent again)" in \
        backend.endpoint_traffic_status("titanic-prod")
    wait_for(lambda: backend.endpoint_traffic_applied(endpoint_name="titanic-prod", traffic={"blue": 100}),
             timeout=20, message="the traffic to be sent again and applied")
    puts = [r.body["properties"].get("traffic") for r in azure.find("PUT", r"/onlineEndpoints/titanic-prod$")]
    assert puts[-2:] == [{"blue": 100}, {"blue": 100}]  # the failed one, and the one sent again

    # The SDK's pollers were stopped: no thread keeps polling (and printing dots) for each operation's lifetime.
    wait_for(lambda: not [t for t in threading.enumerate() if t.name.startswith("LROPoller(") and t.is_alive()],
             timeout=15, message="the SDK's poller threads to end")
    assert "..." not in capsys.readouterr().out


def test_connection_check_reads_the_clusters_instance_types_and_refuses_a_failed_compute(azure, admin_user,
                                                                                          monkeypatch):
    workspace = workspace_connection_test(actor=admin_user)
    aks = next(r for r in workspace.check_results if r["check"] == "AKS compute")
    assert "cpu-large (4 CPU, 8 GiB)" in aks["message"] and "defaultinstancetype (2 CPU, 2 GiB)" in aks["message"]
    config = workspace.config()
    assert config.instance_types["cpu-large"] == {"cpu": 4.0, "memory_bytes": 8 * 1024 ** 3}
    assert config.cluster_default_instance_type == "defaultinstancetype"

    AzureMLWorkspace.objects.filter(pk=1).update(default_instance_type="gpu-huge")
    workspace = workspace_connection_test(actor=admin_user)
    assert not workspace.check_ok and "has no instance type gpu-huge" in workspace.check_results[-1]["message"]

    AzureMLWorkspace.objects.filter(pk=1).update(default_instance_type="")
    monkeypatch.setitem(azure.workspace.COMPUTES, "cpu-cluster",
                        {**azure.workspace.COMPUTES["cpu-cluster"], "provisioningState": "Failed"})
    workspace = workspace_connection_test(actor=admin_user)
    failed = workspace.check_results[-1]
    assert not workspace.check_ok and failed["check"] == "Training cluster" and "is Failed" in failed["message"]


def test_profiles_over_azures_limits_are_refused_before_anything_is_sent(azure, engineer, admin_user):
    """The instance type's limits (defaultinstancetype: 2 CPU, 2 GiB) and managed endpoints' 180 s timeout."""
    workspace_connection_test(actor=admin_user)  # reads the cluster's instance types
    backend = get_backend("azureml")
    version = version_on_azure(engineer, backend, job_name="job-limits")
    big = DeploymentProfile.objects.create(name="big", cpu_request=3, memory_request_gb=4)
    prod = services.endpoint_create(name="titanic-prod", stage="production", profile=big, actor=engineer)
    with pytest.raises(ValidationError) as refused:
        services.deployment_create(endpoint=prod, version=version, name="blue", actor=engineer,
                                   promotion=running_promotion(prod, version, engineer))
    message = " ".join(refused.value.messages)
    assert "3 CPU is more than instance type defaultinstancetype allows (2)" in message
    assert "4 GB of memory is more than instance type defaultinstancetype allows (2.15 GB = 2 GiB)" in message
    assert "Name a larger instance type in the profile" in message

    DeploymentProfile.objects.filter(pk=big.pk).update(kubernetes_instance_type="cpu-large")
    prod.refresh_from_db()
    assert services.endpoint_profile_problems(prod) == []  # 3 CPU and 4 GB fit cpu-large (4 CPU, 8 GiB)
    slow = DeploymentProfile.objects.create(name="slow", request_timeout_ms=200_000)
    staging = services.endpoint_create(name="titanic-staging", stage="staging", profile=slow, actor=engineer)
    assert services.endpoint_profile_problems(staging) == [
        "Profile slow does not fit titanic-staging: A request timeout of 200,000 ms is over the 180,000 ms that "
        "managed online deployments allow."]
    assert not azure.find("PUT", r"/deployments/")  # nothing was sent


def test_the_fake_refuses_what_azure_refuses_in_a_deployment(azure, engineer):
    """Sent anyway (straight through the SDK), Azure's refusals come back with the reason in details[]."""
    from azure.core.exceptions import HttpResponseError

    backend = get_backend("azureml")
    version = version_on_azure(engineer, backend, job_name="job-strict")
    config = backend.config()
    ml = backend.client(config)
    code = ml.jobs.get("job-strict").code
    backend._endpoint_ensure(ml, config, "titanic-prod", "kubernetes")
    wait_for(lambda: ml.online_endpoints.get("titanic-prod").provisioning_state == "Succeeded", timeout=20)
    settings = {**DeploymentProfile(name="x").serving_settings(), "cpu_request": 3.0}
    ref = {"endpoint": "titanic-prod", "deployment": "blue", "kind": "kubernetes", "model": version.artifact_uri,
           "code": code, "scoring_script": "score.py", "settings": settings}
    with pytest.raises(BackendError, match="3 CPU is more than instance type defaultinstancetype allows"):
        backend._deployment_entity(config, ref)
    cases = [({"cpu_request": 3.0}, "the cpu request 3 is above the limit of instance type 'defaultinstancetype'"),
             ({"instance_type": "gpu-huge"}, "Instance type 'gpu-huge' is not defined on the Kubernetes compute"),
             ({"request_timeout_ms": 301_000}, "requestTimeout of 301 s is above the maximum of 300 s")]
    for change, reason in cases:
        entity = unchecked_entity(backend, config, {**ref, "settings": {**settings, "cpu_request": 0.5, **change}})
        with pytest.raises(HttpResponseError) as refused:
            ml.online_deployments.begin_create_or_update(entity)
        assert refused.value.status_code == 400
        assert refused.value.error.message == "The request is invalid."
        assert reason in refused.value.error.details[0].message


def unchecked_entity(backend, config, ref):
    """The backend's deployment body without its own checks: what Azure gets if the portal did not check."""
    return backend._deployment_entity(config, ref, checked=False)


def test_failed_jobs_say_why_from_run_history_even_before_the_script_starts(azure):
    """The ARM job has no error field; the reason is in run history (what the SDK's jobs.stream reads)."""
    backend = get_backend("azureml")
    status = train(backend, "job-crash", params={**SMALL, "max_features": "bogus"})  # argparse exits 2
    assert status.state == "failed"
    assert "The Azure ML job ended Failed. UserError: Execution failed. User process 'bash' exited with status code" in status.error
    assert azure.find("GET", r"/history/v1\.0/.*/runs/job-crash/details$")

    AzureMLWorkspace.objects.filter(pk=1).update(training_environment="azureml:AzureML-nope@latest")
    status = train(backend, "job-bad-env")
    assert status.state == "failed"
    assert "Environment azureml:AzureML-nope@latest could not be resolved or built" in status.error
    assert not azure.workspace.runs["job-bad-env"].log_path.exists() or \
        not azure.workspace.runs["job-bad-env"].log_path.read_text()  # the script never ran


def test_inventory_lists_versions_only_of_models_with_newer_ones(azure, engineer):
    """A shared workspace may hold hundreds of models: the sync must not make one call per model every time."""
    backend = get_backend("azureml")
    version_on_azure(engineer, backend, job_name="job-inventory")
    [model] = backend.inventory().models
    assert [v.number for v in model.versions] == [1]
    listed = len(azure.find("GET", r"/models/titanic/versions$"))
    [model] = backend.inventory(known_versions={"titanic": 1}).models
    assert model.versions == () and len(azure.find("GET", r"/models/titanic/versions$")) == listed
    [model] = backend.inventory(known_versions={"titanic": 0}).models
    assert [v.number for v in model.versions] == [1]


def test_a_version_whose_files_cannot_be_fetched_says_so(azure, engineer, monkeypatch):
    """models.download fetches nothing for some versions registered in the studio: a clear refusal, not a
    FileNotFoundError."""
    backend = get_backend("azureml")
    monkeypatch.setattr(type(backend.client().models), "download", lambda self, *args, **kwargs: None)
    with pytest.raises(BackendError, match="Azure ML returned no files for outside v2"):
        backend.artifact_files("azureml:outside:2")


def test_an_endpoint_name_azure_refuses_shows_when_the_endpoint_is_created(azure, engineer, admin_client_):
    """Endpoint names are unique per region and a deleted one is not reusable at once: the portal makes the endpoint
    on Azure when it is created, not at its first deployment, so the refusal shows on its page."""
    profile = DeploymentProfile.objects.create(name="p")
    azure.workspace.taken_in_region.add("titanic-prod")
    # (The task queued after commit is called here, as a worker would: this test's transaction never commits.)
    prod = services.endpoint_create(name="titanic-prod", stage="production", profile=profile, actor=engineer)
    services.endpoint_prepare(endpoint_id=prod.pk)
    prod.refresh_from_db()
    assert "already exists in region westeurope; endpoint names are unique per region" in prod.platform_error
    page = admin_client_.get(prod.get_absolute_url()).content.decode()
    assert 'data-testid="endpoint-platform-error"' in page and "unique per region" in page

    # A name deleted moments ago: Azure's 409 is transient, so the task tries again later.
    ok = services.endpoint_create(name="titanic-stg", stage="staging", profile=profile, actor=engineer)
    services.endpoint_prepare(endpoint_id=ok.pk)
    assert "titanic-stg" in azure.workspace.endpoints and not Endpoint.objects.get(pk=ok.pk).platform_error
    wait_for(lambda: azure.workspace.endpoints["titanic-stg"]["properties"]["provisioningState"] == "Succeeded",
             timeout=20)
    azure.workspace.name_release_seconds = 60
    backend = get_backend("azureml")
    backend.client().online_endpoints.begin_delete(name="titanic-stg").result()
    with pytest.raises(BackendError) as later:
        services.endpoint_prepare(endpoint_id=ok.pk)
    assert not later.value.permanent and "still being released" in str(later.value)


def test_a_token_auth_endpoint_made_outside_is_adopted_without_a_made_up_key(azure):
    """An aml_token endpoint has no key: adopting it with a random one would make every call from the portal 401."""
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    from workspaces import sync

    backend = get_backend("azureml")
    backend.client().online_endpoints.begin_create_or_update(
        ManagedOnlineEndpoint(name="token-ep", auth_mode="aml_token")).result()
    assert backend.endpoint_access("token-ep").auth_mode == "aml_token"
    findings = sync.azureml_sync()
    assert "endpoint token-ep was created in Azure ML outside the portal" in " ".join(findings)
    endpoint = Endpoint.objects.get(name="token-ep")
    assert endpoint.key == "" and "uses aml_token auth, so the portal has no key" in endpoint.changed_outside
    assert not azure.find("POST", r"/onlineEndpoints/token-ep/listKeys$")


def test_an_admin_edit_that_an_endpoint_could_not_run_is_refused(azure, engineer, admin_client_):
    """Checked where the profile is edited, not at the next promotion."""
    profile = DeploymentProfile.objects.create(name="aks-edit", cpu_request=1, memory_request_gb=1)
    services.endpoint_create(name="titanic-prod", stage="production", profile=profile, actor=engineer)
    url = f"/admin/deployments/deploymentprofile/{profile.pk}/change/"
    form = {field: getattr(profile, field) for field in (
        "name", "instance_count", "min_instances", "max_instances", "target_utilization", "polling_interval_seconds",
        "cpu_request", "memory_request_gb", "request_timeout_ms", "max_concurrent_requests_per_instance",
        "max_queue_wait_ms")}
    form.update(auth_enabled="on", kubernetes_instance_type="", description="")
    response = admin_client_.post(url, {**form, "cpu_request": "3"})
    assert response.status_code == 200
    assert "3 CPU is more than instance type defaultinstancetype allows (2)" in response.content.decode()
    profile.refresh_from_db()
    assert profile.cpu_request == 1  # nothing saved
    response = admin_client_.post(url, {**form, "cpu_request": "3", "kubernetes_instance_type": "cpu-large"})
    assert response.status_code == 302, response.content.decode()[:3000]
    profile.refresh_from_db()
    assert (profile.cpu_request, profile.kubernetes_instance_type) == (3, "cpu-large")


def test_forms_offer_the_clusters_instance_types_after_test_connection(azure, admin_user, client):
    """The workspace's default instance type and a profile's instance type suggest what the cluster has, with
    limits; before "Test connection" has read them there is nothing to suggest, and any valid name may be typed."""
    client.force_login(admin_user)
    profile = DeploymentProfile.objects.create(name="roomy")
    pages = [("/workspace/", "id_default_instance_type"),
             (f"/admin/deployments/deploymentprofile/{profile.pk}/change/", "id_kubernetes_instance_type")]
    for url, field in pages:
        page = client.get(url).content.decode()
        assert field in page and f'list="{field}_options"' not in page and "<datalist" not in page

    workspace_connection_test(actor=admin_user)
    for url, field in pages:
        page = client.get(url).content.decode()
        assert f'list="{field}_options"' in page
        assert f'<datalist id="{field}_options">' in page
        assert '<option value="cpu-large" label="4 CPU · 8.00 GiB"></option>' in page
        assert '<option value="defaultinstancetype" label="2 CPU · 2.00 GiB · the cluster&#x27;s default">' in page


def test_traffic_asked_for_is_kept_apart_from_what_azure_applied(azure, engineer, client, settings, monkeypatch):
    """The rows say what the portal asked for; the endpoint keeps what Azure was last seen routing by. A split that
    was lost (the worker stopped before its PUT) is sent by the confirm task; one that Azure keeps failing is put
    back to what Azure routes after the timeout, with Azure's reason."""
    backend = get_backend("azureml")
    version = version_on_azure(engineer, backend, job_name="job-traffic")
    profile = DeploymentProfile.objects.create(name="small")
    staging = services.endpoint_create(name="titanic-staging", stage="staging", profile=profile, actor=engineer)
    poll_until_settled(start(staging, version, "blue", engineer))
    poll_until_settled(start(staging, version, "green", engineer))
    client.force_login(engineer)

    def confirmed():
        services.endpoints_traffic_confirm()
        staging.refresh_from_db()
        return not staging.traffic_pending()

    def routed():
        return {k: int(v) for k, v in azure.workspace.endpoints["titanic-staging"]["properties"]["traffic"].items()
                if int(v)}

    services.endpoint_traffic_set(endpoint=staging, traffic={"blue": 100}, actor=engineer)
    staging.refresh_from_db()
    assert staging.traffic_pending() and staging.platform_traffic == {}  # asked for, not seen applied yet
    wait_for(confirmed, timeout=20, message="Azure to route blue 100%")
    assert staging.platform_traffic == {"blue": 100} and routed() == {"blue": 100}

    # Lost on the way: the worker stopped between the portal's write and the PUT.
    with monkeypatch.context() as lost:
        lost.setattr(type(backend), "endpoint_traffic_apply", lambda self, **kwargs: False)
        services.endpoint_traffic_set(endpoint=staging, traffic={"blue": 50, "green": 50}, actor=engineer)
    page = client.get(staging.get_absolute_url()).content.decode()
    assert 'data-testid="traffic-pending"' in page and "last seen routing blue 100%" in page
    assert 'hx-trigger="every 2s"' in page  # the table keeps looking until it is applied
    from workspaces import sync

    assert sync.azureml_sync() == []  # Azure still routing blue 100% is not taken for a change made outside
    staging.refresh_from_db()
    assert {d.name: d.traffic for d in staging.deployments.all()} == {"blue": 50, "green": 50}
    assert staging.changed_outside == "" and staging.traffic_pending()
    puts = len(azure.find("PUT", r"/onlineEndpoints/titanic-staging$"))
    wait_for(confirmed, timeout=20, message="the lost split to be sent and applied")
    assert routed() == {"blue": 50, "green": 50} and len(azure.find("PUT", r"/onlineEndpoints/titanic-staging$")) > puts
    assert 'data-testid="traffic-pending"' not in client.get(staging.get_absolute_url()).content.decode()

    # Azure fails every update: after the timeout the rows take what Azure routes, and say why.
    for _ in range(40):
        azure.fail_operation(r"/onlineEndpoints/titanic-staging$", "Traffic update failed: the router is restarting.")
    settings.MLOPS_TRAFFIC_TIMEOUT_SECONDS = 3
    services.endpoint_traffic_set(endpoint=staging, traffic={"green": 100}, actor=engineer)
    put_back = []
    wait_for(lambda: put_back.extend(services.endpoints_traffic_confirm()) or put_back, timeout=30,
             message="the split to be put back")
    assert len(put_back) == 1 and put_back[0].startswith(
        "the ML platform did not apply green 100% on titanic-staging within 3 s, so the split is put back to what it "
        "routes, blue 50%, green 50%: Azure ML reports endpoint titanic-staging ")  # Failed, or Updating once more
    assert put_back[0].endswith("routing blue 50%, green 50%.") or "its last update failed" in put_back[0]
    staging.refresh_from_db()
    assert {d.name: d.traffic for d in staging.deployments.all()} == {"blue": 50, "green": 50}
    assert not staging.traffic_pending() and routed() == {"blue": 50, "green": 50}
    event = AuditEvent.objects.filter(target_id=str(staging.pk), summary__startswith="the ML platform did not").get()
    assert event.changes == {"traffic": [{"blue": 0, "green": 100}, {"blue": 50, "green": 50}]}
