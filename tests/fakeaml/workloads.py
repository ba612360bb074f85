"""What actually runs behind the fake: a command job's process, and an online deployment's inference server.

A job runs `bash -c <command>` in a copy of its code snapshot, in a session of its own (cancel kills the group).
A deployment runs the project's own launcher (mlopsportal.backends.local.server: Azure ML's inference server on
127.0.0.1, detached, pid in server.json), so the fake serves score.py exactly as the portal's local backend does.
"""
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (not reaped yet by whoever adopted it) is dead too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _kill_group(pid: int, grace: float = 3.0) -> None:
    """SIGTERM the process group led by `pid`, then SIGKILL whatever is left after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(pid):
                try:  # the group may outlive its leader by a moment
                    os.killpg(pid, 0)
                except ProcessLookupError:
                    return
            time.sleep(0.05)


def tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    rows = text.splitlines()
    return "\n".join(rows[-lines:] if lines > 0 else rows)


class JobRun:
    """One command job's process; `code` is copied to the working folder first."""

    def __init__(self, folder: Path, code: Path | None, command: str, env: dict[str, str]):
        self.folder, self.command = folder, command
        self.workdir = folder / "wd"
        self.log_path = folder / "user_logs" / "std_log.txt"
        self.env = env
        self.code = code
        self.process: subprocess.Popen | None = None
        self.started_at = self.ended_at = None
        self.start_at = 0.0
        self.cancel_requested = self.killed = False
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if not self.killed and self.process is None:
                self._start()

    def _start(self) -> None:
        if self.code is not None and self.code.is_dir():
            shutil.copytree(self.code, self.workdir, dirs_exist_ok=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # A job sees its own environment, not the submitter's: a few basics, the job's variables, and this venv's
        # python first on PATH (standing in for the job's curated environment).
        env = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")}
        env.update(self.env)
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", os.defpath)
        env["PYTHONUNBUFFERED"] = "1"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(["bash", "-c", self.command], cwd=self.workdir, env=env,
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        self.started_at = time.time()

    def returncode(self) -> int | None:
        if self.process is None:
            return None
        code = self.process.poll()
        if code is not None and self.ended_at is None:
            self.ended_at = time.time()
        return code

    def kill(self) -> None:
        with self._lock:
            self.killed = True
        if self.process is not None and self.process.poll() is None:
            _kill_group(self.process.pid, grace=1.0)
            self.process.wait(5)
        self.returncode()


class DeploymentServer:
    """One deployment's inference server, started through the portal's launcher (mlopsportal.backends.local.server)."""

    def __init__(self, folder: Path, port: int, code: Path, scoring_script: str, model: Path, timeout_ms: int,
                 env: dict[str, str] | None = None):
        self.folder, self.port, self.scoring_script, self.timeout_ms = folder, port, scoring_script, timeout_ms
        self.env = dict(env or {})  # the deployment's environmentVariables
        self.code_dir, self.model_dir = folder / "code", folder / "model"
        self.source_code, self.source_model = code, model
        self.launched_at: float | None = None
        self.stopped = False
        self.launch_error: str | None = None
        self._lock = threading.Lock()  # a stop waits for a start in progress, so nothing is left running

    @property
    def log_path(self) -> Path:
        return self.folder / "server.log"

    def start(self) -> None:
        """Copies code and model in (as the storage initializer would) and launches the detached server."""
        with self._lock:
            if self.stopped:
                return
            try:
                self._launch()
            except Exception as exc:  # reported as the deployment failing, with the reason in its log
                self.launch_error = f"{type(exc).__name__}: {exc}"
                with open(self.log_path, "a") as log:
                    log.write(f"[fake] could not start the inference server: {self.launch_error}\n")

    def _launch(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as log:
            log.write(f"[fake storage initializer] copying code from {self.source_code} and model from "
                      f"{self.source_model}\n")
        shutil.copytree(self.source_code, self.code_dir, dirs_exist_ok=True)
        shutil.copytree(self.source_model, self.model_dir, dirs_exist_ok=True)
        launcher_log = open(self.folder / "launcher.log", "ab")
        launcher = subprocess.Popen(
            [sys.executable, "-m", "mlopsportal.backends.local.server", "--dir", str(self.folder), "--port",
             str(self.port), "--code-dir", str(self.code_dir), "--entry-script", self.scoring_script,
             "--model-dir", str(self.model_dir), "--workers", "1", "--timeout-ms", str(self.timeout_ms)],
            cwd=PROJECT_ROOT, env={**os.environ, **self.env}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=launcher_log, start_new_session=True)
        launcher.wait(30)  # returns as soon as the server has detached
        launcher_log.close()
        self.launched_at = time.monotonic()

    def pid(self) -> int | None:
        try:
            return int(json.loads((self.folder / "server.json").read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None

    def healthy(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=0.5)
        try:
            connection.request("GET", "/")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def state(self) -> str:
        """'starting', 'healthy' or 'dead'."""
        if self.stopped or self.launch_error:
            return "dead"
        if self.launched_at is None:
            return "starting"
        pid = self.pid()
        if pid is None:
            return "dead" if time.monotonic() - self.launched_at > 30 else "starting"
        if not alive(pid):
            return "dead"
        return "healthy" if self.healthy() else "starting"

    def stop(self) -> None:
        with self._lock:
            self.stopped = True
        if self.launched_at is None:
            return
        deadline = time.monotonic() + 5
        pid = self.pid()
        while pid is None and time.monotonic() < deadline:  # launched a moment ago: wait for its pid file
            time.sleep(0.05)
            pid = self.pid()
        if pid is not None:
            _kill_group(pid)
