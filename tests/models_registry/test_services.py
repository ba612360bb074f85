"""Registry services without a worker: parameter rules, the broker being down, registration rules."""
import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditEvent
from mlopsportal import examples
from mlopsportal.celery import app as celery_app
from mlopsportal.lib.queue import QueueUnavailable
from models_registry import services
from models_registry.models import TrainingRun

from .factories import make_model, make_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def titanic():
    return examples.get_example("titanic")


def test_params_default_and_cast(titanic):
    cleaned = services.example_params_clean(example=titanic, raw={"n_estimators": "50", "test_size": 0.3})
    assert cleaned["n_estimators"] == 50 and cleaned["test_size"] == 0.3
    assert cleaned["max_depth"] == 7  # default from the manifest
    assert cleaned["max_features"] == "sqrt"


@pytest.mark.parametrize("raw, field, message", [
    ({"n_estimators": "many"}, "n_estimators", "must be a whole number"),
    ({"n_estimators": 5}, "n_estimators", "must be at least 10"),
    ({"test_size": 0.9}, "test_size", "must be at most 0.5"),
    ({"test_size": "nan"}, "test_size", "must be a number"),
    ({"max_features": "half"}, "max_features", "must be one of sqrt, log2, all"),
    ({"n_estimators": True}, "n_estimators", "must be a number"),
    ({"gamma": 1}, "__all__", "Unknown parameter(s) for titanic: gamma"),
])
def test_params_rejected(titanic, raw, field, message):
    with pytest.raises(ValidationError) as excinfo:
        services.example_params_clean(example=titanic, raw=raw)
    assert any(message in m for m in excinfo.value.message_dict[field])


def test_launch_with_bad_params_creates_nothing(engineer):
    with pytest.raises(ValidationError):
        services.training_run_launch(example_name="titanic", params={"n_estimators": -1}, compute_target="local",
                                     experiment_name="x1", timeout_seconds=60, register_as=None, actor=engineer)
    assert not TrainingRun.objects.exists() and not AuditEvent.objects.exists()


@pytest.fixture
def broker_down():
    """Point the Celery app at a port where nothing listens, then put it back."""
    old_url = celery_app.conf.broker_write_url
    celery_app.conf.broker_write_url = "redis://127.0.0.1:1/0"
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    yield
    celery_app.conf.broker_write_url = old_url
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.mark.django_db(transaction=True)  # the start is queued once the launch commits
def test_launch_with_broker_down_says_so_and_the_run_says_it_never_started(engineer, broker_down):
    with pytest.raises(QueueUnavailable, match="task queue is unreachable"):
        services.training_run_launch(example_name="scripted", params={}, compute_target="local",
                                     experiment_name="x1", timeout_seconds=60, register_as=None, actor=engineer)
    run = TrainingRun.objects.get()
    assert run.status == TrainingRun.Status.FAILED and run.finished_at is not None
    assert run.error.startswith("Not started: The task queue is unreachable")


@pytest.mark.django_db(transaction=True)
def test_launch_page_with_broker_down_shows_message(engineer_client, broker_down):
    from django.urls import reverse

    response = engineer_client.post(reverse("models_registry:run_launch"), {
        "example": "scripted", "experiment_name": "exp-one", "compute_target": "local", "timeout_minutes": 5,
        "param_sleep": "0", "param_exit_code": "0", "param_outputs": "full", "param_score": "0.5"})
    assert response.status_code == 400
    assert "task queue is unreachable, so nothing was started" in response.content.decode()
    assert TrainingRun.objects.get().status == TrainingRun.Status.FAILED


def test_register_refuses_unfinished_and_duplicate(engineer):
    model = make_model(engineer)
    running = make_run(engineer, status=TrainingRun.Status.RUNNING)
    with pytest.raises(ValidationError, match="Only a succeeded run"):
        services.model_version_register_from_run(run=running, model=model, actor=engineer)


def test_start_is_idempotent(engineer):
    """A start task delivered twice does nothing the second time."""
    run = make_run(engineer, status=TrainingRun.Status.RUNNING, backend_job_id="run-x")
    assert services.training_run_start(run_id=run.pk) is False
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.RUNNING and run.backend_job_id == "run-x"


def test_poll_of_finished_run_does_nothing(engineer):
    run = make_run(engineer, status=TrainingRun.Status.SUCCEEDED)
    assert services.training_run_poll(run_id=run.pk) is False
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED


def test_poll_of_run_that_never_got_a_job_fails_it(engineer):
    from datetime import timedelta

    from django.utils import timezone

    run = make_run(engineer, status=TrainingRun.Status.RUNNING, last_polled_at=timezone.now() - timedelta(minutes=5))
    assert services.training_run_poll(run_id=run.pk) is False
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.FAILED and "before the job was submitted" in run.error


# --- registration holds no lock while the platform registers ------------------------------------------------------
def _outputs(settings, job_id: str):
    outputs = settings.MLOPS_ARTIFACT_ROOT / "jobs" / job_id / "outputs"
    outputs.mkdir(parents=True, exist_ok=True)
    (outputs / "model.bin").write_bytes(b"weights")
    (outputs / "metrics.json").write_text('{"score": 0.5}')


@pytest.mark.django_db(transaction=True)
def test_the_platform_registers_with_no_row_locked_and_a_failed_number_is_not_reused(engineer, settings,
                                                                                   monkeypatch):
    from django.db import connection

    from mlopsportal.backends.local import LocalBackend

    model = make_model(engineer, name="locks", versions=2)
    run = make_run(engineer, backend_job_id="run-locks-1")
    _outputs(settings, "run-locks-1")
    real = LocalBackend.model_register
    seen = []

    def register(self, **kwargs):
        seen.append((kwargs["version"], connection.in_atomic_block))
        if len(seen) == 1:
            raise services.BackendError("the platform is down")
        return real(self, **kwargs)

    monkeypatch.setattr(LocalBackend, "model_register", register)
    with pytest.raises(services.BackendError):
        services.model_version_register_from_run(run=run, model=model, actor=engineer)
    version = services.model_version_register_from_run(run=run, model=model, actor=engineer)
    assert seen == [(3, False), (4, False)]  # outside any transaction, so outside any lock
    assert version.version == 4  # 3 may exist on the platform: never handed out again
    model.refresh_from_db()
    assert model.latest_version == version and model.versions_reserved == 4
    with pytest.raises(ValidationError, match="already registered"):
        services.model_version_register_from_run(run=run, model=model, actor=engineer)
    model.refresh_from_db()
    assert model.versions_reserved == 4  # a refused second registration reserves nothing

