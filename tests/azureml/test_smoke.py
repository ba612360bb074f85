"""`manage.py azureml_smoke` against the fake Azure ML: every check passes, and it leaves no endpoint behind."""
import io

import pytest
from django.core.management import CommandError, call_command

from tests.conftest import wait_for

pytestmark = pytest.mark.django_db


def test_the_smoke_test_passes_on_the_fake_and_cleans_up(azure):
    out = io.StringIO()
    call_command("azureml_smoke", prefix="smoke-ci", poll=0.3, timeout=120, stress_seconds=2, stdout=out)
    report = out.getvalue()
    print(report)  # the report a user reads, in the test log
    assert "9 of 9 checks passed." in report, report
    assert "Azure reports default scale settings, 3 instances, instance type defaultinstancetype" in report
    assert "Azure reports target_utilization from 3 to 6 instances" in report
    assert "the portal: 8 CPU is more than instance type defaultinstancetype allows (2)" in report
    assert "Azure: The ML platform" not in report and "above the limit of instance type" in report
    assert "Environment azureml:AzureML-mlops-portal-smoke-missing@latest could not be resolved" in report
    assert "green 100%: HTTP 200" in report and "errors 0.00%" in report
    # What Azure received: the staging call pinned to blue, and the traffic steps in turn.
    staging_calls = [r for r in azure.find("POST", r"/smoke-ci-stg/score$")]
    assert staging_calls and staging_calls[0].headers.get("azureml-model-deployment") == "blue"
    traffic = [r.body["properties"].get("traffic") for r in azure.find("PUT", r"/onlineEndpoints/smoke-ci-prod$")]
    assert [t for t in traffic if t] == [{"blue": 90, "green": 10}, {"blue": 50, "green": 50},
                                          {"green": 100}]
    wait_for(lambda: not azure.workspace.endpoints, timeout=30, message="the smoke test's endpoints to be deleted")


def test_a_failing_check_fails_the_command_and_still_cleans_up(azure):
    azure.inject("PUT", r"/onlineDeployments|/deployments/blue$", 400, times=20, body={"error": {
        "code": "UserError", "message": "The request is invalid.",
        "details": [{"code": "QuotaExceeded", "message": "Not enough quota for Standard_DS3_v2 in westeurope."}]}})
    out = io.StringIO()
    with pytest.raises(CommandError, match="The smoke test failed"):
        call_command("azureml_smoke", prefix="smoke-bad", poll=0.3, timeout=120, stress_seconds=1, stdout=out)
    report = out.getvalue()
    assert "FAIL  Staging deployment" in report and "Not enough quota for Standard_DS3_v2" in report
    assert "SKIP  Kubernetes, autoscale 3 to 6" in report
    assert "deleting endpoint smoke-bad-stg" in report
    wait_for(lambda: not azure.workspace.endpoints, timeout=30, message="the endpoints to be deleted")
