"""Rows for page tests, made directly (no worker): models, versions and runs in given states."""
from django.utils import timezone

from models_registry.models import ModelVersion, RegisteredModel, TrainingRun


def make_run(user, *, status=TrainingRun.Status.SUCCEEDED, example="scripted", **fields):
    now = timezone.now()
    defaults = dict(experiment_name="exp-one", example=example, params={"score": 0.5}, compute_target="local",
                    backend="local", timeout_seconds=60, status=status, launched_by=user, metrics={"score": 0.5},
                    log="line one\nline two", started_at=now,
                    finished_at=None if status in TrainingRun.ACTIVE else now, last_polled_at=now)
    defaults.update(fields)
    return TrainingRun.objects.create(**defaults)


def make_model(user, name="churn", versions=0, key_metric="score"):
    model = RegisteredModel.objects.create(name=name, key_metric=key_metric, created_by=user,
                                           description=f"{name} model")
    for number in range(1, versions + 1):
        version = ModelVersion.objects.create(
            model=model, version=number, metrics={key_metric: 0.5 + number / 100, "other": 1.0},
            params={"p": number}, artifact_uri=f"local:registry/{name}/{number}", artifact_sha256="a" * 64,
            artifact_files=[{"path": "model.bin", "size": 3, "sha256": "b" * 64}], created_by=user)
        model.latest_version = version
    model.save()
    return model
