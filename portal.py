#!/usr/bin/env python3
"""Set up and run the MLOps portal, or its tests, on a machine that has nothing but Python 3.11+.

    python3 portal.py run     # venv + pinned install + migrations + demo users, then web, worker and beat
    python3 portal.py test    # venv + pinned test install, then the whole test suite

`run` uses the embedded default (SQLite and Celery's filesystem transport under ./var) unless DATABASE_URL and
CELERY_BROKER_URL say otherwise. `test` uses PostgreSQL and Redis on 127.0.0.1 when they answer, and falls back to
the embedded default (with a notice) when they don't; MLOPS_REQUIRE_SERVICES=1 makes a missing one an error.
"""
import argparse
import hashlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("MLOPS_VENV", ROOT / ".venv"))
VENV_PY = VENV / "bin" / "python"


def say(message: str) -> None:
    print(f"[portal] {message}", flush=True)


def ensure_venv(requirements: str) -> None:
    """Create .venv and install the pinned requirements, again only when the requirement files change."""
    if sys.version_info < (3, 11):
        sys.exit("The portal needs Python 3.11 or newer.")
    if not VENV_PY.exists():
        say(f"creating virtualenv in {VENV}")
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    files = [ROOT / "requirements.txt", ROOT / requirements]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()
    stamp = VENV / f".installed-{requirements}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    say(f"installing pinned dependencies from {requirements} (first time takes a few minutes)")
    subprocess.run([str(VENV_PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-r", str(ROOT / requirements)], check=True)
    stamp.write_text(digest)


def in_venv(args: list[str]) -> list[str]:
    return [str(VENV_PY), *args]


def manage(*args: str, env=None) -> None:
    subprocess.run(in_venv(["manage.py", *args]), cwd=ROOT, check=True, env=env)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def demo_password() -> str:
    data_dir = Path(os.environ.get("MLOPS_DATA_DIR", ROOT / "var"))
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "demo_password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(9))
        path.chmod(0o600)
    return path.read_text().strip()


def cmd_run(args: argparse.Namespace) -> int:
    ensure_venv("requirements.txt")
    say("applying migrations")
    manage("migrate", "--noinput", "-v", "0")
    manage("collectstatic", "--noinput", "-v", "0")
    manage("demo_setup", "--password", demo_password())
    bin_dir = VENV / "bin"
    processes = {
        "worker": [str(bin_dir / "celery"), "-A", "mlopsportal", "worker", "--loglevel", "INFO",
                   "--concurrency", str(args.concurrency), "--without-mingle", "--without-gossip",
                   "--hostname", "worker@%h"],
        "beat": [str(bin_dir / "celery"), "-A", "mlopsportal", "beat", "--loglevel", "INFO",
                 "--pidfile", ""],
        "web": [str(bin_dir / "gunicorn"), "mlopsportal.wsgi", "--bind", f"{args.host}:{args.port}",
                "--workers", "2", "--threads", "4", "--access-logfile", "-"],
        "router": [str(VENV_PY), "manage.py", "run_router"],
    }
    children = {name: subprocess.Popen(cmd, cwd=ROOT) for name, cmd in processes.items()}
    say(f"portal running at http://{args.host}:{args.port}/ with a worker, beat and the endpoint router; "
        "Ctrl-C stops them (deployments keep serving)")
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                say(f"{name} exited with code {child.returncode}; stopping the others")
                exit_code = child.returncode or 1
                stopping = True
        time.sleep(0.5)
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children.values():
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()
    return exit_code


def cmd_test(args: argparse.Namespace, pytest_args: list[str]) -> int:
    ensure_venv("requirements-dev.txt")
    env = dict(os.environ)
    require = env.get("MLOPS_REQUIRE_SERVICES", "") in {"1", "true", "yes"}
    # (variable, port, URL when the service answers, what happens without it)
    services = [
        ("DATABASE_URL", 5432, "postgres://postgres@127.0.0.1:5432/mlops", "PostgreSQL", "testing on SQLite instead"),
        ("CELERY_BROKER_URL", 6379, "redis://127.0.0.1:6379/15", "Redis", "the test worker uses the filesystem queue"),
        ("REDIS_CACHE_URL", 6379, "redis://127.0.0.1:6379/14", "Redis", "the cache lives in files"),
    ]
    for variable, port, url, name, fallback in services:
        if variable in env:
            continue
        if port_open("127.0.0.1", port):
            env[variable] = url
        elif require:
            sys.exit(f"{name} is not answering on 127.0.0.1:{port} (MLOPS_REQUIRE_SERVICES is set).")
        else:
            say(f"NOTICE: no {name} on 127.0.0.1:{port}; {fallback}")
    say(f"database: {env.get('DATABASE_URL', 'sqlite (embedded)')}; broker: {env.get('CELERY_BROKER_URL', 'filesystem')}")
    return subprocess.run(in_venv(["-m", "pytest", *pytest_args]), cwd=ROOT, env=env).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="set up and start the portal with a worker and beat")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--concurrency", type=int, default=2, help="worker processes")
    sub.add_parser("test", help="set up and run the test suite (extra arguments go to pytest)")
    sub.add_parser("setup", help="only create the virtualenv and install the pinned dependencies")
    args, rest = parser.parse_known_args()
    if args.command == "test":
        return cmd_test(args, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "setup":
        ensure_venv("requirements-dev.txt")
        return 0
    return cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())
