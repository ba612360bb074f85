"""The local backend: trains in a supervised subprocess and keeps artifacts on this machine's disk.

Layout under settings.MLOPS_ARTIFACT_ROOT:
    jobs/<job_id>/code/       snapshot of the example's code, the job's working directory
    jobs/<job_id>/outputs/    what the script writes: the model and metrics.json
    jobs/<job_id>/log.txt     the script's stdout and stderr
    jobs/<job_id>/status.json written by the supervisor
    registry/<model>/<version>/  a registered version's files
    deployments/<endpoint>/<deployment>-<ms>/  a deployment server's server.json and server.log
    router/routes.json        the router's table (router.py reads it): endpoints, their deployments and traffic
"""
from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import psutil
from django.conf import settings

from mlopsportal.examples import Example
from mlopsportal.lib import files

from ..base import (
    BackendError,
    ComputeTarget,
    ConnectionCheck,
    DeployedRef,
    DeploymentState,
    EndpointRouting,
    MLBackend,
    RegisteredArtifact,
    ServingSpec,
    TrainingStatus,
    TrainingSubmission,
    open_artifact_file,
)
from .supervisor import CANCEL_FILE

URI_PREFIX = "local:"
# How long a submitted job may go without a status file before we call it lost.
START_GRACE_SECONDS = 30


# What a deployment server's command line holds: its module now, and before the backend became a package (servers
# started then still run after an upgrade, and must still be recognised and stopped).
SERVER_MARKERS = ("mlopsportal.backends.local.server", "mlopsportal.backends.local_server")


def _pid_alive(pid: int, *markers: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # guard against a recycled pid
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return True
    if Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z"):
        return False
    return any(marker in cmdline for marker in markers)


# --- serving ----------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_taken(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop_group(leader: int) -> None:
    """Stop a detached server: SIGTERM to its leader (gunicorn's master stops its workers), SIGKILL to the whole
    group after 15 s."""
    try:
        os.kill(leader, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _pid_alive(leader, *SERVER_MARKERS):
        time.sleep(0.1)
    try:
        os.killpg(leader, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _server_state(folder: Path) -> dict:
    try:
        return json.loads((folder / "server.json").read_text())
    except (OSError, ValueError):
        return {}


class LocalServingMixin:
    """Each deployment is Azure ML's inference server on a port of 127.0.0.1, started by server.py."""

    root: Path
    routed_by_portal = True

    def _deployment_dir(self, ref: dict) -> Path:
        return files.safe_join(self.root, ref["dir"])

    def _start_server(self, spec: ServingSpec, relative_dir: str, port: int) -> DeployedRef:
        code_dir = self.root / "jobs" / spec.code_job_id / "code"
        if not (code_dir / spec.scoring_script).is_file():
            raise BackendError(f"The scoring script {spec.scoring_script} is not in the code of job {spec.code_job_id}.")
        model_dir = self._artifact_dir(spec.artifact_uri)
        if not model_dir.is_dir():
            raise BackendError(f"The model files of {spec.artifact_uri} are missing.")
        folder = files.safe_join(self.root, relative_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "server.json").unlink(missing_ok=True)
        workers = spec.settings.get("instance_count", 1)
        if spec.settings.get("autoscale_enabled"):
            workers = spec.settings.get("min_instances", workers)
        try:
            subprocess.run(
                [sys.executable, "-m", "mlopsportal.backends.local.server", "--dir", str(folder), "--port", str(port),
                 "--code-dir", str(code_dir), "--entry-script", spec.scoring_script, "--model-dir", str(model_dir),
                 "--workers", str(max(1, min(int(workers), 8))),
                 "--timeout-ms", str(spec.settings.get("request_timeout_ms", 60_000))],
                cwd=settings.BASE_DIR, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, check=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            raise BackendError(f"Could not start the inference server: {exc}") from exc
        return DeployedRef(ref={"dir": relative_dir, "port": port}, scoring_url=f"http://127.0.0.1:{port}/score")

    def deployment_plan(self, spec: ServingSpec) -> dict:
        return {"dir": f"deployments/{spec.endpoint_name}/{spec.deployment_name}-{int(time.time() * 1000)}",
                "port": free_port()}

    def deployment_create(self, spec: ServingSpec, plan: dict | None = None) -> DeployedRef:
        plan = plan or self.deployment_plan(spec)
        running = self._servers().get(plan["dir"])
        if running is not None:  # a worker that died after starting it: adopt the server, do not start another
            _, port = running
            return DeployedRef(ref={"dir": plan["dir"], "port": port}, scoring_url=f"http://127.0.0.1:{port}/score")
        port = plan["port"]
        if _port_taken(port):
            port = free_port()
        return self._start_server(spec, plan["dir"], port)

    def _servers(self) -> dict[str, tuple[int, int]]:
        """The inference servers running on this machine from this backend's folder: their folder (relative to the
        root) -> (process group, port), read from the processes themselves (a server may not have written its
        server.json yet)."""
        found = {}
        root = self.root.resolve()
        for process in psutil.process_iter(["pid", "cmdline"]):
            cmdline = process.info["cmdline"] or []
            if not any(marker in part for part in cmdline for marker in SERVER_MARKERS):
                continue
            try:
                folder = Path(cmdline[cmdline.index("--dir") + 1]).resolve()
                port = int(cmdline[cmdline.index("--port") + 1])
                relative = folder.relative_to(root).as_posix()
                group = os.getpgid(process.info["pid"])
            except (ValueError, IndexError, ProcessLookupError):
                continue  # not one of ours, or gone meanwhile
            found.setdefault(relative, (group, port))
        return found

    def deployment_sweep(self, owned: Callable[[], list[dict]]) -> list[str]:
        running = self._servers()
        if not running:
            return []
        kept = {ref.get("dir") for ref in owned()}
        stopped = []
        for relative, (group, port) in running.items():
            if relative not in kept:
                _stop_group(group)
                stopped.append(f"the inference server in {relative} (port {port}), which no deployment owns")
        return stopped

    def deployment_revive(self, ref: dict, spec: ServingSpec) -> DeployedRef:
        self.deployment_delete(ref)  # make sure nothing half-alive holds the port
        port = ref.get("port") or free_port()
        if _port_taken(port):
            port = free_port()  # something else took it meanwhile
        return self._start_server(spec, ref["dir"], port)

    def deployment_state(self, ref: dict) -> DeploymentState:
        folder = self._deployment_dir(ref)
        state = _server_state(folder)
        pid = int(state.get("pid", 0))
        if not state:
            return DeploymentState("starting")
        if not _pid_alive(pid, *SERVER_MARKERS):
            return DeploymentState("failed", error="The inference server exited.\n" + self.deployment_logs(ref, 40))
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ref['port']}/", timeout=2) as response:
                healthy = response.status == 200
        except (OSError, urllib.error.URLError):
            healthy = False
        return DeploymentState("healthy" if healthy else "starting")

    def deployment_settings(self, ref: dict) -> dict | None:
        """What the deployment's server was started with: its worker processes (the local instances) and timeout."""
        state = _server_state(self._deployment_dir(ref))
        if "workers" not in state:
            return None  # not started yet, gone, or started before servers said
        return {"instance_count": state["workers"], "request_timeout_ms": state["timeout_ms"]}

    def deployment_logs(self, ref: dict, lines: int = 200) -> str:
        try:
            text = (self._deployment_dir(ref) / "server.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def deployment_delete(self, ref: dict) -> None:
        state = _server_state(self._deployment_dir(ref))
        pid = int(state.get("pid", 0))
        if pid and _pid_alive(pid, *SERVER_MARKERS):
            _stop_group(pid)
        running = self._servers().get(ref["dir"])  # one that had not written its server.json, or a second one
        if running is not None:
            _stop_group(running[0])

    # --- the router's table: router/routes.json -------------------------------------------------------------------
    @property
    def routes_path(self) -> Path:
        return self.root / "router" / "routes.json"

    def _routes_change(self, change: Callable[[dict], dict | None]) -> None:
        """Read the table, change it and write it back, under a lock so that writers in other processes (web,
        workers, the router's start) lose nothing; written to a temporary file and renamed over the old one, so the
        router reads either table whole. `change` edits the endpoints in place or returns new ones."""
        path = self.routes_path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path.parent / "routes.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
                try:
                    endpoints = json.loads(path.read_text())["endpoints"]
                except FileNotFoundError:
                    endpoints = {}
                changed = change(endpoints)
                endpoints = endpoints if changed is None else changed
                tmp = path.with_name("routes.json.tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the endpoints' keys
                with os.fdopen(fd, "w") as fh:
                    json.dump({"version": 1, "endpoints": endpoints}, fh, indent=1, sort_keys=True)
                os.replace(tmp, path)
        except (OSError, ValueError, KeyError) as exc:
            raise BackendError(f"Could not update the router's table {path}: {exc}", permanent=False) from exc

    def endpoint_configure(self, name: str, *, auth_enabled: bool, key: str, timeout_ms: int) -> None:
        self._routes_change(lambda endpoints: endpoints.setdefault(name, {}).update(
            auth_enabled=auth_enabled, key=key, timeout_ms=timeout_ms))

    def deployment_route_set(self, *, endpoint_name: str, deployment_name: str, scoring_url: str) -> None:
        self._routes_change(lambda endpoints: endpoints.setdefault(endpoint_name, {}).setdefault(
            "deployments", {}).update({deployment_name: scoring_url}))

    def deployment_route_remove(self, *, endpoint_name: str, deployment_name: str) -> None:
        def change(endpoints):
            endpoint = endpoints.get(endpoint_name, {})
            endpoint.get("deployments", {}).pop(deployment_name, None)
            endpoint.get("traffic", {}).pop(deployment_name, None)
        self._routes_change(change)

    def endpoint_traffic_apply(self, *, endpoint_name: str, traffic: dict[str, int]) -> bool:
        """The router routes by these weights as soon as it sees the table change."""
        self._routes_change(lambda endpoints: endpoints.setdefault(endpoint_name, {}).update(
            traffic={name: percent for name, percent in traffic.items() if percent}))
        return True

    def routing_replace(self, read: Callable[[], list[EndpointRouting]]) -> None:
        self._routes_change(lambda endpoints: {e.name: {
            "auth_enabled": e.auth_enabled, "key": e.key, "timeout_ms": e.timeout_ms, "deployments": e.deployments,
            "traffic": {name: percent for name, percent in e.traffic.items() if percent}} for e in read()})

    def serving_notes(self, settings: dict) -> list[str]:
        notes = ["CPU and memory requests are not enforced: the server shares this machine."]
        if settings.get("autoscale_enabled"):
            notes.append(f"Autoscale is not simulated: the server runs min_instances "
                         f"({settings.get('min_instances')}) worker processes; target utilization is ignored.")
        notes.append("Each instance is one worker process of the inference server; max concurrent requests per "
                     "instance is not enforced (a worker handles one request at a time).")
        return notes


class LocalBackend(LocalServingMixin, MLBackend):
    name = "local"

    def __init__(self, root: Path | None = None):
        self.root = Path(root or settings.MLOPS_ARTIFACT_ROOT)

    # --- the platform: this machine ---------------------------------------------------------------------------
    def connection_check(self) -> list[ConnectionCheck]:
        """The artifact folder takes files, and the inference server that deployments run is installed."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".write-check-"):
                pass
            free_gb = shutil.disk_usage(self.root).free / 1e9
        except OSError as exc:
            return [ConnectionCheck("Artifact folder", False,
                                    f"Cannot write to {self.root}: {exc.strerror or exc}. Set MLOPS_ARTIFACT_ROOT "
                                    "(or MLOPS_DATA_DIR) to a folder the portal's user may write.")]
        results = [ConnectionCheck("Artifact folder", True, f"{self.root} is writable ({free_gb:.1f} GB free).")]
        if importlib.util.find_spec("azureml_inference_server_http") is None:
            results.append(ConnectionCheck(
                "Inference server", False, f"azureml-inference-server-http is not installed for {sys.executable}: "
                                           "deployments cannot start. Install requirements.txt."))
        else:
            results.append(ConnectionCheck("Inference server", True, "azureml-inference-server-http is installed."))
        return results

    # --- training ---------------------------------------------------------------------------------------------
    def compute_targets(self) -> list[ComputeTarget]:
        return [ComputeTarget("local", "This machine: a subprocess beside the worker")]

    def _job_dir(self, job_id: str) -> Path:
        if not job_id or "/" in job_id or job_id.startswith("."):
            raise BackendError(f"Invalid job id {job_id!r}.")
        return self.root / "jobs" / job_id

    def training_submit(self, *, job_name, example: Example, params, compute_target, experiment_name,
                        timeout_seconds) -> TrainingSubmission:
        if compute_target not in {t.name for t in self.compute_targets()}:
            raise BackendError(f"Unknown compute target '{compute_target}' for the local backend.")
        job_dir = self._job_dir(job_name)
        code_version = example.code_version()
        dataset_sha256 = files.file_sha256(example.data_path)
        if (job_dir / "status.json").exists():  # a retried submit: the job is already there
            return TrainingSubmission(job_name, code_version, dataset_sha256)
        shutil.rmtree(job_dir, ignore_errors=True)
        (job_dir / "code").mkdir(parents=True)
        (job_dir / "outputs").mkdir()
        for path in example.code_files():
            shutil.copy2(path, job_dir / "code" / path.name)
        command = [sys.executable, example.script, "--data", str(example.data_path.resolve()),
                   "--output-dir", str((job_dir / "outputs").resolve())]
        for name, value in params.items():
            command += [f"--{name}", str(value)]
        (job_dir / "job.json").write_text(json.dumps({
            "experiment_name": experiment_name, "example": example.name, "params": params,
            "command": command, "timeout_seconds": timeout_seconds, "submitted_at": time.time(),
        }, indent=2))
        try:
            subprocess.run(
                [sys.executable, "-m", "mlopsportal.backends.local.supervisor", "--job-dir", str(job_dir),
                 "--timeout", str(timeout_seconds), "--", *command],
                cwd=settings.BASE_DIR, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, check=True, timeout=30,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise BackendError(f"Could not start the training supervisor: {exc}") from exc
        return TrainingSubmission(job_name, code_version, dataset_sha256)

    def _read_log(self, job_dir: Path) -> str:
        log_path = job_dir / "log.txt"
        limit = settings.MLOPS_RUN_LOG_MAX_CHARS
        try:
            with open(log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - limit))
                text = fh.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
        if size > limit:
            text = f"[... {size - limit} earlier bytes not shown ...]\n" + text.split("\n", 1)[-1]
        return text

    def training_status(self, job_id: str) -> TrainingStatus:
        job_dir = self._job_dir(job_id)
        if not job_dir.exists():
            return TrainingStatus("failed", error="The job's folder is gone: it was never submitted or was deleted.")
        log = self._read_log(job_dir)
        try:
            status = json.loads((job_dir / "status.json").read_text())
        except FileNotFoundError:
            age = time.time() - (job_dir / "code").stat().st_mtime
            if age > START_GRACE_SECONDS:
                return TrainingStatus("failed", log=log, error="The training supervisor never started.")
            return TrainingStatus("running", log=log)
        except ValueError:
            return TrainingStatus("running", log=log)  # being rewritten right now; read again next poll
        state = status.get("state")
        if state == "running":
            if not _pid_alive(int(status.get("supervisor_pid", 0)), str(job_dir)):
                return TrainingStatus("failed", log=log, error=(
                    "The training process ended without reporting a result "
                    "(it was killed, or the machine restarted)."))
            return TrainingStatus("running", log=log)
        if state == "succeeded":
            try:
                metrics = json.loads((job_dir / "outputs" / "metrics.json").read_text())
            except (OSError, ValueError) as exc:
                return TrainingStatus("failed", log=log, error=f"Could not read outputs/metrics.json: {exc}")
            return TrainingStatus("succeeded", log=log, metrics=metrics)
        return TrainingStatus("failed", log=log, error=status.get("error") or "Training failed.")

    def training_cancel(self, job_id: str) -> None:
        job_dir = self._job_dir(job_id)
        if not job_dir.is_dir():
            return
        try:
            status = json.loads((job_dir / "status.json").read_text())
        except (OSError, ValueError):
            status = {}  # not started yet, or being rewritten: the supervisor finds the cancel file
        if status.get("state") in ("succeeded", "failed"):
            return
        (job_dir / CANCEL_FILE).touch()
        pid = int(status.get("supervisor_pid", 0))
        if status.get("state") == "running" and pid and _pid_alive(pid, str(job_dir)):
            os.kill(pid, signal.SIGTERM)

    # --- registry and artifacts -------------------------------------------------------------------------------
    def _artifact_dir(self, uri: str) -> Path:
        if not uri.startswith(URI_PREFIX):
            raise BackendError(f"Not a local artifact: {uri}")
        return files.safe_join(self.root, uri[len(URI_PREFIX):])

    def model_register(self, *, job_id: str, model_name: str, version: int) -> RegisteredArtifact:
        outputs = self._job_dir(job_id) / "outputs"
        if not outputs.is_dir():
            raise BackendError(f"Job {job_id} has no outputs to register.")
        relative = f"registry/{model_name}/{version}"
        dest = files.safe_join(self.root, relative)
        files.copy_folder_atomically(outputs, dest)
        entries = files.folder_manifest(dest)
        return RegisteredArtifact(uri=URI_PREFIX + relative, sha256=files.manifest_sha256(entries),
                                  size=sum(e.size for e in entries), files=entries)

    def artifact_files(self, uri: str) -> list[files.FileEntry]:
        folder = self._artifact_dir(uri)
        if not folder.is_dir():
            raise BackendError(f"The artifact folder for {uri} is missing.")
        return files.folder_manifest(folder)

    def artifact_open(self, uri: str, path: str) -> BinaryIO:
        return open_artifact_file(self._artifact_dir, uri, path)

