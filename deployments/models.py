"""Endpoints, the deployments behind them, and the profiles that say how a deployment runs."""
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.urls import reverse

ENDPOINT_NAME_VALIDATOR = RegexValidator(
    r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$",
    "Use 3–32 lowercase letters, digits or '-', starting with a letter and not ending with '-' (Azure's rule).",
)
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
    memory_request_gb = models.DecimalField(max_digits=6, decimal_places=2, default=1,
                                            validators=[MinValueValidator(0.1), MaxValueValidator(512)])
    request_timeout_ms = models.PositiveIntegerField(
        default=60_000, validators=[MinValueValidator(100), MaxValueValidator(300_000)],
        help_text="Scoring timeout per request, 100 ms to 300,000 ms.")
    max_concurrent_requests_per_instance = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(1000)])
    auth_enabled = models.BooleanField(default=True, help_text="Callers must send the endpoint's key.")
    updated_at = models.DateTimeField(auto_now=True)

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

    def serving_settings(self) -> dict:
        """The settings a backend receives: plain values, kept on each deployment as deployed."""
        return {
            "instance_count": self.instance_count, "autoscale_enabled": self.autoscale_enabled,
            "min_instances": self.min_instances, "max_instances": self.max_instances,
            "target_utilization": self.target_utilization, "cpu_request": float(self.cpu_request),
            "memory_request_gb": float(self.memory_request_gb), "request_timeout_ms": self.request_timeout_ms,
            "max_concurrent_requests_per_instance": self.max_concurrent_requests_per_instance,
            "auth_enabled": self.auth_enabled,
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
    changed_outside = models.CharField(
        max_length=300, blank=True, help_text="What the sync found changed in the ML platform outside the portal.")
    # Promotion policy, for production endpoints.
    approval_required = models.BooleanField(
        default=True, help_text="A manager or admin other than the requester must approve each promotion.")
    traffic_steps = models.CharField(
        max_length=100, default="10,50,100", validators=[RegexValidator(r"^\d{1,3}(,\d{1,3})*$", "Use e.g. 10,50,100.")],
        help_text="Percentages of traffic the new deployment takes in turn, each checked before the next; ends at 100.")

    class Meta:
        ordering = ["stage", "name"]
        permissions = [("reveal_endpoint_key", "Can reveal an endpoint's key")]

    def __str__(self) -> str:
        return self.name

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
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CREATING, db_index=True)
    traffic = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)],
                                               help_text="Percent of the endpoint's requests.")
    backend_ref = models.JSONField(default=dict, blank=True, help_text="What the backend needs to find it again.")
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

    @property
    def is_live(self) -> bool:
        return self.status in self.LIVE


class FunctionalTestCase(models.Model):
    """One payload and what the model must answer to it, kept per model; run against every new deployment."""

    model = models.ForeignKey("models_registry.RegisteredModel", on_delete=models.CASCADE,
                              related_name="functional_cases")
    name = models.CharField(max_length=200)
    payload = models.JSONField(help_text="The JSON body sent to the scoring URL.")
    expected_status = models.PositiveSmallIntegerField(default=200, validators=[MinValueValidator(100),
                                                                                MaxValueValidator(599)])
    expect_field = models.CharField(max_length=100, blank=True,
                                    help_text='A field of the JSON response to check, e.g. "prediction".')
    expected_value = models.JSONField(null=True, blank=True, help_text="What the field must equal.")
    tolerance = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0)],
                                  help_text="For numbers: passes when |actual − expected| ≤ tolerance.")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["model", "name"]

    def __str__(self) -> str:
        return f"{self.model.name}: {self.name}"

    def clean(self) -> None:
        if self.expect_field and self.expected_value is None:
            raise ValidationError({"expected_value": "Say what the field must equal."})
        if self.tolerance is not None and (isinstance(self.expected_value, bool)
                                           or not isinstance(self.expected_value, (int, float))):
            raise ValidationError({"tolerance": "A tolerance needs a numeric expected value."})

    def evaluate(self, status: int, body: str) -> tuple[bool, str]:
        """Did the response pass? With the reason when it did not."""
        import json
        import math

        if status != self.expected_status:
            return False, f"HTTP {status}, expected {self.expected_status}"
        if not self.expect_field:
            return True, ""
        try:
            actual = json.loads(body)[self.expect_field]
        except (ValueError, KeyError, TypeError):
            return False, f"the response has no field {self.expect_field!r}"
        if self.tolerance is not None:
            if isinstance(actual, bool) or not isinstance(actual, (int, float)) or not math.isfinite(actual):
                return False, f"{self.expect_field} is {json.dumps(actual)}, not a number"
            if abs(actual - self.expected_value) > self.tolerance:
                return False, f"{self.expect_field} is {actual}, expected {self.expected_value} ± {self.tolerance}"
            return True, ""
        if actual != self.expected_value:
            return False, f"{self.expect_field} is {json.dumps(actual)}, expected {json.dumps(self.expected_value)}"
        return True, ""


class StressProfile(models.Model):
    """How hard to push a staging deployment, and what it must achieve to pass."""

    model = models.ForeignKey("models_registry.RegisteredModel", on_delete=models.CASCADE,
                              related_name="stress_profiles")
    name = models.CharField(max_length=100)
    concurrency = models.PositiveSmallIntegerField(default=8, validators=[MinValueValidator(1), MaxValueValidator(512)])
    duration_seconds = models.PositiveIntegerField(null=True, blank=True, default=10,
                                                   validators=[MinValueValidator(1), MaxValueValidator(3600)])
    request_count = models.PositiveIntegerField(null=True, blank=True,
                                                validators=[MinValueValidator(1), MaxValueValidator(10_000_000)])
    payloads = models.JSONField(help_text="A JSON list of request bodies, sent in turn.")
    p95_ms_max = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0)],
                                   help_text="Fail when the 95th percentile latency is above this (ms).")
    error_rate_max = models.FloatField(null=True, blank=True, default=0.0,
                                       validators=[MinValueValidator(0), MaxValueValidator(1)],
                                       help_text="Fail when more than this share of requests fail (0–1).")
    min_rps = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0)],
                                help_text="Fail when throughput is below this (requests per second).")
    shards = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1), MaxValueValidator(16)],
                                              help_text="Spread the load over this many Celery workers.")

    class Meta:
        ordering = ["model", "name"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="unique_stress_profile_name")]

    def __str__(self) -> str:
        return f"{self.model.name}: {self.name}"

    def clean(self) -> None:
        errors = {}
        if (self.duration_seconds is None) == (self.request_count is None):
            errors["duration_seconds"] = "Give either a duration or a request count, not both."
        if not isinstance(self.payloads, list) or not self.payloads:
            errors["payloads"] = "Give a non-empty JSON list of request bodies."
        if self.concurrency and self.shards and self.shards > self.concurrency:
            errors["shards"] = "Use no more shards than concurrent users."
        if errors:
            raise ValidationError(errors)

    def plan(self) -> dict:
        return {"concurrency": self.concurrency, "duration_seconds": self.duration_seconds,
                "request_count": self.request_count, "payloads": self.payloads, "p95_ms_max": self.p95_ms_max,
                "error_rate_max": self.error_rate_max, "min_rps": self.min_rps, "shards": self.shards,
                "profile": self.name}


class TestOutcome(models.TextChoices):
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"


class FunctionalTestRun(models.Model):
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="functional_runs")
    promotion = models.ForeignKey("Promotion", null=True, blank=True, on_delete=models.CASCADE,
                                  related_name="functional_runs")
    purpose = models.CharField(max_length=80, default="Functional tests",
                               help_text="What the run was for: the functional tests, or a smoke check at a traffic step.")
    status = models.CharField(max_length=10, choices=TestOutcome.choices, default=TestOutcome.RUNNING)
    results = models.JSONField(default=list, help_text="[{case, passed, reason, status, body, ms}]")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    @property
    def passed_count(self) -> int:
        return sum(1 for r in self.results if r["passed"])


class StressRun(models.Model):
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="stress_runs")
    promotion = models.ForeignKey("Promotion", null=True, blank=True, on_delete=models.CASCADE,
                                  related_name="stress_runs")
    plan = models.JSONField(help_text="The profile's settings and thresholds as run.")
    status = models.CharField(max_length=10, choices=TestOutcome.choices, default=TestOutcome.RUNNING)
    summary = models.JSONField(default=dict, blank=True)
    series = models.JSONField(default=list, blank=True)
    latency_buckets = models.JSONField(default=list, blank=True)
    missed = models.JSONField(default=list, blank=True, help_text="The thresholds it missed, in words.")
    requeued = models.PositiveSmallIntegerField(default=0, help_text="Times missing shards were queued again.")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]


class StressShard(models.Model):
    """One Celery worker's part of a stress run; the run's result is the merge of all its shards."""

    run = models.ForeignKey(StressRun, on_delete=models.CASCADE, related_name="shard_results")
    index = models.PositiveSmallIntegerField()
    result = models.JSONField()
    worker = models.CharField(max_length=200, blank=True)
    finished_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="unique_stress_shard")]


class Promotion(models.Model):
    class State(models.TextChoices):
        RUNNING = "running", "Running"
        AWAITING_APPROVAL = "awaiting", "Awaiting approval"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        REJECTED = "rejected", "Rejected"

    ACTIVE = (State.RUNNING, State.AWAITING_APPROVAL)

    version = models.ForeignKey("models_registry.ModelVersion", on_delete=models.PROTECT, related_name="promotions")
    staging_endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="+")
    production_endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="promotions")
    stress_profile = models.ForeignKey(StressProfile, null=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField(blank=True, help_text="Why this version should serve production.")
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
        return f"promotion #{self.pk}: {self.version} to {self.production_endpoint.name}"

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

    promotion = models.ForeignKey(Promotion, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=30)
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
        from django.utils import timezone

        return (self.finished_at or timezone.now()) - self.started_at
