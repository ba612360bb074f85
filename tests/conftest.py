"""Shared fixtures: one user per role plus an outsider, logged-in clients, real Celery workers, and this process on
the azureml backend against the fake Azure ML of tests/fakeaml."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection

from accounts import roles
from mlopsportal.backends import get_backend
from mlopsportal.backends.fake import FakeBackend
from mlopsportal.backends.fake import reset as fake_reset
from mlopsportal.celery import app as celery_app
from tests.fakeaml.fixtures import fake_aml  # noqa: F401 - the fixture
from workspaces.models import AzureMLWorkspace

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery"


def _user(django_user_model, username, role=None, **extra):
    user = django_user_model.objects.create_user(username=username, password=PASSWORD, **extra)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def engineer(db, django_user_model):
    return _user(django_user_model, "eve-engineer", roles.ENGINEER)


@pytest.fixture
def manager(db, django_user_model):
    return _user(django_user_model, "max-manager", roles.MANAGER)


@pytest.fixture
def admin_user(db, django_user_model):
    return _user(django_user_model, "ada-admin", roles.ADMIN, is_staff=True)


@pytest.fixture
def outsider(db, django_user_model):
    return _user(django_user_model, "otto-outsider")


def _client_for(client, user):
    """A client of its own per user, so one test can act as several people."""
    from django.test import Client

    own = Client()
    own.force_login(user)
    return own


@pytest.fixture
def engineer_client(client, engineer):
    return _client_for(client, engineer)


@pytest.fixture
def manager_client(client, manager):
    return _client_for(client, manager)


@pytest.fixture
def admin_client_(client, admin_user):
    return _client_for(client, admin_user)


@pytest.fixture
def outsider_client(client, outsider):
    return _client_for(client, outsider)


# --- real Celery workers ------------------------------------------------------------------------------------------
def _database_url() -> str:
    """The URL of the test database this process uses, for a worker process to use too."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    auth = f"{user}:{db['PASSWORD']}@" if db.get("PASSWORD") else (f"{user}@" if user else "")
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class CeleryProcess:
    """A real `celery worker` (or `celery beat`) process on the test queue, against the test database."""

    def __init__(self, log_path: Path, kind: str = "worker", extra_env: dict | None = None):
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": _database_url(),
               "DATABASE_CONN_MAX_AGE": "0", **(extra_env or {})}
        if kind == "worker":
            self.nodename = f"test-{time.monotonic_ns()}@{socket.gethostname()}"
            args = ["worker", "--concurrency", "2", "--without-mingle", "--without-gossip", "--without-heartbeat",
                    "--queues", settings.CELERY_TASK_DEFAULT_QUEUE, "--hostname", self.nodename]
            ready = b" ready."
        else:
            args = ["beat", "--pidfile", "", "--schedule", str(log_path.with_suffix(".schedule"))]
            ready = b"beat: Starting"
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "mlopsportal", *args, "--loglevel", "INFO"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while ready not in log_path.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"celery {kind} did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once, as a crash or OOM kill would."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def start_celery(request, transactional_db, tmp_path):
    """Start real Celery processes (`start_celery("beat", VAR="x")`); all are stopped at the end of the test, and
    their logs are printed when it failed."""
    started = []

    def start(kind: str = "worker", **extra_env) -> CeleryProcess:
        process = CeleryProcess(tmp_path / f"{kind}-{len(started)}.log", kind, extra_env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        for process in started:
            lines = process.log_path.read_text(errors="replace").splitlines()
            print(f"\n----- {process.log_path.name} (last 80 lines) -----\n" + "\n".join(lines[-80:]))


@pytest.fixture
def start_worker(start_celery):
    return lambda **extra_env: start_celery("worker", **extra_env)


class SharedWorker:
    """One plain worker for every test that asks for `worker` (no extra environment, never killed), instead of a new
    one per test: a start and a warm stop cost about 2.5 s. Between tests it takes nothing from the queue (tests that
    start workers of their own have the queue to themselves), and a test ends only once the worker holds nothing of
    it: what is queued is purged, what waits for its countdown is revoked, and what runs is waited for. This needs
    Celery's remote control, so only on Redis; on the filesystem broker each test has a worker of its own."""

    def __init__(self, log_dir: Path):
        self.log_dir, self.process, self.started = log_dir, None, 0

    def open(self) -> int:
        """Start taking tasks for a test; the log's length now, so a failed test prints only its own part."""
        if self.process is None or self.process.process.poll() is not None:
            self.started += 1
            self.process = CeleryProcess(self.log_dir / f"shared-worker-{self.started}.log")
            self.name = self.process.nodename
        else:
            answer = celery_app.control.add_consumer(settings.CELERY_TASK_DEFAULT_QUEUE, destination=[self.name],
                                              reply=True, timeout=10)
            assert answer, f"the shared worker did not answer add_consumer:\n{self.tail(0)}"
        return self.process.log_path.stat().st_size

    def close(self) -> None:
        queue = settings.CELERY_TASK_DEFAULT_QUEUE
        celery_app.control.cancel_consumer(queue, destination=[self.name], reply=True, timeout=10)
        inspect = celery_app.control.inspect(destination=[self.name], timeout=5)
        deadline = time.monotonic() + 120
        while True:
            waiting = [task["request"]["id"] for task in (inspect.scheduled() or {}).get(self.name, [])]
            waiting += [task["id"] for task in (inspect.reserved() or {}).get(self.name, [])]
            if waiting:
                celery_app.control.revoke(waiting, destination=[self.name])
            running = (inspect.active() or {}).get(self.name, [])
            celery_app.control.purge()  # what the last running tasks queued
            if not running:
                return
            if time.monotonic() > deadline:
                self.process.stop()  # it will not finish: the next test gets a new one
                self.process = None
                raise AssertionError(f"the shared worker still runs {running} two minutes after its test ended")
            time.sleep(0.1)

    def tail(self, offset: int, lines: int = 80) -> str:
        with open(self.process.log_path, "rb") as log:
            log.seek(offset)
            return "\n".join(log.read().decode(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@pytest.fixture(scope="session")
def _shared_worker(tmp_path_factory):
    shared = SharedWorker(tmp_path_factory.mktemp("shared-worker"))
    yield shared
    shared.stop()


@pytest.fixture
def worker(request, transactional_db, _shared_worker, start_worker):
    """A real worker for this test, with the test settings' environment."""
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        yield start_worker()
        return
    offset = _shared_worker.open()
    yield _shared_worker.process
    try:
        _shared_worker.close()
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed and _shared_worker.process is not None:
            print(f"\n----- shared worker (last 80 lines of this test's part) -----\n{_shared_worker.tail(offset)}")


def wait_for(predicate, timeout: float = 60, interval: float = 0.25, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Sessions and cached permissions live in the cache; no test sees another's."""
    from django.core.cache import cache

    cache.clear()
    yield



# --- the in-memory backend ----------------------------------------------------------------------------------------
@pytest.fixture
def fake(settings):
    """This process on the in-memory fake backend (mlopsportal/backends/fake.py), emptied before and after: for
    pipeline and service tests that need no real processes. Jobs and deployments finish at their first poll."""
    fake_reset()
    settings.MLOPS_BACKEND = "fake"
    FakeBackend.configure(training_polls=0, deployment_polls=0)
    yield FakeBackend()
    fake_reset()


# --- the azureml backend, through the real azure-ai-ml SDK, against the fake Azure ML ------------------------------
AZURE_WORKSPACE = {"subscription_id": "00000000-0000-0000-0000-000000000000", "resource_group": "rg-test",
                   "workspace_name": "ws-test", "aks_compute": "aks-prod", "training_cluster": "cpu-cluster",
                   "staging_on": "managed"}
AZURE_CREDENTIAL = "tests.fakeaml.FakeCredential"


@pytest.fixture
def azure(fake_aml, settings, db):  # noqa: F811
    """This process on the azureml backend, its workspace set to the fake's."""
    settings.MLOPS_BACKEND = "azureml"
    settings.MLOPS_AZURE_CREDENTIAL = AZURE_CREDENTIAL
    AzureMLWorkspace.objects.update_or_create(pk=1, defaults=AZURE_WORKSPACE)
    backend = get_backend("azureml")
    backend.forget_clients()
    yield fake_aml
    backend.forget_clients()


@pytest.fixture
def azure_env(azure):
    """What a worker started by the test needs to be on the same backend and reach the same fake."""
    return {**azure.env(), "MLOPS_BACKEND": "azureml", "MLOPS_AZURE_CREDENTIAL": AZURE_CREDENTIAL}


@pytest.fixture
def azure_worker(start_celery, azure_env):
    return start_celery("worker", **azure_env)


# --- a real browser ----------------------------------------------------------------------------------------------
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = os.environ.get("MLOPS_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser_page():
    if not Path(CHROMIUM).exists():
        if os.environ.get("MLOPS_REQUIRE_BROWSER"):
            pytest.fail(f"Chromium not found at {CHROMIUM} (MLOPS_REQUIRE_BROWSER is set)")
        pytest.skip(f"Chromium not found at {CHROMIUM}; install Debian's chromium package")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(20_000)
        yield page
        browser.close()
        # ORM calls made while Playwright's loop ran used connections of their own; close them here.
        from django.db import connections

        connections.close_all()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def sign_in(page, base: str, user) -> None:
    """Sign `user` in on the login page, as whoever was signed in before signs out (their cookies go)."""
    page.context.clear_cookies()
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_selector("h1")


def look(page, name: str) -> None:
    """Screenshots of the page at 1366 px and 390 px wide (test-artifacts/<name>-<width>.png); at 390 the page itself
    must not scroll sideways (tables scroll inside their cards)."""
    page.set_viewport_size({"width": 1366, "height": 900})
    page.screenshot(path=str(ARTIFACTS / f"{name}-1366.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(ARTIFACTS / f"{name}-390.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{name} is {width} px wide at 390 px"
    page.set_viewport_size({"width": 1366, "height": 900})


def running_promotion(production, version, actor):
    """A running promotion to `production`: what tests pass as `promotion=` to set production up the way the
    pipeline would (production changes only through a promotion or a rollback)."""
    from deployments.models import Endpoint, Promotion

    existing = Promotion.objects.filter(production_endpoint=production, state__in=Promotion.ACTIVE).first()
    if existing is not None:
        return existing
    staging, _ = Endpoint.objects.get_or_create(name=f"{production.name}-for-tests",
                                                defaults={"stage": Endpoint.Stage.STAGING,
                                                          "profile": production.profile})
    return Promotion.objects.create(version=version, staging_endpoint=staging, production_endpoint=production,
                                    requested_by=actor, approval_required=False, reason="set up by a test")
