"""The request bodies the fake accepts, as the published REST spec defines them, written out as JSON Schema.

Written from the swagger of Microsoft.MachineLearningServices (Azure/azure-rest-api-specs,
specification/machinelearningservices/…/preview/2023-04-01-preview/mfe.json: OnlineEndpointTrackedResource,
OnlineDeploymentTrackedResource and the definitions they use; the endpoint's 2022-02-01-preview shape is the same for
what the portal sends). What the swagger says in types, required fields, enums, discriminators and
`additionalProperties: false` is here; rules the swagger leaves to prose (traffic adds up to 100) are checked by the
handlers. A body that fails gets HTTP 400 with the reason in details[], as the service answers.
"""
from jsonschema import Draft202012Validator

STRING_MAP = {"type": ["object", "null"], "additionalProperties": {"type": ["string", "null"]}}
DURATION = {"type": ["string", "null"], "pattern": r"^P(?!$)(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$"}
INT32 = {"type": "integer", "minimum": -(2 ** 31), "maximum": 2 ** 31 - 1}


def _nullable(schema: dict) -> dict:
    """The schema, or null (the swagger's x-nullable). Object keywords apply to objects only, so null passes."""
    kinds = schema.get("type", "object")
    return {**schema, "type": [*(kinds if isinstance(kinds, list) else [kinds]), "null"]}


def _tracked(properties: dict) -> dict:
    """TrackedResource (location required) around a properties bag; identity, kind, sku and tags optional."""
    return {
        "type": "object", "required": ["location", "properties"], "additionalProperties": False,
        "properties": {
            "id": {}, "name": {}, "type": {}, "systemData": {},  # read-only: ignored when sent
            "location": {"type": "string", "minLength": 1}, "tags": STRING_MAP, "kind": {"type": ["string", "null"]},
            "identity": _nullable({"type": "object", "required": ["type"], "properties": {"type": {"enum": [
                "None", "SystemAssigned", "UserAssigned", "SystemAssigned,UserAssigned"]}}}),
            "sku": _nullable({"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"}, "tier": {"enum": ["Free", "Basic", "Standard", "Premium", None]},
                "size": {"type": ["string", "null"]}, "family": {"type": ["string", "null"]},
                "capacity": _nullable(INT32)}}),
            "properties": properties,
        },
    }


ENDPOINT = _tracked({
    "type": "object", "required": ["authMode"], "additionalProperties": False,
    "properties": {
        "authMode": {"enum": ["AMLToken", "Key", "AADToken"]},
        "description": {"type": ["string", "null"]}, "properties": STRING_MAP,
        "keys": _nullable({"type": "object", "properties": {"primaryKey": {"type": ["string", "null"]},
                                                             "secondaryKey": {"type": ["string", "null"]}}}),
        "compute": {"type": ["string", "null"]},
        "traffic": _nullable({"type": "object", "additionalProperties": INT32}),
        "mirrorTraffic": _nullable({"type": "object", "additionalProperties": INT32}),
        "publicNetworkAccess": {"enum": ["Enabled", "Disabled", None]},
        "scoringUri": {}, "swaggerUri": {}, "provisioningState": {},  # read-only
    },
})

PROBE = _nullable({"type": "object", "additionalProperties": False, "properties": {
    "failureThreshold": INT32, "successThreshold": INT32, "initialDelay": DURATION, "period": DURATION,
    "timeout": DURATION}})
RESOURCES = _nullable({"type": "object", "additionalProperties": False, "properties": {
    "cpu": {"type": ["string", "null"]}, "gpu": {"type": ["string", "null"]}, "memory": {"type": ["string", "null"]}}})
SCALE = _nullable({
    "type": "object", "required": ["scaleType"],
    "properties": {"scaleType": {"enum": ["Default", "TargetUtilization"]}},
    "if": {"properties": {"scaleType": {"const": "TargetUtilization"}}},
    "then": {"properties": {"scaleType": {}, "minInstances": INT32, "maxInstances": INT32,
                            "pollingInterval": DURATION, "targetUtilizationPercentage": INT32},
             "additionalProperties": False},
    "else": {"properties": {"scaleType": {}}, "additionalProperties": False},
})
DEPLOYMENT_COMMON = {
    # EndpointDeploymentPropertiesBase
    "codeConfiguration": _nullable({"type": "object", "required": ["scoringScript"], "additionalProperties": False,
                                    "properties": {"codeId": {"type": ["string", "null"]},
                                                   "scoringScript": {"type": "string", "minLength": 1,
                                                                     "pattern": "[a-zA-Z0-9_]"}}}),
    "description": {"type": ["string", "null"]}, "environmentId": {"type": ["string", "null"]},
    "environmentVariables": STRING_MAP, "properties": STRING_MAP,
    # OnlineDeployment
    "appInsightsEnabled": {"type": "boolean"},
    "dataCollector": _nullable({"type": "object", "required": ["collections"]}),
    "egressPublicNetworkAccess": {"enum": ["Enabled", "Disabled"]},
    "instanceType": {"type": ["string", "null"]}, "livenessProbe": PROBE, "readinessProbe": PROBE,
    "model": {"type": ["string", "null"]}, "modelMountPath": {"type": ["string", "null"]},
    "requestSettings": _nullable({"type": "object", "additionalProperties": False, "properties": {
        "maxConcurrentRequestsPerInstance": INT32, "maxQueueWait": DURATION, "requestTimeout": DURATION}}),
    "scaleSettings": SCALE, "provisioningState": {},  # read-only
}
DEPLOYMENT = _tracked({
    "type": "object", "required": ["endpointComputeType"],
    "properties": {"endpointComputeType": {"enum": ["Managed", "Kubernetes", "AzureMLCompute"]}},
    "if": {"properties": {"endpointComputeType": {"const": "Kubernetes"}}},
    "then": {"properties": {**DEPLOYMENT_COMMON, "endpointComputeType": {},
                            "containerResourceRequirements": _nullable({
                                "type": "object", "additionalProperties": False,
                                "properties": {"containerResourceLimits": RESOURCES,
                                               "containerResourceRequests": RESOURCES}})},
             "additionalProperties": False},
    "else": {"properties": {**DEPLOYMENT_COMMON, "endpointComputeType": {}}, "additionalProperties": False},
})

VALIDATORS = {"endpoint": Draft202012Validator(ENDPOINT), "deployment": Draft202012Validator(DEPLOYMENT)}


def problems(kind: str, body) -> list[str]:
    """What the REST spec refuses in a request body, each as `path: reason` (empty when it is valid)."""
    found = []
    for error in sorted(VALIDATORS[kind].iter_errors(body), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(the body)"
        found.append(f"{where}: {error.message}")
    return found
