"""Webhooks: `emit` records a delivery per subscription to the event (the caller's transaction commits it), a
worker sends it signed, retries with exponential backoff, and logs every attempt. Like notifications, an emit never
fails what it reports, and this app knows no other: the apps hand it plain facts."""
from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from mlopsportal.lib.queue import QueueUnavailable, enqueue

from .addresses import AddressRefused, check_url
from .models import Attempt, Delivery, Subscription
from .signing import sign

log = logging.getLogger(__name__)
DELIVER = "webhooks.tasks.delivery_send"


def emit(event: str, data: dict) -> int:
    """Queue `event` with `data` to every active subscription to it. Never raises; returns how many were queued."""
    try:
        with transaction.atomic():
            subscriptions = [s for s in Subscription.objects.filter(active=True) if event in s.events]
            if not subscriptions:
                return 0
            now = timezone.now()
            deliveries = Delivery.objects.bulk_create([Delivery(
                subscription=s, event=event, next_attempt_at=now,
                payload={"id": str(uuid.uuid4()), "event": event, "at": now.isoformat(), "data": data})
                for s in subscriptions])
            for delivery in deliveries:
                enqueue(DELIVER, delivery.pk, unavailable=lambda message: None)  # beat's resume sends it later
    except QueueUnavailable:
        return len(subscriptions)
    except Exception:  # noqa: BLE001 - what it reports goes on
        log.exception("could not record the webhook deliveries of %s", event)
        return 0
    return len(deliveries)


def _body(delivery: Delivery) -> bytes:
    return json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()


def delivery_send(*, delivery_id: int) -> str:
    """One attempt at a delivery: "sent", "retrying" (queued again later) or "failed" (the last attempt, or a URL
    that is refused). A delivery already sent, or gone, is left alone."""
    with transaction.atomic():
        delivery = (Delivery.objects.select_for_update(skip_locked=True).select_related("subscription")
                    .filter(pk=delivery_id, status__in=Delivery.OPEN).first())
        if delivery is None:
            return "gone"
        # Taken: beat's resume leaves it alone while this attempt runs (at most the timeout).
        Delivery.objects.filter(pk=delivery.pk).update(
            next_attempt_at=timezone.now() + timedelta(seconds=settings.MLOPS_WEBHOOK_TIMEOUT_SECONDS * 3))
    subscription, body = delivery.subscription, _body(delivery)
    started, code, error, refused = time.monotonic(), None, "", False
    try:
        check_url(subscription.url)
        stamp = int(time.time())
        response = requests.post(subscription.url, data=body, timeout=settings.MLOPS_WEBHOOK_TIMEOUT_SECONDS, allow_redirects=False,
                                 headers={"Content-Type": "application/json", "User-Agent": "mlops-portal-webhook",
                                          "X-MLOps-Event": delivery.event, "X-MLOps-Delivery": delivery.payload["id"],
                                          "X-MLOps-Timestamp": str(stamp),
                                          "X-MLOps-Signature": sign(subscription.secret, stamp, body)})
        code = response.status_code
        if not 200 <= code < 300:
            error = f"HTTP {code}"
    except AddressRefused as exc:
        error, refused = str(exc)[:300], True  # no retry makes it allowed
    except requests.RequestException as exc:
        error = f"{exc.__class__.__name__}: could not send"  # the URL may carry a token: not in the log
    ms = int((time.monotonic() - started) * 1000)
    return _record(delivery, code=code, error=error, ms=ms, final=refused)


def _record(delivery: Delivery, *, code, error: str, ms: int, final: bool) -> str:
    attempts = delivery.attempts + 1
    with transaction.atomic():
        Attempt.objects.create(delivery=delivery, status_code=code, error=error, ms=ms)
        if not error:
            Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.SENT, attempts=attempts,
                                                           sent_at=timezone.now(), next_attempt_at=None)
            return "sent"
        if final or attempts > settings.MLOPS_WEBHOOK_RETRIES:
            Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.FAILED, attempts=attempts,
                                                           next_attempt_at=None)
            return "failed"
        wait = settings.MLOPS_WEBHOOK_BACKOFF_SECONDS * 2 ** (attempts - 1)
        Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.RETRYING, attempts=attempts,
                                                       next_attempt_at=timezone.now() + timedelta(seconds=wait))
        enqueue(DELIVER, delivery.pk, countdown=wait, unavailable=lambda message: None)
    return "retrying"


def deliveries_resume() -> int:
    """Queue again the open deliveries whose time has come and that no worker holds (the queue was down, or the
    worker died mid-attempt)."""
    due = list(Delivery.objects.filter(status__in=Delivery.OPEN, next_attempt_at__lt=timezone.now()
                                       - timedelta(seconds=5)).values_list("pk", flat=True)[:500])
    for pk in due:
        try:
            enqueue(DELIVER, pk)
        except QueueUnavailable:
            break
    return len(due)


def delivery_redeliver(*, delivery: Delivery, actor) -> Delivery:
    """Send a delivery again (the same body, a new signature), whatever became of it."""
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.PENDING, attempts=0,
                                                       next_attempt_at=timezone.now())
        audit_record(actor=actor, action=AuditEvent.Action.UPDATE, target=delivery,
                     summary=f"asked to send {delivery} again")
        enqueue(DELIVER, delivery.pk)
    delivery.refresh_from_db()
    return delivery


def subscription_save(*, form, actor) -> Subscription:
    created = form.instance.pk is None
    with transaction.atomic():
        subscription = form.save()
        audit_record(actor=actor, action=AuditEvent.Action.CREATE if created else AuditEvent.Action.UPDATE,
                     target=subscription, summary=f"{'subscribed' if created else 'changed'} webhook {subscription} "
                     f"to {', '.join(subscription.events)}")
    return subscription


def subscription_delete(*, subscription: Subscription, actor) -> None:
    with transaction.atomic():
        audit_record(actor=actor, action=AuditEvent.Action.DELETE, target=subscription,
                     summary=f"deleted webhook {subscription}")
        subscription.delete()

