"""The fake refuses request bodies that Azure ML's REST spec refuses, as the service does: HTTP 400, code UserError,
"The request is invalid." and each reason in details[]: endpoints, deployments, jobs, models and code. (Every body
the portal sends passes: every azureml test goes through these checks.)"""
import pytest
import requests

from .common import RG, SUB, WS
from .fixtures import fake_aml  # noqa: F401

BASE = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices/workspaces/{WS}"
ENDPOINT = {"location": "westeurope", "properties": {"authMode": "Key"}}
DEPLOYMENT = {"location": "westeurope", "sku": {"name": "Default", "capacity": 1}, "properties": {
    "endpointComputeType": "Managed", "instanceType": "Standard_DS3_v2", "model": "azureml:m:1",
    "codeConfiguration": {"codeId": "azureml:c:1", "scoringScript": "score.py"},
    "scaleSettings": {"scaleType": "Default"}, "requestSettings": {"requestTimeout": "PT5S"}}}


def put(fake, path: str, body, api_version: str):
    return requests.put(f"{fake.url}{BASE}{path}?api-version={api_version}", json=body, verify=fake.ca_bundle,
                        headers={"Authorization": "Bearer test", "Host": "management.azure.com"}, timeout=10)


def with_props(base: dict, **changes) -> dict:
    props = {**base["properties"], **changes}
    return {**base, "properties": {k: v for k, v in props.items() if v is not ...}}


@pytest.mark.parametrize("body, reason", [
    ({"properties": {"authMode": "Key"}}, "'location' is a required property"),
    ({"location": "westeurope"}, "'properties' is a required property"),
    (with_props(ENDPOINT, authMode="key"), "properties/authMode: 'key' is not one of"),
    (with_props(ENDPOINT, authMode=...), "'authMode' is a required property"),
    (with_props(ENDPOINT, traffic={"blue": "100"}), "properties/traffic/blue: '100' is not of type 'integer'"),
    (with_props(ENDPOINT, trafic={"blue": 100}), "Additional properties are not allowed ('trafic' was unexpected)"),
])
def test_endpoint_bodies_the_spec_refuses(fake_aml, body, reason):  # noqa: F811
    response = put(fake_aml, "/onlineEndpoints/ep1", body, "2022-02-01-preview")
    error = response.json()["error"]
    assert response.status_code == 400 and error["code"] == "UserError"
    assert error["message"] == "The request is invalid."
    assert any(reason in d["message"] for d in error["details"]), error
    assert "ep1" not in fake_aml.workspace.endpoints  # nothing was made


@pytest.mark.parametrize("changes, reason", [
    ({"endpointComputeType": ...}, "'endpointComputeType' is a required property"),
    ({"endpointComputeType": "Aks"}, "'Aks' is not one of ['Managed', 'Kubernetes', 'AzureMLCompute']"),
    ({"scaleSettings": {"minInstances": 1}}, "properties/scaleSettings: 'scaleType' is a required property"),
    ({"scaleSettings": {"scaleType": "Default", "minInstances": 3}}, "('minInstances' was unexpected)"),
    ({"scaleSettings": {"scaleType": "TargetUtilization", "maxInstances": "6"}},
     "properties/scaleSettings/maxInstances: '6' is not of type 'integer'"),
    ({"requestSettings": {"requestTimeout": 5000}}, "properties/requestSettings/requestTimeout: 5000 is not of type"),
    ({"requestSettings": {"requestTimeout": "5s"}}, "properties/requestSettings/requestTimeout: '5s' does not match"),
    ({"codeConfiguration": {"codeId": "azureml:c:1"}}, "'scoringScript' is a required property"),
    ({"containerResourceRequirements": {"containerResourceRequests": {"cpu": "1"}}},
     "('containerResourceRequirements' was unexpected)"),  # Kubernetes deployments only
])
def test_deployment_bodies_the_spec_refuses(fake_aml, changes, reason):  # noqa: F811
    assert put(fake_aml, "/onlineEndpoints/ep1", ENDPOINT, "2022-02-01-preview").status_code == 201
    response = put(fake_aml, "/onlineEndpoints/ep1/deployments/blue", with_props(DEPLOYMENT, **changes),
                   "2023-04-01-preview")
    error = response.json()["error"]
    assert response.status_code == 400 and error["code"] == "UserError", error
    assert any(reason in d["message"] for d in error["details"]), error
    assert ("ep1", "blue") not in fake_aml.workspace.deployments


JOB = {"properties": {
    "jobType": "Command", "command": "python train.py --out ${{outputs.model}}", "experimentName": "titanic",
    "environmentId": "azureml:AzureML-sklearn-1.5@latest", "computeId": "azureml:/computes/cpu-cluster",
    "inputs": {"n": {"jobInputType": "literal", "value": "20"}},
    "outputs": {"model": {"jobOutputType": "uri_folder"}}, "limits": {"jobLimitsType": "Command", "timeout": "PT5M"}}}
MODEL = {"properties": {"modelUri": "azureml://jobs/j1/outputs/model", "modelType": "custom_model",
                        "tags": {"job": "j1"}, "isAnonymous": False}}


@pytest.mark.parametrize("changes, reason", [
    ({"environmentId": ...}, "'environmentId' is a required property"),
    ({"command": " "}, "properties/command: ' ' does not match '[a-zA-Z0-9_]'"),
    ({"jobType": "command"}, "properties/jobType: 'command' is not one of"),
    ({"inputs": {"n": {"jobInputType": "literal", "value": 20}}}, "properties/inputs/n/value: 20 is not of type"),
    ({"inputs": {"d": {"jobInputType": "uri_folder"}}}, "properties/inputs/d: 'uri' is a required property"),
    ({"outputs": {"model": {"jobOutputType": "uri_folder", "pathOnCompute": "/mnt"}}},
     "('pathOnCompute' was unexpected)"),  # not in this api-version
    ({"limits": {"timeout": "PT5M"}}, "properties/limits: 'jobLimitsType' is a required property"),
    ({"limits": {"jobLimitsType": "Command", "timeout": 300}}, "properties/limits/timeout: 300 is not of type"),
    ({"experimentName": None}, "properties/experimentName: None is not of type 'string'"),
    ({"environment_id": "azureml:x@latest"}, "('environment_id' was unexpected)"),
])
def test_job_bodies_the_spec_refuses(fake_aml, changes, reason):  # noqa: F811
    response = put(fake_aml, "/jobs/job-bad", with_props(JOB, **changes), "2025-01-01-preview")
    error = response.json()["error"]
    assert response.status_code == 400 and error["code"] == "UserError", error
    assert any(reason in d["message"] for d in error["details"]), error
    assert "job-bad" not in fake_aml.workspace.jobs


@pytest.mark.parametrize("changes, reason", [
    ({"tags": {"epoch": 3}}, "properties/tags/epoch: 3 is not of type 'string', 'null'"),
    ({"isArchived": "false"}, "properties/isArchived: 'false' is not of type 'boolean'"),
    ({"model_uri": "azureml://jobs/j1/outputs/model"}, "('model_uri' was unexpected)"),
    ({"intellectualProperty": {"protectionLevel": "All"}}, "'publisher' is a required property"),
])
def test_model_bodies_the_spec_refuses(fake_aml, changes, reason):  # noqa: F811
    response = put(fake_aml, "/models/titanic/versions/1", with_props(MODEL, **changes), "2023-08-01-preview")
    error = response.json()["error"]
    assert response.status_code == 400 and error["code"] == "UserError", error
    assert any(reason in d["message"] for d in error["details"]), error
    assert ("titanic", "1") not in fake_aml.workspace.models


@pytest.mark.parametrize("path, body, reason", [
    ("/onlineEndpoints/ep1/regenerateKeys", {}, "'keyType' is a required property"),
    ("/onlineEndpoints/ep1/regenerateKeys", {"keyType": "primary"}, "'primary' is not one of ['Primary', 'Secondary']"),
    ("/onlineEndpoints/ep1/deployments/blue/getLogs", {"containerType": "InferenceServer", "tail": "100"},
     "tail: '100' is not of type 'integer', 'null'"),
    ("/onlineEndpoints/ep1/deployments/blue/getLogs", {"lines": 100}, "('lines' was unexpected)"),
    ("/codes/c1/versions/1/startPendingUpload", {"pendingUploadType": "SAS"}, "'SAS' is not one of"),
])
def test_action_bodies_the_spec_refuses(fake_aml, path, body, reason):  # noqa: F811
    api = {"codes": "2023-04-01", "deployments": "2023-04-01-preview"}
    version = next((v for k, v in api.items() if f"/{k}/" in path), "2022-02-01-preview")
    response = requests.post(f"{fake_aml.url}{BASE}{path}?api-version={version}", json=body,
                             verify=fake_aml.ca_bundle, timeout=10,
                             headers={"Authorization": "Bearer test", "Host": "management.azure.com"})
    error = response.json()["error"]
    assert response.status_code == 400 and error["code"] == "UserError", error
    assert any(reason in d["message"] for d in error["details"]), error


def test_the_bodies_above_are_valid_but_for_the_change():
    from .spec import problems

    assert problems("endpoint", ENDPOINT) == [] and problems("deployment", DEPLOYMENT) == []
    assert problems("job", JOB) == [] and problems("model", MODEL) == []
    kube = with_props(DEPLOYMENT, endpointComputeType="Kubernetes", containerResourceRequirements={
        "containerResourceRequests": {"cpu": "0.5", "memory": "1G"}}, scaleSettings={
        "scaleType": "TargetUtilization", "minInstances": 3, "maxInstances": 6, "pollingInterval": "PT1S"})
    assert problems("deployment", kube) == []
