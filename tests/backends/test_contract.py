"""The contract every ML-platform backend keeps, as the portal relies on it: the same cases against the in-memory
fake, the local backend (real subprocesses: the scripted example trains for real and Azure ML's inference server
serves it) and the azureml backend (the real azure-ai-ml SDK against the fake Azure ML of tests/fakeaml)."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from deployments.models import DeploymentProfile
from mlopsportal import examples
from mlopsportal.backends import get_backend
from mlopsportal.backends.base import (
    READY,
    BackendError,
    ConnectionCheck,
    DeployedRef,
    DeploymentState,
    Inventory,
    MLBackend,
    RegisteredArtifact,
    ServingSpec,
    TrainingStatus,
)
from mlopsportal.backends.fake import FakeBackend
from mlopsportal.backends.fake import reset as fake_reset
from mlopsportal.backends.local import LocalBackend
from mlopsportal.lib import files
from tests.conftest import wait_for

# The azureml case reads its workspace settings from the database; asking for `db` only in its fixture is too late
# (pytest-django then never points the connection at the test database), so every case has it.
pytestmark = pytest.mark.django_db
SCORE = 0.75
# What the scripted example (tests/fixtures/examples/scripted/train.py) writes with --score 0.75.
OUTPUTS = {"metrics.json": json.dumps({"score": SCORE}).encode(), "model.bin": f"model bytes {SCORE}".encode()}


@dataclass
class Platform:
    """One backend under test, and what a case needs to know about it."""
    backend: MLBackend
    compute_target: str
    has_inventory: bool
    # Make the next training job fail; the real backends fail it through its parameters (exit_code) instead.
    arrange_failing_training: Callable[[], None] = lambda: None
    interval: float = 0.3  # between polls
    jobs: list[str] = field(default_factory=list)
    refs: list[dict] = field(default_factory=list)

    def submit(self, job_name: str, **params) -> None:
        self.jobs.append(job_name)
        self.backend.training_submit(job_name=job_name, example=examples.get_example("scripted"),
                                     params={"score": SCORE, **params}, compute_target=self.compute_target,
                                     experiment_name="contract", timeout_seconds=120)

    def finished(self, job_name: str) -> TrainingStatus:
        statuses = []

        def done():
            statuses.append(self.backend.training_status(job_name))
            return statuses[-1].finished

        wait_for(done, timeout=120, interval=self.interval, message=f"job {job_name} to finish")
        return statuses[-1]

    def registered(self, job_name: str, version: int = 1) -> RegisteredArtifact:
        self.submit(job_name)
        status = self.finished(job_name)
        assert status.state == "succeeded", status.error
        return self.backend.model_register(job_id=job_name, model_name="scripted", version=version)

    def deploy(self, artifact: RegisteredArtifact, job_name: str, endpoint: str, name: str) -> DeployedRef:
        spec = ServingSpec(endpoint_name=endpoint, deployment_name=name, artifact_uri=artifact.uri,
                           code_job_id=job_name, scoring_script="score.py",
                           settings=DeploymentProfile(name="contract", instance_count=1,
                                                      request_timeout_ms=5000).serving_settings())
        deployed = self.backend.deployment_create(spec)
        self.refs.append(deployed.ref)
        return deployed

    def settled(self, ref: dict) -> DeploymentState:
        states = []

        def done():
            states.append(self.backend.deployment_advance(ref))
            return states[-1].state != "starting"

        wait_for(done, timeout=120, interval=self.interval, message="the deployment to settle")
        return states[-1]

    def cleanup(self) -> None:
        for ref in self.refs:
            try:
                self.backend.deployment_delete(ref)
            except BackendError:
                pass
        for job_name in self.jobs:
            try:
                self.backend.training_cancel(job_name)
            except BackendError:
                pass


@pytest.fixture
def fake_platform():
    fake_reset()
    # The fake's jobs "write" what the scripted example writes, so every case expects the same files.
    FakeBackend.configure(metrics={"score": SCORE}, outputs=OUTPUTS, training_polls=2, deployment_polls=2)
    yield Platform(FakeBackend(), "fake", has_inventory=True, interval=0.01,
                   arrange_failing_training=lambda: FakeBackend.fail_next("training", "simulated failure"))
    fake_reset()


@pytest.fixture
def local_platform(tmp_path):
    return Platform(LocalBackend(root=tmp_path / "artifacts"), "local", has_inventory=False)


@pytest.fixture
def azureml_platform(azure):
    return Platform(get_backend("azureml"), "cpu-cluster", has_inventory=True)


@pytest.fixture(params=["fake", pytest.param("local", marks=pytest.mark.processes),
                        pytest.param("azureml", marks=pytest.mark.processes)])
def platform(request):
    platform = request.getfixturevalue(f"{request.param}_platform")
    yield platform
    platform.cleanup()


# --- the platform -------------------------------------------------------------------------------------------------
def test_connection_check_returns_typed_results(platform):
    checks = platform.backend.connection_check()
    assert checks and all(isinstance(c, ConnectionCheck) for c in checks)
    assert all(c.ok and c.check and c.message for c in checks), checks


# --- training -----------------------------------------------------------------------------------------------------
def test_training_succeeds_with_its_metrics_and_log(platform):
    platform.submit("contract-ok")
    status = platform.finished("contract-ok")
    assert status.state == "succeeded", status.error
    assert status.metrics == {"score": SCORE}
    assert status.log and not status.error


def test_failing_training_reports_an_error(platform):
    platform.arrange_failing_training()
    platform.submit("contract-fail", exit_code=1)
    status = platform.finished("contract-fail")
    assert status.state == "failed" and status.error.strip()
    assert status.metrics == {}


def test_cancel_ends_a_running_job(platform):
    platform.submit("contract-cancel", sleep=60)
    assert platform.backend.training_status("contract-cancel").state == "running"
    platform.backend.training_cancel("contract-cancel")
    status = platform.finished("contract-cancel")
    assert status.state == "failed" and "cancel" in status.error.lower(), status.error


def test_unknown_compute_target_is_refused(platform):
    assert "nowhere" not in {t.name for t in platform.backend.compute_targets()}
    with pytest.raises(BackendError) as refused:
        platform.backend.training_submit(job_name="contract-nowhere", example=examples.get_example("scripted"),
                                         params={}, compute_target="nowhere", experiment_name="contract",
                                         timeout_seconds=60)
    assert refused.value.permanent and "nowhere" in str(refused.value)


# --- registry and artifacts ---------------------------------------------------------------------------------------
def test_registered_files_are_listed_with_sizes_and_checksums_and_read_back(platform):
    artifact = platform.registered("contract-reg")
    listed = platform.backend.artifact_files(artifact.uri)
    assert listed == artifact.files
    assert {f.path: (f.size, f.sha256) for f in listed} == {
        path: (len(data), hashlib.sha256(data).hexdigest()) for path, data in OUTPUTS.items()}
    assert artifact.sha256 == files.manifest_sha256(listed) and artifact.size == sum(map(len, OUTPUTS.values()))
    for path, data in OUTPUTS.items():
        with platform.backend.artifact_open(artifact.uri, path) as fh:
            assert fh.read() == data
    with pytest.raises(BackendError):
        platform.backend.artifact_open(artifact.uri, "no-such-file")


def test_opening_a_path_outside_the_version_is_refused(platform):
    artifact = platform.registered("contract-escape")
    for path in ("../../secret", "/etc/passwd", "a/../../x", "..", f"../{artifact.files[0].path}"):
        with pytest.raises(BackendError):
            platform.backend.artifact_open(artifact.uri, path)


# --- serving ------------------------------------------------------------------------------------------------------
def test_serving_limits_agree_with_serving_problems(platform):
    """The maximums a backend states are the edges its own check refuses past: what the capacity advisor sizes a
    profile within."""
    from deployments.models import DeploymentProfile

    settings = DeploymentProfile(name="limits").serving_settings()
    for stage in ("staging", "production"):
        limits = platform.backend.serving_limits(stage)
        assert limits.max_instances >= 1 and limits.max_request_timeout_ms >= 1000
        at_edge = {**settings, "instance_count": limits.max_instances,
                   "request_timeout_ms": limits.max_request_timeout_ms}
        assert not {p.field for p in platform.backend.serving_problems(at_edge, stage)} & {
            "instance_count", "request_timeout_ms"}, stage
        if limits.max_request_timeout_ms < 300_000 or limits.max_instances < 100:
            over = {**settings, "instance_count": limits.max_instances + 1,
                    "request_timeout_ms": limits.max_request_timeout_ms + 1}
            fields = {p.field for p in platform.backend.serving_problems(over, stage)}
            assert {"instance_count", "request_timeout_ms"} <= fields, (stage, fields)


def test_deployment_lifecycle(platform):
    backend = platform.backend
    artifact = platform.registered("contract-serve")
    deployed = platform.deploy(artifact, "contract-serve", "contract-prod", "blue")
    state = platform.settled(deployed.ref)
    assert state.state == "healthy", state.error
    assert backend.deployment_state(deployed.ref).state == "healthy"
    # How it runs, as the platform reports it: at least the instances and the request timeout it was given.
    reported = backend.deployment_settings(deployed.ref)
    assert reported["instance_count"] == 1 and reported["request_timeout_ms"] == 5000, reported

    backend.endpoint_traffic_apply(endpoint_name="contract-prod", traffic={"blue": 100})
    wait_for(lambda: backend.endpoint_traffic_applied(endpoint_name="contract-prod", traffic={"blue": 100}),
             timeout=30, message="traffic applied")
    assert backend.deployment_logs(deployed.ref, 50).strip()

    backend.endpoint_traffic_apply(endpoint_name="contract-prod", traffic={})  # nothing may route to it now
    wait_for(lambda: backend.endpoint_traffic_applied(endpoint_name="contract-prod", traffic={}),
             timeout=30, message="traffic removed")
    backend.deployment_delete(deployed.ref)

    def gone():
        state = backend.deployment_state(deployed.ref)
        return state if state.state == "failed" else None

    assert wait_for(gone, timeout=60, message="the deployment to be gone").error.strip()
    backend.deployment_delete(deployed.ref)  # deleting what is gone is no error


def test_inventory_lists_what_was_created(platform):
    backend = platform.backend
    if not platform.has_inventory:
        assert backend.inventory() is None  # the portal's own records are the truth: nothing changes outside it
        return
    artifact = platform.registered("contract-inv")
    deployed = platform.deploy(artifact, "contract-inv", "contract-prod", "blue")
    assert platform.settled(deployed.ref).state == "healthy"

    def settled_inventory():
        found = backend.inventory()
        return found if found.endpoints and all(e.state == READY for e in found.endpoints) else None

    inventory = wait_for(settled_inventory, timeout=30, message="the endpoint to be ready")
    assert isinstance(inventory, Inventory)
    [model] = [m for m in inventory.models if m.name == "scripted"]
    assert [(v.number, v.artifact_uri) for v in model.versions] == [(1, artifact.uri)]
    [endpoint] = inventory.endpoints
    assert (endpoint.name, endpoint.stage, endpoint.state) == ("contract-prod", "production", READY)
    assert endpoint.scoring_url
    [deployment] = endpoint.deployments
    assert (deployment.name, deployment.state, deployment.artifact_uri) == ("blue", READY, artifact.uri)
    assert (deployment.model_name, deployment.model_version) == ("scripted", 1)
    assert backend.deployment_state(deployment.ref).state == "healthy"  # the ref finds it again
