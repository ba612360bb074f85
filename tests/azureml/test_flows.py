"""The training flow and the whole promotion on the azureml backend: a real Celery worker, the real SDK, the fake
Azure ML running the job and Azure ML's inference server behind its endpoints."""
import pytest
import requests

from deployments.models import Deployment, DeploymentProfile, Endpoint, FunctionalTestCase, StressProfile, StressRun
from deployments.promotions import services as promotions
from deployments.serving import services
from mlopsportal.backends import get_backend
from models_registry import services as registry
from models_registry.models import TrainingRun
from tests.conftest import running_promotion, wait_for
from tests.deployments.test_promotion import serving, settle
from workspaces import sync

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
SEED = {"Pclass": 1, "Sex": 0, "Age": 38, "SibSp": 1, "Parch": 0, "Fare": 71.2833, "Embarked": 2}
SIX = [{"Pclass": 3, "Sex": 1, "Age": 34.5, "SibSp": 0, "Parch": 0, "Fare": 7.8292, "Embarked": 2},
       {"Pclass": 3, "Sex": 0, "Age": 40, "SibSp": 1, "Parch": 1, "Fare": 2.56, "Embarked": 0}]


def launch_and_register(model, engineer, **params):
    run = registry.training_run_launch(
        example_name="titanic", params={"n_estimators": 20, "cv_folds": 2, **params}, compute_target="cpu-cluster",
        experiment_name="titanic", timeout_seconds=600, register_as=model, actor=engineer)

    def finished():
        run.refresh_from_db()
        return run.status not in TrainingRun.ACTIVE

    wait_for(finished, timeout=180, message=f"{run} to finish")
    return run


def test_training_flow_on_azureml(azure, azure_worker, engineer):
    model, _ = registry.registered_model_ensure(name="titanic", actor=engineer)
    run = launch_and_register(model, engineer, max_depth=5)
    assert run.status == TrainingRun.Status.SUCCEEDED, (run.error, run.log[-2000:])
    assert run.backend == "azureml" and run.backend_job_id == run.job_name
    assert 0.6 < run.metrics["cv_accuracy"] <= 1
    assert "Wrote model.pkl and metrics.json" in run.log
    version = model.versions.get()
    assert version.artifact_uri == "azureml:titanic:1" and version.training_run == run
    assert {f["path"] for f in version.artifact_files} == {"model.pkl", "metrics.json", "features.json"}
    put = azure.find("PUT", rf"/jobs/{run.job_name}$")[-1]
    assert put.body["properties"]["inputs"]["max_depth"] == {"jobInputType": "literal", "value": "5"}
    assert azure.find("PUT", r"/models/titanic/versions/1$")


def test_canceling_a_run_cancels_the_azure_job(azure, azure_worker, engineer):
    run = registry.training_run_launch(
        example_name="titanic", params={"n_estimators": 2000, "cv_folds": 20}, compute_target="cpu-cluster",
        experiment_name="titanic", timeout_seconds=600, register_as=None, actor=engineer)
    wait_for(lambda: TrainingRun.objects.get(pk=run.pk).backend_job_id, timeout=60, message="job submitted")
    run.refresh_from_db()
    assert registry.training_run_cancel(run=run, actor=engineer)
    assert azure.find("POST", rf"/jobs/{run.job_name}/cancel$")
    client = get_backend("azureml").client()
    wait_for(lambda: client.jobs.get(run.job_name).status == "Canceled", timeout=30, message="job canceled")


def azure_traffic(name):
    return {k: int(v) for k, v in (get_backend("azureml").client().online_endpoints.get(name).traffic or {}).items()
            if int(v)}


def test_promotion_end_to_end_on_azureml_then_rollback(azure, azure_worker, engineer, manager):
    staging_profile = DeploymentProfile.objects.create(name="small", instance_count=1, request_timeout_ms=5000)
    prod_profile = DeploymentProfile.objects.create(name="aks", instance_count=1, autoscale_enabled=True,
                                                    min_instances=1, max_instances=3, target_utilization=50,
                                                    request_timeout_ms=5000, max_concurrent_requests_per_instance=2)
    staging = services.endpoint_create(name="titanic-staging", stage="staging", profile=staging_profile,
                                       actor=engineer)
    prod = services.endpoint_create(name="titanic-prod", stage="production", profile=prod_profile, actor=engineer)
    Endpoint.objects.filter(pk=prod.pk).update(traffic_steps="50,100")
    model, _ = registry.registered_model_ensure(name="titanic", actor=engineer)
    FunctionalTestCase.objects.create(model=model, name="seed passenger survives", payload=SEED,
                                      expect_field="prediction", expected_value=1)
    stress = StressProfile.objects.create(model=model, name="quick", concurrency=4, duration_seconds=2, payloads=SIX,
                                          p95_ms_max=3000, error_rate_max=0.0, min_rps=1, shards=2)
    launch_and_register(model, engineer)
    launch_and_register(model, engineer, random_state=7)
    v1, v2 = model.versions.order_by("version")

    def promote(version):
        promotion = promotions.promotion_start(version=version, production_endpoint=prod, staging_endpoint=staging,
                                               stress_profile=stress, reason="better model", actor=engineer)
        promotion = settle(promotion, {"awaiting", "failed"}, timeout=240)
        assert promotion.state == "awaiting", promotion.failure_reason
        promotions.promotion_decide(promotion=promotion, actor=manager, approve=True, comment="green on staging")
        promotion = settle(promotion, {"succeeded", "failed"}, timeout=240)
        assert promotion.state == "succeeded", promotion.failure_reason
        return promotion

    first = promote(v1)
    stress_run = StressRun.objects.get(promotion=first)
    assert stress_run.status == "passed" and stress_run.summary["requests"] > 0
    assert stress_run.summary["by_status"] == {"200": stress_run.summary["requests"]}
    assert serving(prod) == {"blue": (1, 100)}
    assert azure_traffic("titanic-prod") == {"blue": 100}
    assert azure.find("PUT", r"/onlineEndpoints/titanic-staging/deployments/promo-\d+$")  # staging on Azure
    wait_for(lambda: azure.find("DELETE", r"/onlineEndpoints/titanic-staging/deployments/promo-\d+$"),
             message="the staging deployment to be removed")  # and removed after

    prod.refresh_from_db()
    assert prod.platform_scoring_url.startswith("http://127.0.0.1:")
    # The seed's functional test, as a client would run it against the production endpoint's URL.
    response = requests.post(services.endpoint_scoring_url(prod), json=SEED,
                             headers={"Authorization": f"Bearer {prod.key}"}, timeout=10)
    assert response.status_code == 200 and response.json()["prediction"] == 1

    second = promote(v2)
    assert serving(prod) == {"blue": (1, 0), "green": (2, 100)}
    assert azure_traffic("titanic-prod") == {"green": 100}
    steps = {(kind, percent): status for kind, percent, status in second.steps.values_list("kind", "percent", "status")}
    assert steps["traffic", 50] == "succeeded" and steps["traffic", 100] == "succeeded"
    traffic_puts = [r.body["properties"]["traffic"] for r in azure.find("PUT", r"/onlineEndpoints/titanic-prod$")
                    if r.body and r.body["properties"].get("traffic")]
    assert {"blue": 50, "green": 50} in traffic_puts

    services.endpoint_rollback(endpoint=prod, actor=engineer, reason="error rate up")
    assert serving(prod) == {"blue": (1, 100), "green": (2, 0)}
    wait_for(lambda: azure_traffic("titanic-prod") == {"blue": 100}, timeout=20, message="rollback applied in Azure")


def test_sync_marks_what_changed_outside_the_portal(azure, engineer, client):
    from mlopsportal.backends import get_backend
    from tests.azureml.test_backend import version_on_azure

    backend = get_backend("azureml")
    version = version_on_azure(engineer, backend)
    profile = DeploymentProfile.objects.create(name="aks", instance_count=1)
    prod = services.endpoint_create(name="titanic-prod", stage="production", profile=profile, actor=engineer)
    from tests.azureml.test_backend import poll_until_settled, start

    blue = poll_until_settled(start(prod, version, "blue", engineer))
    green = poll_until_settled(start(prod, version, "green", engineer))
    services.endpoint_traffic_set(endpoint=prod, traffic={"blue": 100}, actor=engineer,
                                  promotion=running_promotion(prod, version, engineer))
    wait_for(lambda: backend.endpoint_traffic_applied(endpoint_name="titanic-prod", traffic={"blue": 100}),
             timeout=20, message="traffic applied")
    assert sync.azureml_sync() == []

    # Someone moves traffic and registers a version in Azure ML studio.
    azure.set_traffic_outside("titanic-prod", {"blue": 20, "green": 80})
    from azure.ai.ml.entities import Model

    backend.client().models.create_or_update(Model(name="titanic", version="7", type="custom_model",
                                                   path=f"azureml://jobs/{version.training_run.backend_job_id}"
                                                        "/outputs/model"))
    findings = sync.azureml_sync()
    assert any("traffic of titanic-prod was set to blue 20%, green 80%" in f for f in findings), findings
    assert any("titanic v7 was registered" in f for f in findings), findings
    assert serving(prod) == {"blue": (1, 20), "green": (1, 80)}
    prod.refresh_from_db()
    assert "outside the portal" in prod.changed_outside
    outside = model_version(7)
    assert outside.changed_outside and outside.training_run is None
    from workspaces.models import AzureMLWorkspace

    workspace = AzureMLWorkspace.load()
    assert workspace.sync_ok and workspace.synced_at and "v7" in workspace.sync_message
    client.force_login(engineer)
    page = client.get(prod.get_absolute_url()).content.decode()
    assert "Changed outside the portal: traffic set to blue 20%, green 80%" in page
    assert "v7" in client.get("/workspace/").content.decode()
    assert blue.status == green.status == Deployment.Status.HEALTHY
    assert sync.azureml_sync() == []  # taken over: nothing new the second time
    services.endpoint_traffic_set(endpoint=prod, traffic={"blue": 100}, actor=engineer,
                                  promotion=running_promotion(prod, version, engineer))
    prod.refresh_from_db()
    assert prod.changed_outside == ""  # the portal's own change supersedes the mark
    wait_for(lambda: backend.endpoint_traffic_applied(endpoint_name="titanic-prod", traffic={"blue": 100}),
             timeout=20, message="traffic applied")

    # The key is regenerated in Azure: the portal takes the new one (and never writes a key into its findings).
    old_key = prod.key
    backend.client().online_endpoints.begin_regenerate_keys("titanic-prod", key_type="primary").result()
    findings = sync.azureml_sync()
    prod.refresh_from_db()
    assert findings == ["the key of titanic-prod was regenerated in Azure ML outside the portal"]
    assert prod.key != old_key and prod.key not in workspace_message()
    response = requests.post(services.endpoint_scoring_url(prod), json=SEED, headers=services.scoring_headers(prod),
                             timeout=10)
    assert response.status_code == 200

    # The endpoint is deleted in Azure: its deployments are marked gone, with no traffic.
    backend.client().online_endpoints.begin_delete("titanic-prod").result()
    findings = sync.azureml_sync()
    assert findings == ["endpoint titanic-prod was deleted in Azure ML outside the portal"]
    assert serving(prod) == {}
    assert set(prod.deployments.values_list("changed_outside", flat=True)) == {
        "deleted in Azure ML outside the portal"}

    azure.inject("GET", r"/onlineEndpoints$", 500, times=10)
    sync.azureml_sync()
    workspace.refresh_from_db()
    assert not workspace.sync_ok and "500" in workspace.sync_message


def workspace_message():
    from workspaces.models import AzureMLWorkspace

    return AzureMLWorkspace.load().sync_message


def model_version(number):
    from models_registry.models import ModelVersion

    return ModelVersion.objects.get(model__name="titanic", version=number)


def test_failing_functional_case_on_azureml_stops_before_production(azure, azure_worker, engineer):
    profile = DeploymentProfile.objects.create(name="small", instance_count=1, request_timeout_ms=5000)
    staging = services.endpoint_create(name="titanic-staging", stage="staging", profile=profile, actor=engineer)
    prod = services.endpoint_create(name="titanic-prod", stage="production", profile=profile, actor=engineer)
    model, _ = registry.registered_model_ensure(name="titanic", actor=engineer)
    FunctionalTestCase.objects.create(model=model, name="seed passenger dies (wrong on purpose)", payload=SEED,
                                      expect_field="prediction", expected_value=0)
    stress = StressProfile.objects.create(model=model, name="quick", concurrency=2, duration_seconds=1, payloads=SIX,
                                          p95_ms_max=3000, error_rate_max=0.0, min_rps=1, shards=1)
    launch_and_register(model, engineer)
    promotion = promotions.promotion_start(version=model.versions.get(), production_endpoint=prod,
                                           staging_endpoint=staging, stress_profile=stress, reason="try",
                                           actor=engineer)
    promotion = settle(promotion, {"failed", "awaiting", "succeeded"}, timeout=240)
    assert promotion.state == "failed" and "1 of 1 cases failed" in promotion.failure_reason
    # Production got its endpoint (made when it was created) and no deployment.
    assert not prod.deployments.exists() and not azure.find("PUT", r"/onlineEndpoints/titanic-prod/deployments/")
    staging_deployment = promotion.staging_deployment
    wait_for(lambda: Deployment.objects.get(pk=staging_deployment.pk).status == Deployment.Status.DELETED,
             timeout=60, message="the staging deployment removed")
    assert azure.find("DELETE", rf"/onlineEndpoints/titanic-staging/deployments/{staging_deployment.name}$")
