"""Celery tasks of the promotion pipeline: advancing a promotion, finishing its clean-up, resuming stalled ones."""
from celery import shared_task

from mlopsportal.backends import BackendError
from mlopsportal.lib.queue import enqueue

from . import services


@shared_task(name="deployments.tasks.promotion_advance", acks_late=True, soft_time_limit=240, time_limit=300)
def promotion_advance(promotion_id: int) -> None:
    delay = services.promotion_advance(promotion_id=promotion_id)
    if delay is not None:
        enqueue("deployments.tasks.promotion_advance", promotion_id, countdown=delay)


@shared_task(name="deployments.tasks.promotion_clean_up", bind=True, max_retries=20, acks_late=True,
             soft_time_limit=120, time_limit=150)
def promotion_clean_up(self, promotion_id: int) -> None:
    """Finish stopping a promotion whose clean-up the platform refused for the moment."""
    try:
        services.promotion_clean_up(promotion_id=promotion_id)
    except BackendError as exc:
        raise exc.retry_task(self, attempt_cap=3)


@shared_task(name="deployments.tasks.promotions_resume", soft_time_limit=60, time_limit=90)
def promotions_resume() -> list[int]:
    return services.promotions_resume()
