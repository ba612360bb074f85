"""Notifications: who hears about what, each message recorded as a delivery, sent by a Celery task after the change
commits, retried with backoff, and finally marked failed with the reason.

A notification never blocks or fails what it reports: `notify` only writes rows (in a savepoint, its errors logged
and swallowed), and sending happens in a worker. Messages are written from plain facts (names, versions, reasons,
results); no key, credential or webhook URL goes into one, and a chat webhook URL (a secret: whoever has it can
post to the channel) is never written to a log or to a delivery's error.
"""
from __future__ import annotations

import logging
from datetime import timedelta

import apprise
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from mlopsportal.lib.queue import QueueUnavailable, send_now

from .models import Delivery, NotificationSettings

log = logging.getLogger(__name__)
SEND = "notifications.tasks.delivery_send"


class DeliveryError(Exception):
    """Sending failed; the task tries again later, and records this reason when it gives up."""


def users_who_may(permission: str):
    """Active users holding `permission` ("app_label.codename"), through a group, directly, or as superusers."""
    app_label, codename = permission.split(".")
    perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
    users = get_user_model().objects.filter(is_active=True)
    if perm is None:
        return users.filter(is_superuser=True)
    return users.filter(Q(is_superuser=True) | Q(groups__permissions=perm) | Q(user_permissions=perm)).distinct()


def link_to(path: str) -> str:
    return settings.MLOPS_PORTAL_URL.rstrip("/") + path if path else ""


def notify(event: str, *, users, subject: str, body: str, path: str = "") -> list[Delivery]:
    """Record a delivery per user and channel they chose for `event`, and send them once the caller's transaction
    commits. Never raises: a failure here is logged, and what it reports goes on."""
    try:
        with transaction.atomic():
            people = {user.pk: user for user in users if user is not None and user.is_active}
            chosen = {s.user_id: s for s in NotificationSettings.objects.filter(user_id__in=list(people))}
            deliveries = []
            for user_id, user in people.items():
                prefs = chosen.get(user_id) or NotificationSettings(user=user)
                if not prefs.wants(event):
                    continue
                message = {"user": user, "event": event, "subject": subject[:200], "body": body,
                           "link": link_to(path)[:500]}
                if prefs.email and user.email:
                    deliveries.append(Delivery(channel=Delivery.Channel.EMAIL, **message))
                if prefs.chat_url:
                    deliveries.append(Delivery(channel=Delivery.Channel.CHAT, **message))
            Delivery.objects.bulk_create(deliveries)
            ids = [d.pk for d in deliveries]
            transaction.on_commit(lambda: [_publish(pk) for pk in ids])
        return deliveries
    except Exception:  # noqa: BLE001 (a notification must never break the change it reports)
        log.exception("could not record the %s notification", event)
        return []


def _publish(delivery_id: int) -> None:
    try:
        send_now(SEND, delivery_id)
    except QueueUnavailable as exc:  # stays pending: deliveries_resume sends it once the queue is back
        log.warning("delivery %s not queued yet: %s", delivery_id, exc)


def _scrubbed(text: str, secret: str) -> str:
    """`text` without the secret URL or any part of it long enough to be worth hiding."""
    for part in {secret, *secret.split("/")}:
        if len(part) >= 8:
            text = text.replace(part, "•••")
    return " ".join(text.split())[:500]


def delivery_send(*, delivery_id: int) -> None:
    """Send one pending delivery. Raises DeliveryError when it did not go (the task retries)."""
    delivery = Delivery.objects.select_related("user").filter(pk=delivery_id, status=Delivery.Status.PENDING).first()
    if delivery is None:
        log.info("delivery %s is not pending any more", delivery_id)
        return
    Delivery.objects.filter(pk=delivery_id).update(attempts=F("attempts") + 1)
    user = delivery.user
    if user is None:
        raise DeliveryError("the user it was for no longer exists")
    text = delivery.body + (f"\n\n{delivery.link}" if delivery.link else "")
    if delivery.channel == Delivery.Channel.EMAIL:
        if not user.email:
            raise DeliveryError(f"{user.get_username()} has no email address")
        try:
            send_mail(delivery.subject, text, settings.DEFAULT_FROM_EMAIL, [user.email], fail_silently=False)
        except Exception as exc:  # noqa: BLE001 (SMTP, DNS, TLS, timeouts: each is worth a retry)
            raise DeliveryError(f"the mail server did not take it: {exc.__class__.__name__}: {exc}"[:500]) from None
    else:
        url = NotificationSettings.objects.filter(user=user).values_list("chat_url", flat=True).first() or ""
        if not url:
            raise DeliveryError("no chat webhook is set any more")
        sender = apprise.Apprise()
        if not sender.add(url):
            raise DeliveryError("the chat webhook URL is not one that can be sent to")
        with apprise.LogCapture(level=logging.WARNING) as said:
            sent = sender.notify(title=delivery.subject, body=text)
        if not sent:
            raise DeliveryError(_scrubbed("the chat service did not take it: " + (said.getvalue() or "no reason"),
                                          url))
    Delivery.objects.filter(pk=delivery_id).update(status=Delivery.Status.SENT, sent_at=timezone.now(), error="")


def delivery_retrying(*, delivery_id: int, reason: str) -> None:
    Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.PENDING).update(error=reason[:500])


def delivery_failed(*, delivery_id: int, reason: str) -> None:
    Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.PENDING).update(
        status=Delivery.Status.FAILED, error=reason[:500])
    log.warning("delivery %s failed: %s", delivery_id, reason)


def deliveries_resume() -> int:
    """Queue again the deliveries that were never taken by a worker (the queue was down when they were made)."""
    stale = timezone.now() - timedelta(seconds=settings.MLOPS_NOTIFY_RESUME_SECONDS)
    ids = list(Delivery.objects.filter(status=Delivery.Status.PENDING, attempts=0, created_at__lt=stale)
               .values_list("pk", flat=True)[:500])
    for pk in ids:
        _publish(pk)
    return len(ids)
