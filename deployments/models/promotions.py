"""Promotions: a version's way to production, step by step."""
from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from .serving import Deployment, DeploymentProfile, Endpoint
from .verification import StressProfile


class Promotion(models.Model):
    class State(models.TextChoices):
        RUNNING = "running", "Running"
        AWAITING_APPROVAL = "awaiting", "Awaiting approval"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        REJECTED = "rejected", "Rejected"
        CANCELED = "canceled", "Canceled"

    ACTIVE = (State.RUNNING, State.AWAITING_APPROVAL)

    class Kind(models.TextChoices):
        VERSION = "version", "Version promotion"
        CONFIG = "config", "Config rollout"

    version = models.ForeignKey("models_registry.ModelVersion", on_delete=models.PROTECT, related_name="promotions")
    staging_endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="+")
    production_endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="promotions")
    stress_profile = models.ForeignKey(StressProfile, null=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField(blank=True, help_text="Why this version should serve production.")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.VERSION,
                            help_text="A new version, or the version serving now with its profile's new settings.")
    profile_revision = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="A config rollout: the production profile's revision (history id) it "
                                         "deploys, pinned when it started.")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING, db_index=True)
    failure_reason = models.TextField(blank=True)
    approval_required = models.BooleanField()
    traffic_steps = models.JSONField(default=list)
    staging_deployment = models.ForeignKey(Deployment, null=True, blank=True, on_delete=models.SET_NULL,
                                           related_name="+")
    production_deployment = models.ForeignKey(Deployment, null=True, blank=True, on_delete=models.SET_NULL,
                                              related_name="+")
    previous_traffic = models.JSONField(null=True, blank=True,
                                        help_text="Production traffic before the rollout, restored on failure.")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    decision = models.CharField(max_length=10, blank=True)
    decision_comment = models.TextField(blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True, help_text="A worker is advancing it until then.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("approve_promotion", "Can approve or reject a promotion to production")]
        constraints = [
            # Never two promotions rolling out to the same endpoint at once.
            models.UniqueConstraint(fields=["production_endpoint"], name="one_active_promotion_per_endpoint",
                                    condition=models.Q(state__in=["running", "awaiting"])),
        ]

    def __str__(self) -> str:
        if self.kind == self.Kind.CONFIG:
            return f"config rollout #{self.pk}: {self.version} to {self.production_endpoint.name}"
        return f"promotion #{self.pk}: {self.version} to {self.production_endpoint.name}"

    def pinned_settings(self) -> dict | None:
        """A config rollout's serving settings: those of the profile revision it started with."""
        if self.profile_revision is None:
            return None
        row = DeploymentProfile.history.filter(history_id=self.profile_revision).first()
        return row.instance.serving_settings() if row is not None else None

    def get_absolute_url(self) -> str:
        return reverse("deployments:promotion_detail", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE


class PromotionStep(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        CANCELED = "canceled", "Not run"

    OPEN = (Status.PENDING, Status.RUNNING, Status.WAITING)

    promotion = models.ForeignKey(Promotion, on_delete=models.PROTECT, related_name="steps")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=30)
    percent = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="For a traffic step: the share of traffic the new deployment takes.")
    retries = models.PositiveSmallIntegerField(
        default=0, help_text="Times the step was run again after it broke (an unexpected error, a dead worker).")
    label = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    detail = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["promotion", "position"]
        constraints = [models.UniqueConstraint(fields=["promotion", "position"], name="unique_promotion_step")]

    def __str__(self) -> str:
        return f"{self.label} ({self.get_status_display().lower()})"

    @property
    def duration(self):
        if self.started_at is None:
            return None
        return (self.finished_at or timezone.now()) - self.started_at
