"""Notifications: what each user wants to hear about and where, and every delivery made (or tried)."""
import apprise
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


class Event(models.TextChoices):
    PROMOTION_AWAITING = "promotion_awaiting", "A promotion awaits my approval"
    PROMOTION_DECIDED = "promotion_decided", "My promotion was approved or rejected"
    PROMOTION_FAILED = "promotion_failed", "A promotion I asked for or decided failed"
    ROLLBACK = "rollback", "A production endpoint was rolled back"
    RUN_ENDED = "run_ended", "My training run ended"


def validate_chat_url(value: str) -> None:
    """An incoming-webhook URL (Teams, Slack: https) or an apprise URL; never a local file or command."""
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme in ("", "file", "windows", "macosx", "dbus", "kde", "qt", "glib", "gnome"):
        raise ValidationError("Enter a webhook URL (https://…) or an apprise URL such as msteams://… or slack://….")
    if not apprise.Apprise().add(value):
        raise ValidationError("This is not a webhook or apprise URL that can be sent to.")


class NotificationSettings(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_settings")
    email = models.BooleanField(default=True, help_text="Send notifications to my email address.")
    chat_url = models.CharField(
        "chat webhook", max_length=1000, blank=True, validators=[validate_chat_url],
        help_text="A Microsoft Teams or Slack incoming-webhook URL (or any apprise URL). It is a secret: only you "
                  "see it, and it is never written to a log.")
    events = models.JSONField(default=list, blank=True, help_text="Which events to hear about; empty: all.")

    def wants(self, event: str) -> bool:
        return not self.events or event in self.events


class Delivery(models.Model):
    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        CHAT = "chat", "Chat"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    channel = models.CharField(max_length=5, choices=Channel.choices)
    event = models.CharField(max_length=30, choices=Event.choices)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    link = models.CharField(max_length=500, blank=True, help_text="The portal page it is about.")
    status = models.CharField(max_length=7, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True, help_text="Why the last attempt failed.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.get_channel_display()} to {self.user}: {self.subject}"
