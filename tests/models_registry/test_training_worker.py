"""Training runs end to end with a real Celery worker on the configured broker and database."""
import json
import os
import signal

import pytest
from django.conf import settings

from audit.models import AuditEvent
from models_registry import services
from models_registry.models import ModelVersion, RegisteredModel, TrainingRun
from tests.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def launch(user, example="scripted", register_as=None, timeout_seconds=120, **params):
    return services.training_run_launch(example_name=example, params=params, compute_target="local",
                                        experiment_name=f"{example}-test", timeout_seconds=timeout_seconds,
                                        register_as=register_as, actor=user)


def finished(run_id):
    run = TrainingRun.objects.get(pk=run_id)
    return run if run.status in TrainingRun.TERMINAL else None


def test_titanic_run_registers_version_with_good_cv_accuracy(worker, engineer):
    model, _ = services.registered_model_ensure(name="titanic", key_metric="cv_accuracy", actor=engineer)
    run = launch(engineer, example="titanic", register_as=model, n_estimators=60)

    run = wait_for(lambda: finished(run.pk), timeout=120, message="titanic run to finish")
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    assert "10-fold CV accuracy" in run.log
    version = ModelVersion.objects.get(model=model)
    assert version.version == 1
    assert version.metrics["cv_accuracy"] >= 0.78
    assert version.training_run_id == run.pk
    assert version.created_by == engineer
    assert version.params["n_estimators"] == 60
    assert len(version.dataset_sha256) == 64 and len(version.code_version) == 64
    assert {f["path"] for f in version.artifact_files} >= {"model.pkl", "metrics.json"}
    model.refresh_from_db()
    assert model.latest_version == version
    assert AuditEvent.objects.filter(action="register", target_id=str(version.pk)).exists()


def test_second_run_gives_version_two(worker, engineer):
    model, _ = services.registered_model_ensure(name="scripted", key_metric="score", actor=engineer)
    first = launch(engineer, register_as=model, score=0.6)
    wait_for(lambda: finished(first.pk), message="first run")
    second = launch(engineer, register_as=model, score=0.7)
    wait_for(lambda: finished(second.pk), message="second run")
    versions = list(ModelVersion.objects.filter(model=model).order_by("version").values_list("version", "metrics"))
    assert versions == [(1, {"score": 0.6}), (2, {"score": 0.7})]


@pytest.mark.parametrize("params, expected_error", [
    ({"exit_code": 2}, "exited with code 2"),
    ({"outputs": "none"}, "no outputs/metrics.json"),
    ({"outputs": "bad_metrics"}, "not valid JSON"),
    ({"outputs": "metrics_only"}, "no model file"),
])
def test_failed_script_fails_run_keeps_log_and_registers_nothing(worker, engineer, params, expected_error):
    model, _ = services.registered_model_ensure(name="scripted", actor=engineer)
    run = launch(engineer, register_as=model, **params)
    run = wait_for(lambda: finished(run.pk), message="run to fail")
    assert run.status == TrainingRun.Status.FAILED
    assert expected_error in run.error
    assert "reading" in run.log  # the script's own output is kept
    assert not ModelVersion.objects.exists()


def test_timeout_fails_run(worker, engineer):
    run = launch(engineer, sleep=60, timeout_seconds=2)
    run = wait_for(lambda: finished(run.pk), timeout=30, message="run to time out")
    assert run.status == TrainingRun.Status.FAILED
    assert "timed out after 2 s" in run.error
    assert "working..." in run.log


def test_cancel_stops_the_job(worker, engineer):
    run = launch(engineer, sleep=60)
    wait_for(lambda: TrainingRun.objects.filter(pk=run.pk).exclude(backend_job_id="").exists(), message="job start")
    run.refresh_from_db()
    log_file = settings.MLOPS_ARTIFACT_ROOT / "jobs" / run.backend_job_id / "log.txt"
    wait_for(lambda: log_file.exists() and "working..." in log_file.read_text(), timeout=30, message="job output")
    assert services.training_run_cancel(run=run, actor=engineer)
    status_file = settings.MLOPS_ARTIFACT_ROOT / "jobs" / run.backend_job_id / "status.json"
    wait_for(lambda: json.loads(status_file.read_text())["state"] == "failed", timeout=15, message="job to stop")
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.CANCELED
    assert "working..." in run.log  # what it printed until the cancel is kept, not "(no output yet)"


def test_killed_worker_run_is_resumed_by_beat_and_another_worker(start_celery, engineer):
    # Beat checks every second; a run not polled for 2 s counts as lost.
    fast = {"MLOPS_RESUME_STALE_EVERY": "1", "MLOPS_TRAINING_STALE_SECONDS": "2"}
    model, _ = services.registered_model_ensure(name="scripted", actor=engineer)
    first = start_celery("worker", **fast)
    run = launch(engineer, register_as=model, sleep=4, score=0.9)
    wait_for(lambda: TrainingRun.objects.filter(pk=run.pk, status="running").exclude(backend_job_id="").exists(),
             message="run to start")
    first.kill()

    # Nobody calls anything by hand from here: beat's periodic task finds the run and the new worker finishes it.
    start_celery("worker", **fast)
    start_celery("beat", **fast)
    run = wait_for(lambda: finished(run.pk), timeout=60, message="resumed run to finish")
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    assert ModelVersion.objects.get(model=model).metrics == {"score": 0.9}


def test_killed_worker_and_job_marks_run_failed_with_reason(start_worker, engineer, settings):
    settings.MLOPS_TRAINING_STALE_SECONDS = 1
    first = start_worker()
    run = launch(engineer, sleep=60)
    wait_for(lambda: TrainingRun.objects.filter(pk=run.pk, status="running").exclude(backend_job_id="").exists(),
             message="run to start")
    run.refresh_from_db()
    status_file = settings.MLOPS_ARTIFACT_ROOT / "jobs" / run.backend_job_id / "status.json"
    supervisor = wait_for(lambda: status_file.exists() and json.loads(status_file.read_text()).get("supervisor_pid"),
                          message="supervisor pid")
    first.kill()
    os.kill(supervisor, signal.SIGKILL)  # as if the machine had restarted

    wait_for(lambda: services.training_runs_resume_stale() == [run.pk], timeout=10, message="run to become stale")
    start_worker()
    run = wait_for(lambda: finished(run.pk), timeout=60, message="run to be failed")
    assert run.status == TrainingRun.Status.FAILED
    assert "ended without reporting a result" in run.error


def test_resume_ignores_runs_that_are_being_polled(worker, engineer, settings):
    run = launch(engineer, sleep=3)
    wait_for(lambda: TrainingRun.objects.filter(pk=run.pk, status="running").exists(), message="run to start")
    assert services.training_runs_resume_stale() == []
    wait_for(lambda: finished(run.pk), message="run to finish")
    assert RegisteredModel.objects.count() == 0  # not asked to register
