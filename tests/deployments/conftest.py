"""Fixtures for serving tests: a trained Titanic version ready to deploy, a router process, and cleanup."""
import json
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

from deployments.models import DeploymentProfile
from deployments.serving import services
from models_registry import services as registry
from models_registry.models import TrainingRun
from tests.conftest import ROOT, _database_url, wait_for

TITANIC = ROOT / "examples" / "titanic"


_TRAINED: list[Path] = []


def titanic_trained_once() -> Path:
    """Train the Titanic model once per test session (small forest, a few seconds); its output folder."""
    if not _TRAINED:
        import tempfile

        out = Path(tempfile.mkdtemp(prefix="titanic-model-"))
        subprocess.run([sys.executable, "training.py", "--data", "data/titanic.csv", "--output-dir", str(out),
                        "--n_estimators", "40", "--cv_folds", "3"], cwd=TITANIC, check=True, capture_output=True,
                       timeout=300)
        _TRAINED.append(out)
    return _TRAINED[0]


@pytest.fixture
def titanic_outputs() -> Path:
    return titanic_trained_once()


def make_version(user, outputs: Path, *, model_name="titanic", score_py: str | None = None, job_suffix=""):
    """A succeeded run whose job folder holds the example's code (or the given score.py) and the trained model."""
    run = TrainingRun.objects.create(
        experiment_name="serving-test", example="titanic", params={}, compute_target="local", backend="local",
        timeout_seconds=60, status=TrainingRun.Status.SUCCEEDED, launched_by=user, metrics={"cv_accuracy": 0.8})
    job_id = f"run-{run.pk}-serving{job_suffix}"
    job_dir = settings.MLOPS_ARTIFACT_ROOT / "jobs" / job_id
    (job_dir / "code").mkdir(parents=True)
    for path in TITANIC.glob("*.py"):
        shutil.copy(path, job_dir / "code" / path.name)
    if score_py is not None:
        (job_dir / "code" / "score.py").write_text(score_py)
    shutil.copytree(outputs, job_dir / "outputs")
    TrainingRun.objects.filter(pk=run.pk).update(backend_job_id=job_id)
    run.refresh_from_db()
    model, _ = registry.registered_model_ensure(name=model_name, actor=user)
    return registry.model_version_register_from_run(run=run, model=model, actor=user)


@pytest.fixture
def profile(db):
    return DeploymentProfile.objects.create(name="small", instance_count=1, auth_enabled=True,
                                            request_timeout_ms=5000)


@pytest.fixture
def staging(profile, engineer):
    return services.endpoint_create(name="titanic-staging", stage="staging", profile=profile, actor=engineer)


@pytest.fixture(autouse=True)
def stop_deployment_servers():
    """Deployment servers outlive the test that started them on purpose; stop them here."""
    yield
    for state_file in (settings.MLOPS_ARTIFACT_ROOT / "deployments").glob("*/*/server.json"):
        try:
            os.kill(json.loads(state_file.read_text())["pid"], signal.SIGTERM)
        except (OSError, ValueError, KeyError):
            pass


@pytest.fixture
def router_refresh():
    return 0.2


@pytest.fixture
def router(transactional_db, tmp_path, settings, router_refresh):
    """The endpoint router as its own process (manage.py run_router), against the test database, on the port that
    tests/settings.py chose for this session (so workers know it too)."""
    port = int(settings.MLOPS_ROUTER_URL.rsplit(":", 1)[1])
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": _database_url(),
           "DATABASE_CONN_MAX_AGE": "0"}
    log = open(tmp_path / "router.log", "wb")
    process = subprocess.Popen([sys.executable, "manage.py", "run_router", "--port", str(port), "--refresh", str(router_refresh)],
                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return process.poll() is not None and pytest.fail((tmp_path / "router.log").read_text())

    wait_for(up, timeout=30, message="router to listen")
    yield settings.MLOPS_ROUTER_URL
    process.terminate()
    process.wait(10)
    log.close()


def wait_healthy(deployment, timeout=90):
    from deployments.models import Deployment

    def settled():
        deployment.refresh_from_db()
        return deployment.status != Deployment.Status.CREATING

    wait_for(settled, timeout=timeout, message=f"{deployment} to settle")
    return deployment


def pause(seconds: float) -> None:
    time.sleep(seconds)
