"""An in-memory backend for tests that need no real processes: the whole MLBackend interface, with knobs.

Nothing runs and nothing is written to disk. Every FakeBackend of a process (and every thread) shares one store,
guarded by a lock; `reset()` empties it and restores the default knobs, so each test starts from nothing. This is a
test double, not a platform for users.

How things behave (`FakeBackend.configure(...)` changes the knobs):
    training     a job reports "running" for `training_polls` training_status calls, then "succeeded" with
                 `metrics` and the `outputs` files (or "failed"); training_cancel ends a running job "failed"
    registry     model_register keeps a succeeded job's output bytes as `fake:<model>/<version>`, with a manifest
    serving      a deployment is "starting" for `deployment_polls` deployment_state/deployment_advance calls, then
                 "healthy"; traffic is applied after `traffic_polls` endpoint_traffic_applied calls; a deployment
                 that still takes traffic cannot be deleted, and traffic must name live deployments and add up to
                 0 or 100, as on Azure ML
    access       endpoint_access is None (the portal's router serves) unless `platform_serves` is set
Failures:
    fail_next("deployment_create", BackendError("quota", permanent=False))   the next call of that method raises
    fail_next("training", "out of memory")    the next job submitted ends failed, with that error
    fail_next("deployment", "crash loop")     the next deployment created ends failed instead of healthy
    crash_deployment(ref)                     a healthy deployment's process dies (deployment_revive restarts it)
"""
from __future__ import annotations

import copy
import hashlib
import io
import itertools
import json
import posixpath
import secrets
import threading
from dataclasses import dataclass, field
from typing import BinaryIO

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
    Inventory,
    InventoryDeployment,
    InventoryEndpoint,
    InventoryModel,
    InventoryVersion,
    MLBackend,
    RegisteredArtifact,
    ServingSpec,
    TrainingStatus,
    TrainingSubmission,
)

URI_PREFIX = "fake:"
SCORING_HOST = "http://fake-platform.invalid"  # .invalid never resolves: nothing can be sent there by mistake
# Outcomes rather than method calls: what fail_next("training"/"deployment", error) arranges.
OUTCOMES = {"training", "deployment"}


def default_knobs() -> dict:
    return {
        "training_polls": 1,
        "deployment_polls": 1,
        "traffic_polls": 0,
        "metrics": {"score": 0.5},
        "outputs": None,  # {path: bytes}; None: model.bin plus metrics.json of `metrics`
        "compute_targets": [ComputeTarget("fake", "In-memory fake compute (tests only)")],
        "checks": [ConnectionCheck("Fake platform", True, "In memory: nothing to reach.")],
        "platform_serves": False,
    }


@dataclass
class _Job:
    job_id: str
    submission: TrainingSubmission
    polls_left: int
    fails_with: str | None
    state: str = "running"
    error: str = ""
    log: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    outputs: dict[str, bytes] = field(default_factory=dict)


@dataclass
class _Deployment:
    ref_id: str
    spec: ServingSpec
    polls_left: int
    fails_with: str | None
    state: str = "starting"  # "starting", "healthy", "failed" or "deleted"
    error: str = ""
    log: list[str] = field(default_factory=list)
    changed: dict = field(default_factory=dict)  # settings changed on the platform, outside the portal


@dataclass
class _Endpoint:
    name: str
    stage: str
    traffic: dict[str, int] = field(default_factory=dict)  # as routed now
    pending: dict[str, int] | None = None  # applied once pending_polls reaches 0
    pending_polls: int = 0
    key: str = ""


class _Store:
    def __init__(self):
        self.lock = threading.RLock()
        self.clear()

    def clear(self) -> None:
        self.knobs = default_knobs()
        self.jobs: dict[str, _Job] = {}
        self.versions: dict[tuple[str, int], dict[str, bytes]] = {}
        self.endpoints: dict[str, _Endpoint] = {}
        self.deployments: dict[str, _Deployment] = {}  # by ref id; deleted ones stay, marked
        self.failures: dict[str, list] = {}
        self.ids = itertools.count(1)


_STORE = _Store()


def reset() -> None:
    """Forget everything and restore the default knobs (a fixture calls this around each test)."""
    with _STORE.lock:
        _STORE.clear()


def _manifest(outputs: dict[str, bytes]) -> list[files.FileEntry]:
    return [files.FileEntry(path, len(data), hashlib.sha256(data).hexdigest()) for path, data in sorted(outputs.items())]


def _parse_uri(uri: str) -> tuple[str, int]:
    name, _, version = uri.removeprefix(URI_PREFIX).partition("/")
    if not uri.startswith(URI_PREFIX) or not name or not version.isdigit():
        raise BackendError(f"Not a fake artifact: {uri}")
    return name, int(version)


def _inside(path: str) -> str:
    """`path` as a key of a version's files, refusing anything that leaves the version's folder."""
    normal = posixpath.normpath(path)
    if not path or path.startswith("/") or normal == ".." or normal.startswith("../"):
        raise BackendError("path escapes the artifact folder")
    return normal


class FakeBackend(MLBackend):
    name = "fake"
    heals_itself = False  # like local: the portal revives a deployment whose process died

    # --- knobs and failure injection --------------------------------------------------------------------------
    @staticmethod
    def reset() -> None:
        reset()

    @staticmethod
    def configure(**knobs) -> None:
        with _STORE.lock:
            unknown = set(knobs) - set(_STORE.knobs)
            if unknown:
                raise TypeError(f"Unknown fake backend knob(s): {', '.join(sorted(unknown))}")
            _STORE.knobs.update(copy.deepcopy(knobs))

    @staticmethod
    def fail_next(operation: str, error: BackendError | str) -> None:
        """Make the next `operation` fail: a method name raises `error`; "training" or "deployment" makes the next
        job or deployment end failed with `error` as its reason."""
        if operation not in OUTCOMES and not callable(getattr(MLBackend, operation, None)):
            raise ValueError(f"{operation!r} is neither a backend method nor one of {sorted(OUTCOMES)}")
        if operation in OUTCOMES and not isinstance(error, str):
            raise TypeError(f"fail_next({operation!r}, ...) takes the failure's reason as text")
        with _STORE.lock:
            _STORE.failures.setdefault(operation, []).append(error)

    @staticmethod
    def crash_deployment(ref: dict) -> None:
        with _STORE.lock:
            deployment = _deployment(ref)
            if deployment.state == "deleted":
                raise BackendError(f"Deployment {deployment.spec.deployment_name} was deleted.")
            deployment.state, deployment.error = "failed", "The fake deployment's process exited."
            deployment.log.append("process exited unexpectedly")

    @staticmethod
    def change_outside(ref: dict, **settings) -> None:
        """Someone changes the deployment's settings on the platform itself (as with `az ml online-deployment
        update`): the platform reports them from now on."""
        with _STORE.lock:
            _deployment(ref).changed.update(settings)

    @staticmethod
    def _raise_if_failing(operation: str) -> None:
        queued = _STORE.failures.get(operation)
        if queued:
            error = queued.pop(0)
            raise error if isinstance(error, BackendError) else BackendError(error)

    @staticmethod
    def _outcome_failure(kind: str) -> str | None:
        queued = _STORE.failures.get(kind)
        return queued.pop(0) if queued else None

    # --- the platform -----------------------------------------------------------------------------------------
    def connection_check(self) -> list[ConnectionCheck]:
        with _STORE.lock:
            self._raise_if_failing("connection_check")
            return list(_STORE.knobs["checks"])

    def inventory(self, known_versions=None) -> Inventory:
        with _STORE.lock:
            self._raise_if_failing("inventory")
            numbers: dict[str, list[int]] = {}
            for name, number in _STORE.versions:
                numbers.setdefault(name, []).append(number)
            models = tuple(InventoryModel(name, tuple(InventoryVersion(n, f"{URI_PREFIX}{name}/{n}")
                                                      for n in sorted(found)))
                           for name, found in sorted(numbers.items()))
            endpoints = []
            for endpoint in sorted(_STORE.endpoints.values(), key=lambda e: e.name):
                deployments = []
                for d in _STORE.deployments.values():
                    if d.spec.endpoint_name != endpoint.name or d.state == "deleted":
                        continue
                    model_name, model_version = _parse_uri(d.spec.artifact_uri)
                    deployments.append(InventoryDeployment(
                        name=d.spec.deployment_name, state={"starting": BUSY, "healthy": READY}.get(d.state, FAILED),
                        artifact_uri=d.spec.artifact_uri, model_name=model_name, model_version=model_version,
                        ref=_ref(d)))
                endpoints.append(InventoryEndpoint(
                    name=endpoint.name, stage=endpoint.stage, state=BUSY if endpoint.pending is not None else READY,
                    scoring_url=f"{SCORING_HOST}/{endpoint.name}/score", traffic=dict(endpoint.traffic),
                    deployments=tuple(sorted(deployments, key=lambda d: d.name))))
            return Inventory(models=models, endpoints=tuple(endpoints))

    # --- training ---------------------------------------------------------------------------------------------
    def compute_targets(self) -> list[ComputeTarget]:
        with _STORE.lock:
            self._raise_if_failing("compute_targets")
            return list(_STORE.knobs["compute_targets"])

    def training_submit(self, *, job_name: str, example: Example, params: dict, compute_target: str,
                        experiment_name: str, timeout_seconds: int) -> TrainingSubmission:
        submission = TrainingSubmission(job_name, example.code_version(), files.file_sha256(example.data_path))
        with _STORE.lock:
            self._raise_if_failing("training_submit")
            if compute_target not in {t.name for t in _STORE.knobs["compute_targets"]}:
                raise BackendError(f"Unknown compute target '{compute_target}' for the fake backend.")
            existing = _STORE.jobs.get(job_name)
            if existing is not None:  # a retried submit finds its job
                if existing.submission != submission:
                    raise BackendError(f"The fake platform already has a job named {job_name} with other code or "
                                       "data.")
                return existing.submission
            job = _Job(job_name, submission, polls_left=int(_STORE.knobs["training_polls"]),
                       fails_with=self._outcome_failure("training"))
            job.log.append(f"fake job {job_name}: {example.name} in {experiment_name} on {compute_target}, "
                           f"params {json.dumps(params, sort_keys=True)}")
            _STORE.jobs[job_name] = job
            return submission

    def _job(self, job_id: str) -> _Job:
        job = _STORE.jobs.get(job_id)
        if job is None:
            raise BackendError(f"The fake platform has no job {job_id}.")
        return job

    def training_status(self, job_id: str) -> TrainingStatus:
        with _STORE.lock:
            self._raise_if_failing("training_status")
            job = self._job(job_id)
            if job.state == "running":
                if job.polls_left > 0:
                    job.polls_left -= 1
                    job.log.append(f"working ({job.polls_left} more polls)")
                elif job.fails_with is not None:
                    job.state, job.error = "failed", job.fails_with
                    job.log.append(f"failed: {job.fails_with}")
                else:
                    job.state = "succeeded"
                    job.metrics = copy.deepcopy(_STORE.knobs["metrics"])
                    outputs = _STORE.knobs["outputs"]
                    job.outputs = dict(outputs) if outputs is not None else {
                        "model.bin": f"fake model of {job_id}".encode(),
                        "metrics.json": json.dumps(job.metrics).encode()}
                    job.log.append("done")
            return TrainingStatus(job.state, log="\n".join(job.log), error=job.error,
                                  metrics=copy.deepcopy(job.metrics))

    def training_cancel(self, job_id: str) -> None:
        with _STORE.lock:
            self._raise_if_failing("training_cancel")
            job = self._job(job_id)
            if job.state == "running":
                job.state, job.error = "failed", "Training canceled."
                job.log.append("canceled")

    # --- registry and artifacts -------------------------------------------------------------------------------
    def model_register(self, *, job_id: str, model_name: str, version: int) -> RegisteredArtifact:
        with _STORE.lock:
            self._raise_if_failing("model_register")
            job = _STORE.jobs.get(job_id)
            if job is None or job.state != "succeeded":
                raise BackendError(f"Job {job_id} has no outputs to register.")
            _STORE.versions[(model_name, int(version))] = dict(job.outputs)
            entries = _manifest(job.outputs)
        return RegisteredArtifact(uri=f"{URI_PREFIX}{model_name}/{int(version)}", sha256=files.manifest_sha256(entries),
                                  size=sum(e.size for e in entries), files=entries)

    def _version_files(self, uri: str) -> dict[str, bytes]:
        found = _STORE.versions.get(_parse_uri(uri))
        if found is None:
            raise BackendError(f"The artifact folder for {uri} is missing.")
        return found

    def artifact_files(self, uri: str) -> list[files.FileEntry]:
        with _STORE.lock:
            self._raise_if_failing("artifact_files")
            return _manifest(self._version_files(uri))

    def artifact_open(self, uri: str, path: str) -> BinaryIO:
        with _STORE.lock:
            self._raise_if_failing("artifact_open")
            key = _inside(path)
            data = self._version_files(uri).get(key)
        if data is None:
            raise BackendError(f"No file {path} in {uri}.")
        return io.BytesIO(data)

    # --- serving ----------------------------------------------------------------------------------------------
    def deployment_plan(self, spec: ServingSpec) -> dict:
        with _STORE.lock:
            return {"id": f"{spec.endpoint_name}/{spec.deployment_name}/{next(_STORE.ids)}"}

    def deployment_create(self, spec: ServingSpec, plan: dict | None = None) -> DeployedRef:
        with _STORE.lock:
            self._raise_if_failing("deployment_create")
            adopted = _STORE.deployments.get((plan or {}).get("id", ""))
            if adopted is not None and adopted.state != "deleted":  # an earlier call made it: the same one
                return DeployedRef(ref=_ref(adopted), scoring_url=_scoring_url(adopted))
            if spec.code_job_id not in _STORE.jobs:
                raise BackendError(f"The fake platform has no job {spec.code_job_id} to take "
                                   f"{spec.scoring_script} from.")
            self._version_files(spec.artifact_uri)
            endpoint = _STORE.endpoints.get(spec.endpoint_name)
            if endpoint is None:
                endpoint = _STORE.endpoints[spec.endpoint_name] = _Endpoint(
                    spec.endpoint_name, spec.stage, key=secrets.token_urlsafe(24))
            for other in _STORE.deployments.values():
                if other.spec.endpoint_name == spec.endpoint_name and other.state != "deleted" and \
                        other.spec.deployment_name == spec.deployment_name:
                    raise BackendError(f"Endpoint {spec.endpoint_name} already has a deployment named "
                                       f"{spec.deployment_name}.")
            ref_id = (plan or {}).get("id") or f"{spec.endpoint_name}/{spec.deployment_name}/{next(_STORE.ids)}"
            deployment = _Deployment(ref_id, spec, polls_left=int(_STORE.knobs["deployment_polls"]),
                                     fails_with=self._outcome_failure("deployment"))
            deployment.log.append(f"creating {spec.deployment_name} on {spec.endpoint_name} serving "
                                  f"{spec.artifact_uri} with {spec.scoring_script}")
            _STORE.deployments[ref_id] = deployment
            return DeployedRef(ref=_ref(deployment), scoring_url=_scoring_url(deployment))

    def _advance(self, operation: str, ref: dict) -> DeploymentState:
        with _STORE.lock:
            self._raise_if_failing(operation)
            deployment = _deployment(ref)
            if deployment.state == "starting":
                if deployment.polls_left > 0:
                    deployment.polls_left -= 1
                elif deployment.fails_with is not None:
                    deployment.state, deployment.error = "failed", deployment.fails_with
                    deployment.log.append(f"failed: {deployment.fails_with}")
                else:
                    deployment.state = "healthy"
                    deployment.log.append("healthy: answering on /score")
            if deployment.state == "deleted":
                return DeploymentState("failed", error=f"Deployment {deployment.spec.deployment_name} was deleted "
                                                       f"from endpoint {deployment.spec.endpoint_name}.")
            return DeploymentState(deployment.state, error=deployment.error)

    def deployment_state(self, ref: dict) -> DeploymentState:
        return self._advance("deployment_state", ref)

    def deployment_advance(self, ref: dict) -> DeploymentState:
        return self._advance("deployment_advance", ref)

    def deployment_settings(self, ref: dict) -> dict | None:
        with _STORE.lock:
            self._raise_if_failing("deployment_settings")
            deployment = _deployment(ref)
            if deployment.state == "deleted":
                return None
            return {**deployment.spec.settings, **deployment.changed}

    def deployment_logs(self, ref: dict, lines: int = 200) -> str:
        with _STORE.lock:
            self._raise_if_failing("deployment_logs")
            return "\n".join(_deployment(ref).log[-lines:])

    def deployment_delete(self, ref: dict) -> None:
        with _STORE.lock:
            self._raise_if_failing("deployment_delete")
            deployment = _deployment(ref)
            if deployment.state == "deleted":
                return  # already gone is what was asked for
            endpoint = _STORE.endpoints[deployment.spec.endpoint_name]
            share = endpoint.traffic.get(deployment.spec.deployment_name, 0)
            if share > 0:
                raise BackendError(f"Deployment {deployment.spec.deployment_name} still receives {share}% of the "
                                   f"traffic of endpoint {endpoint.name}; set it to 0 before deleting it.")
            deployment.state = "deleted"
            deployment.log.append("deleted")

    def deployment_revive(self, ref: dict, spec: ServingSpec) -> DeployedRef:
        with _STORE.lock:
            self._raise_if_failing("deployment_revive")
            deployment = _deployment(ref)
            deployment.spec, deployment.state, deployment.error = spec, "starting", ""
            deployment.polls_left = int(_STORE.knobs["deployment_polls"])
            deployment.log.append("restarting")
            return DeployedRef(ref=_ref(deployment), scoring_url=_scoring_url(deployment))

    def endpoint_traffic_apply(self, *, endpoint_name: str, traffic: dict[str, int]) -> bool:
        wanted = {name: int(percent) for name, percent in traffic.items()}
        with _STORE.lock:
            self._raise_if_failing("endpoint_traffic_apply")
            endpoint = self._endpoint(endpoint_name)
            live = {d.spec.deployment_name for d in _STORE.deployments.values()
                    if d.spec.endpoint_name == endpoint_name and d.state != "deleted"}
            unknown = sorted(name for name, percent in wanted.items() if percent and name not in live)
            if unknown:
                raise BackendError(f"Traffic for endpoint {endpoint_name} names deployment(s) that do not exist: "
                                   f"{', '.join(unknown)}.")
            if any(p < 0 for p in wanted.values()) or sum(wanted.values()) not in (0, 100):
                raise BackendError(f"Traffic values must add up to 0 or 100, not {sum(wanted.values())}.")
            endpoint.pending = {name: p for name, p in wanted.items() if p}
            endpoint.pending_polls = int(_STORE.knobs["traffic_polls"])
            if endpoint.pending_polls <= 0:
                endpoint.traffic, endpoint.pending = endpoint.pending, None
            return endpoint.pending is None

    def endpoint_traffic_applied(self, *, endpoint_name: str, traffic: dict[str, int]) -> bool:
        with _STORE.lock:
            self._raise_if_failing("endpoint_traffic_applied")
            endpoint = self._endpoint(endpoint_name)
            if endpoint.pending is not None:
                if endpoint.pending_polls > 0:
                    endpoint.pending_polls -= 1
                else:
                    endpoint.traffic, endpoint.pending = endpoint.pending, None
            return endpoint.pending is None and endpoint.traffic == {n: int(p) for n, p in traffic.items() if int(p)}

    def _endpoint(self, name: str) -> _Endpoint:
        endpoint = _STORE.endpoints.get(name)
        if endpoint is None:
            raise BackendError(f"The fake platform has no endpoint {name}.")
        return endpoint

    def endpoint_access(self, endpoint_name: str) -> EndpointAccess | None:
        with _STORE.lock:
            self._raise_if_failing("endpoint_access")
            if not _STORE.knobs["platform_serves"]:
                return None
            endpoint = self._endpoint(endpoint_name)
            return EndpointAccess(scoring_url=f"{SCORING_HOST}/{endpoint.name}/score", key=endpoint.key)

    def serving_notes(self, settings: dict) -> list[str]:
        return ["The fake backend serves nothing: deployments exist only in this process's memory."]


def _ref(deployment: _Deployment) -> dict:
    return {"id": deployment.ref_id, "endpoint": deployment.spec.endpoint_name,
            "deployment": deployment.spec.deployment_name}


def _scoring_url(deployment: _Deployment) -> str:
    return f"{SCORING_HOST}/{deployment.spec.endpoint_name}/{deployment.spec.deployment_name}/score"


def _deployment(ref: dict) -> _Deployment:
    deployment = _STORE.deployments.get(ref.get("id", ""))
    if deployment is None:
        raise BackendError(f"The fake platform has no deployment {ref.get('deployment', ref)}.")
    return deployment
