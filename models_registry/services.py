"""Writes to the model registry: launching and advancing training runs, registering versions, editing models.

Runs advance by conditional updates (filter on the expected status, then update), so a task delivered twice, or a
poll that races another, changes nothing the second time. Each change of a run's status is audited with it
(_run_status_write).
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record, status_change
from mlopsportal import examples
from mlopsportal.backends import BackendError, get_backend
from mlopsportal.backends.base import RegisteredArtifact
from mlopsportal.lib.queue import enqueue
from mlopsportal.lib.refusals import in_words
from notifications.models import Event
from notifications.services import link_to, notify
from webhooks import services as webhooks
from webhooks.models import Event as Hook

from .models import ModelVersion, RegisteredModel, TrainingRun

log = logging.getLogger(__name__)
Status = TrainingRun.Status


# --- models -------------------------------------------------------------------------------------------------------
def registered_model_ensure(*, name: str, description: str = "", key_metric: str = "cv_accuracy",
                            actor) -> tuple[RegisteredModel, bool]:
    with transaction.atomic():
        model, created = RegisteredModel.objects.get_or_create(
            name=name, defaults={"description": description, "key_metric": key_metric, "created_by": actor})
        if created:
            audit_record(actor=actor, action=AuditEvent.Action.CREATE, target=model, summary=f"created model {name}")
    return model, created


def registered_model_update(*, model: RegisteredModel, actor, **fields) -> RegisteredModel:
    changes = {}
    for field, value in fields.items():
        old = getattr(model, field)
        if old != value:
            changes[field] = [old, value]
            setattr(model, field, value)
    if changes:
        with transaction.atomic():
            model.save(update_fields=[*changes, "updated_at"])
            audit_record(actor=actor, action=AuditEvent.Action.UPDATE, target=model,
                         summary="changed " + ", ".join(changes), changes=changes)
    return model


def registered_model_refresh_latest(*, model: RegisteredModel) -> None:
    """Point the model at its highest remaining version (after versions are deleted)."""
    model.latest_version = model.versions.order_by("-version").first()
    model.save(update_fields=["latest_version", "updated_at"])


# --- training parameters ------------------------------------------------------------------------------------------
def example_params_clean(*, example: examples.Example, raw: dict[str, object]) -> dict[str, object]:
    """Validate parameters against the example's manifest. Raises ValidationError naming each bad parameter."""
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(raw) - {p.name for p in example.parameters})
    if unknown:
        errors["__all__"] = [f"Unknown parameter(s) for {example.name}: {', '.join(unknown)}."]
    cleaned: dict[str, object] = {}
    for param in example.parameters:
        value = raw.get(param.name, param.default)
        if value is None or value == "":
            value = param.default
        try:
            if param.type == "choice":
                value = str(value)
                if value not in param.choices:
                    raise ValueError(f"must be one of {', '.join(param.choices)}")
            else:
                caster = int if param.type == "int" else float
                if isinstance(value, bool):
                    raise ValueError("must be a number")
                try:
                    number = caster(value) if param.type == "float" else caster(str(value).strip())
                except (TypeError, ValueError):
                    raise ValueError(f"must be {'a whole number' if param.type == 'int' else 'a number'}") from None
                if param.type == "float" and number != number:  # NaN
                    raise ValueError("must be a number")
                if param.min is not None and number < param.min:
                    raise ValueError(f"must be at least {param.min:g}")
                if param.max is not None and number > param.max:
                    raise ValueError(f"must be at most {param.max:g}")
                value = number
        except ValueError as exc:
            errors.setdefault(param.name, []).append(f"{param.name} {exc}.")
            continue
        cleaned[param.name] = value
    if errors:
        raise ValidationError(errors)
    return cleaned


# --- training runs ------------------------------------------------------------------------------------------------
def training_run_launch(*, example_name: str, params: dict, compute_target: str, experiment_name: str,
                        timeout_seconds: int, register_as: RegisteredModel | None, actor) -> TrainingRun:
    """Create the run and queue its start. Raises ValidationError on bad input (nothing is saved), QueueUnavailable
    if the broker is down (the run is then saved as failed, saying it was never started)."""
    try:
        example = examples.get_example(example_name)
    except examples.ExampleError as exc:
        raise ValidationError({"example": [str(exc)]}) from exc
    cleaned = example_params_clean(example=example, raw=params)
    backend = get_backend()
    if compute_target not in {t.name for t in backend.compute_targets()}:
        raise ValidationError({"compute_target": [f"Unknown compute target '{compute_target}'."]})
    if not 1 <= timeout_seconds <= settings.MLOPS_TRAINING_MAX_TIMEOUT:
        raise ValidationError({"timeout_seconds": [f"Must be between 1 and {settings.MLOPS_TRAINING_MAX_TIMEOUT} s."]})

    with transaction.atomic():
        run = TrainingRun.objects.create(
            experiment_name=experiment_name, example=example.name, params=cleaned, compute_target=compute_target,
            backend=backend.name, timeout_seconds=timeout_seconds, register_as=register_as, launched_by=actor,
        )
        audit_record(actor=actor, action=AuditEvent.Action.LAUNCH, target=run,
                     summary=f"launched {example.name} training", changes={"params": cleaned})
        enqueue("models_registry.tasks.training_run_start", run.pk,
                unavailable=lambda message: _not_started(run.pk, message))
    return run


def _run_status_write(run_id: int, *, was, to: str, summary: str, actor=None,
                      action: str = AuditEvent.Action.UPDATE, match: dict | None = None, **fields) -> bool:
    """Set a run's status to `to` (and `fields`) if it is one of `was` (and matches `match`), and audit the change
    in the same transaction, with the old and the new status. Returns whether the row was written."""
    was = (was,) if isinstance(was, str) else tuple(was)
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id, status__in=was, **(match or {})).first()
        if run is None or not TrainingRun.objects.filter(pk=run_id, status=run.status).update(status=to, **fields):
            return False
        audit_record(actor=actor, action=action, target=run, summary=summary[:500],
                     changes=status_change("status", run.status, to))
        if to in TrainingRun.TERMINAL and run.status not in TrainingRun.TERMINAL:
            _notify_ended(run, to, fields)
    return True


def _notify_ended(run: TrainingRun, status: str, fields: dict) -> None:
    said = TrainingRun.Status(status).label.lower()
    error = (fields.get("error") or "").strip()
    metrics = fields.get("metrics") or {}
    lines = [f"{run} {said}."]
    if error:
        lines.append(f"Why: {error.splitlines()[0][:300]}")
    if metrics:
        lines.append("Metrics: " + ", ".join(f"{name} {value}" for name, value in list(metrics.items())[:10]))
    if fields.get("registration_error"):
        lines.append(f"Not registered: {fields['registration_error'][:300]}")
    if status in (Status.SUCCEEDED, Status.FAILED):
        webhooks.emit(Hook.RUN_SUCCEEDED if status == Status.SUCCEEDED else Hook.RUN_FAILED, {
            "run": run.pk, "example": run.example, "experiment": run.experiment_name, "status": status,
            "metrics": metrics, "error": error.splitlines()[0][:300] if error else "",
            "url": link_to(run.get_absolute_url())})
    notify(Event.RUN_ENDED, users=[run.launched_by], path=run.get_absolute_url(),
           subject=f"Training {run} {said}", body="\n".join(lines))


def _not_started(run_id: int, message: str) -> None:
    _run_status_write(run_id, was=Status.QUEUED, to=Status.FAILED, error=f"Not started: {message}",
                      finished_at=timezone.now(), summary=f"not started: {message}")


def training_run_start(*, run_id: int) -> bool:
    """Submit a queued run to the backend. Returns True when the run is now running and should be polled."""
    now = timezone.now()
    claimed = _run_status_write(run_id, was=Status.QUEUED, to=Status.RUNNING, match={"backend_job_id": ""},
                                started_at=now, last_polled_at=now, summary="started the run")
    if not claimed:
        return False
    run = TrainingRun.objects.get(pk=run_id)
    try:
        example = examples.get_example(run.example)
        submission = get_backend(run.backend).training_submit(
            job_name=run.job_name, example=example, params=run.params, compute_target=run.compute_target,
            experiment_name=run.experiment_name, timeout_seconds=run.timeout_seconds)
    except (BackendError, examples.ExampleError) as exc:
        if isinstance(exc, BackendError) and not exc.permanent:
            # Give the claim back so the retried task can take it again.
            _run_status_write(run_id, was=Status.RUNNING, to=Status.QUEUED, match={"backend_job_id": ""},
                              started_at=None, summary=f"queued again: the ML platform could not take it yet ({exc})")
            raise
        _finish(run_id, Status.FAILED, error=f"Could not start training: {exc}")
        return False
    TrainingRun.objects.filter(pk=run_id, status=Status.RUNNING).update(
        backend_job_id=submission.job_id, code_version=submission.code_version,
        dataset_sha256=submission.dataset_sha256)
    return True


def _finish(run_id: int, status: str, *, actor=None, action: str = AuditEvent.Action.UPDATE, summary: str = "",
            **fields) -> bool:
    error = fields.get("error", "")
    summary = summary or (f"the run {TrainingRun.Status(status).label.lower()}"
                          + (f": {error.strip().splitlines()[0]}" if error.strip() else ""))
    return _run_status_write(run_id, was=TrainingRun.ACTIVE, to=status, actor=actor, action=action, summary=summary,
                             finished_at=timezone.now(), **fields)


def training_run_poll(*, run_id: int) -> bool:
    """Bring a running run up to date with its job. Returns True if it should be polled again."""
    interval = settings.MLOPS_TRAINING_POLL_SECONDS
    now = timezone.now()
    # Claim this poll: if another poll ran moments ago (two chains after a resume), this one bows out.
    claimed = TrainingRun.objects.filter(
        pk=run_id, status=Status.RUNNING, last_polled_at__lt=now - timedelta(seconds=interval / 2),
    ).update(last_polled_at=now)
    if not claimed:
        return False
    run = TrainingRun.objects.get(pk=run_id)
    if not run.backend_job_id:
        _finish(run_id, Status.FAILED, error="The worker stopped before the job was submitted; launch it again.")
        return False
    backend = get_backend(run.backend)
    try:
        status = backend.training_status(run.backend_job_id)
    except BackendError as exc:
        if not exc.permanent:
            raise  # the task retries with backoff
        _finish(run_id, Status.FAILED, error=f"The ML platform reported: {exc}")
        return False
    log_text = status.log[-settings.MLOPS_RUN_LOG_MAX_CHARS:]

    if not status.finished:
        overdue = run.started_at + timedelta(seconds=run.timeout_seconds + 60)
        if now > overdue:  # the backend should have stopped it; make sure, and say so
            backend.training_cancel(run.backend_job_id)
            _finish(run_id, Status.FAILED, log=log_text, error=f"Training timed out after {run.timeout_seconds} s.")
            return False
        TrainingRun.objects.filter(pk=run_id, status=Status.RUNNING).update(log=log_text)
        return True

    if status.state == "failed":
        _finish(run_id, Status.FAILED, log=log_text, error=status.error or "Training failed.")
        return False

    # Registered as the launch asked: the platform call first, with no row locked; then, in one transaction, the
    # run is marked succeeded and its version written, so the run's page never shows a success without its version.
    registered, failure = None, ""
    if run.register_as_id:
        try:
            registered = _artifact_register(run=run, model=run.register_as)
        except (BackendError, ValidationError) as exc:
            failure = in_words(exc)
    with transaction.atomic():
        if not _finish(run_id, Status.SUCCEEDED, log=log_text, metrics=status.metrics, registration_error=failure):
            return False
        if registered is not None:
            run.refresh_from_db()
            number, artifact = registered
            try:
                _version_record(run=run, model=run.register_as, actor=run.launched_by, number=number,
                                artifact=artifact, description=f"Trained by {run}.")
            except ValidationError as exc:
                TrainingRun.objects.filter(pk=run_id).update(registration_error=in_words(exc))
    return False


def training_run_cancel(*, run: TrainingRun, actor) -> bool:
    if not _finish(run.pk, Status.CANCELED, error=f"Canceled by {actor.get_username()}.", actor=actor,
                   action=AuditEvent.Action.CANCEL, summary="canceled the run"):
        return False
    if run.backend_job_id:
        backend = get_backend(run.backend)
        try:
            backend.training_cancel(run.backend_job_id)
            # What the job printed until then: the run page shows its log, not "(no output yet)".
            log_text = backend.training_status(run.backend_job_id).log[-settings.MLOPS_RUN_LOG_MAX_CHARS:]
        except BackendError as exc:
            log.warning("cancel of %s at the backend failed: %s", run.backend_job_id, exc)
        else:
            if log_text:
                TrainingRun.objects.filter(pk=run.pk, status=Status.CANCELED).update(log=log_text)
    return True


def training_runs_resume_stale() -> list[int]:
    """Runs whose worker died (nobody polled them for a while) get a fresh poll; it finishes or fails them."""
    cutoff = timezone.now() - timedelta(seconds=settings.MLOPS_TRAINING_STALE_SECONDS)
    stale = list(TrainingRun.objects.filter(status=Status.RUNNING, last_polled_at__lt=cutoff)
                 .values_list("pk", flat=True))
    for run_id in stale:
        log.warning("training run %s was not polled since before %s; resuming it", run_id, cutoff)
        enqueue("models_registry.tasks.training_run_poll", run_id)
    return stale


# --- versions -----------------------------------------------------------------------------------------------------
def _refuse_registered_twice(model: RegisteredModel, run: TrainingRun) -> None:
    if ModelVersion.objects.filter(model=model, training_run=run).exists():
        raise ValidationError(f"The output of {run} is already registered as a version of {model.name}.")


def _version_number_reserve(*, model: RegisteredModel, run: TrainingRun) -> int:
    """The next version number of `model`, handed out once (the model's row is locked only for this)."""
    with transaction.atomic():
        locked = RegisteredModel.objects.select_for_update().get(pk=model.pk)
        _refuse_registered_twice(locked, run)
        highest = max(locked.versions_reserved, locked.versions.aggregate(n=Max("version"))["n"] or 0)
        RegisteredModel.objects.filter(pk=model.pk).update(versions_reserved=highest + 1)
    return highest + 1


def model_version_register_from_run(*, run: TrainingRun, model: RegisteredModel, actor,
                                    description: str = "", tags: dict | None = None) -> ModelVersion:
    """Register a succeeded run's output as the next version of `model`.

    The number is reserved first, in a short transaction of its own; the platform registers the files with no row
    locked (it may take seconds on Azure ML); then the version's row is written. A number whose registration failed
    is not handed out again (Azure ML's registry may hold it), so numbers can have gaps."""
    if run.status != Status.SUCCEEDED:
        raise ValidationError(f"Only a succeeded run can be registered; {run} is {run.get_status_display().lower()}.")
    number, artifact = _artifact_register(run=run, model=model)
    return _version_record(run=run, model=model, actor=actor, number=number, artifact=artifact,
                           description=description, tags=tags)


def _artifact_register(*, run: TrainingRun, model: RegisteredModel) -> tuple[int, RegisteredArtifact]:
    """Reserve the next number and have the platform register the run's outputs under it (no row locked)."""
    number = _version_number_reserve(model=model, run=run)
    return number, get_backend(run.backend).model_register(job_id=run.backend_job_id, model_name=model.name,
                                                           version=number)


def _version_record(*, run: TrainingRun, model: RegisteredModel, actor, number: int, artifact: RegisteredArtifact,
                    description: str = "", tags: dict | None = None) -> ModelVersion:
    """The version's row for a registered artifact (in a savepoint of its own when inside a transaction)."""
    with transaction.atomic():
        model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
        _refuse_registered_twice(model, run)
        try:
            version = ModelVersion.objects.create(
                model=model, version=number, description=description, metrics=run.metrics, params=run.params,
                tags={"experiment": run.experiment_name, "example": run.example, **(tags or {})},
                artifact_uri=artifact.uri, artifact_sha256=artifact.sha256, artifact_size=artifact.size,
                artifact_files=[{"path": f.path, "size": f.size, "sha256": f.sha256} for f in artifact.files],
                training_run=run, dataset_sha256=run.dataset_sha256, code_version=run.code_version,
                created_by=actor,
            )
        except IntegrityError as exc:
            raise ValidationError(f"Could not register {model.name} v{number}: {exc}") from exc
        model.latest_version = version
        model.save(update_fields=["latest_version", "updated_at"])
        audit_record(actor=actor, action=AuditEvent.Action.REGISTER, target=version,
                     summary=f"registered {version} from {run}", changes={"metrics": run.metrics})
        webhooks.emit(Hook.VERSION_REGISTERED, {"model": model.name, "version": number, "ref": f"{model.name}:{number}",
                                                "metrics": run.metrics, "run": run.pk,
                                                "url": link_to(version.get_absolute_url())})
    return version
