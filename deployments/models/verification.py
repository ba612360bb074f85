"""Verification: functional test cases and runs, stress profiles, runs and their shards."""
import json
import math

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse
from simple_history.models import HistoricalRecords

from .serving import Deployment


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
    history = HistoricalRecords()

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
    history = HistoricalRecords()

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
    # Its promotion finished (or it was run again) before it did: a worker stopped in the middle of it.
    STOPPED = "stopped", "Stopped"


class FunctionalTestRun(models.Model):
    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="functional_runs")
    promotion = models.ForeignKey("Promotion", null=True, blank=True, on_delete=models.PROTECT,
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
    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="stress_runs")
    promotion = models.ForeignKey("Promotion", null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="stress_runs")
    plan = models.JSONField(help_text="The profile's settings and thresholds as run.")
    status = models.CharField(max_length=10, choices=TestOutcome.choices, default=TestOutcome.RUNNING)
    summary = models.JSONField(default=dict, blank=True)
    series = models.JSONField(default=list, blank=True)
    latency_buckets = models.JSONField(default=list, blank=True)
    missed = models.JSONField(default=list, blank=True, help_text="The thresholds it missed, in words.")
    requeued = models.PositiveSmallIntegerField(default=0, help_text="Times missing shards were queued again.")
    requeued_at = models.DateTimeField(null=True, blank=True, help_text="When the missing shards were queued again.")
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


class CapacityTest(models.Model):
    """A stepped open-loop load on a staging deployment to find its knee: the highest rate it carries within a p95
    and error SLO, and so what one instance of this model version sustains. Taken a step at a time by tasks (each
    step is kept as soon as it is measured), so a worker that dies costs one step, not the test."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"  # the search ended: it found a knee, or says why it found none
        STOPPED = "stopped", "Stopped"  # cancelled, or its deployment went away

    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="capacity_tests")
    model_version = models.ForeignKey("models_registry.ModelVersion", on_delete=models.PROTECT,
                                      related_name="capacity_tests")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    p95_slo_ms = models.FloatField("p95 SLO (ms)", validators=[MinValueValidator(1), MaxValueValidator(300_000)])
    error_rate_max = models.FloatField(default=0.01, validators=[MinValueValidator(0), MaxValueValidator(0.5)])
    step_seconds = models.PositiveSmallIntegerField(default=10, validators=[MinValueValidator(2),
                                                                            MaxValueValidator(600)])
    start_rps = models.FloatField(default=5, validators=[MinValueValidator(0.1), MaxValueValidator(10_000)])
    max_rps = models.FloatField(default=2_000, validators=[MinValueValidator(1), MaxValueValidator(100_000)])
    payloads = models.JSONField(help_text="The request bodies, sent in turn.")
    max_in_flight = models.PositiveSmallIntegerField(default=64, validators=[MinValueValidator(1),
                                                                             MaxValueValidator(512)])
    instances = models.PositiveSmallIntegerField(help_text="Instances the deployment ran when tested.")
    serving_settings = models.JSONField(default=dict, blank=True, help_text="The deployment's settings when tested.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING, db_index=True)
    steps = models.JSONField(default=list, blank=True, help_text="Each measured step, in order.")
    knee_rps = models.FloatField(null=True, blank=True)
    per_instance_rps = models.FloatField(null=True, blank=True, help_text="What one instance sustains within the SLO.")
    confirmed = models.BooleanField(null=True, blank=True, help_text="Whether a fixed load at the sustained rate met the SLO.")
    detail = models.TextField(blank=True, help_text="The outcome in words.")
    leased_until = models.DateTimeField(null=True, blank=True, help_text="A worker is measuring a step until then.")
    stepped_at = models.DateTimeField(null=True, blank=True, help_text="When the last step was kept.")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["model_version", "status"], name="capacity_version_status")]

    def __str__(self) -> str:
        return f"capacity test #{self.pk} of {self.model_version}"

    def get_absolute_url(self) -> str:
        return reverse("deployments:capacity_detail", args=[self.pk])

    def clean(self) -> None:
        if self.start_rps and self.max_rps and self.start_rps > self.max_rps:
            raise ValidationError({"start_rps": "Start at or below the highest rate to try."})


class CapacityProposal(models.Model):
    """Profile values for a target load, worked out from a capacity test, with the reasoning; applied (or not) as a
    revision of a deployment profile."""

    test = models.ForeignKey(CapacityTest, on_delete=models.CASCADE, related_name="proposals")
    profile = models.ForeignKey("DeploymentProfile", on_delete=models.CASCADE, related_name="capacity_proposals")
    target_rps = models.FloatField("target (req/s)", validators=[MinValueValidator(0.01),
                                                                 MaxValueValidator(1_000_000)])
    p95_slo_ms = models.FloatField("p95 SLO (ms)", validators=[MinValueValidator(1), MaxValueValidator(300_000)])
    values = models.JSONField(help_text="Profile field → proposed value.")
    reasons = models.JSONField(help_text="Why, one sentence per decision.")
    problems = models.JSONField(default=list, blank=True, help_text="What the platform would refuse, in words.")
    based_on_revision = models.PositiveIntegerField(help_text="The profile's revision the proposal changes.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    applied_revision = models.PositiveIntegerField(null=True, blank=True,
                                                   help_text="The profile revision it was applied as.")
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
