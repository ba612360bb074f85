"""The local backend's artifact store: checksums, atomic copies, and no way out of the artifact root; telling its
deployment servers from other processes."""
import json
import subprocess
import sys

import pytest

from mlopsportal.backends import BackendError
from mlopsportal.backends.local import LocalBackend
from mlopsportal.lib import files
from tests.conftest import ROOT


def test_register_copies_outputs_with_checksums(tmp_path):
    backend = LocalBackend(root=tmp_path)
    outputs = tmp_path / "jobs" / "run-1-x" / "outputs"
    outputs.mkdir(parents=True)
    (outputs / "model.bin").write_bytes(b"abc")
    (outputs / "metrics.json").write_text("{}")
    artifact = backend.model_register(job_id="run-1-x", model_name="m", version=1)
    assert artifact.uri == "local:registry/m/1"
    assert {f.path for f in artifact.files} == {"model.bin", "metrics.json"}
    sha = {f.path: f.sha256 for f in artifact.files}["model.bin"]
    assert sha == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert artifact.sha256 == files.manifest_sha256(backend.artifact_files(artifact.uri))
    assert backend.artifact_open(artifact.uri, "model.bin").read() == b"abc"


def test_reregister_after_crash_replaces_partial_copy(tmp_path):
    backend = LocalBackend(root=tmp_path)
    outputs = tmp_path / "jobs" / "run-1-x" / "outputs"
    outputs.mkdir(parents=True)
    (outputs / "model.bin").write_bytes(b"new")
    stale = tmp_path / "registry" / "m" / "1"
    stale.mkdir(parents=True)
    (stale / "leftover").write_text("from a crashed attempt")
    artifact = backend.model_register(job_id="run-1-x", model_name="m", version=1)
    assert [f.path for f in artifact.files] == ["model.bin"]


@pytest.mark.parametrize("path", ["../../secret", "/etc/passwd", "a/../../../x"])
def test_artifact_open_refuses_paths_outside(tmp_path, path):
    backend = LocalBackend(root=tmp_path)
    (tmp_path / "registry" / "m" / "1").mkdir(parents=True)
    with pytest.raises(BackendError):
        backend.artifact_open("local:registry/m/1", path)


def test_invalid_job_ids_are_refused(tmp_path):
    backend = LocalBackend(root=tmp_path)
    for job_id in ("", "../x", ".hidden"):
        with pytest.raises(BackendError):
            backend.training_status(job_id)


@pytest.mark.parametrize("task_path, service", [("deployments.serving.tasks.deployment_poll",
                                                 "deployments.serving.services.deployment_poll"),
                                                ("models_registry.tasks.training_run_poll",
                                                 "models_registry.services.training_run_poll")])
def test_tasks_retry_no_sooner_than_the_platform_asks(monkeypatch, task_path, service):
    """A throttled platform (429 with Retry-After: 30) makes the task wait 30 s, not the 5 s of its first backoff."""
    from django.utils.module_loading import import_string

    task = import_string(task_path)
    asked = []

    def refuse(**_):
        raise BackendError("throttled", permanent=False, retry_after=30)

    def retry(*, exc, countdown):
        asked.append((exc, countdown))
        return RuntimeError("retried")

    monkeypatch.setattr(service, refuse)
    monkeypatch.setattr(task, "retry", retry)
    with pytest.raises(RuntimeError, match="retried"):
        task(1)
    assert asked[0][1] == 30 and str(asked[0][0]) == "throttled"
    assert BackendError("busy", permanent=False).retry_countdown(0) == 5  # without Retry-After: the backoff


def test_connection_check_writes_to_the_artifact_root(tmp_path):
    checks = LocalBackend(root=tmp_path / "artifacts").connection_check()
    assert [(c.check, c.ok) for c in checks] == [("Artifact folder", True), ("Inference server", True)]
    assert not list((tmp_path / "artifacts").iterdir())  # the probe file is gone
    (tmp_path / "taken").write_text("a file, not a folder")
    [check] = LocalBackend(root=tmp_path / "taken").connection_check()
    assert (check.check, check.ok) == ("Artifact folder", False) and "MLOPS_ARTIFACT_ROOT" in check.message


def test_a_cancel_before_the_supervisor_started_is_not_lost(tmp_path):
    """Cancel can come between submit and the detached supervisor writing its pid: it is left in the job folder."""
    backend = LocalBackend(root=tmp_path)
    job_dir = tmp_path / "jobs" / "run-1-cancel"
    (job_dir / "code").mkdir(parents=True)
    backend.training_cancel("run-1-cancel")  # no status.json yet
    subprocess.run([sys.executable, "-m", "mlopsportal.backends.local.supervisor", "--foreground", "--job-dir",
                    str(job_dir), "--timeout", "120", "--", sys.executable, "-c", "import time; time.sleep(60)"],
                   cwd=ROOT, check=True, timeout=30)
    status = backend.training_status("run-1-cancel")
    assert (status.state, status.error) == ("failed", "Training canceled.")


@pytest.mark.parametrize("module", ["mlopsportal.backends.local.server", "mlopsportal.backends.local_server"])
def test_deployment_servers_started_before_and_after_the_package_move_are_recognised(tmp_path, module):
    """A server started by an older portal (module local_server) is still known as alive, and deleting its
    deployment still stops it; a process that is not a server, on a recycled pid, counts as exited."""
    backend = LocalBackend(root=tmp_path)
    folder = tmp_path / "deployments" / "e" / "blue-1"
    folder.mkdir(parents=True)
    ref = {"dir": "deployments/e/blue-1", "port": 9}
    # The stand-in's command line carries the module's name the way `python -m <module>` does.
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", module])
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (folder / "server.json").write_text(json.dumps({"pid": stranger.pid, "port": 9}))
        assert backend.deployment_state(ref).state == "failed"
        (folder / "server.json").write_text(json.dumps({"pid": server.pid, "port": 9}))
        assert backend.deployment_state(ref).state == "starting"  # alive; nothing answers on port 9
        backend.deployment_delete(ref)
        assert server.wait(5) == -15  # stopped by SIGTERM
    finally:
        for process in (server, stranger):
            process.kill()
            process.wait()
