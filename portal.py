#!/usr/bin/env python3
"""Set up and run the MLOps portal, or its tests, on a machine that has nothing but Python 3.11+.

    python3 portal.py run     # venv + pinned install + migrations + demo users, then web, worker, beat and router
    python3 portal.py ctl status   # supervisorctl on the running portal
    python3 portal.py test    # venv + pinned test install, then the whole test suite

`run` uses the embedded default (SQLite and Celery's filesystem transport under ./var) unless DATABASE_URL and
CELERY_BROKER_URL say otherwise. `test` uses PostgreSQL and Redis on 127.0.0.1 when they answer, and falls back to
the embedded default (with a notice) when they don't; MLOPS_REQUIRE_SERVICES=1 makes a missing one an error.
"""
import argparse
import hashlib
import os
import secrets
import shlex
import socket
import subprocess
import sys
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
    def digest_of(name: str) -> str:
        files = [ROOT / "requirements.txt", ROOT / name, ROOT / "pyproject.toml"]
        return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()

    digest = digest_of(requirements)
    stamp = VENV / f".installed-{requirements}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    dev_stamp = VENV / ".installed-requirements-dev.txt"  # the test set holds the runtime one (-r requirements.txt)
    if requirements == "requirements.txt" and dev_stamp.exists() and dev_stamp.read_text() == digest_of("requirements-dev.txt"):
        return
    say(f"installing pinned dependencies from {requirements} (first time takes a few minutes)")
    subprocess.run([str(VENV_PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-r", str(ROOT / requirements)], check=True)
    # The project itself, editable: the `mlops-portal` command (.venv/bin/mlops-portal) for pipelines.
    subprocess.run([str(VENV_PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "-e",
                    str(ROOT)], check=True)
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


def demo_password_file() -> Path:
    """The demo users' first password, made once: `demo_setup` sets it only on the users it creates."""
    data_dir = Path(os.environ.get("MLOPS_DATA_DIR", ROOT / "var"))
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "demo_password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(9))
        path.chmod(0o600)
    return path


# What `run` keeps up. supervisord (the well-kept process manager from PyPI) restarts whichever exits: at once if it
# had been up for STARTSECS, else after 1 s, 2 s, 3 s ... and gives up (FATAL, logged) after STARTRETRIES tries.
STARTSECS = 3
STARTRETRIES = 10
# Beat keeps nothing that a kill loses (its schedule and last runs are in the database). It normally exits on TERM in
# half a second, but once in the fault suite it never did, and Ctrl-C waited the whole 20 s before the kill.
STOPWAITSECS = {"beat": 3}


def supervisor_config(args: argparse.Namespace, data_dir: Path) -> str:
    """supervisord's configuration for the portal's processes, logging to this terminal."""
    bin_dir = VENV / "bin"
    programs = {
        "web": [bin_dir / "gunicorn", "mlopsportal.wsgi", "--bind", f"{args.host}:{args.port}",
                "--workers", "2", "--threads", "4", "--access-logfile", "-"],
        "worker": [bin_dir / "celery", "-A", "mlopsportal", "worker", "--loglevel", "INFO",
                   "--concurrency", str(args.concurrency), "--without-mingle", "--without-gossip",
                   "--hostname", "worker@%h"],
        "beat": [bin_dir / "celery", "-A", "mlopsportal", "beat", "--loglevel", "INFO", "--pidfile", ""],
        "router": [VENV_PY, "manage.py", "run_router"],
    }

    def quoted(value) -> str:  # supervisor splits commands like a shell and expands %(name)s
        return shlex.quote(str(value)).replace("%", "%%")

    sock = quoted(data_dir / "supervisor.sock")
    password = secrets.token_urlsafe(18)  # the socket is the user's own (0700); this quiets supervisord's warning
    lines = [
        "[supervisord]", "nodaemon=true", f"logfile={quoted(data_dir / 'log' / 'supervisord.log')}",
        "logfile_maxbytes=10MB", "logfile_backups=3", f"pidfile={quoted(data_dir / 'supervisord.pid')}",
        f"childlogdir={quoted(data_dir / 'log')}", "",
        "[unix_http_server]", f"file={sock}", "chmod=0700", "username=portal", f"password={password}", "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
        "[supervisorctl]", f"serverurl=unix://{sock}", "username=portal", f"password={password}", "",
    ]
    for name, command in programs.items():
        lines += [
            f"[program:{name}]", "command=" + " ".join(quoted(part) for part in command), f"directory={quoted(ROOT)}",
            "autostart=true", "autorestart=true", f"startsecs={STARTSECS}", f"startretries={STARTRETRIES}",
            # TERM to the parent only (celery finishes its running tasks, gunicorn its requests); after stopwaitsecs
            # the whole group is killed, the worker's pool and gunicorn's workers with it
            "stopasgroup=false", "killasgroup=true", f"stopwaitsecs={STOPWAITSECS.get(name, 20)}",
            "stdout_logfile=/dev/stdout", "stdout_logfile_maxbytes=0", "redirect_stderr=true", "",
        ]
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    ensure_venv("requirements.txt")
    say("applying migrations")
    manage("migrate", "--noinput", "-v", "0")
    # drf-spectacular's sidecar ships ReDoc too; the portal's API docs are Swagger UI only.
    manage("collectstatic", "--noinput", "-v", "0", "--ignore", "redoc")
    manage("demo_setup", "--password-file", str(demo_password_file()))
    data_dir = Path(os.environ.get("MLOPS_DATA_DIR", ROOT / "var")).resolve()
    (data_dir / "log").mkdir(parents=True, exist_ok=True)
    config = data_dir / "supervisord.conf"
    config.touch(mode=0o600)
    config.chmod(0o600)  # it holds the control socket's password
    config.write_text(supervisor_config(args, data_dir))
    # Beat's reconcile asks supervisord to restart a router that stopped answering (mlopsportal/lib/supervision.py).
    os.environ["MLOPS_SUPERVISOR_CONFIG"] = str(config)
    say(f"portal running at http://{args.host}:{args.port}/ with a worker, beat and the endpoint router, kept up by "
        "supervisord (a process that exits is restarted). Ctrl-C stops them all; deployment servers keep running "
        f"and are routed again at the next start. Status: python3 portal.py ctl status")
    sys.stdout.flush()
    supervisord = VENV / "bin" / "supervisord"
    os.execv(supervisord, [str(supervisord), "--configuration", str(config)])


def cmd_ctl(rest: list[str]) -> int:
    """supervisorctl on the running portal: status, restart worker, tail -f router ..."""
    data_dir = Path(os.environ.get("MLOPS_DATA_DIR", ROOT / "var")).resolve()
    config = data_dir / "supervisord.conf"
    if not config.exists():
        sys.exit("The portal has not been started here yet (python3 portal.py run).")
    return subprocess.run([str(VENV / "bin" / "supervisorctl"), "--configuration", str(config), *rest]).returncode


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
    sub.add_parser("ctl", help="supervisorctl on the running portal (status, restart worker, tail -f router ...)")
    args, rest = parser.parse_known_args()
    if args.command == "test":
        return cmd_test(args, rest)
    if args.command == "ctl":
        return cmd_ctl(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "setup":
        ensure_venv("requirements-dev.txt")
        return 0
    return cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())
