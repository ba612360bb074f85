"""The Azure ML backend: the same interface as the local one, on a workspace, through the azure-ai-ml v2 SDK.

Where things live in the workspace:
    training   a command job on the training cluster; its code snapshot holds the example's sources and data file;
               named outputs `model` and `logs` go to fixed datastore paths, so the portal can fetch them itself
    registry   models registered from the job's `model` output (no upload from the portal); versions are
               `azureml:<name>:<version>`, and their files are fetched into a local cache to list and show them
    serving    a Kubernetes online endpoint on the attached AKS compute for production; staging on a managed
               endpoint or on Kubernetes, by the workspace setting; deployments reuse the training job's code
               asset for score.py, so deploying uploads nothing

Every call is time-limited (connect 10 s, read 60 s) and long operations are started, never waited on: the
portal polls them from rescheduled tasks. SDK errors are translated at this boundary into BackendError: transient
(throttling, 5xx, conflicts with a running operation, network) with the service's Retry-After when it sent one,
permanent (validation, quota, not found, access) with the service's own message.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils.module_loading import import_string

from mlopsportal.examples import Example
from mlopsportal.lib import files

from .base import (
    BUSY,
    FAILED,
    READY,
    BackendError,
    ComputeTarget,
    ConnectionCheck,
    DeployedRef,
    DeploymentState,
    EndpointAccess,
    InstanceType,
    Inventory,
    InventoryDeployment,
    InventoryEndpoint,
    InventoryModel,
    InventoryVersion,
    MLBackend,
    RegisteredArtifact,
    ServingLimits,
    ServingProblem,
    ServingSpec,
    TrainingStatus,
    TrainingSubmission,
    open_artifact_file,
)

log = logging.getLogger(__name__)

URI_PREFIX = "azureml:"
OUTPUT_ROOT = "azureml://datastores/workspaceblobstore/paths/mlops-portal/jobs"
RUNNING_JOB_STATES = {"NotStarted", "Queued", "Preparing", "Provisioning", "Starting", "Running", "Finalizing",
                      "CancelRequested", "NotResponding", "Paused", "Unknown"}
BUSY_PROVISIONING = {"Creating", "Updating", "Scaling", "Provisioning", "Deleting"}
# Transport limits for every ARM call; uploads and downloads are bounded by the Celery task's time limit.
TRANSPORT = {"connection_timeout": 10, "read_timeout": 60}
# A Retry-After up to this long is waited out in the call; a longer one goes back to the caller, whose task is
# rescheduled for then (a worker does not sleep through Azure's throttling).
MAX_INLINE_RETRY_AFTER = 10
MAX_MESSAGE_CHARS = 2000  # of the service's words kept in a BackendError
# Azure's limits and defaults (learn.microsoft.com: "how-to-manage-kubernetes-instance-types", the online deployment
# YAML references): the instance type a cluster is given when attached, and the request timeout maximums.
DEFAULT_INSTANCE_TYPE = "defaultinstancetype"
DEFAULT_INSTANCE_TYPE_LIMITS = {"cpu": 2.0, "memory_bytes": 2 * 1024 ** 3}
MAX_REQUEST_TIMEOUT_MS = {"managed": 180_000, "kubernetes": 300_000}
# Instances of one managed online deployment (Azure ML's default quota; a support request raises it).
MAX_MANAGED_INSTANCES = 50
MEMORY_UNITS = {"": 1, "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "Ki": 1024, "Mi": 1024 ** 2,
                "Gi": 1024 ** 3, "Ti": 1024 ** 4}
SIGN_IN_HINT = ("Sign in on the machine that runs the portal with `az login`, or set AZURE_TENANT_ID, "
                "AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or run it with a managed identity.")


@dataclass(frozen=True)
class AzureMLConfig:
    """Where the workspace is and how to use it: what the backend's configuration provider returns (the portal
    builds it from its workspace settings; see settings.MLOPS_BACKEND_CONFIG)."""
    subscription_id: str
    resource_group: str
    workspace_name: str
    aks_compute: str
    training_cluster: str
    staging_on: str  # "managed" or "kubernetes": where staging endpoints are created
    managed_instance_type: str
    training_environment: str
    inference_environment: str
    default_instance_type: str = ""  # the workspace setting: for Kubernetes deployments whose profile names none
    # What "Test connection" read from the AKS compute: {name: {"cpu": cores, "memory_bytes": n}} of each instance
    # type's limits, and the cluster's own default.
    instance_types: dict = field(default_factory=dict)
    cluster_default_instance_type: str = ""

    def instance_type_for(self, settings: dict) -> str:
        """The instance type a Kubernetes deployment with these settings runs on."""
        return (settings.get("instance_type") or self.default_instance_type or self.cluster_default_instance_type
                or DEFAULT_INSTANCE_TYPE)

    @property
    def missing(self) -> list[str]:
        labels = {"subscription_id": "subscription ID", "resource_group": "resource group",
                  "workspace_name": "workspace name", "aks_compute": "AKS compute name",
                  "training_cluster": "training cluster"}
        return [label for field, label in labels.items() if not getattr(self, field)]


def retry_policy():
    """azure-core's retries (429, 408, 5xx, connection errors; 3 tries, exponential backoff up to 20 s), except that
    a Retry-After longer than MAX_INLINE_RETRY_AFTER is not slept in-process."""
    from azure.core.pipeline.policies import RetryPolicy

    class BoundedRetryPolicy(RetryPolicy):
        def is_retry(self, settings, response):
            retry_after = self.get_retry_after(response)
            if retry_after and retry_after > MAX_INLINE_RETRY_AFTER:
                return False
            return super().is_retry(settings, response)

    return BoundedRetryPolicy(retry_total=3, retry_backoff_factor=0.8, retry_backoff_max=20, timeout=120)


def translate(exc: BaseException, doing: str) -> BackendError:
    """An SDK or transport exception as a BackendError that says what failed, in the service's words."""
    from azure.ai.ml.exceptions import MlException
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, BackendError):
        return exc
    name = type(exc).__name__
    if isinstance(exc, ClientAuthenticationError) or name == "CredentialUnavailableError":
        return BackendError(f"{doing}: Azure refused the credentials ({_service_message(exc)}). {SIGN_IN_HINT}")
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        message = f"{doing}: {_service_message(exc)} (HTTP {status})"
        if status == 429 or status == 408 or status >= 500:
            return BackendError(message, permanent=False, retry_after=_retry_after(exc))
        if status == 409:
            if "already exists" in message.lower():
                return BackendError(message)
            # Another operation is still running on the resource: try again once it has ended.
            return BackendError(message, permanent=False, retry_after=_retry_after(exc) or 10)
        if status == 403:
            if _from_storage(exc):
                return BackendError(f"{message}. The workspace's storage account refused the portal's identity: with "
                                    "an identity-based datastore it needs Storage Blob Data Contributor on that "
                                    "account (see the README).")
            return BackendError(f"{message}. The portal's identity needs a role on the workspace (see the README).")
        return BackendError(message)
    if isinstance(exc, (ServiceRequestError, ServiceResponseError, TimeoutError, ConnectionError)):
        return BackendError(f"{doing}: could not reach Azure ML ({exc})", permanent=False)
    if isinstance(exc, MlException):
        return BackendError(f"{doing}: {exc.message}")
    return BackendError(f"{doing}: {name}: {exc}")


def _service_message(exc) -> str:
    """The service's message and, after it, the messages of its `details[]`: Azure ML often says only "The request
    is invalid." at the top and the reason in a detail."""
    error = getattr(exc, "error", None)
    if error is not None and getattr(error, "message", None):
        words = [error.message.strip()]
        _detail_messages(error, words)
        return " — ".join(words)[:MAX_MESSAGE_CHARS]
    message = str(getattr(exc, "message", "") or exc)
    return message.split("\n", 1)[0].removeprefix("(None) ").strip() or type(exc).__name__


def _detail_messages(error, words: list[str], depth: int = 0) -> None:
    """Each detail's message (its code when it has none), depth first, once each."""
    for detail in (getattr(error, "details", None) or [])[:10]:
        message = (getattr(detail, "message", None) or getattr(detail, "code", None) or "").strip()
        if message and message not in words:
            words.append(message)
        if depth < 3:
            _detail_messages(detail, words, depth + 1)


def _from_storage(exc) -> bool:
    """Whether the refusal came from the storage account (blob host), not from Azure ML's ARM API."""
    response = getattr(exc, "response", None)
    request = getattr(response, "request", None)
    return ".blob." in str(getattr(request, "url", "") or "")


def _retry_after(exc) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value else None
    except ValueError:
        return None


def cpu_cores(quantity) -> float | None:
    """A Kubernetes CPU quantity ("100m", "2", 0.5) in cores; None when it is not one."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?|\.\d+)(m?)\s*", str(quantity))
    return float(match.group(1)) / (1000 if match.group(2) else 1) if match else None


def memory_bytes(quantity) -> int | None:
    """A Kubernetes memory quantity ("2Gi", "1G", "512Mi", 1073741824) in bytes; None when it is not one."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?|\.\d+)(k|M|G|T|Ki|Mi|Gi|Ti)?\s*", str(quantity))
    return int(float(match.group(1)) * MEMORY_UNITS[match.group(2) or ""]) if match else None


def instance_type_limits(compute_properties: dict) -> tuple[dict, str]:
    """{name: {"cpu": cores, "memory_bytes": n}} of a Kubernetes compute's instance types, and its default."""
    props = compute_properties or {}  # the SDK gives them snake_cased (as_dict()); REST camelCased
    types = {}
    for name, spec in (props.get("instance_types") or props.get("instanceTypes") or {}).items():
        limits = ((spec or {}).get("resources") or {}).get("limits") or {}
        types[name] = {"cpu": cpu_cores(limits.get("cpu", "")), "memory_bytes": memory_bytes(limits.get("memory", ""))}
    return types, props.get("default_instance_type") or props.get("defaultInstanceType") or ""


def _detached(poller) -> str:
    """The Azure-AsyncOperation URL an SDK poller follows ("" when it has none), and the poller stopped.

    Every begin_* of the SDK starts a thread that polls the operation until it ends (printing a dot to stdout at
    each poll); the portal polls from its own rescheduled tasks instead, so in a worker those threads would only
    add ARM calls and noise for each operation's lifetime. The poller is told it is finished: its thread ends at
    its next wake-up without another call."""
    if poller is None:
        return ""
    url = ""
    try:
        method = poller.polling_method()
        url = method._operation.get_polling_url() or ""  # azure-core's LRO operation (no public accessor)
        # A finished state, now and at the thread's next step (which would poll; a poll already in flight may
        # overwrite the first): its loop ends there.
        method._status = "Canceled"
        method.update_status = lambda: setattr(method, "_status", "Canceled")
    except Exception:  # noqa: BLE001 - a poller shaped otherwise keeps polling; the reason comes from logs then
        log.debug("could not detach poller %r", poller, exc_info=True)
    return url


def _params_tag(params: dict) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def _model_uri(model) -> str:
    """`azureml:<name>:<version>` from the ARM id or short form a deployment reports."""
    text = str(getattr(model, "id", None) or model or "")
    if "/models/" in text and "/versions/" in text:
        name = text.split("/models/")[1].split("/")[0]
        return f"{URI_PREFIX}{name}:{text.rsplit('/versions/', 1)[1]}"
    return text if text.startswith(URI_PREFIX) else ""


def _model_parts(uri: str) -> tuple[str, int | None]:
    """The model name and version number of an `azureml:<name>:<version>` URI (("", None) when it is not one)."""
    if not uri.startswith(URI_PREFIX) or uri.count(":") != 2:
        return "", None
    _, name, version = uri.split(":")
    return name, int(version) if version.isdigit() else None


def _neutral_state(provisioning_state) -> str:
    """Azure's provisioning state of an endpoint or deployment in the portal's words."""
    if provisioning_state == "Succeeded":
        return READY
    return BUSY if provisioning_state in BUSY_PROVISIONING else FAILED


def _kind_of(endpoint) -> str:
    return "managed" if type(endpoint).__name__.startswith("Managed") else "kubernetes"


def _not_found(exc: BaseException) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    return isinstance(exc, ResourceNotFoundError) or getattr(exc, "status_code", None) == 404


def _limits_in_words(limits: dict) -> str:
    cpu, memory = limits.get("cpu"), limits.get("memory_bytes")
    return ", ".join([f"{cpu:g} CPU" if cpu else "no CPU limit",
                      f"{memory / 1024 ** 3:g} GiB" if memory else "no memory limit"])


@contextmanager
def calling(doing: str):
    try:
        yield
    except SoftTimeLimitExceeded:
        raise  # the task's own time limit: not Azure's failure
    except Exception as exc:  # noqa: BLE001 - everything from the SDK leaves here as a BackendError
        raise translate(exc, doing) from exc


def _found(doing: str, fetch, *args):
    """What `fetch(*args)` returns, or None when Azure answers 404; any other failure as calling() translates it."""
    try:
        with calling(doing):
            return fetch(*args)
    except BackendError as exc:
        if exc.__cause__ is not None and _not_found(exc.__cause__):
            return None
        raise


def _reported_settings(deployment) -> dict:
    """An online deployment's settings as Azure reports them, under the serving settings' keys."""
    reported = {}
    if deployment.instance_count is not None:
        reported["instance_count"] = deployment.instance_count
    request = deployment.request_settings
    if request is not None:
        for key in ("request_timeout_ms", "max_concurrent_requests_per_instance", "max_queue_wait_ms"):
            value = getattr(request, key, None)
            # The SDK reads durations back in whole seconds (PT0.5S reads as 0): a 0 is not what Azure holds.
            if value is not None and not (key.endswith("_ms") and value == 0):
                reported[key] = value
    if str(deployment.type).lower() == "kubernetes":
        if deployment.instance_type:
            reported["instance_type"] = deployment.instance_type
        requests = getattr(getattr(deployment, "resources", None), "requests", None)
        cpu = cpu_cores(str(requests.cpu)) if requests is not None and requests.cpu else None
        memory = memory_bytes(str(requests.memory)) if requests is not None and requests.memory else None
        if cpu is not None:
            reported["cpu_request"] = cpu
        if memory is not None:
            reported["memory_request_gb"] = round(memory / 10 ** 9, 3)
        scale = deployment.scale_settings
        if scale is not None:
            reported["autoscale_enabled"] = str(scale.type).lower().replace("_", "") == "targetutilization"
            if reported["autoscale_enabled"]:
                reported.update(min_instances=scale.min_instances, max_instances=scale.max_instances,
                                target_utilization=scale.target_utilization_percentage)
    return reported


class AzureMLBackend(MLBackend):
    name = "azureml"
    heals_itself = True

    def __init__(self, root: Path | None = None, *, config_provider: Callable[[], AzureMLConfig] | None = None):
        self.root = Path(root or settings.MLOPS_ARTIFACT_ROOT) / "azureml"
        self._config_provider = config_provider
        self._lock = threading.Lock()
        self._clients: dict = {}
        self._credentials: dict = {}

    # --- connection -------------------------------------------------------------------------------------------
    def _provided_config(self) -> AzureMLConfig:
        """The workspace settings as they are now (they can change at any time: read them for each operation)."""
        if self._config_provider is None:
            raise BackendError("The azureml backend has no configuration provider: settings.MLOPS_BACKEND_CONFIG "
                               "must name one for 'azureml'.")
        return self._config_provider()

    def config(self) -> AzureMLConfig:
        config = self._provided_config()
        if config.missing:
            raise BackendError("The Azure ML workspace is not set up: an admin sets the "
                               + ", ".join(config.missing) + " on the Workspace page.")
        return config

    def credential(self):
        """The TokenCredential named by settings.MLOPS_AZURE_CREDENTIAL (one per process: it caches tokens)."""
        path = settings.MLOPS_AZURE_CREDENTIAL
        with self._lock:
            if path not in self._credentials:
                self._credentials[path] = import_string(path)()
            return self._credentials[path]

    def forget_clients(self) -> None:
        """Drop cached clients and credentials (after the settings or the network changed)."""
        with self._lock:
            self._clients.clear()
            self._credentials.clear()

    def client(self, config=None, *, show_progress: bool = False, quick: bool = False):
        """An MLClient for the workspace (built without network calls; one per settings and process). `quick` is
        for a web request: shorter timeouts and no retries, so a page answers within seconds."""
        from azure.ai.ml import MLClient
        from azure.core.pipeline.policies import RetryPolicy

        config = config or self.config()
        key = (settings.MLOPS_AZURE_CREDENTIAL, config.subscription_id, config.resource_group, config.workspace_name,
               show_progress, quick)
        with self._lock:
            client = self._clients.get(key)
        if client is None:
            transport = {"connection_timeout": 5, "read_timeout": 15} if quick else TRANSPORT
            client = MLClient(self.credential(), config.subscription_id, config.resource_group,
                              config.workspace_name, show_progress=show_progress, enable_telemetry=False,
                              retry_policy=RetryPolicy.no_retries() if quick else retry_policy(), **transport)
            with self._lock:
                self._clients[key] = client
        return client

    def connection_check(self) -> list[ConnectionCheck]:
        """Settings, credentials, the workspace and its two computes, in that order."""
        results = []

        def record(check: str, ok: bool, message: str, facts: dict | None = None) -> bool:
            results.append(ConnectionCheck(check, ok, message, facts or {}))
            return ok

        try:
            config = self._provided_config()
        except BackendError as exc:
            record("Settings", False, str(exc))
            return results
        if config.missing:
            record("Settings", False, "Missing: " + ", ".join(config.missing) + ".")
            return results
        record("Settings", True, f"Workspace {config.workspace_name} in resource group {config.resource_group}.")
        try:
            self.credential().get_token("https://management.azure.com/.default")
        except Exception as exc:  # noqa: BLE001
            detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            detail = re.sub(r"[^.:]*https?://\S+[^.]*\.?", "", detail)[:1500]  # each credential's reason, no links
            record("Credentials", False, f"No usable Azure credential. {SIGN_IN_HINT} What was tried: {detail}")
            return results
        record("Credentials", True, f"Signed in through {settings.MLOPS_AZURE_CREDENTIAL.rsplit('.', 1)[-1]}.")
        ml = self.client(config, quick=True)
        try:
            workspace = _found("Reading the workspace", ml.workspaces.get, config.workspace_name)
        except BackendError as exc:
            record("Workspace", False, str(exc))
            return results
        if workspace is None:
            record("Workspace", False, f"No workspace {config.workspace_name} in resource group "
                                       f"{config.resource_group} of subscription {config.subscription_id} (or the "
                                       "identity cannot see it).")
            return results
        record("Workspace", True, f"{workspace.name} in {workspace.location}.")
        for check, name, kinds, hint in (
                ("AKS compute", config.aks_compute, {"kubernetes", "aks"},
                 "Attach the AKS cluster to the workspace as a Kubernetes compute (README, Azure ML: Attach AKS)."),
                ("Training cluster", config.training_cluster, {"amlcompute"},
                 "Create a compute cluster in the workspace, or fix the name.")):
            try:
                compute = _found(f"Reading compute {name}", ml.compute.get, name)
            except BackendError as exc:
                record(check, False, str(exc))
                return results
            if compute is None:
                record(check, False, f"The workspace has no compute named {name}. {hint}")
                return results
            kind = str(getattr(compute, "type", "")).lower()
            if kind not in kinds:
                record(check, False, f"{name} is a {compute.type} compute, not {' or '.join(sorted(kinds))}. {hint}")
                return results
            state = getattr(compute, "provisioning_state", None)
            state = str(getattr(state, "value", state) or "ready")
            if state.lower() in ("failed", "canceled", "deleting"):
                record(check, False, f"{name} is {state} in Azure ML: jobs and deployments on it would fail. {hint}")
                return results
            facts, extra = {}, ""
            if check == "AKS compute":
                types, default = instance_type_limits(getattr(compute, "properties", None) or {})
                facts = {"instance_types": types, "default_instance_type": default}
                missing = [t for t in (config.default_instance_type,) if t and t not in types]
                if missing:
                    record(check, False, f"{name} has no instance type {missing[0]} (the workspace's default "
                                         f"instance type); it has {', '.join(sorted(types)) or 'none'}.", facts)
                    return results
                extra = " Instance types: " + ", ".join(
                    f"{t} ({_limits_in_words(types[t])})" for t in sorted(types)) + "." if types else ""
            record(check, True, f"{name} ({compute.type}, {state.lower()}).{extra}", facts)
        return results

    # --- training ---------------------------------------------------------------------------------------------
    def compute_targets(self) -> list[ComputeTarget]:
        cluster = self._provided_config().training_cluster
        return [ComputeTarget(cluster, "Azure ML compute cluster")] if cluster else []

    @staticmethod
    def _output_path(job_name: str, output: str) -> str:
        return f"{OUTPUT_ROOT}/{job_name}/{output}/"

    def training_submit(self, *, job_name, example: Example, params, compute_target, experiment_name,
                        timeout_seconds) -> TrainingSubmission:
        from azure.ai.ml import Output, command

        config = self.config()
        code_version = example.code_version()
        dataset_sha256 = files.file_sha256(example.data_path)
        ml = self.client(config, show_progress=True)  # with progress on, a refused upload raises instead of hanging
        existing = _found(f"Looking up job {job_name}", ml.jobs.get, job_name)
        if existing is not None:  # a retried submit finds its job; one of another portal (or a reset database) not
            tags = existing.tags or {}
            if tags.get("mlops-portal") == "training" and tags.get("code_version") == code_version and \
                    tags.get("dataset_sha256") == dataset_sha256 and tags.get("params") == _params_tag(params):
                return TrainingSubmission(job_name, code_version, dataset_sha256)
            raise BackendError(f"The workspace already has a job named {job_name} that this run did not submit "
                               "(another portal on the same workspace, or a reset database). Launch the run again "
                               "under another experiment name.")
        data_name = example.data_path.name
        arguments = " ".join(f"--{name} ${{{{inputs.{name}}}}}" for name in params)
        script = (f"python {example.script} --data data/{data_name} --output-dir ${{{{outputs.model}}}} {arguments}"
                  .strip())
        with tempfile.TemporaryDirectory(prefix="mlops-code-") as tmp:
            code = Path(tmp) / example.name
            (code / "data").mkdir(parents=True)
            for path in example.code_files():
                shutil.copy2(path, code / path.name)
            shutil.copy2(example.data_path, code / "data" / data_name)
            job = command(
                name=job_name, display_name=f"{example.name} · {job_name}", experiment_name=experiment_name,
                code=str(code), environment=config.training_environment, compute=compute_target,
                command=f"{script} 2>&1 | tee ${{{{outputs.logs}}}}/std_log.txt; exit ${{PIPESTATUS[0]}}",
                inputs=dict(params), timeout=timeout_seconds,
                outputs={name: Output(type="uri_folder", path=self._output_path(job_name, name))
                         for name in ("model", "logs")},
                tags={"mlops-portal": "training", "code_version": code_version, "dataset_sha256": dataset_sha256,
                      "params": _params_tag(params)},
            )
            with calling(f"Submitting training job {job_name}"):
                ml.jobs.create_or_update(job)
        return TrainingSubmission(job_name, code_version, dataset_sha256)

    @staticmethod
    def _fetch_folder(destination: Path, doing: str, fetch, unwrap=lambda folder: folder) -> None:
        """Let `fetch(path)` fill a `.partial` sibling of `destination`, then move what `unwrap` picks from it into
        place, so a fetch cut short never leaves a folder that looks complete."""
        partial = destination.with_name(destination.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        with calling(doing):
            fetch(str(partial))
        shutil.rmtree(destination, ignore_errors=True)
        destination.parent.mkdir(parents=True, exist_ok=True)
        unwrap(partial).rename(destination)
        shutil.rmtree(partial, ignore_errors=True)

    def _download(self, uri: str, destination: Path) -> None:
        from azure.ai.ml._artifacts._artifact_utilities import download_artifact_from_aml_uri

        datastores = self.client().datastores
        self._fetch_folder(destination, f"Downloading {uri}", lambda path: download_artifact_from_aml_uri(
            uri=uri, destination=path, datastore_operation=datastores))

    def _job_dir(self, job_id: str) -> Path:
        if not job_id or "/" in job_id or job_id.startswith("."):
            raise BackendError(f"Invalid job id {job_id!r}.")
        return self.root / "jobs" / job_id

    def training_status(self, job_id: str) -> TrainingStatus:
        ml = self.client()
        with calling(f"Reading job {job_id}"):
            job = ml.jobs.get(job_id)
        status = str(getattr(job.status, "value", job.status) or "Unknown")  # an SDK enum, or a plain string
        studio = f"Azure ML job {job_id}: {status}." + (f" Studio: {job.studio_url}" if job.studio_url else "")
        if status in RUNNING_JOB_STATES:
            return TrainingStatus("running", log=studio)
        folder = self._job_dir(job_id)
        log_text = studio
        try:
            self._download(self._output_path(job_id, "logs"), folder / "logs")
            log_text = (folder / "logs" / "std_log.txt").read_text(errors="replace")
        except (BackendError, OSError) as exc:
            log.info("no logs for %s: %s", job_id, exc)
        if status != "Completed":
            error = self._job_error(ml, job_id)
            return TrainingStatus("failed", log=log_text,
                                  error=f"The Azure ML job ended {status}. {error}".strip() + "\n" + studio)
        self._download(self._output_path(job_id, "model"), folder / "model")
        try:
            metrics = json.loads((folder / "model" / "metrics.json").read_text())
        except (OSError, ValueError) as exc:
            return TrainingStatus("failed", log=log_text, error=f"Could not read the job's metrics.json: {exc}")
        return TrainingStatus("succeeded", log=log_text, metrics=metrics)

    @staticmethod
    def _job_error(ml, job_id: str) -> str:
        """Why a job failed, in Azure's words: the ARM job has no error field; run history has (it is what the SDK's
        jobs.stream prints). Empty when run history cannot be read."""
        try:
            with calling(f"Reading the run history of job {job_id}"):
                details = ml.jobs._runs_operations.get_run_details(job_id)  # the SDK's own client; no public call
        except (BackendError, AttributeError) as exc:
            log.info("no run history for %s: %s", job_id, exc)
            return ""
        root = getattr(getattr(details, "error", None), "error", None)
        if root is None:
            return ""
        words = [f"{root.code}: {root.message}" if getattr(root, "code", None) else (root.message or "")]
        _detail_messages(root, words)
        return " — ".join(w for w in words if w)[:MAX_MESSAGE_CHARS]

    def training_cancel(self, job_id: str) -> None:
        ml = self.client()
        with calling(f"Canceling job {job_id}"):
            _detached(ml.jobs.begin_cancel(job_id))

    # --- registry and artifacts -------------------------------------------------------------------------------
    def model_register(self, *, job_id: str, model_name: str, version: int) -> RegisteredArtifact:
        from azure.ai.ml.entities import Model

        ml = self.client()
        with calling(f"Registering {model_name} v{version}"):
            ml.models.create_or_update(Model(
                name=model_name, version=str(version), type="custom_model",
                path=f"azureml://jobs/{job_id}/outputs/model", tags={"mlops-portal": "registered", "job": job_id},
                description=f"Registered by the MLOps portal from job {job_id}."))
        uri = f"{URI_PREFIX}{model_name}:{version}"
        fetched = self._job_dir(job_id) / "model"  # the job's output, fetched when the job ended
        cached = files.safe_join(self.root, f"models/{model_name}/{version}")
        if fetched.is_dir() and not cached.exists():
            files.copy_folder_atomically(fetched, cached)
        entries = self.artifact_files(uri)
        return RegisteredArtifact(uri=uri, sha256=files.manifest_sha256(entries), size=sum(e.size for e in entries),
                                  files=entries)

    def _artifact_dir(self, uri: str) -> Path:
        """The version's files in the local cache, fetched from the workspace the first time."""
        if not uri.startswith(URI_PREFIX) or uri.count(":") != 2:
            raise BackendError(f"Not an Azure ML model: {uri}")
        _, name, version = uri.split(":")
        folder = files.safe_join(self.root, f"models/{name}/{version}")
        if not folder.is_dir():
            def unwrap(partial: Path) -> Path:
                source = partial / name if (partial / name).is_dir() else partial  # the SDK adds <name>/
                children = list(source.iterdir()) if source.is_dir() else []
                if not children:  # e.g. registered in the studio from a path the SDK cannot download from
                    raise BackendError(f"Azure ML returned no files for {name} v{version}: the portal can show and "
                                       "deploy only versions whose files it can download (registered from a job "
                                       "output or a datastore path the portal's identity can read).")
                if len(children) == 1 and children[0].is_dir():  # and the output folder's own name
                    return children[0]
                return source

            models = self.client().models
            self._fetch_folder(folder, f"Downloading {name} v{version}",
                               lambda path: models.download(name, version, download_path=path), unwrap)
        return folder

    def artifact_files(self, uri: str) -> list[files.FileEntry]:
        return files.folder_manifest(self._artifact_dir(uri))

    def artifact_open(self, uri: str, path: str) -> BinaryIO:
        return open_artifact_file(self._artifact_dir, uri, path)

    # --- serving ----------------------------------------------------------------------------------------------
    def _endpoint_kind(self, config, stage: str) -> str:
        return "managed" if stage == "staging" and config.staging_on == "managed" else "kubernetes"

    def _endpoint_entity(self, config, name: str, kind: str):
        from azure.ai.ml.entities import KubernetesOnlineEndpoint, ManagedOnlineEndpoint

        tags = {"mlops-portal": "endpoint"}
        if kind == "managed":
            return ManagedOnlineEndpoint(name=name, auth_mode="key", tags=tags)
        return KubernetesOnlineEndpoint(name=name, compute=config.aks_compute, auth_mode="key", tags=tags)

    def _deployment_entity(self, config, ref: dict, *, checked: bool = True):
        from azure.ai.ml.entities import (
            CodeConfiguration,
            DefaultScaleSettings,
            KubernetesOnlineDeployment,
            ManagedOnlineDeployment,
            OnlineRequestSettings,
            ResourceRequirementsSettings,
            ResourceSettings,
            TargetUtilizationScaleSettings,
        )

        s = ref["settings"]
        kind = ref["kind"]
        problems = self._serving_problems(config, s, kind) if checked else []
        if problems:
            raise BackendError(" ".join(p.message for p in problems))
        concurrency = s["max_concurrent_requests_per_instance"]
        request = {"request_timeout_ms": s["request_timeout_ms"], "max_concurrent_requests_per_instance": concurrency}
        if kind == "kubernetes":  # deprecated (and ignored) on managed endpoints
            request["max_queue_wait_ms"] = s.get("max_queue_wait_ms", 500)
        common = dict(
            name=ref["deployment"], endpoint_name=ref["endpoint"], model=ref["model"],
            code_configuration=CodeConfiguration(code=ref["code"], scoring_script=ref["scoring_script"]),
            environment=config.inference_environment, instance_count=s["instance_count"],
            request_settings=OnlineRequestSettings(**request),
            # The inference server runs one worker unless told: concurrent requests would queue in each replica.
            environment_variables={"WORKER_COUNT": str(concurrency)} if concurrency > 1 else None,
            tags={"mlops-portal": "deployment"},
        )
        if kind == "managed":
            return ManagedOnlineDeployment(instance_type=config.managed_instance_type, **common)
        # Memory in GB (10^9 bytes, as v1's memoryInGB), written in Kubernetes' decimal unit.
        cpu, memory = f"{s['cpu_request']:g}", f"{s['memory_request_gb']:g}G"
        # Sent either way: with no scaleSettings Azure makes a Kubernetes deployment autoscale (TargetUtilization).
        scale = DefaultScaleSettings()
        if s["autoscale_enabled"]:
            scale = TargetUtilizationScaleSettings(min_instances=s["min_instances"], max_instances=s["max_instances"],
                                                   target_utilization_percentage=s["target_utilization"],
                                                   polling_interval=s.get("polling_interval_seconds", 1))
        return KubernetesOnlineDeployment(
            instance_type=config.instance_type_for(s),
            resources=ResourceRequirementsSettings(requests=ResourceSettings(cpu=cpu, memory=memory),
                                                   limits=ResourceSettings(cpu=cpu, memory=memory)),
            scale_settings=scale, **common)

    def instance_types(self) -> list[InstanceType]:
        config = self._provided_config()
        default = config.cluster_default_instance_type or DEFAULT_INSTANCE_TYPE
        return [InstanceType(name=name, cpu=limits.get("cpu"), memory_bytes=limits.get("memory_bytes"),
                             default=name == default) for name, limits in sorted(config.instance_types.items())]

    def serving_limits(self, stage: str) -> ServingLimits:
        kind = self._endpoint_kind(self._provided_config(), stage)
        return ServingLimits(max_instances=MAX_MANAGED_INSTANCES if kind == "managed" else ServingLimits().max_instances,
                             max_request_timeout_ms=MAX_REQUEST_TIMEOUT_MS[kind])

    def serving_problems(self, settings: dict, stage: str) -> list[ServingProblem]:
        config = self._provided_config()
        return self._serving_problems(config, settings, self._endpoint_kind(config, stage))

    @staticmethod
    def _serving_problems(config, s: dict, kind: str) -> list[ServingProblem]:
        problems = []
        timeout, most = s["request_timeout_ms"], MAX_REQUEST_TIMEOUT_MS[kind]
        if timeout > most:
            problems.append(ServingProblem("request_timeout_ms", f"A request timeout of {timeout:,} ms is over the "
                                                                 f"{most:,} ms that {kind} online deployments allow."))
        if kind == "managed":
            for field in ("instance_count", *(("max_instances",) if s.get("autoscale_enabled") else ())):
                if s[field] > MAX_MANAGED_INSTANCES:
                    problems.append(ServingProblem(field, f"{s[field]} instances is over the {MAX_MANAGED_INSTANCES} "
                                                          f"that a managed online deployment may have."))
        if kind == "kubernetes":
            name = config.instance_type_for(s)
            limits = config.instance_types.get(name)
            if limits is None and config.instance_types:
                problems.append(ServingProblem("instance_type", f"The AKS compute has no instance type {name} (it has "
                                                                f"{', '.join(sorted(config.instance_types))})."))
            limits = limits or (DEFAULT_INSTANCE_TYPE_LIMITS if name == DEFAULT_INSTANCE_TYPE else {})
            cpu, memory = s["cpu_request"], round(s["memory_request_gb"] * 10 ** 9)
            over = []
            if limits.get("cpu") and cpu > limits["cpu"]:
                over.append(("cpu_request", f"{cpu:g} CPU is more than instance type {name} allows "
                                            f"({limits['cpu']:g})."))
            if limits.get("memory_bytes") and memory > limits["memory_bytes"]:
                over.append(("memory_request_gb", f"{s['memory_request_gb']:g} GB of memory is more than instance type "
                                                  f"{name} allows ({limits['memory_bytes'] / 10 ** 9:.2f} GB = "
                                                  f"{limits['memory_bytes'] / 1024 ** 3:g} GiB)."))
            if over and not s.get("instance_type"):
                field, message = over[-1]
                over[-1] = (field, message + " Name a larger instance type in the profile, or set the workspace's "
                                             "default instance type.")
            problems += [ServingProblem(field, message) for field, message in over]
        return problems

    def deployment_create(self, spec: ServingSpec, plan: dict | None = None) -> DeployedRef:
        """Create the endpoint if it is missing (the deployment itself is submitted by deployment_state once the
        endpoint is ready). Nothing here waits for Azure."""
        config = self.config()
        ml = self.client(config)
        with calling(f"Reading training job {spec.code_job_id}"):
            code = ml.jobs.get(spec.code_job_id).code
        if not code:
            raise BackendError(f"Training job {spec.code_job_id} has no code asset to take {spec.scoring_script} from.")
        if not spec.artifact_uri.startswith(URI_PREFIX):
            raise BackendError(f"{spec.artifact_uri} is not a model of the Azure ML workspace.")
        kind = self._endpoint_kind(config, spec.stage)
        ref = {"endpoint": spec.endpoint_name, "deployment": spec.deployment_name, "kind": kind,
               "model": spec.artifact_uri, "code": code, "scoring_script": spec.scoring_script,
               "settings": spec.settings}
        self._endpoint_ensure(ml, config, spec.endpoint_name, kind)
        return DeployedRef(ref=ref, scoring_url="")

    def endpoint_prepare(self, name: str, stage: str) -> None:
        config = self.config()
        self._endpoint_ensure(self.client(config), config, name, self._endpoint_kind(config, stage))

    def _endpoint_ensure(self, ml, config, name: str, kind: str) -> None:
        if _found(f"Reading endpoint {name}", ml.online_endpoints.get, name) is not None:
            return
        with calling(f"Creating endpoint {name}"):
            _detached(ml.online_endpoints.begin_create_or_update(self._endpoint_entity(config, name, kind)))

    def deployment_state(self, ref: dict) -> DeploymentState:
        return self._deployment_state(ref, submit_missing=False)

    def deployment_advance(self, ref: dict) -> DeploymentState:
        return self._deployment_state(ref, submit_missing=True)

    def deployment_settings(self, ref: dict) -> dict | None:
        ml = self.client(self.config())
        name, endpoint_name = ref["deployment"], ref["endpoint"]
        deployment = _found(f"Reading deployment {name}", ml.online_deployments.get, name, endpoint_name)
        if deployment is None:
            return None
        reported = _reported_settings(deployment)
        if reported.get("instance_type") == self.config().instance_type_for({}):
            del reported["instance_type"]  # the default, which a profile asks for by naming none
        return reported

    def _deployment_state(self, ref: dict, *, submit_missing: bool) -> DeploymentState:
        config = self.config()
        ml = self.client(config)
        endpoint_name, name = ref["endpoint"], ref["deployment"]
        endpoint = _found(f"Reading endpoint {endpoint_name}", ml.online_endpoints.get, endpoint_name)
        if endpoint is None:
            return DeploymentState("failed", error=f"Endpoint {endpoint_name} is gone from the workspace.")
        if endpoint.provisioning_state == "Failed":
            return DeploymentState("failed", error=f"Creating endpoint {endpoint_name} failed in Azure ML.")
        deployment = _found(f"Reading deployment {name}", ml.online_deployments.get, name, endpoint_name)
        if deployment is None:
            if not submit_missing:
                return DeploymentState("failed", error=f"Deployment {name} is gone from endpoint {endpoint_name}.")
            if endpoint.provisioning_state != "Succeeded":
                return DeploymentState("starting")  # the endpoint is still being created (or updated)
            # The endpoint's own kind decides the deployment's (the staging setting may have changed since).
            kind = _kind_of(endpoint)
            with calling(f"Creating deployment {name} on {endpoint_name}"):
                poller = ml.online_deployments.begin_create_or_update(
                    self._deployment_entity(config, {**ref, "kind": kind}, checked=not ref.get("unchecked")))
            # The operation's status is where Azure says why a deployment failed (image, quota, validation): kept
            # on the ref, read if it fails.
            operation = _detached(poller)
            return DeploymentState("starting", ref={**ref, "operation": operation} if operation else None)
        state = deployment.provisioning_state
        if _model_uri(deployment.model) not in ("", ref["model"]):
            if state == "Deleting":
                return DeploymentState("starting")  # an earlier deployment of that name is still going away
            return DeploymentState("failed", error=f"Endpoint {endpoint_name} already has a deployment named {name} "
                                                   f"serving {_model_uri(deployment.model)}, made outside the portal.")
        if state == "Succeeded":
            return DeploymentState("healthy")
        if state in ("Failed", "Canceled"):
            reason = self._operation_error(ml, ref.get("operation", ""))
            return DeploymentState("failed", error=f"Azure ML reports the deployment {state.lower()}"
                                                   + (f": {reason}" if reason else ".") + "\n"
                                                   + self.deployment_logs(ref, 40))
        return DeploymentState("starting")

    @staticmethod
    def _operation_error(ml, url: str) -> str:
        """The error of a long-running operation, in Azure's words ("" when there is none or it cannot be read)."""
        if not url.startswith("https://"):
            return ""
        from azure.core.rest import HttpRequest

        try:
            with calling("Reading the deployment's operation"):
                # The SDK keeps no public way to read an operation later: its own authenticated ARM pipeline does.
                response = ml.online_deployments._online_deployment._client.send_request(HttpRequest("GET", url))
                body = response.json() if response.status_code == 200 else {}
        except (BackendError, AttributeError, ValueError) as exc:
            log.info("could not read operation %s: %s", url, exc)
            return ""
        error = (body or {}).get("error") or {}
        words = [f"{error['code']}: {error.get('message', '')}" if error.get("code") else error.get("message", "")]
        for detail in (error.get("details") or [])[:10]:
            if detail.get("message") and detail["message"] not in words:
                words.append(detail["message"])
        return " — ".join(w for w in words if w)[:MAX_MESSAGE_CHARS]

    def deployment_logs(self, ref: dict, lines: int = 200) -> str:
        ml = self.client()
        try:
            return ml.online_deployments.get_logs(ref["deployment"], ref["endpoint"], lines) or ""
        except Exception as exc:  # noqa: BLE001
            return f"(no logs: {translate(exc, 'Reading the logs')})"

    def deployment_delete(self, ref: dict) -> None:
        ml = self.client()
        # Already gone (404) is what was asked for.
        _detached(_found(f"Deleting deployment {ref['deployment']}", ml.online_deployments.begin_delete,
                         ref["deployment"], ref["endpoint"]))

    def endpoint_traffic_apply(self, *, endpoint_name: str, traffic: dict[str, int]) -> bool:
        ml = self.client()
        with calling(f"Setting the traffic of {endpoint_name}"):
            endpoint = ml.online_endpoints.get(endpoint_name)
            endpoint.traffic = {name: int(percent) for name, percent in traffic.items()}
            _detached(ml.online_endpoints.begin_create_or_update(endpoint))
        return False  # Azure updates the endpoint in the background: endpoint_traffic_applied says when it did

    def endpoint_traffic_applied(self, *, endpoint_name: str, traffic: dict[str, int]) -> bool:
        """Applied once the endpoint is Succeeded with this split. An update that failed (the endpoint is Failed)
        or never arrived (a worker stopped between the portal's write and the PUT) is sent again."""
        ml = self.client()
        with calling(f"Reading endpoint {endpoint_name}"):
            endpoint = ml.online_endpoints.get(endpoint_name)
        live = {name: int(p) for name, p in (endpoint.traffic or {}).items() if int(p)}
        wanted = {name: int(p) for name, p in traffic.items() if int(p)}
        state = endpoint.provisioning_state
        if state == "Succeeded" and live == wanted:
            return True
        if state in ("Succeeded", "Failed"):
            log.info("endpoint %s is %s routing %s, not %s: sending the traffic again", endpoint_name, state, live,
                     wanted)
            endpoint.traffic = {name: int(percent) for name, percent in traffic.items()}
            try:
                with calling(f"Setting the traffic of {endpoint_name} again"):
                    _detached(ml.online_endpoints.begin_create_or_update(endpoint))
            except BackendError as exc:
                if exc.permanent:
                    raise  # refused outright: the caller says why
                log.info("traffic of %s not sent again yet: %s", endpoint_name, exc)
        return False

    def endpoint_traffic_status(self, endpoint_name: str) -> str:
        try:
            endpoint = _found(f"Reading endpoint {endpoint_name}", self.client().online_endpoints.get, endpoint_name)
        except BackendError as exc:
            return str(exc)
        if endpoint is None:
            return f"endpoint {endpoint_name} is gone from the workspace."
        split = ", ".join(f"{n} {int(p)}%" for n, p in sorted((endpoint.traffic or {}).items()) if int(p))
        state = getattr(endpoint.provisioning_state, "value", endpoint.provisioning_state)
        return (f"Azure ML reports endpoint {endpoint_name} {state}, routing {split or 'nothing'}"
                + (" (its last update failed; it was sent again)." if state == "Failed" else "."))

    def endpoint_access(self, endpoint_name: str) -> EndpointAccess:
        ml = self.client()
        with calling(f"Reading endpoint {endpoint_name}"):
            endpoint = ml.online_endpoints.get(endpoint_name)
            auth_mode = str(getattr(endpoint, "auth_mode", "") or "key").lower()
            if auth_mode != "key":  # token auth (made outside the portal): there is no key to read
                return EndpointAccess(scoring_url=endpoint.scoring_uri or "", key="", auth_mode=auth_mode)
            keys = ml.online_endpoints.get_keys(endpoint_name)
        return EndpointAccess(scoring_url=endpoint.scoring_uri or "", key=getattr(keys, "primary_key", "") or "")

    # --- what the workspace holds, for the sync ---------------------------------------------------------------
    def inventory(self, known_versions: dict[str, int] | None = None) -> Inventory:
        """The workspace's endpoints (with deployments and traffic) and model versions. Production endpoints are the
        Kubernetes ones; a managed endpoint is staging (a Kubernetes staging endpoint is not told apart)."""
        ml = self.client()
        endpoints = []
        with calling("Listing endpoints"):
            for endpoint in ml.online_endpoints.list():
                kind = _kind_of(endpoint)
                deployments = []
                for d in ml.online_deployments.list(endpoint.name):
                    uri = _model_uri(d.model)
                    model_name, model_version = _model_parts(uri)
                    deployments.append(InventoryDeployment(
                        name=d.name, state=_neutral_state(d.provisioning_state), artifact_uri=uri,
                        model_name=model_name, model_version=model_version,
                        ref={"endpoint": endpoint.name, "deployment": d.name, "kind": kind, "model": uri}))
                endpoints.append(InventoryEndpoint(
                    name=endpoint.name, stage="production" if kind == "kubernetes" else "staging",
                    state=_neutral_state(endpoint.provisioning_state), scoring_url=endpoint.scoring_uri or "",
                    traffic={k: int(v) for k, v in (endpoint.traffic or {}).items()}, deployments=tuple(deployments)))
        models = []
        known_versions = known_versions or {}
        with calling("Listing models"):
            for container in ml.models.list():
                # One call lists the containers with their latest version; a model's versions are listed only
                # when it has one newer than the portal knows (a shared workspace may hold hundreds of models).
                latest = str(getattr(container, "latest_version", "") or "")
                if latest.isdigit() and int(latest) <= known_versions.get(container.name, 0):
                    models.append(InventoryModel(name=container.name, versions=()))
                    continue
                numbers = sorted(int(m.version) for m in ml.models.list(name=container.name)
                                 if str(m.version).isdigit())
                models.append(InventoryModel(name=container.name, versions=tuple(
                    InventoryVersion(n, f"{URI_PREFIX}{container.name}:{n}") for n in numbers)))
        return Inventory(models=tuple(sorted(models, key=lambda m: m.name)), endpoints=tuple(endpoints))

    def serving_notes(self, settings: dict) -> list[str]:
        notes = []
        if not settings.get("auth_enabled", True):
            notes.append("Azure ML online endpoints always ask for a key: auth stays on.")
        try:
            instance_type = self._provided_config().instance_type_for(settings)
        except BackendError:
            instance_type = settings.get("instance_type") or DEFAULT_INSTANCE_TYPE
        notes.append(f"CPU and memory requests are also set as limits on Kubernetes deployments, which run on "
                     f"instance type {instance_type}; managed deployments use "
                     f"the workspace's VM size instead, and ignore the max queue wait.")
        if settings.get("autoscale_enabled"):
            notes.append("Target-utilization autoscale applies on Kubernetes endpoints; a managed staging endpoint "
                         "runs the starting instance count.")
        return notes
