"""Watches one local training job: runs the script, enforces its timeout, and leaves a status file behind.

Started by the local backend and detached from the worker that started it, so a worker that dies (or restarts) does
not take the training with it: any worker can read the status file later and carry on. Uses only the standard
library (and a helper of this package) so it starts fast and needs no Django.

    python -m mlopsportal.backends.local.supervisor --job-dir DIR --timeout SECONDS -- python training.py ...
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlopsportal.lib.process import detach

TERM_GRACE_SECONDS = 5
# Left in the job folder by a cancel that came before this supervisor wrote its pid (or as well as its SIGTERM).
CANCEL_FILE = "cancel-requested"


def write_status(job_dir: Path, **fields) -> None:
    tmp = job_dir / "status.json.tmp"
    tmp.write_text(json.dumps(fields))
    os.replace(tmp, job_dir / "status.json")


def log_tail(log_path: Path, lines: int = 15) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def check_outputs(outputs: Path) -> str:
    """The job contract: outputs/ holds metrics.json (a JSON object) and the model. Returns an error or ''."""
    metrics_file = outputs / "metrics.json"
    if not metrics_file.is_file():
        return "the training script exited 0 but wrote no outputs/metrics.json"
    try:
        metrics = json.loads(metrics_file.read_text())
    except ValueError as exc:
        return f"outputs/metrics.json is not valid JSON: {exc}"
    if not isinstance(metrics, dict):
        return "outputs/metrics.json must hold a JSON object of metric name to number"
    if not any(p.is_file() and p.name != "metrics.json" for p in outputs.rglob("*")):
        return "the training script wrote metrics but no model file into outputs/"
    return ""


def supervise(job_dir: Path, timeout: float, command: list[str]) -> int:
    log_path = job_dir / "log.txt"
    outputs = job_dir / "outputs"
    outputs.mkdir(exist_ok=True)
    started = time.time()
    stop_reason = ""

    def on_term(signum, frame):
        nonlocal stop_reason
        stop_reason = stop_reason or "canceled"

    signal.signal(signal.SIGTERM, on_term)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "ab", buffering=0) as log:
        try:
            child = subprocess.Popen(command, cwd=job_dir / "code", stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        except OSError as exc:
            write_status(job_dir, state="failed", error=f"could not start the training script: {exc}",
                         started_at=started, finished_at=time.time())
            return 1
        write_status(job_dir, state="running", supervisor_pid=os.getpid(), child_pid=child.pid, started_at=started)
        deadline = time.monotonic() + timeout
        while child.poll() is None:
            if not stop_reason and (job_dir / CANCEL_FILE).exists():
                stop_reason = "canceled"
            if not stop_reason and time.monotonic() > deadline:
                stop_reason = f"timed out after {timeout:g} s"
            if stop_reason:
                child.terminate()
                try:
                    child.wait(TERM_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
                break
            time.sleep(0.2)
        code = child.returncode
        if stop_reason:
            log.write(f"\n[portal] training stopped: {stop_reason}\n".encode())

    finished = time.time()
    if stop_reason:
        write_status(job_dir, state="failed", error=f"Training {stop_reason}.", exit_code=code,
                     started_at=started, finished_at=finished)
    elif code != 0:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        tail = log_tail(log_path)
        write_status(job_dir, state="failed", exit_code=code, started_at=started, finished_at=finished,
                     error=f"The training script {how}." + (f"\nLast lines of its log:\n{tail}" if tail else ""))
    elif problem := check_outputs(outputs):
        write_status(job_dir, state="failed", exit_code=code, error=f"Training output is incomplete: {problem}.",
                     started_at=started, finished_at=finished)
    else:
        write_status(job_dir, state="succeeded", exit_code=0, started_at=started, finished_at=finished)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--job-dir", required=True, type=Path)
    parser.add_argument("--timeout", required=True, type=float)
    parser.add_argument("--foreground", action="store_true", help="do not detach (for debugging)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no training command given")
    if not args.foreground:
        detach()  # the supervisor lives on whatever happens to the worker that started it
    return supervise(args.job_dir.resolve(), args.timeout, command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
