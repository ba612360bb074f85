"""Celery tasks of the registry: thin wrappers that take ids and call services."""
from celery import shared_task
from django.conf import settings

from mlopsportal.backends import BackendError
from mlopsportal.lib.queue import enqueue

from . import services


@shared_task(bind=True, max_retries=5, acks_late=True, soft_time_limit=120, time_limit=150)
def training_run_start(self, run_id: int) -> None:
    try:
        running = services.training_run_start(run_id=run_id)
    except BackendError as exc:  # transient: the service gave the claim back
        raise exc.retry_task(self)
    if running:
        enqueue("models_registry.tasks.training_run_poll", run_id, countdown=settings.MLOPS_TRAINING_POLL_SECONDS)


@shared_task(bind=True, acks_late=True, soft_time_limit=60, time_limit=90, max_retries=10)
def training_run_poll(self, run_id: int) -> None:
    try:
        polling = services.training_run_poll(run_id=run_id)
    except BackendError as exc:  # backs off, and waits as long as the platform asks (429 Retry-After)
        raise exc.retry_task(self)
    if polling:
        enqueue("models_registry.tasks.training_run_poll", run_id, countdown=settings.MLOPS_TRAINING_POLL_SECONDS)


@shared_task(soft_time_limit=60, time_limit=90)
def training_runs_resume_stale() -> list[int]:
    return services.training_runs_resume_stale()
