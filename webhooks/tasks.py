"""Celery tasks of webhooks: one attempt at a delivery (it queues the next itself); queue again the ones due."""
from celery import shared_task

from . import services


@shared_task(name="webhooks.tasks.delivery_send", acks_late=True, soft_time_limit=60, time_limit=90)
def delivery_send(delivery_id: int) -> str:
    return services.delivery_send(delivery_id=delivery_id)


@shared_task(name="webhooks.tasks.deliveries_resume", soft_time_limit=60, time_limit=90)
def deliveries_resume() -> int:
    return services.deliveries_resume()
