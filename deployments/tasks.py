"""Celery tasks of serving: thin wrappers over deployments.services."""
from celery import shared_task
from django.conf import settings

from mlopsportal.backends import BackendError

from . import services
from .models import Deployment


@shared_task(bind=True, max_retries=5, acks_late=True, soft_time_limit=120, time_limit=150)
def deployment_start(self, deployment_id: int) -> None:
    if not Deployment.objects.filter(pk=deployment_id).exists():
        raise self.retry(countdown=1)  # published inside the creating transaction
    try:
        polling = services.deployment_start(deployment_id=deployment_id)
    except BackendError as exc:
        raise exc.retry_task(self)
    if polling:
        deployment_poll.apply_async(args=(deployment_id,), countdown=settings.MLOPS_DEPLOY_POLL_SECONDS)


@shared_task(bind=True, acks_late=True, soft_time_limit=60, time_limit=90, max_retries=10)
def deployment_poll(self, deployment_id: int) -> None:
    try:
        polling = services.deployment_poll(deployment_id=deployment_id)
    except BackendError as exc:  # backs off, and waits as long as the platform asks (429 Retry-After)
        raise exc.retry_task(self)
    if polling:
        deployment_poll.apply_async(args=(deployment_id,), countdown=settings.MLOPS_DEPLOY_POLL_SECONDS)


@shared_task(bind=True, max_retries=20, acks_late=True, soft_time_limit=60, time_limit=90)
def deployment_remove(self, deployment_id: int) -> None:
    if not Deployment.objects.filter(pk=deployment_id).exists():
        raise self.retry(countdown=1)
    try:
        services.deployment_remove(deployment_id=deployment_id)
    except BackendError as exc:  # busy, or not yet routed away from it: again later
        raise exc.retry_task(self, attempt_cap=3)


@shared_task(bind=True, max_retries=20, acks_late=True, soft_time_limit=120, time_limit=150)
def promotion_clean_up(self, promotion_id: int) -> None:
    """Finish stopping a promotion whose clean-up the platform refused for the moment."""
    from . import promotions

    try:
        promotions.promotion_clean_up(promotion_id=promotion_id)
    except BackendError as exc:
        raise exc.retry_task(self, attempt_cap=3)


@shared_task(soft_time_limit=240, time_limit=300)
def deployments_reconcile() -> list[int]:
    return services.deployments_reconcile()


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def promotion_advance(promotion_id: int) -> None:
    from . import promotions

    delay = promotions.promotion_advance(promotion_id=promotion_id)
    if delay is not None:
        promotion_advance.apply_async(args=(promotion_id,), countdown=delay or None)


@shared_task(bind=True, acks_late=True, soft_time_limit=3700, time_limit=3720)
def stress_shard(self, run_id: int, shard: int, url: str) -> None:
    from . import checks

    checks.stress_shard_run(run_id=run_id, shard=shard, url=url, worker=self.request.hostname or "")


@shared_task(soft_time_limit=60, time_limit=90)
def promotions_resume() -> list[int]:
    from . import promotions

    return promotions.promotions_resume()
