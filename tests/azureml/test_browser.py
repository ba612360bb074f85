"""In a real browser, on the azureml backend: an admin sets the workspace and tests the connection; an engineer
trains on the Azure ML compute cluster and the registered version shows up. Screenshots go to test-artifacts/."""
import pytest

from deployments.models import DeploymentProfile
from deployments.serving import services
from mlopsportal.backends import get_backend
from models_registry import services as registry
from models_registry.models import ModelVersion
from tests.conftest import ARTIFACTS, AZURE_WORKSPACE, sign_in, wait_for
from workspaces.models import AzureMLWorkspace

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]



def test_admin_connects_the_workspace_and_an_engineer_trains_on_it(live_server, azure, azure_worker, admin_user,
                                                                   engineer, browser_page):
    page, base = browser_page, live_server.url
    AzureMLWorkspace.objects.filter(pk=1).update(workspace_name="", aks_compute="", training_cluster="")

    sign_in(page, base, admin_user)
    page.click("nav >> text=Workspace")
    page.wait_for_selector("h1:has-text('Azure ML workspace')")
    assert page.inner_text("[data-testid=backend]") == "azureml"
    page.click("[data-testid=test-connection]")
    assert "Missing: workspace name, AKS compute name, training cluster." in page.inner_text(
        "[data-testid=check-results]")

    page.fill("input[name=subscription_id]", "not-a-guid")
    page.fill("input[name=workspace_name]", AZURE_WORKSPACE["workspace_name"])
    page.click("button:has-text('Save')")
    assert "A subscription ID looks like" in page.content()
    page.fill("input[name=subscription_id]", AZURE_WORKSPACE["subscription_id"])
    page.fill("input[name=aks_compute]", AZURE_WORKSPACE["aks_compute"])
    page.fill("input[name=training_cluster]", AZURE_WORKSPACE["training_cluster"])
    page.click("button:has-text('Save')")
    page.click("[data-testid=test-connection]")
    page.wait_for_selector("[data-testid=check-status]:has-text('works')")
    results = page.inner_text("[data-testid=check-results]")
    assert "✓ Workspace: ws-test in westeurope." in results and "✓ AKS compute: aks-prod" in results
    page.screenshot(path=str(ARTIFACTS / "workspace.png"), full_page=True)

    registry.registered_model_ensure(name="titanic", key_metric="cv_accuracy", actor=engineer)
    sign_in(page, base, engineer)
    assert page.locator("nav >> text=Workspace").count() == 1
    page.goto(f"{base}/workspace/")
    assert page.locator("input[name=subscription_id]").count() == 0  # engineers read, admins edit
    page.goto(f"{base}/runs/new/?example=titanic")
    assert page.locator("select[name=compute_target] option").all_inner_texts() == [
        "cpu-cluster — Azure ML compute cluster"]
    page.fill("input[name=experiment_name]", "titanic-azure")
    page.fill("input[name=param_n_estimators]", "30")
    page.fill("input[name=param_cv_folds]", "3")
    page.click("button:has-text('Launch')")
    page.wait_for_selector("text=Launched run")
    page.wait_for_selector("[data-testid=run-status]:has-text('Succeeded')", timeout=120_000)
    assert "Wrote model.pkl and metrics.json" in page.inner_text("[data-testid=run-log]")
    page.screenshot(path=str(ARTIFACTS / "azureml-run.png"), full_page=True)
    version = ModelVersion.objects.get()
    assert version.artifact_uri == "azureml:titanic:1"
    assert azure.find("PUT", r"/models/titanic/versions/1$")

    # Deploy it to staging (a managed online endpoint in Azure), route traffic to it and try it from its page.
    profile = DeploymentProfile.objects.create(name="small", instance_count=1, request_timeout_ms=5000)
    services.endpoint_create(name="titanic-staging", stage="staging", profile=profile, actor=admin_user)
    page.goto(f"{base}/models/titanic/versions/1/")
    page.select_option("select[name=endpoint]", label="titanic-staging")
    page.click("button:has-text('Deploy')")
    page.wait_for_selector("h1:has-text('titanic-staging')")
    page.wait_for_selector("[data-testid=deployment-status-blue]:has-text('Healthy')", timeout=90_000)
    page.reload()
    assert page.inner_text("[data-testid=scoring-url]").endswith("/titanic-staging/score")
    assert "azure" not in page.inner_text("[data-testid=scoring-url]")  # the fake's 127.0.0.1, as Azure gives it
    page.fill("input[name=traffic-blue]", "100")
    page.click("button:has-text('Set traffic')")
    page.wait_for_selector("text=Traffic updated")
    backend = get_backend("azureml")
    wait_for(lambda: backend.endpoint_traffic_applied(endpoint_name="titanic-staging", traffic={"blue": 100}),
             timeout=20, message="Azure to apply the traffic")
    page.click("#try-it button:has-text('Send')")
    page.wait_for_selector("[data-testid=try-result]")
    assert '"prediction": 1' in page.inner_text("[data-testid=try-result]")
    page.screenshot(path=str(ARTIFACTS / "azureml-endpoint.png"), full_page=True)
    put = azure.find("PUT", r"/onlineEndpoints/titanic-staging/deployments/blue$")[0]
    assert put.body["properties"]["endpointComputeType"] == "Managed"
