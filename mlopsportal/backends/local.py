"""The local backend: trains in a supervised subprocess and keeps artifacts on this machine's disk.

Layout under settings.MLOPS_ARTIFACT_ROOT:
    jobs/<job_id>/code/       snapshot of the example's code, the job's working directory
    jobs/<job_id>/outputs/    what the script writes: the model and metrics.json
    jobs/<job_id>/log.txt     the script's stdout and stderr
    jobs/<job_id>/status.json written by the supervisor
    registry/<model>/<version>/  a registered version's files
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from mlopsportal.examples import Example
from mlopsportal.lib import files

from .base import BackendError, ComputeTarget, MLBackend, RegisteredArtifact, TrainingStatus, TrainingSubmission

URI_PREFIX = "local:"
# How long a submitted job may go without a status file before we call it lost.
START_GRACE_SECONDS = 30


def _pid_alive(pid: int, marker: str) -> bool:
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
    return marker in cmdline


class LocalBackend(MLBackend):
    name = "local"

    def __init__(self, root: Path | None = None):
        self.root = Path(root or settings.MLOPS_ARTIFACT_ROOT)

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
                [sys.executable, "-m", "mlopsportal.backends.local_supervisor", "--job-dir", str(job_dir),
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
        try:
            status = json.loads((job_dir / "status.json").read_text())
        except (OSError, ValueError):
            return
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
        try:
            target = files.safe_join(self._artifact_dir(uri), path)
        except ValueError as exc:
            raise BackendError(str(exc)) from exc
        if not target.is_file():
            raise BackendError(f"No file {path} in {uri}.")
        return open(target, "rb")
