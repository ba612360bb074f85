"""The interface every ML-platform backend implements: training jobs, model registration, artifact access, serving,
what the platform holds and whether it can be reached.

Backends return frozen dataclasses in the portal's own words (states such as "ready" or "healthy", stages such as
"production") and raise BackendError; they know nothing about our database rows and import no Django app. What a
backend needs to know about its platform (a workspace's coordinates, say) is handed to it by `get_backend`, from the
provider that settings.MLOPS_BACKEND_CONFIG names. Long work is submitted and then polled (never waited on), which is
how both a local subprocess and an Azure ML job behave.
"""
from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from mlopsportal.examples import Example
from mlopsportal.lib.files import FileEntry, safe_join


class BackendError(Exception):
    """A failure talking to the ML platform. `permanent` errors are shown to the user; others are retried."""

    def __init__(self, message: str, *, permanent: bool = True, retry_after: float | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after  # seconds the platform asked us to wait, when it said

    def retry_countdown(self, attempt: int) -> float:
        """Seconds before retry number `attempt` (0-based): exponential backoff, never sooner than asked."""
        return max(min(60, 5 * 2 ** attempt), self.retry_after or 0)

    def retry_task(self, task, *, attempt_cap: int | None = None):
        """The Celery retry of bound `task` after this error, backing off and never sooner than the platform asked;
        `raise` what it returns. `attempt_cap` stops the backoff growing after that many attempts."""
        attempt = task.request.retries if attempt_cap is None else min(task.request.retries, attempt_cap)
        return task.retry(exc=self, countdown=self.retry_countdown(attempt))


def open_artifact_file(folder_of, uri: str, path: str) -> BinaryIO:
    """Open `path` inside the local folder that `folder_of(uri)` gives for a version's files; no escaping it."""
    try:
        target = safe_join(folder_of(uri), path)
    except ValueError as exc:
        raise BackendError(str(exc)) from exc
    if not target.is_file():
        raise BackendError(f"No file {path} in {uri}.")
    return open(target, "rb")


@dataclass(frozen=True)
class ComputeTarget:
    name: str
    description: str


@dataclass(frozen=True)
class TrainingSubmission:
    job_id: str
    code_version: str
    dataset_sha256: str


@dataclass(frozen=True)
class TrainingStatus:
    state: str  # "running", "succeeded" or "failed"
    log: str = ""
    error: str = ""
    metrics: dict = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state in {"succeeded", "failed"}


@dataclass(frozen=True)
class RegisteredArtifact:
    uri: str
    sha256: str
    size: int
    files: list[FileEntry]


@dataclass(frozen=True)
class ServingSpec:
    """What a backend needs to serve one model version as one deployment of an endpoint."""
    endpoint_name: str
    deployment_name: str
    artifact_uri: str
    code_job_id: str  # the training job whose code snapshot holds the scoring script
    scoring_script: str
    settings: dict  # DeploymentProfile.serving_settings()
    stage: str = "production"  # the endpoint's stage: a platform may place staging elsewhere


@dataclass(frozen=True)
class EndpointAccess:
    """Where clients send requests and the key they send, when the platform (not the portal's router) serves."""
    scoring_url: str
    key: str
    auth_mode: str = "key"  # or "aml_token" / "aad_token": callers need a token, and `key` is empty


@dataclass(frozen=True)
class EndpointRouting:
    """All the portal's router needs of one endpoint: its auth, key and request timeout, the deployments that answer
    (name -> scoring URL) and the traffic weights (name -> percent)."""
    name: str
    auth_enabled: bool
    key: str
    timeout_ms: int
    deployments: dict[str, str] = field(default_factory=dict)
    traffic: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DeployedRef:
    ref: dict  # what the backend needs to find the deployment again
    scoring_url: str


@dataclass(frozen=True)
class DeploymentState:
    state: str  # "starting", "healthy" or "failed"
    error: str = ""
    ref: dict | None = None  # the ref to keep from now on, when the backend learned more (e.g. its operation)


@dataclass(frozen=True)
class ConnectionCheck:
    """One step of "Test connection": what was checked, whether it passed, and what was found, in words."""
    check: str
    ok: bool
    message: str
    facts: dict = field(default_factory=dict)  # what was found, as data the portal keeps (e.g. instance types)


# What the platform reports of a resource it holds, in the portal's words.
READY, BUSY, FAILED = "ready", "busy", "failed"  # busy: being created, updated, scaled or deleted


@dataclass(frozen=True)
class ServingProblem:
    """One thing the platform would refuse in a deployment's settings: the setting at fault (a key of the serving
    settings, e.g. "request_timeout_ms") and why, in words."""
    field: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ServingLimits:
    """The most a deployment on an endpoint of some stage may ask for: instances, and a request's timeout."""
    max_instances: int = 100
    max_request_timeout_ms: int = 300_000


@dataclass(frozen=True)
class InstanceType:
    """A size deployments can be given on the platform, with its limits where known (None: not said)."""
    name: str
    cpu: float | None = None
    memory_bytes: int | None = None
    default: bool = False  # what the platform uses when a deployment names none


@dataclass(frozen=True)
class InventoryVersion:
    number: int
    artifact_uri: str  # what the portal stores as the version's artifact_uri


@dataclass(frozen=True)
class InventoryModel:
    name: str
    versions: tuple[InventoryVersion, ...]


@dataclass(frozen=True)
class InventoryDeployment:
    name: str
    state: str  # READY, BUSY or FAILED
    artifact_uri: str  # the model version it serves ("" when the platform does not say)
    model_name: str  # the same, parsed: the registered model's name ("" when unknown)
    model_version: int | None  # and its version number
    ref: dict  # what the portal stores (Deployment.backend_ref) to find the deployment again


@dataclass(frozen=True)
class InventoryEndpoint:
    name: str
    stage: str  # "production" or "staging"
    state: str  # READY, BUSY or FAILED
    scoring_url: str
    traffic: dict[str, int]  # deployment name -> percent, as the platform routes now
    deployments: tuple[InventoryDeployment, ...]


@dataclass(frozen=True)
class Inventory:
    """Everything the platform holds that the portal may have made: model versions and endpoints."""
    models: tuple[InventoryModel, ...]
    endpoints: tuple[InventoryEndpoint, ...]


class MLBackend(abc.ABC):
    name: str
    # True when the platform keeps deployments running itself (a deployment being updated there still serves).
    heals_itself: bool = False
    # True when the portal's own router (manage.py run_router) serves the endpoints' scoring URLs.
    routed_by_portal: bool = False

    # --- the platform -----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def connection_check(self) -> list[ConnectionCheck]:
        """What "Test connection" shows: each check in turn, stopping at the first that fails. Never raises."""

    def inventory(self, known_versions: dict[str, int] | None = None) -> Inventory | None:
        """What the platform holds, to find what changed there outside the portal; None when nothing can (the
        portal's own records are the truth). `known_versions` (model name -> newest version number the portal
        has) lets a backend skip listing the versions of models with nothing newer: their versions may be empty."""
        return None

    # --- training ---------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def compute_targets(self) -> list[ComputeTarget]: ...

    @abc.abstractmethod
    def training_submit(self, *, job_name: str, example: Example, params: dict, compute_target: str,
                        experiment_name: str, timeout_seconds: int) -> TrainingSubmission:
        """Start a training job and return at once. `job_name` is unique and stable, so a retry finds its job."""

    @abc.abstractmethod
    def training_status(self, job_id: str) -> TrainingStatus: ...

    @abc.abstractmethod
    def training_cancel(self, job_id: str) -> None: ...

    # --- registry and artifacts -------------------------------------------------------------------------------
    @abc.abstractmethod
    def model_register(self, *, job_id: str, model_name: str, version: int) -> RegisteredArtifact:
        """Store a finished job's outputs as model `model_name` version `version`."""

    @abc.abstractmethod
    def artifact_files(self, uri: str) -> list[FileEntry]: ...

    @abc.abstractmethod
    def artifact_open(self, uri: str, path: str) -> BinaryIO: ...

    # --- serving ----------------------------------------------------------------------------------------------
    def deployment_plan(self, spec: ServingSpec) -> dict:
        """Where a new deployment will live (a folder and port, a platform id), decided before anything starts:
        the portal records it on the row first, so that deployment_create run again after a worker died there adopts
        what the first call started instead of starting another. {} when the platform's own names already make
        creating idempotent (azureml creates or updates the endpoint's deployment of that name)."""
        return {}

    @abc.abstractmethod
    def deployment_create(self, spec: ServingSpec, plan: dict | None = None) -> DeployedRef:
        """Start creating a deployment where `plan` (from deployment_plan) says, or adopt the one an earlier call
        with the same plan started; return at once; poll deployment_state until healthy or failed."""

    @abc.abstractmethod
    def deployment_state(self, ref: dict) -> DeploymentState: ...

    def deployment_advance(self, ref: dict) -> DeploymentState:
        """Move a deployment that is being created along (a platform may need a further call once the endpoint
        exists) and say where it stands. Called only while the portal is creating it."""
        return self.deployment_state(ref)

    def deployment_settings(self, ref: dict) -> dict | None:
        """The serving settings the platform reports the deployment runs with, under the keys of
        DeploymentProfile.serving_settings() (only those it reports), or None when it cannot say. One call to the
        platform; raises BackendError when it does not answer."""
        return None

    @abc.abstractmethod
    def deployment_logs(self, ref: dict, lines: int = 200) -> str: ...

    @abc.abstractmethod
    def deployment_delete(self, ref: dict) -> None: ...

    def deployment_sweep(self, owned: Callable[[], list[dict]]) -> list[str]:
        """Stop what this backend runs that no deployment owns, and say in words what it stopped. `owned` returns the
        refs and plans of every deployment that may own something; it is called after the backend has listed what
        runs, so something started meanwhile (its plan recorded first) is never taken for an orphan. A platform whose
        deployments are not processes of this machine has nothing to sweep."""
        return []

    def deployment_revive(self, ref: dict, spec: ServingSpec) -> DeployedRef | None:
        """Bring back a deployment whose process died, if this backend is the one that runs processes.
        Returns the new ref, or None when the platform heals deployments itself."""
        return None

    @abc.abstractmethod
    def endpoint_traffic_apply(self, *, endpoint_name: str, traffic: dict[str, int]) -> bool:
        """Make the platform route the endpoint's requests by these weights (deployment name -> percent). True when
        it routes by them on return; False when it applies them a little later (see endpoint_traffic_applied)."""

    def endpoint_traffic_applied(self, *, endpoint_name: str, traffic: dict[str, int]) -> bool:
        """Whether the platform routes by these weights yet (a platform may take a while to apply them). A backend
        whose platform lost or failed the update sends it again here."""
        return True

    def endpoint_prepare(self, name: str, stage: str) -> None:
        """Make the endpoint on the platform ahead of its first deployment, so that a name the platform refuses
        (taken in the region, just deleted) shows when the endpoint is created. Raises BackendError."""
        return None

    def endpoint_traffic_status(self, endpoint_name: str) -> str:
        """What the platform reports of the endpoint's routing, in words, for a message saying why it is late."""
        return ""

    # The portal's router: a backend whose endpoints the router serves (local) keeps its routing table from these;
    # one whose platform serves them (azureml) has nothing to do.
    def endpoint_configure(self, name: str, *, auth_enabled: bool, key: str, timeout_ms: int) -> None:
        """The endpoint exists, or its auth, key or request timeout changed."""
        return None  # nothing to keep

    def deployment_route_set(self, *, endpoint_name: str, deployment_name: str, scoring_url: str) -> None:
        """The deployment answers at `scoring_url` (it became healthy, or was restarted elsewhere)."""
        return None  # nothing to keep

    def deployment_route_remove(self, *, endpoint_name: str, deployment_name: str) -> None:
        """The deployment is going away: send it nothing more."""
        return None  # nothing to keep

    def routing_replace(self, read: Callable[[], list[EndpointRouting]]) -> None:
        """Make the routing table exactly `read()`: every endpoint the portal knows. `read` is called only by a
        backend that keeps a table, and while no other change to it can interleave, so none is lost."""
        return None  # nothing to keep

    def endpoint_access(self, endpoint_name: str) -> EndpointAccess | None:
        """The platform's scoring URL and key for the endpoint, or None when the portal's router serves it."""
        return None

    def serving_problems(self, settings: dict, stage: str) -> list[ServingProblem]:
        """What this platform would refuse in these settings on an endpoint of `stage`, setting by setting; checked
        before anything is sent (no call to the platform)."""
        return []

    def serving_limits(self, stage: str) -> ServingLimits:
        """The platform's maximums for a deployment on an endpoint of `stage` (no call to the platform)."""
        return ServingLimits()

    def instance_types(self) -> list[InstanceType]:
        """The instance types a profile may name for production deployments, as last read from the platform
        (no call to it): empty when the platform has none or they were not read yet."""
        return []

    def serving_notes(self, settings: dict) -> list[str]:
        """Which profile settings this backend does not honour, in words for the endpoint page."""
        return []
