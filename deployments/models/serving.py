"""Serving: deployment profiles, endpoints and the deployments behind them."""
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.urls import reverse
from simple_history.models import HistoricalRecords

ENDPOINT_NAME_VALIDATOR = RegexValidator(
    r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$",
    "Use 3–32 lowercase letters, digits or '-', starting with a letter and not ending with '-' (Azure's rule).",
)
# An AKS cluster's instance type is a Kubernetes resource: its name follows Kubernetes' rule (RFC 1123 label).
INSTANCE_TYPE_VALIDATOR = RegexValidator(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "An instance type is a Kubernetes name: lower-case letters, digits and '-'.")
DEPLOYMENT_NAME_VALIDATOR = RegexValidator(
    r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$", "Use 3–32 lowercase letters, digits or '-', starting with a letter.")


def new_endpoint_key() -> str:
    return secrets.token_urlsafe(32)


class DeploymentProfile(models.Model):
    """How a deployment runs: the settings of Azure ML's online deployment (and of the seed's AKS config)."""

    name = models.CharField(max_length=63, unique=True)
    description = models.TextField(blank=True)
    instance_count = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Replicas when autoscale is off.")
    autoscale_enabled = models.BooleanField(default=False)
    min_instances = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1), MaxValueValidator(100)])
    max_instances = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1), MaxValueValidator(100)])
    target_utilization = models.PositiveSmallIntegerField(
        default=70, validators=[MinValueValidator(1), MaxValueValidator(100)], help_text="Percent CPU to scale at.")
    cpu_request = models.DecimalField(max_digits=5, decimal_places=2, default=0.5,
                                      validators=[MinValueValidator(0.01), MaxValueValidator(64)], help_text="Cores.")
    memory_request_gb = models.DecimalField(
        "memory request (GB)", max_digits=6, decimal_places=2, default=1,
        validators=[MinValueValidator(0.1), MaxValueValidator(512)],
        help_text="Gigabytes (10⁹ bytes; 1 GiB is 1.07 GB), as v1's memoryInGB.")
    request_timeout_ms = models.PositiveIntegerField(
        default=60_000, validators=[MinValueValidator(100), MaxValueValidator(300_000)],
        help_text="Scoring timeout per request, 100 ms to 300,000 ms.")
    max_concurrent_requests_per_instance = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(1000)])
    max_queue_wait_ms = models.PositiveIntegerField(
        "max queue wait (ms)", default=500, validators=[MinValueValidator(1), MaxValueValidator(3_600_000)],
        help_text="How long a request may wait for a free replica on Kubernetes (Azure's default: 500 ms; the seed "
                  "waits 180,000). Managed endpoints ignore it.")
    polling_interval_seconds = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(3600)],
        help_text="With autoscale: how often utilization is checked (v1 refreshPeriodInSeconds).")
    kubernetes_instance_type = models.CharField(
        max_length=63, blank=True, validators=[INSTANCE_TYPE_VALIDATOR],
        help_text="The AKS cluster's instance type Kubernetes deployments run on (blank: the workspace's default). "
                  "CPU and memory must fit within its limits. Managed deployments use the workspace's VM size.")
    auth_enabled = models.BooleanField(default=True, help_text="Callers must send the endpoint's key.")
    updated_at = models.DateTimeField(auto_now=True)
    # Every save is a revision (who, when), to compare and revert in Django admin.
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        if self.autoscale_enabled:
            if self.min_instances > self.max_instances:
                errors["min_instances"] = "The minimum cannot be above the maximum."
            elif not self.min_instances <= self.instance_count <= self.max_instances:
                errors["instance_count"] = (f"With autoscale, the starting count must be between the minimum "
                                            f"({self.min_instances}) and the maximum ({self.max_instances}).")
        if errors:
            raise ValidationError(errors)

    @classmethod
    def revision_number(cls, history_id: int | None, profile_id: int | None = None) -> int | None:
        """The number (1 is the first) of the profile revision with this history id, or None; one query less when
        the profile is known."""
        if profile_id is None:
            profile_id = cls.history.filter(history_id=history_id).values_list("id", flat=True).first()
        if profile_id is None:
            return None
        return cls.history.filter(id=profile_id, history_id__lte=history_id).count()

    def serving_settings(self) -> dict:
        """The settings a backend receives: plain values, kept on each deployment as deployed."""
        return {
            "instance_count": self.instance_count, "autoscale_enabled": self.autoscale_enabled,
            "min_instances": self.min_instances, "max_instances": self.max_instances,
            "target_utilization": self.target_utilization, "cpu_request": float(self.cpu_request),
            "memory_request_gb": float(self.memory_request_gb), "request_timeout_ms": self.request_timeout_ms,
            "max_concurrent_requests_per_instance": self.max_concurrent_requests_per_instance,
            "max_queue_wait_ms": self.max_queue_wait_ms, "polling_interval_seconds": self.polling_interval_seconds,
            "instance_type": self.kubernetes_instance_type, "auth_enabled": self.auth_enabled,
        }


class Endpoint(models.Model):
    class Stage(models.TextChoices):
        STAGING = "staging", "Staging"
        PRODUCTION = "production", "Production"

    name = models.CharField(max_length=32, unique=True, validators=[ENDPOINT_NAME_VALIDATOR])
    stage = models.CharField(max_length=12, choices=Stage.choices)
    description = models.TextField(blank=True)
    auth_enabled = models.BooleanField(default=True)
    key = models.CharField(max_length=100, default=new_endpoint_key, editable=False)
    platform_scoring_url = models.URLField(
        max_length=500, blank=True, editable=False,
        help_text="Set when the ML platform serves the endpoint (Azure ML); empty when the portal's router does.")
    profile = models.ForeignKey(DeploymentProfile, on_delete=models.PROTECT, related_name="endpoints",
                                help_text="Deployments on this endpoint run with this profile.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    traffic_updated_at = models.DateTimeField(auto_now_add=True)
    # The portal's split is its deployments' `traffic` (what it asked for); what the platform was last seen routing
    # by is kept apart, so a split asked for and not applied yet (or lost) shows as such, and is sent again.
    platform_traffic = models.JSONField(
        default=dict, blank=True, editable=False,
        help_text="The split the ML platform was last seen routing by (deployment -> percent; non-zero only).")
    platform_traffic_at = models.DateTimeField(null=True, blank=True, editable=False)
    changed_outside = models.CharField(
        max_length=300, blank=True, help_text="What the sync found changed in the ML platform outside the portal.")
    platform_error = models.CharField(
        max_length=1000, blank=True, editable=False,
        help_text="Why the ML platform refused to create the endpoint (e.g. its name is taken in the region).")
    # Promotion policy, for production endpoints.
    approval_required = models.BooleanField(
        default=True, help_text="A manager or admin other than the requester must approve each promotion.")
    traffic_steps = models.CharField(
        max_length=100, default="10,50,100", validators=[RegexValidator(r"^\d{1,3}(,\d{1,3})*$", "Use e.g. 10,50,100.")],
        help_text="Percentages of traffic the new deployment takes in turn, each checked before the next; ends at 100.")
    # Revisions of the endpoint's settings and policy. Never the key (a credential), nor what the platform and the
    # traffic writes set: a revert must not bring those back.
    history = HistoricalRecords(excluded_fields=["key", "platform_scoring_url", "changed_outside",
                                                 "traffic_updated_at", "platform_error", "platform_traffic",
                                                 "platform_traffic_at"])

    class Meta:
        ordering = ["stage", "name"]
        permissions = [("reveal_endpoint_key", "Can reveal an endpoint's key")]

    def __str__(self) -> str:
        return self.name

    def traffic_wanted(self) -> dict[str, int]:
        """The split the portal asks for: its live deployments' traffic (non-zero only)."""
        return {d.name: d.traffic for d in self.deployments.all() if d.is_live and d.traffic}

    def traffic_pending(self) -> bool:
        """Whether the platform has not been seen routing by the portal's split since it was last set."""
        if self.platform_traffic != self.traffic_wanted():
            return True
        # The same split, but seen before the last change (a split set and set back before the platform applied it)
        return self.platform_traffic_at is not None and self.platform_traffic_at < self.traffic_updated_at

    def get_absolute_url(self) -> str:
        return reverse("deployments:endpoint_detail", args=[self.name])

    def clean(self) -> None:
        try:
            steps = self.traffic_step_list()
        except ValueError:
            return  # the field's own validator reports it
        if not steps or steps[-1] != 100 or steps != sorted(set(steps)) or steps[0] < 1:
            raise ValidationError({"traffic_steps": "Steps must rise strictly, from at least 1 up to 100."})

    def traffic_step_list(self) -> list[int]:
        return [int(part) for part in self.traffic_steps.split(",") if part.strip()]

    @property
    def masked_key(self) -> str:
        return "•" * 16  # nothing of the key: the platform's keys are real credentials


class Deployment(models.Model):
    class Status(models.TextChoices):
        CREATING = "creating", "Creating"
        HEALTHY = "healthy", "Healthy"
        UNHEALTHY = "unhealthy", "Unhealthy"
        FAILED = "failed", "Failed"
        DELETING = "deleting", "Deleting"
        DELETED = "deleted", "Deleted"

    LIVE = (Status.CREATING, Status.HEALTHY, Status.UNHEALTHY)

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deployments")
    name = models.CharField(max_length=32, validators=[DEPLOYMENT_NAME_VALIDATOR])
    model_version = models.ForeignKey("models_registry.ModelVersion", on_delete=models.PROTECT,
                                      related_name="deployments")
    serving_settings = models.JSONField(default=dict, help_text="The profile's settings as deployed.")
    profile_revision = models.PositiveBigIntegerField(
        null=True, blank=True, editable=False,
        help_text="The revision (history id) of the profile its settings were taken from; empty for deployments "
                  "made before profiles had revisions.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CREATING, db_index=True)
    traffic = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)],
                                               help_text="Percent of the endpoint's requests.")
    backend_ref = models.JSONField(default=dict, blank=True, help_text="What the backend needs to find it again.")
    backend_plan = models.JSONField(default=dict, blank=True, help_text=(
        "Where the backend was told to start it, recorded before it started: a worker that dies while starting it "
        "leaves this, and the next one adopts what was started there."))
    scoring_url = models.CharField(max_length=500, blank=True, help_text="The deployment's own URL (no routing).")
    error = models.TextField(blank=True)
    restarts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    healthy_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    changed_outside = models.CharField(
        max_length=300, blank=True, help_text="What the sync found changed in the ML platform outside the portal.")

    class Meta:
        ordering = ["endpoint", "-created_at"]
        constraints = [
            # A name is reused only after the deployment that had it is gone.
            models.UniqueConstraint(fields=["endpoint", "name"], name="unique_live_deployment_name",
                                    condition=~models.Q(status="deleted")),
        ]

    def __str__(self) -> str:
        return f"{self.endpoint.name}/{self.name}"

    def profile_revision_row(self):
        """The profile revision its settings came from (a django-simple-history row), or None."""
        if self.profile_revision is None:
            return None
        return DeploymentProfile.history.filter(history_id=self.profile_revision).first()

    @property
    def is_live(self) -> bool:
        return self.status in self.LIVE
