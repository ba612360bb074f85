"""Webhooks: an admin's subscription of a URL to events, each event sent as a signed JSON delivery, and every
attempt at it (the delivery log)."""
import secrets

from django.conf import settings
from django.db import models


class Event(models.TextChoices):
    RUN_SUCCEEDED = "run.succeeded", "Training run succeeded"
    RUN_FAILED = "run.failed", "Training run failed"
    VERSION_REGISTERED = "version.registered", "Version registered"
    PROMOTION_AWAITING = "promotion.awaiting_approval", "Promotion awaiting approval"
    PROMOTION_SUCCEEDED = "promotion.succeeded", "Promotion succeeded"
    PROMOTION_FAILED = "promotion.failed", "Promotion failed or rejected"
    ROLLBACK = "rollback", "Rollback"
    CONFIG_CHANGED = "config.changed", "Configuration changed"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class Subscription(models.Model):
    name = models.CharField(max_length=60, unique=True)
    url = models.URLField(max_length=500, help_text="http(s); private and loopback addresses are refused.")
    events = models.JSONField(default=list, help_text="The events sent to it.")
    secret = models.CharField(max_length=80, default=new_secret, editable=False,
                              help_text="Signs each body (HMAC-SHA256); shown to admins only.")
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Delivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RETRYING = "retrying", "Retrying"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    OPEN = (Status.PENDING, Status.RETRYING)

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40, choices=Event.choices)
    payload = models.JSONField(help_text="The body sent: plain facts, never a key or a secret.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.event} #{self.pk} to {self.subscription}"


class Attempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    at = models.DateTimeField(auto_now_add=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["at", "id"]
