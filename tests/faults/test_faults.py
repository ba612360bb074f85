"""The fault suite: the portal as `python3 portal.py run` starts it (supervisord keeping web, worker, beat and the
router up; real inference servers), on its own PostgreSQL database and Redis, with each fault an operator meets
injected for real: kill -9 of the worker at every promotion step, of beat, of the router (and a hung router), of a
scoring server and of the web server, and an admin trying to delete a promotion in flight. Asserted: the promotion
ends succeeded or failed (never stuck, never a second deployment), production traffic is what it should be, no
process runs that no row owns, and the scoring URL answers again within 10 s of the router's death. The table of
faults is printed at the end (tests/faults/conftest.py) and written to test-artifacts/faults.txt."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest
import requests

from mlopsportal.backends.local import LocalBackend
from tests.conftest import ROOT
from tests.receivers import WebhookReceiver

from .conftest import RESULTS

pytestmark = [pytest.mark.processes, pytest.mark.worker]
SEED = {"Pclass": 1, "Sex": 0, "Age": 38, "SibSp": 1, "Parch": 0, "Fare": 71.2833, "Embarked": 2}
FINISHED = ("succeeded", "failed", "rejected")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Portal:
    def __init__(self, root: Path, data: Path, env: dict, dsn: str, web: str, router: str):
        self.root, self.data, self.env, self.dsn, self.web, self.router = root, data, env, dsn, web, router
        self.process: subprocess.Popen | None = None

    def start(self, log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "portal.py", "run", "--port", str(urlparse(self.web).port), "--concurrency", "2"],
            cwd=self.root, env=self.env, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        self.wait(lambda: self.answers(self.web + "/accounts/login/"), 240, "the web server to answer")
        self.wait(lambda: self.answers(self.router + "/"), 60, "the router to answer")

    def answers(self, url: str) -> bool:
        try:
            return requests.get(url, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait(self, predicate, timeout: float, what: str, interval: float = 0.1) -> float:
        """Seconds until `predicate` held; fails the test (with the portal's log) after `timeout`."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process is not None and self.process.poll() is not None:
                pytest.fail(f"portal.py run exited ({self.process.returncode}):\n{self.log.read_text()[-4000:]}")
            if predicate():
                return time.monotonic() - started
            time.sleep(interval)
        pytest.fail(f"no {what} after {timeout} s; portal log:\n{self.log.read_text()[-4000:]}")

    def driver(self, *args) -> dict:
        done = subprocess.run([sys.executable, "-m", "tests.faults.driver", *map(str, args)], cwd=self.root,
                              env=self.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    def ctl(self, *args) -> str:
        return subprocess.run([sys.executable, "portal.py", "ctl", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=30).stdout.strip()

    def pid(self, program: str) -> int:
        match = re.search(rf"^{program}\s+RUNNING\s+pid (\d+)", self.ctl("status", program), re.M)
        return int(match.group(1)) if match else 0

    def kill(self, program: str, sig=signal.SIGKILL) -> int:
        self.wait(lambda: self.pid(program), 15, f"{program} to be RUNNING", interval=0.3)
        pid = self.pid(program)
        os.kill(pid, sig)
        return pid

    def restarted(self, program: str, old: int, timeout: float = 20) -> float:
        return self.wait(lambda: self.pid(program) not in (0, old), timeout, f"new {program}", interval=0.3)

    def sql(self, query: str, *args):
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return conn.execute(query, args).fetchall()

    def promotion(self, pk: int) -> tuple[str, str | None]:
        (state,), = self.sql("SELECT state FROM deployments_promotion WHERE id = %s", pk)
        step = self.sql("SELECT kind || ' #' || position FROM deployments_promotionstep WHERE promotion_id = %s "
                        "AND status IN ('pending', 'running', 'waiting') ORDER BY position LIMIT 1", pk)
        return state, step[0][0] if step else None

    def score(self) -> bool:
        key = self.sql("SELECT key FROM deployments_endpoint WHERE name = 'titanic-prod'")[0][0]
        try:
            response = requests.post(self.router + "/endpoints/titanic-prod/score", json=SEED, timeout=3,
                                     headers={"Authorization": f"Bearer {key}"})
            return response.status_code == 200 and "prediction" in response.json()
        except (requests.RequestException, ValueError):
            return False

    def servers(self) -> dict[str, tuple[int, int]]:
        """Inference servers running from this portal's artifacts, read off the processes as its backend does:
        folder (relative) -> (process group, port)."""
        return LocalBackend(self.data / "artifacts")._servers()

    def interrupt(self) -> int:
        """Ctrl-C, as a user at the terminal: supervisord stops its programs and exits. Returns its exit code."""
        os.kill(self.process.pid, signal.SIGINT)
        code = self.process.wait(60)
        self.process = None
        return code

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGINT)  # Ctrl-C: supervisord stops its programs
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        for group, _ in self.servers().values():  # deployment servers outlive the portal on purpose
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    database_url, broker_url = os.environ.get("DATABASE_URL", ""), os.environ.get("CELERY_BROKER_URL", "")
    if not (database_url.startswith("postgres") and broker_url.startswith("redis")):
        if os.environ.get("MLOPS_REQUIRE_SERVICES") in {"1", "true", "yes"}:
            pytest.fail("the fault suite needs PostgreSQL and Redis")
        pytest.skip("the fault suite runs on PostgreSQL and Redis (portal.py test uses them when they answer)")
    name = f"mlops_faults_{os.getpid()}"
    admin_dsn = urlparse(database_url)._replace(path="/postgres").geturl()
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    dsn = urlparse(database_url)._replace(path=f"/{name}").geturl()
    data = tmp_path_factory.mktemp("portal-data")
    web, router = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    redis = urlparse(broker_url)._replace(path="/13").geturl()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLOPS_", "CELERY_", "DJANGO_")) and k not in {"DATABASE_URL", "REDIS_CACHE_URL"}}
    env.update({
        "DATABASE_URL": dsn, "CELERY_BROKER_URL": redis, "REDIS_CACHE_URL": redis, "MLOPS_DATA_DIR": str(data),
        "MLOPS_VENV": sys.prefix, "MLOPS_ROUTER_URL": router, "CELERY_QUEUE": f"faults-{os.getpid()}",
        # Beat checks often and a stale promotion is taken over soon, so that each fault costs seconds here.
        "MLOPS_RESUME_STALE_EVERY": "2", "MLOPS_RECONCILE_EVERY": "3", "MLOPS_PROMOTION_STALE_SECONDS": "6",
        "MLOPS_PROMOTION_LEASE_SECONDS": "20", "MLOPS_TRAINING_STALE_SECONDS": "10", "MLOPS_PROMOTION_STEP_RETRIES": "6",
        "MLOPS_DEPLOY_POLL_SECONDS": "0.5", "MLOPS_TRAINING_POLL_SECONDS": "0.5", "PYTHONUNBUFFERED": "1",
        "MLOPS_WEBHOOK_ALLOW_PRIVATE": "1",  # the suite's webhook receiver is on 127.0.0.1
        "MLOPS_WEBHOOK_TIMEOUT_SECONDS": "3",  # a delivery held by a killed worker is taken over after 9 s
    })
    portal = Portal(ROOT, data, env, dsn, web, router)
    log = ROOT / "test-artifacts" / "faults-portal.log"
    log.parent.mkdir(exist_ok=True)
    log.write_bytes(b"")
    try:
        portal.start(log)
        yield portal
    finally:
        portal.stop()
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def record(fault: str, ok: bool, detail: str) -> None:
    RESULTS.append((fault, "survived" if ok else "FAILED", detail))


def admin_tries_to_delete(portal: Portal, promotion: int) -> tuple[int, int]:
    session = requests.Session()
    session.get(portal.web + "/admin/login/", timeout=10)
    password = (portal.data / "demo_password").read_text().strip()
    session.post(portal.web + "/admin/login/?next=/admin/", timeout=10, data={
        "username": "admin", "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"],
        "next": "/admin/"}, headers={"Referer": portal.web + "/admin/login/"})
    url = f"{portal.web}/admin/deployments/promotion/{promotion}/delete/"
    page = session.get(url, timeout=10)
    posted = session.post(url, data={"post": "yes", "csrfmiddlewaretoken": session.cookies["csrftoken"]},
                          headers={"Referer": url}, timeout=10)
    return page.status_code, posted.status_code


def logs_in(portal: Portal, username: str, password: str) -> bool:
    session = requests.Session()
    session.get(portal.web + "/accounts/login/", timeout=10)
    response = session.post(portal.web + "/accounts/login/", timeout=10, allow_redirects=False, data={
        "username": username, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": portal.web + "/accounts/login/"})
    return response.status_code == 302


def webhook_delivery_survives_a_dead_worker(portal: Portal) -> None:
    """kill -9 of the worker while it waits on a receiver: the delivery is held for the attempt's timeout, then
    beat's resume sends it again; it ends sent, once, with the same delivery id the receiver can drop twice on."""
    release = threading.Event()
    hook = WebhookReceiver(hold=release)  # the first POST hangs until released
    try:
        hook.secret = portal.driver("subscribe", hook.url)["secret"]
        assert portal.driver("emit")["queued"] == 1
        portal.wait(lambda: hook.received, 30, "the webhook delivery to reach the receiver")
        old = portal.kill("worker")
        portal.restarted("worker", old)
        release.set()
        took = portal.wait(lambda: portal.sql("SELECT status FROM webhooks_delivery") == [("sent",)], 120,
                           "the webhook delivery to be sent after the worker's death", interval=0.5)
        (delivery,) = portal.driver("deliveries")["deliveries"]
        ids = {got["delivery"] for got in hook.received}
        ok = delivery["attempts"] == [200] and len(hook.received) >= 2 and len(ids) == 1 and \
            all(got["ok"] for got in hook.received)
        record("kill -9 worker mid webhook delivery", ok,
               f"sent {took:.0f} s after the kill, attempts logged {delivery['attempts']}; the receiver got the same "
               f"delivery id {len(hook.received)} times, signed")
        assert ok, (delivery, hook.received)
    finally:
        hook.close()


def test_every_fault_is_survived(portal):
    ids = portal.driver("prepare")
    first = portal.driver("promote", ids["v1"], ids["stress"])["promotion"]
    portal.wait(lambda: portal.promotion(first)[0] in ("awaiting", *FINISHED), 240, "first promotion to await")
    assert portal.promotion(first)[0] == "awaiting", portal.driver("state", first)
    portal.driver("approve", first)
    portal.wait(lambda: portal.promotion(first)[0] in FINISHED, 240, "first promotion to finish")
    assert portal.promotion(first)[0] == "succeeded", portal.driver("state", first)
    assert portal.score()

    # A second promotion, with the worker killed as each of its steps is reached.
    second = portal.driver("promote", ids["v2"], ids["stress"])["promotion"]
    killed_at, deadline = [], time.monotonic() + 600
    while time.monotonic() < deadline:
        state, step = portal.promotion(second)
        if state in FINISHED:
            break
        if state == "awaiting":
            statuses = admin_tries_to_delete(portal, second)
            still = portal.promotion(second)[0] == "awaiting"
            record("admin deletes the promotion awaiting approval", statuses == (403, 403) and still,
                   f"delete page and POST: HTTP {statuses}; the promotion is {portal.promotion(second)[0]}")
            assert statuses == (403, 403) and still
            if not any(s.startswith("approval") for s in killed_at):  # the worker dies while the promotion waits
                old = portal.kill("worker")
                killed_at.append("approval")
                took = portal.restarted("worker", old)
                record("kill -9 worker during approval", True, f"supervisord restarted it in {took:.1f} s")
            portal.driver("approve", second)
            continue
        if step and step not in killed_at and state == "running":
            old = portal.kill("worker")
            killed_at.append(step)
            took = portal.restarted("worker", old)
            record(f"kill -9 worker during {step}", True, f"supervisord restarted it in {took:.1f} s")
        time.sleep(0.1)
    state, _ = portal.promotion(second)
    facts = portal.driver("state", second)
    ended = state in ("succeeded", "failed")
    record("promotion with the worker killed at every step", ended,
           f"ended {state} after {len(killed_at)} kills" + (f": {facts['failure_reason']}" if state == "failed" else ""))
    assert ended, facts
    # Every step took a kill: the functional step runs enough cases to last longer than one poll (0.1 s).
    kinds = {step.split(" #")[0] for step in killed_at}
    assert {"deploy_staging", "functional", "stress", "approval", "deploy_production", "traffic"} <= kinds, killed_at
    prod = facts["prod"]
    serving = {d["version"]: d["traffic"] for d in prod.values() if d["traffic"]}
    expected = {2: 100} if state == "succeeded" else {1: 100}
    assert serving == expected, facts
    assert all(count <= 2 for count in facts["production_creates"].values()), facts  # v1's blue, then v2's green
    assert len([d for d in prod.values() if d["version"] == 2]) <= 1, facts  # never two deployments of v2
    record("production traffic after the promotion", serving == expected, f"{serving} (version: percent)")
    assert portal.wait(portal.score, 30, "scoring after the promotion") < 30

    webhook_delivery_survives_a_dead_worker(portal)

    old = portal.kill("beat")
    took = portal.restarted("beat", old)
    record("kill -9 beat", True, f"restarted in {took:.1f} s")

    portal.kill("router")
    took = portal.wait(portal.score, 10, "the scoring URL after the router's death")
    record("kill -9 router", took <= 10, f"scoring URL answered again after {took:.1f} s")

    old = portal.kill("router", signal.SIGSTOP)  # alive but hung: only beat's reconcile can tell
    took = portal.wait(portal.score, 45, "the scoring URL after the router hung")
    record("router hung (SIGSTOP)", portal.pid("router") != old, f"reconcile had it restarted; answered after {took:.1f} s")

    serving_dir = next(d["dir"] for d in prod.values() if d["traffic"])
    state_file = portal.data / "artifacts" / serving_dir / "server.json"
    os.killpg(json.loads(state_file.read_text())["pid"], signal.SIGKILL)
    time.sleep(0.5)
    took = portal.wait(portal.score, 90, "the scoring URL after its server's death", interval=0.5)
    record("kill -9 the serving inference server", True, f"reconcile restarted it; answered after {took:.1f} s")

    old = portal.kill("web")
    took = portal.restarted("web", old)  # its workers may answer a moment longer: the new master must be up
    took += portal.wait(lambda: portal.answers(portal.web + "/accounts/login/"), 20, "the web server after kill -9")
    record("kill -9 web server (gunicorn master)", True, f"a new master answered after {took:.1f} s")

    def owned_only():
        owned = set(portal.driver("state")["owned"])
        return set(portal.servers()) <= owned

    portal.wait(owned_only, 30, "every running server to be owned by a row", interval=2)
    running = portal.servers()
    record("no process that no row owns", True, f"{len(running)} inference servers running, all owned")
    live = [d for d in portal.driver("state")["prod"].values()]
    assert len(running) == len(set(running)) and len(live) <= 2

    # Ctrl-C, then `portal.py run` again, as a user would: a changed password stays, production serves again.
    first_password = (portal.data / "demo_password").read_text().strip()
    portal.driver("set-password", "engineer", "a changed password 4711")
    code = portal.interrupt()
    portal.start(portal.log)
    kept = logs_in(portal, "engineer", "a changed password 4711") and not logs_in(portal, "engineer", first_password)
    took = portal.wait(portal.score, 60, "scoring after the restart")
    record("Ctrl-C, then portal.py run again", code == 0 and kept,
           f"exit code {code}; the changed password {'kept' if kept else 'LOST'}; scoring answered {took:.1f} s "
           "after the web server and router were up again")
    assert code == 0 and kept
