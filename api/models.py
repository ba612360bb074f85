"""API tokens (stored hashed) and the idempotency keys of the POSTs that start things."""
from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    """A user's credential for pipelines. The secret is shown once, when made; only its SHA-256 is kept. The token acts
    with its user's roles, or with reading only."""
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=60, help_text="What it is for, e.g. the pipeline that uses it.")
    key_id = models.CharField(max_length=16, unique=True, help_text="The public part: mlp_<key_id>_… .")
    secret_hash = models.CharField(max_length=64)
    read_only = models.BooleanField(default=False, help_text="May read, but start, change or decide nothing.")
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], condition=models.Q(revoked_at__isnull=True),
                                               name="api_token_name_unique_while_active")]

    def __str__(self) -> str:
        return f"mlp_{self.key_id} ({self.name})"

    @property
    def prefix(self) -> str:
        return f"mlp_{self.key_id}"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.is_expired else "active"


class IdempotencyKey(models.Model):
    """The answer given to a POST that carried an Idempotency-Key, so the same POST again gets the same answer and
    starts nothing. Written in the transaction that starts the work: either both are kept or neither."""
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    route = models.CharField(max_length=200, help_text="The method and path it was sent to.")
    request_hash = models.CharField(max_length=64, help_text="SHA-256 of the request body.")
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique_per_user")]

    def __str__(self) -> str:
        return f"{self.key} → {self.route}"
