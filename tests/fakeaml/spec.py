"""The request bodies the fake accepts, as the published REST spec defines them, written out as JSON Schema.

Written from the swagger of Microsoft.MachineLearningServices (Azure/azure-rest-api-specs,
specification/machinelearningservices/resource-manager/…), for the api-version the SDK sends each PUT with:
preview/2023-04-01-preview (OnlineEndpointTrackedResource, OnlineDeploymentTrackedResource; the endpoint's
2022-02-01-preview shape is the same for what the portal sends), preview/2025-01-01-preview (JobBaseResource with
CommandJob), preview/2023-08-01-preview (ModelVersionResource) and stable/2023-04-01 (CodeVersionResource), with the
definitions they use, and the bodies of the POST actions the SDK calls (getLogs: DeploymentLogsRequest,
regenerateKeys: RegenerateEndpointKeysRequest, startPendingUpload: PendingUploadRequestDto). Swagger's additionalProperties: false covers inherited properties, so parents are flattened
into each schema; its unanchored patterns ("[a-zA-Z0-9_]": at least one such character) are kept as they are. What the swagger says in types, required fields, enums, discriminators and
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

# --- assets and jobs ------------------------------------------------------------------------------------------
READ_ONLY = {"id": {}, "name": {}, "type": {}, "systemData": {}}  # ProxyResource / Resource: ignored when sent
NONBLANK = {"type": "string", "minLength": 1, "pattern": "[a-zA-Z0-9_]"}
RESOURCE_BASE = {"description": {"type": ["string", "null"]}, "properties": STRING_MAP, "tags": STRING_MAP}
ASSET_BASE = {**RESOURCE_BASE, "isAnonymous": {"type": "boolean"}, "isArchived": {"type": "boolean"}}


def _proxy(properties: dict) -> dict:
    """A ProxyResource (no location) around a properties bag."""
    return {"type": "object", "required": ["properties"], "additionalProperties": False,
            "properties": {**READ_ONLY, "properties": properties}}


def _by(discriminator: str, kinds: dict[str, dict], common: dict) -> dict:
    """A discriminated union: `discriminator` picks the subtype, whose own and `common` properties are all it may
    carry (each subtype has additionalProperties: false)."""
    return {"type": "object", "required": [discriminator],
            "properties": {discriminator: {"enum": list(kinds)}},
            "allOf": [{"if": {"properties": {discriminator: {"const": kind}}},
                       "then": {**extra, "properties": {**common, **extra.get("properties", {}), discriminator: {}},
                                "additionalProperties": False}} for kind, extra in kinds.items()]}


ASSET_KINDS = ("uri_file", "uri_folder", "mltable", "custom_model", "mlflow_model", "triton_model")
JOB_INPUT = _nullable(_by("jobInputType", {
    "literal": {"required": ["value"], "properties": {"value": NONBLANK}},
    **{kind: {"required": ["uri"], "properties": {
        "uri": NONBLANK, "mode": {"enum": ["ReadOnlyMount", "ReadWriteMount", "Download", "Direct", "EvalMount",
                                           "EvalDownload"]}}} for kind in ASSET_KINDS},
}, {"description": {"type": ["string", "null"]}}))
JOB_OUTPUT = _nullable(_by("jobOutputType", {kind: {"properties": {
    "assetName": {"type": ["string", "null"]}, "uri": {"type": ["string", "null"]},
    "mode": {"enum": ["ReadWriteMount", "Upload", "Direct"]}}} for kind in ASSET_KINDS},
    {"description": {"type": ["string", "null"]}}))
COMMAND_JOB = {
    **RESOURCE_BASE,  # JobBase
    "componentId": {"type": ["string", "null"]}, "computeId": {"type": ["string", "null"]},
    "displayName": {"type": ["string", "null"]}, "experimentName": {"type": "string"},
    "identity": _nullable(_by("identityType", {"AMLToken": {}, "UserIdentity": {}, "Managed": {"properties": {
        "clientId": {"type": ["string", "null"]}, "objectId": {"type": ["string", "null"]},
        "resourceId": {"type": ["string", "null"]}}}}, {})),
    "isArchived": {"type": "boolean"}, "jobType": {}, "notificationSetting": _nullable({"type": "object"}),
    "parentJobName": {"type": ["string", "null"]}, "services": _nullable({"type": "object"}), "status": {},
    # CommandJob
    "codeId": {"type": ["string", "null"]}, "command": NONBLANK, "environmentId": NONBLANK,
    "distribution": _nullable(_by("distributionType", {
        "PyTorch": {"properties": {"processCountPerInstance": _nullable(INT32)}},
        "Mpi": {"properties": {"processCountPerInstance": _nullable(INT32)}},
        "TensorFlow": {"properties": {"parameterServerCount": INT32, "workerCount": _nullable(INT32)}}}, {})),
    "environmentVariables": STRING_MAP,
    "inputs": _nullable({"type": "object", "additionalProperties": JOB_INPUT}),
    "outputs": _nullable({"type": "object", "additionalProperties": JOB_OUTPUT}),
    "limits": _nullable(_by("jobLimitsType", {"Command": {}}, {"timeout": DURATION})),
    "parameters": {}, "queueSettings": _nullable({"type": "object", "additionalProperties": False, "properties": {
        "jobTier": {"enum": ["Null", "Spot", "Basic", "Standard", "Premium"]}}}),
    "resources": {"type": "object", "additionalProperties": False, "properties": {
        "instanceCount": INT32, "instanceType": {"type": ["string", "null"]},
        "properties": _nullable({"type": "object", "additionalProperties": {"type": ["object", "null"]}}),
        "dockerArgs": {"type": ["string", "null"]}, "dockerArgsList": _nullable({"type": "array", "items": {
            "type": "string"}}), "shmSize": {"type": "string", "pattern": r"\d+[bBkKmMgG]"}}},
}
JOB = _proxy({
    "type": "object", "required": ["jobType"],
    "properties": {"jobType": {"enum": ["AutoML", "Command", "Sweep", "Pipeline", "Spark", "FineTuning",
                                        "Distillation"]}},
    # The fake runs Command jobs only (it answers other kinds itself); a Command job is exactly CommandJob.
    "if": {"properties": {"jobType": {"const": "Command"}}},
    "then": {"required": ["command", "environmentId"], "properties": COMMAND_JOB, "additionalProperties": False},
})
MODEL_VERSION = _proxy({"type": "object", "additionalProperties": False, "properties": {
    **ASSET_BASE, "autoDeleteSetting": _nullable({"type": "object", "additionalProperties": False, "properties": {
        "condition": {"enum": ["CreatedGreaterThan", "LastAccessedGreaterThan"]},
        "value": {"type": ["string", "null"]}}}),
    "flavors": _nullable({"type": "object", "additionalProperties": _nullable({
        "type": "object", "additionalProperties": False, "properties": {"data": STRING_MAP}})}),
    "intellectualProperty": _nullable({"type": "object", "required": ["publisher"], "additionalProperties": False,
                                       "properties": {"publisher": NONBLANK,
                                                      "protectionLevel": {"enum": ["All", "None"]}}}),
    "jobName": {"type": ["string", "null"]}, "modelType": {"type": ["string", "null"]},
    "modelUri": {"type": ["string", "null"]}, "stage": {"type": ["string", "null"]}, "provisioningState": {}}})
CODE_VERSION = _proxy({"type": "object", "additionalProperties": False, "properties": {
    **ASSET_BASE, "codeUri": {"type": ["string", "null"]}, "provisioningState": {},
    # The SDK sends {"hash_version": 202208} (a number) in this string map on every code upload, and the service
    # takes it as "202208": scalars pass here, objects and lists do not.
    "properties": {"type": ["object", "null"], "additionalProperties": {
        "type": ["string", "number", "boolean", "null"]}}}})

# --- the bodies of POST actions ----------------------------------------------------------------------------------
LOGS_REQUEST = {"type": "object", "additionalProperties": False, "properties": {  # DeploymentLogsRequest
    "containerType": {"enum": ["StorageInitializer", "InferenceServer", "ModelDataCollector"]},
    "tail": _nullable(INT32)}}
REGENERATE_KEYS = {"type": "object", "required": ["keyType"], "additionalProperties": False, "properties": {
    "keyType": {"enum": ["Primary", "Secondary"]}, "keyValue": {"type": ["string", "null"]}}}
PENDING_UPLOAD = {"type": "object", "additionalProperties": False, "properties": {  # PendingUploadRequestDto
    "pendingUploadId": {"type": ["string", "null"]},
    "pendingUploadType": {"enum": ["None", "TemporaryBlobReference"]}}}

VALIDATORS = {name: Draft202012Validator(schema) for name, schema in (
    ("logs", LOGS_REQUEST), ("regenerate_keys", REGENERATE_KEYS), ("pending_upload", PENDING_UPLOAD),
    ("endpoint", ENDPOINT), ("deployment", DEPLOYMENT), ("job", JOB), ("model", MODEL_VERSION),
    ("code", CODE_VERSION))}


def problems(kind: str, body) -> list[str]:
    """What the REST spec refuses in a request body, each as `path: reason` (empty when it is valid)."""
    found = []
    for error in sorted(VALIDATORS[kind].iter_errors(body), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(the body)"
        found.append(f"{where}: {error.message}")
    return found


def refused(kind: str, body):
    """The service's answer to a body that breaks the spec: HTTP 400, UserError, "The request is invalid." and each
    reason in details[]; None when the body is valid."""
    found = problems(kind, body)
    if not found:
        return None
    return 400, {}, {"error": {"code": "UserError", "message": "The request is invalid.",
                               "details": [{"code": "InvalidRequestContent", "message": p} for p in found[:10]]}}
