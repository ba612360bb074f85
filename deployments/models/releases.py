"""The release ledger: every change to what an endpoint serves, append-only.

Each event keeps the whole of what the endpoint served right after the change (its live deployments, the version
each serves and its share of the traffic), so "what served X at T" is one row: the endpoint's latest event at or
before T. Written by the serving services in the transaction that makes the change; never edited.
"""
from django.conf import settings
from django.db import models
from django.utils import timezone

from .promotions import Promotion
from .serving import Deployment, Endpoint


class ReleaseEvent(models.Model):
    class Kind(models.TextChoices):
        DEPLOYED = "deployed", "Deployment added"
        REMOVED = "removed", "Deployment removed"
        TRAFFIC = "traffic", "Traffic changed"
        ROLLBACK = "rollback", "Rolled back"
        CONFIG = "config", "Configuration applied"

    endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="release_events")
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # [{deployment, deployment_id, version_id, version, traffic}] for each live deployment after the change.
    serving = models.JSONField(default=list, help_text="What the endpoint served right after the change.")
    deployment = models.ForeignKey(Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                   help_text="The deployment added or removed.")
    model = models.ForeignKey("models_registry.RegisteredModel", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+", help_text="The model the change is about (for its timeline): the "
                              "deployment's, else the one taking the most traffic after it.")
    promotion = models.ForeignKey(Promotion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                  help_text="The promotion that made the change, with its approval and evidence.")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_name = models.CharField(max_length=150, help_text="Kept when the user is deleted.")
    via = models.CharField(max_length=20, default="portal", help_text="portal, api, admin or system")
    summary = models.CharField(max_length=500, blank=True, help_text="What changed and why.")

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["endpoint", "-at", "-id"], name="release_endpoint_at"),
                   models.Index(fields=["model", "-at", "-id"], name="release_model_at"),
                   models.Index(fields=["-at", "-id"], name="release_at")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.endpoint_id} {self.kind}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Release events are append-only.")
        super().save(*args, **kwargs)

    @property
    def split(self) -> dict[str, int]:
        """Deployment name -> percent, for the deployments that take traffic."""
        return {row["deployment"]: row["traffic"] for row in self.serving if row.get("traffic")}
