"""The workspace behind the fake ARM API: computes, the datastore, code and model versions, command jobs, and
long-running operations (online endpoints and deployments are in online.py). Responses are shaped like the REST API's
published examples (Azure/azure-rest-api-specs, Microsoft.MachineLearningServices stable/2025-12-01/examples),
including the defaults the service fills in and the SDK relies on (model `flavors`, deployment `scaleSettings`).

Handlers return (status, headers, json-able body) and run under `self.lock`; `tick()` (called by the fake's monitor
thread) moves jobs, deployments and operations along.
"""
import base64
import re
import secrets
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

from . import spec
from .common import (
    ACCOUNT,
    CONTAINER,
    DATASTORE,
    DATASTORE_URI,
    PROVIDER,
    REGION,
    RG,
    SUB,
    TENANT,
    TYPE,
    WS,
    WS_ID,
    error,
    not_found,
    now_iso,
    system_data,
)
from .online import OnlineServing
from .workloads import DeploymentServer, JobRun, tail

CURATED_ENVIRONMENTS = ("AzureML-sklearn-1.5", "AzureML-sklearn-1.0", "AzureML-minimal-ubuntu22.04-py39-cpu-inference")
JOB_OUTPUT_URI = re.compile(r"^azureml://jobs/(?P<job>[^/]+)/outputs/(?P<output>[^/]+)(?:/paths/(?P<sub>.*))?/?$")
TERMINAL_JOB = {"Completed", "Failed", "Canceled"}


class Operation:
    """A long-running operation: `check()` says "Succeeded", an error message, or None (still running); `failure`
    ((code, message), from fake.fail_operation) makes it fail instead once it is due."""

    def __init__(self, kind: str, check, on_fail=None, failure: tuple[str, str] | None = None, delay: float = 0.3):
        self.id = str(uuid.uuid4())
        self.kind, self.check, self.on_fail = kind, check, on_fail
        self.failure = failure
        self.started = time.time()
        self.due = time.monotonic() + delay
        self.status, self.error, self.ended = "InProgress", None, None

    def body(self) -> dict:
        body = {"id": f"/subscriptions/{SUB}/providers/{PROVIDER}/locations/{REGION}/mfeOperationsStatus/{self.id}",
                "name": self.id, "status": self.status, "startTime": now_iso(self.started)}
        if self.ended:
            body["endTime"] = now_iso(self.ended)
        if self.error:
            body["error"] = self.error
        return body


class Workspace(OnlineServing):
    def __init__(self, root: Path, blobs, *, scoring_port: int, free_port, lro_seconds: float = 0.3,
                 job_queue_seconds: float = 0.3):
        self.root, self.blobs, self.scoring_port, self.free_port = root, blobs, scoring_port, free_port
        self.lro_seconds, self.job_queue_seconds = lro_seconds, job_queue_seconds
        self.lock = threading.RLock()
        self.created = time.time()
        self.account_key = base64.b64encode(secrets.token_bytes(64)).decode()
        self.codes: dict[tuple[str, str], dict] = {}
        self.jobs: dict[str, dict] = {}
        self.runs: dict[str, JobRun] = {}
        self.run_errors: dict[str, dict] = {}  # run history's error of a failed job (the ARM job has none)
        self.models: dict[tuple[str, str], dict] = {}
        self.endpoints: dict[str, dict] = {}
        self.taken_in_region: set[str] = set()  # endpoint names other workspaces of the region hold
        self.deleted_endpoints: dict[str, float] = {}  # name -> when its delete finished
        self.name_release_seconds = 1.0  # a deleted endpoint's name is not reusable for this long
        self.deployments: dict[tuple[str, str], dict] = {}
        self.servers: dict[tuple[str, str], DeploymentServer] = {}
        self.operations: dict[str, Operation] = {}
        self.failing_operations: list[tuple[re.Pattern, str, str]] = []  # (path, code, message)
        self.hold_deployments = False
        self.deploy_timeout_seconds = 120.0

    # --- helpers ---------------------------------------------------------------------------------------------------
    def datastore_folder(self, uri: str) -> Path:
        """Local folder of an azureml://[...]datastores/workspaceblobstore/paths/<p> uri."""
        match = DATASTORE_URI.match(uri)
        if not match or match.group("ds") != DATASTORE:
            raise ValueError(f"not a path on datastore {DATASTORE}: {uri}")
        return self.blobs.path(ACCOUNT, CONTAINER, match.group("path").strip("/") or ".")

    @staticmethod
    def long_datastore_uri(path: str) -> str:
        return (f"azureml://subscriptions/{SUB}/resourcegroups/{RG}/workspaces/{WS}/datastores/{DATASTORE}/paths/"
                f"{path}")

    def start_operation(self, req, kind: str, check=None, on_fail=None, delay: float | None = None):
        """Registers a long-running operation for `req`; returns the headers that point the SDK's poller at it."""
        fail = None
        for i, (pattern, _, _) in enumerate(self.failing_operations):
            if pattern.search(req.path):
                fail = self.failing_operations.pop(i)[1:]
                break
        op = Operation(kind, check or (lambda: "Succeeded"), on_fail, fail,
                       self.lro_seconds if delay is None else delay)
        self.operations[op.id] = op
        base = f"https://{req.host or 'management.azure.com'}/subscriptions/{SUB}/providers/{PROVIDER}/locations/{REGION}"
        query = f"?api-version={req.api_version}" if req.api_version else ""
        return {"Azure-AsyncOperation": f"{base}/mfeOperationsStatus/{op.id}{query}",
                "Location": f"{base}/mfeOperationResults/{op.id}{query}"}

    def tick(self) -> None:
        """Moves everything along: job processes, deployment servers, operations."""
        with self.lock:
            jobs = list(self.jobs.items())
        for name, job in jobs:
            self._tick_job(name, job)
        with self.lock:
            waiting = [(key, d) for key, d in self.deployments.items()
                       if d["properties"]["provisioningState"] in ("Creating", "Updating")]
        for key, deployment in waiting:
            self._tick_deployment(key, deployment)
        with self.lock:
            for op in list(self.operations.values()):
                if op.status != "InProgress" or time.monotonic() < op.due:
                    continue
                code, result = op.failure or (None, op.check())
                if result is None:
                    continue
                op.ended = time.time()
                if result == "Succeeded":
                    op.status = "Succeeded"
                else:
                    code = code or ("DeploymentFailed" if op.kind == "deployment" else "InternalServerError")
                    op.status, op.error = "Failed", {"code": code, "message": result}
                    if op.on_fail:
                        op.on_fail(result)

    # --- workspace, computes, datastores ---------------------------------------------------------------------------
    def workspace(self, req):
        return 200, {}, {
            "id": WS_ID, "name": WS, "type": TYPE, "location": REGION, "kind": "Default",
            "identity": {"type": "SystemAssigned", "principalId": str(uuid.uuid5(uuid.NAMESPACE_URL, WS)),
                         "tenantId": TENANT},
            "sku": {"name": "Basic", "tier": "Basic"}, "tags": {},
            "properties": {
                "friendlyName": WS, "description": "Fake workspace for tests",
                "workspaceId": str(uuid.uuid5(uuid.NAMESPACE_DNS, WS)),
                "storageAccount": f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Storage/"
                                  f"storageAccounts/{ACCOUNT}",
                "keyVault": f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/fakekv",
                "applicationInsights": f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/microsoft.insights/"
                                       f"components/fakeai",
                "containerRegistry": None, "hbiWorkspace": False, "provisioningState": "Succeeded",
                "discoveryUrl": f"https://{REGION}.api.azureml.ms/discovery",
                "mlFlowTrackingUri": f"azureml://{REGION}.api.azureml.ms/mlflow/v1.0{WS_ID}",
                "publicNetworkAccess": "Enabled", "v1LegacyMode": False,
            },
            "systemData": system_data(self.created),
        }

    COMPUTES = {
        "aks-prod": {"computeType": "Kubernetes", "isAttachedCompute": True, "provisioningState": "Succeeded",
                     "resourceId": f"/subscriptions/{SUB}/resourcegroups/{RG}/providers/Microsoft.ContainerService/"
                                   f"managedClusters/aks-prod",
                     "properties": {"namespace": "azureml", "defaultInstanceType": "defaultinstancetype",
                                    "extensionInstanceReleaseTrain": "stable",
                                    "instanceTypes": {"defaultinstancetype": {"nodeSelector": None, "resources": {
                                        "requests": {"cpu": "100m", "memory": "2Gi"},
                                        "limits": {"cpu": "2", "memory": "2Gi"}}},
                                        "cpu-large": {"nodeSelector": {"pool": "cpu"}, "resources": {
                                            "requests": {"cpu": "1", "memory": "4Gi"},
                                            "limits": {"cpu": "4", "memory": "8Gi"}}}}}},
        "cpu-cluster": {"computeType": "AmlCompute", "isAttachedCompute": False, "provisioningState": "Succeeded",
                        "properties": {"vmSize": "STANDARD_DS3_V2", "vmPriority": "Dedicated", "osType": "Linux",
                                       "scaleSettings": {"maxNodeCount": 4, "minNodeCount": 0,
                                                         "nodeIdleTimeBeforeScaleDown": "PT2M"},
                                       "remoteLoginPortPublicAccess": "Disabled", "allocationState": "Steady",
                                       "currentNodeCount": 0, "targetNodeCount": 0, "isolatedNetwork": False,
                                       "nodeStateCounts": {"preparingNodeCount": 0, "runningNodeCount": 0,
                                                           "idleNodeCount": 0, "unusableNodeCount": 0,
                                                           "leavingNodeCount": 0, "preemptedNodeCount": 0},
                                       "enableNodePublicIp": True}},
    }

    def compute(self, req, name):
        spec = self.COMPUTES.get(name)
        if spec is None:
            return not_found("Compute", name)
        return 200, {}, {"id": f"{WS_ID}/computes/{name}", "name": name, "type": f"{TYPE}/computes",
                         "location": REGION, "properties": {"description": None, "createdOn": now_iso(self.created),
                                                            "modifiedOn": now_iso(self.created), **spec}}

    def _datastore_body(self) -> dict:
        return {"id": f"{WS_ID}/datastores/{DATASTORE}", "name": DATASTORE, "type": f"{TYPE}/datastores",
                "properties": {"datastoreType": "AzureBlob", "accountName": ACCOUNT, "containerName": CONTAINER,
                               "endpoint": "core.windows.net", "protocol": "https", "isDefault": True,
                               "credentials": {"credentialsType": "AccountKey"},
                               "serviceDataAccessAuthIdentity": "WorkspaceSystemAssignedIdentity",
                               "description": None, "tags": {}, "properties": {}},
                "systemData": system_data(self.created)}

    def datastore(self, req, name):
        if name != DATASTORE:
            return not_found("Datastore", name)
        return 200, {}, self._datastore_body()

    def datastores(self, req):
        return 200, {}, {"value": [self._datastore_body()]}

    def datastore_secrets(self, req, name):
        if name != DATASTORE:
            return not_found("Datastore", name)
        return 200, {}, {"secretsType": "AccountKey", "key": self.account_key}

    # --- code assets -----------------------------------------------------------------------------------------------
    def code_versions(self, req, name):
        """Versions of code `name`; with ?hash=, the service finds a snapshot with that content under any name
        (the SDK asks under a fresh random name and reuses whatever id comes back)."""
        wanted = req.query.get("hash")
        if wanted:
            found = [c for c in self.codes.values() if c["properties"].get("properties", {}).get("hash_sha256") ==
                     wanted and str(c["properties"]["properties"].get("hash_version")) == req.query.get(
                         "hashVersion", str(c["properties"]["properties"].get("hash_version")))]
        else:
            found = [c for (n, _), c in self.codes.items() if n == name]
        return 200, {}, {"value": found}

    def code_get(self, req, name, version):
        code = self.codes.get((name, version))
        return (200, {}, code) if code else not_found("Code", f"{name}:{version}")

    def code_pending_upload(self, req, name, version):
        refused = spec.refused("pending_upload", req.body or {})
        if refused:
            return refused
        container = f"code-{uuid.uuid4().hex[:24]}"
        self.blobs.container_dir(ACCOUNT, container).mkdir(parents=True, exist_ok=True)
        upload_id = str(uuid.uuid4())
        expiry = now_iso(time.time() + 3600)
        blob_uri = f"https://{ACCOUNT}.blob.core.windows.net/{container}"
        return 200, {}, {
            "pendingUploadId": upload_id, "pendingUploadType": "TemporaryBlobReference",
            "blobReferenceForConsumption": {
                "blobUri": blob_uri,
                "storageAccountArmId": f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Storage/"
                                       f"storageAccounts/{ACCOUNT}",
                "credential": {"credentialType": "SAS",
                               "sasUri": f"{blob_uri}?sv=2021-08-06&sr=c&sp=rcwl&se={expiry}&sig=fake-signature"}},
        }

    def code_put(self, req, name, version):
        refused = spec.refused("code", req.body)
        if refused:
            return refused
        props = dict((req.body or {}).get("properties") or {})
        if not props.get("codeUri"):
            return error(400, "UserError", "codeUri is required.")
        existing = self.codes.get((name, version))
        if existing and existing["properties"]["codeUri"] != props["codeUri"]:
            return error(409, "Conflict", f"Code {name}:{version} already exists with a different codeUri.")
        props.setdefault("isAnonymous", False)
        props.update({"isArchived": False, "provisioningState": "Succeeded"})
        body = {"id": f"{WS_ID}/codes/{name}/versions/{version}", "name": version, "type": f"{TYPE}/codes/versions",
                "properties": props, "systemData": system_data(time.time())}
        self.codes[(name, version)] = body
        return (200 if existing else 201), {}, body

    def code_folder(self, code_id: str) -> Path:
        match = re.search(r"/codes/([^/]+)/versions/([^/]+)$", code_id or "")
        code = self.codes.get((match.group(1), match.group(2))) if match else None
        if code is None:
            raise LookupError(f"Code asset {code_id} was not found.")
        uri = urlparse(code["properties"]["codeUri"])
        account = uri.hostname.split(".")[0]
        container, _, prefix = uri.path.lstrip("/").partition("/")
        return self.blobs.path(account, container, prefix or ".")

    # --- jobs ------------------------------------------------------------------------------------------------------
    def _local_path(self, uri: str) -> Path:
        folder = self.datastore_folder(uri)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def job_put(self, req, name):
        refused = spec.refused("job", req.body)
        if refused:
            return refused
        props = dict((req.body or {}).get("properties") or {})
        existing = self.jobs.get(name)
        if existing:
            if existing["properties"].get("command") != props.get("command"):
                return error(409, "Conflict", f"A job named '{name}' already exists with a different definition.")
            for field in ("tags", "description", "displayName"):
                if field in props:
                    existing["properties"][field] = props[field]
            return 200, {}, existing
        if props.get("jobType") != "Command":
            return error(400, "UserError", f"This fake runs Command jobs only, not {props.get('jobType')}.")
        compute = (props.get("computeId") or "").rstrip("/").rsplit("/", 1)[-1]
        if compute not in self.COMPUTES:
            return error(400, "UserError", f"Compute '{compute}' was not found in workspace '{WS}'.")
        try:
            code = self.code_folder(props["codeId"]) if props.get("codeId") else None
            values = {}
            for key, given in (props.get("inputs") or {}).items():
                kind = given.get("jobInputType")
                values[("inputs", key)] = given.get("value") if kind == "literal" else str(self._local_path(given["uri"]))
            outputs = {}
            for key, given in (props.get("outputs") or {}).items():
                given = dict(given or {})
                given.setdefault("jobOutputType", "uri_folder")
                given.setdefault("mode", "ReadWriteMount")
                given.setdefault("uri", f"azureml://datastores/{DATASTORE}/paths/azureml/{name}/{key}/")
                values[("outputs", key)] = str(self._local_path(given["uri"]))
                outputs[key] = given
        except (LookupError, ValueError) as exc:
            return error(400, "UserError", str(exc))
        missing = []

        def substitute(match):
            key = (match.group(1), match.group(2))
            if key not in values:
                missing.append(f"{key[0]}.{key[1]}")
                return match.group(0)
            return str(values[key])

        command = re.sub(r"\$\{\{\s*(inputs|outputs)\.(\w+)\s*\}\}", substitute, props.get("command") or "")
        if missing:
            return error(400, "UserError", f"The command references undefined {', '.join(missing)}.")
        props.update({
            "status": "Queued", "outputs": outputs,
            "services": {
                "Studio": {"jobServiceType": "Studio", "status": None, "errorMessage": None, "port": None,
                           "endpoint": f"https://ml.azure.com/runs/{name}?wsid={WS_ID}"},
                "Tracking": {"jobServiceType": "Tracking", "status": None, "errorMessage": None, "port": None,
                             "endpoint": f"azureml://{REGION}.api.azureml.ms/mlflow/v1.0{WS_ID}?"},
            },
            "properties": {**(props.get("properties") or {}), "_azureml.ComputeTargetType": "amlctrain",
                           "ContentSnapshotId": str(uuid.uuid4())},
        })
        props.setdefault("experimentName", "Default")
        props.setdefault("displayName", name)
        body = {"id": f"{WS_ID}/jobs/{name}", "name": name, "type": f"{TYPE}/jobs", "properties": props,
                "systemData": system_data(time.time())}
        env = {**(props.get("environmentVariables") or {}), "AZUREML_RUN_ID": name,
               "AZUREML_EXPERIMENT_NAME": props["experimentName"]}
        self.jobs[name] = body
        self.runs[name] = JobRun(self.root / "jobs" / name, code, command, env)
        self.runs[name].start_at = time.monotonic() + self.job_queue_seconds
        environment = props.get("environmentId") or ""
        if not any(environment.startswith(f"azureml:{known}") for known in CURATED_ENVIRONMENTS):
            # Accepted (the SDK passes curated labels through unresolved), then failed while preparing: the reason
            # is only in run history, and the script never ran, so there are no logs.
            self.runs[name].never_starts = True
        return 201, {}, body

    def job_get(self, req, name):
        job = self.jobs.get(name)
        return (200, {}, job) if job else not_found("Job", name)

    def job_list(self, req):
        return 200, {}, {"value": list(self.jobs.values())}

    def job_cancel(self, req, name):
        job = self.jobs.get(name)
        if job is None:
            return not_found("Job", name)
        run = self.runs[name]
        status = job["properties"]["status"]
        if status == "Queued":
            job["properties"]["status"] = "Canceled"
        elif status not in TERMINAL_JOB:
            job["properties"]["status"] = "CancelRequested"
            run.cancel_requested = True
            threading.Thread(target=run.kill, daemon=True).start()
        headers = self.start_operation(req, "cancel", lambda: "Succeeded" if job["properties"]["status"] in
                                       TERMINAL_JOB else None, delay=0)
        return 202, headers, None

    def _tick_job(self, name: str, job: dict) -> None:
        props, run = job["properties"], self.runs[name]
        if props["status"] == "Queued" and time.monotonic() >= run.start_at and getattr(run, "never_starts", False):
            with self.lock:
                props["status"] = "Failed"
                props["properties"]["EndTimeUtc"] = now_iso()
                self.run_errors[name] = {"code": "UserError", "message": (
                    f"Environment {props.get('environmentId')} could not be resolved or built: the image was not "
                    "found. Check the environment's name and version, or its build log in the studio.")}
            return
        if props["status"] == "Queued" and time.monotonic() >= run.start_at:
            run.start()
            with self.lock:
                if props["status"] == "Queued":
                    props["status"] = "Running"
                    props["properties"]["StartTimeUtc"] = now_iso(run.started_at)
                else:  # canceled while starting
                    threading.Thread(target=run.kill, daemon=True).start()
        elif props["status"] in ("Running", "CancelRequested"):
            code = run.returncode()
            if code is None:
                return
            with self.lock:
                props["properties"]["EndTimeUtc"] = now_iso(run.ended_at)
                if run.cancel_requested:
                    props["status"] = "Canceled"
                elif code == 0:
                    props["status"] = "Completed"
                else:
                    props["status"] = "Failed"
                    self.run_errors[name] = {"code": "UserError", "message": (
                        f"Execution failed. User process 'bash' exited with status code {code}. Please check log "
                        f"file 'user_logs/std_log.txt' for error details. Error: {tail(run.log_path, 5)}")}

    # --- models ----------------------------------------------------------------------------------------------------
    def model_put(self, req, name, version):
        refused = spec.refused("model", req.body)
        if refused:
            return refused
        props = dict((req.body or {}).get("properties") or {})
        source = props.get("modelUri") or ""
        resolved, job_name = source, None
        match = JOB_OUTPUT_URI.match(source)
        if match:
            job_name = match.group("job")
            job = self.jobs.get(job_name)
            if job is None:
                return error(400, "UserError", f"Job '{job_name}' was not found in workspace '{WS}'.")
            output = (job["properties"].get("outputs") or {}).get(match.group("output"))
            if output is None:
                return error(400, "UserError", f"Job '{job_name}' has no output '{match.group('output')}'.")
            path = DATASTORE_URI.match(output["uri"]).group("path").strip("/")
            resolved = self.long_datastore_uri(path + ("/" + match.group("sub").strip("/") if match.group("sub")
                                                       else "") + "/")
        elif not DATASTORE_URI.match(source) and not source.startswith("https://"):
            return error(400, "UserError", f"Unsupported model path '{source}'.")
        existing = self.models.get((name, version))
        if existing and existing["_source"] != source:
            return error(409, "Conflict", f"Model {name}:{version} already exists with a different path; model "
                                          f"versions are immutable.")
        created = existing["_created"] if existing else time.time()
        props.update({"modelUri": resolved, "modelType": props.get("modelType") or "custom_model",
                      "flavors": props.get("flavors") or {}, "isAnonymous": False, "isArchived": False,
                      "stage": props.get("stage") or "Development", "jobName": job_name,
                      "provisioningState": "Succeeded"})
        props.setdefault("tags", {})
        props.setdefault("properties", {})
        self.models[(name, version)] = {
            "id": f"{WS_ID}/models/{name}/versions/{version}", "name": version, "type": f"{TYPE}/models/versions",
            "properties": props, "systemData": system_data(created, time.time()), "_source": source,
            "_created": created}
        return (200 if existing else 201), {}, self._public(self.models[(name, version)])

    @staticmethod
    def _public(resource: dict) -> dict:
        return {k: v for k, v in resource.items() if not k.startswith("_")}

    def _versions(self, name: str) -> list[dict]:
        found = [m for (n, _), m in self.models.items() if n == name]
        return sorted(found, key=lambda m: m["_created"], reverse=True)

    def model_get(self, req, name, version):
        model = self.models.get((name, version))
        return (200, {}, self._public(model)) if model else not_found("Model", f"{name}:{version}")

    def model_versions(self, req, name):
        found = self._versions(name)
        if req.query.get("version"):
            found = [m for m in found if m["name"] == req.query["version"]]
        if req.query.get("$orderBy", "").lower().endswith("asc"):
            found.reverse()
        if req.query.get("$top"):
            found = found[:int(req.query["$top"])]
        return 200, {}, {"value": [self._public(m) for m in found]}

    def _container(self, name: str) -> dict:
        versions = self._versions(name)
        numeric = [int(m["name"]) for m in versions if m["name"].isdigit()]
        latest = versions[0]
        return {"id": f"{WS_ID}/models/{name}", "name": name, "type": f"{TYPE}/models",
                "properties": {"description": latest["properties"].get("description"), "tags": {}, "properties": {},
                               "isArchived": False, "latestVersion": latest["name"],
                               "nextVersion": str(max(numeric, default=0) + 1), "provisioningState": "Succeeded"},
                "systemData": system_data(versions[-1]["_created"], latest["_created"])}

    def model_container(self, req, name):
        return (200, {}, self._container(name)) if self._versions(name) else not_found("Model", name)

    def model_containers(self, req):
        names = sorted({n for n, _ in self.models})
        return 200, {}, {"value": [self._container(n) for n in names]}

    def model_folder(self, model_id: str) -> Path:
        match = re.search(r"models/([^/:]+)(?:/versions/|:)([^/]+)$", model_id or "")
        model = self.models.get((match.group(1), match.group(2))) if match else None
        if model is None:
            raise LookupError(f"Model {model_id} was not found in workspace '{WS}'.")
        return self.datastore_folder(model["properties"]["modelUri"])

    def stop_all(self) -> None:
        with self.lock:
            runs, servers = list(self.runs.values()), list(self.servers.values())
        threads = [threading.Thread(target=w.kill if isinstance(w, JobRun) else w.stop) for w in runs + servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
