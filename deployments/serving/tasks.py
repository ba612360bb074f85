"""Celery tasks of serving: thin wrappers that take ids and call the serving services.

Task names are kept from before the app was split into rooms, so messages already queued still find their task.
"""
from celery import shared_task
from django.conf import settings

from mlopsportal.backends import BackendError
from mlopsportal.lib.queue import enqueue

from . import services


@shared_task(name="deployments.tasks.deployment_start", bind=True, max_retries=5, acks_late=True,
             soft_time_limit=120, time_limit=150)
def deployment_start(self, deployment_id: int) -> None:
    try:
        polling = services.deployment_start(deployment_id=deployment_id)
    except BackendError as exc:
        raise exc.retry_task(self)
    if polling:
        enqueue("deployments.tasks.deployment_poll", deployment_id, countdown=settings.MLOPS_DEPLOY_POLL_SECONDS)


@shared_task(name="deployments.tasks.deployment_poll", bind=True, acks_late=True, soft_time_limit=60, time_limit=90,
             max_retries=10)
def deployment_poll(self, deployment_id: int) -> None:
    try:
        polling = services.deployment_poll(deployment_id=deployment_id)
    except BackendError as exc:  # backs off, and waits as long as the platform asks (429 Retry-After)
        raise exc.retry_task(self)
    if polling:
        enqueue("deployments.tasks.deployment_poll", deployment_id, countdown=settings.MLOPS_DEPLOY_POLL_SECONDS)


@shared_task(name="deployments.tasks.endpoint_prepare", bind=True, max_retries=10, acks_late=True,
             soft_time_limit=60, time_limit=90)
def endpoint_prepare(self, endpoint_id: int) -> None:
    try:
        services.endpoint_prepare(endpoint_id=endpoint_id)
    except BackendError as exc:  # throttled, or a name still being released: again later
        raise exc.retry_task(self)


@shared_task(name="deployments.tasks.deployment_remove", bind=True, max_retries=20, acks_late=True,
             soft_time_limit=60, time_limit=90)
def deployment_remove(self, deployment_id: int) -> None:
    try:
        services.deployment_remove(deployment_id=deployment_id)
    except BackendError as exc:  # busy, or not yet routed away from it: again later
        raise exc.retry_task(self, attempt_cap=3)


@shared_task(name="deployments.tasks.endpoints_traffic_confirm", soft_time_limit=120, time_limit=150)
def endpoints_traffic_confirm() -> list[str]:
    return services.endpoints_traffic_confirm()


@shared_task(name="deployments.tasks.deployments_reconcile", soft_time_limit=240, time_limit=300)
def deployments_reconcile() -> list[int]:
    return services.deployments_reconcile()
