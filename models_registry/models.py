"""Registered models, their versions, and the training runs that produce them."""
from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

NAME_VALIDATOR = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]{1,62}$",
    "Use 2–63 lowercase letters, digits, '-' or '_', starting with a letter or digit.",
)


class RegisteredModel(models.Model):
    class Goal(models.TextChoices):
        MAXIMIZE = "max", "higher is better"
        MINIMIZE = "min", "lower is better"

    name = models.CharField(max_length=63, unique=True, validators=[NAME_VALIDATOR])
    description = models.TextField(blank=True)
    key_metric = models.CharField(max_length=64, default="cv_accuracy",
                                  help_text="The metric shown in lists and charted across versions.")
    key_metric_goal = models.CharField(max_length=3, choices=Goal.choices, default=Goal.MAXIMIZE)
    # Kept up to date on registration so the models list needs no per-row query.
    latest_version = models.ForeignKey("ModelVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")
    versions_reserved = models.PositiveIntegerField(
        default=0, editable=False,
        help_text="The highest version number handed out, registered or not: a number is never given twice.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("models_registry:model_detail", args=[self.name])


class ModelVersion(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    artifact_uri = models.CharField(max_length=500)
    artifact_sha256 = models.CharField(max_length=64)
    artifact_size = models.BigIntegerField(default=0)
    artifact_files = models.JSONField(default=list, blank=True, help_text="[{path, size, sha256}] at registration.")
    # Lineage: where the version came from.
    training_run = models.ForeignKey("TrainingRun", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="versions")
    dataset_sha256 = models.CharField(max_length=64, blank=True)
    code_version = models.CharField(max_length=64, blank=True)
    changed_outside = models.CharField(
        max_length=300, blank=True, help_text="What the sync found changed in the ML platform outside the portal.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["model", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="unique_model_version"),
            # A run's output becomes at most one version of a given model.
            models.UniqueConstraint(fields=["model", "training_run"], name="unique_model_version_per_run",
                                    condition=models.Q(training_run__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.version}"

    def get_absolute_url(self) -> str:
        return reverse("models_registry:version_detail", args=[self.model.name, self.version])

    @property
    def key_metric_value(self):
        return self.metrics.get(self.model.key_metric)


class TrainingRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)

    experiment_name = models.CharField(max_length=63, validators=[NAME_VALIDATOR])
    example = models.CharField(max_length=63, help_text="The training example (examples/<name>/).")
    params = models.JSONField(default=dict)
    compute_target = models.CharField(max_length=100)
    backend = models.CharField(max_length=20)
    timeout_seconds = models.PositiveIntegerField()
    register_as = models.ForeignKey(RegisteredModel, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+", help_text="Register the output as a new version on success.")

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    backend_job_id = models.CharField(max_length=200, blank=True)
    code_version = models.CharField(max_length=64, blank=True)
    dataset_sha256 = models.CharField(max_length=64, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    registration_error = models.TextField(blank=True, help_text="Why registering the output failed, if it did.")

    launched_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True,
                                          help_text="When a worker last checked on the job; stale means it died.")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"run #{self.pk} ({self.experiment_name})"

    def get_absolute_url(self) -> str:
        return reverse("models_registry:run_detail", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def job_name(self) -> str:
        return f"run-{self.pk}-{self.experiment_name}"

    @property
    def duration(self):
        if self.started_at is None:
            return None
        return (self.finished_at or timezone.now()) - self.started_at
