"""Celery tasks of notifications: send one delivery, with retries and backoff; queue again the ones never taken."""
from celery import shared_task
from django.conf import settings

from . import services


@shared_task(name="notifications.tasks.delivery_send", bind=True, acks_late=True, soft_time_limit=60, time_limit=90,
             max_retries=None)
def delivery_send(self, delivery_id: int) -> None:
    try:
        services.delivery_send(delivery_id=delivery_id)
    except services.DeliveryError as exc:
        if self.request.retries >= settings.MLOPS_NOTIFY_RETRIES:
            services.delivery_failed(delivery_id=delivery_id,
                                     reason=f"{exc} (gave up after {self.request.retries + 1} attempts)")
            return
        services.delivery_retrying(delivery_id=delivery_id, reason=str(exc))
        raise self.retry(countdown=settings.MLOPS_NOTIFY_BACKOFF_SECONDS * 2 ** self.request.retries) from None


@shared_task(name="notifications.tasks.deliveries_resume", soft_time_limit=60, time_limit=90)
def deliveries_resume() -> int:
    return services.deliveries_resume()
