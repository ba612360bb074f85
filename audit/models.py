"""The audit log: who did what, when, to which object. Append-only; no page edits it."""
import json

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        CREATE = "create", "created"
        LAUNCH = "launch", "launched"
        REGISTER = "register", "registered"
        UPDATE = "update", "edited"
        DELETE = "delete", "deleted"
        CANCEL = "cancel", "canceled"
        REVEAL = "reveal", "viewed the key of"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor_name = models.CharField(max_length=150, help_text="Kept when the user is deleted.")
    action = models.CharField(max_length=20, choices=Action.choices)
    target_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    target_id = models.CharField(max_length=64)
    target_repr = models.CharField(max_length=300)
    summary = models.CharField(max_length=500, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    via = models.CharField(max_length=20, default="portal", help_text="portal, api, admin or system")
    credential = models.CharField(max_length=120, blank=True,
                                  help_text="Through the API: the token used (its id and name, never the secret).")

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id", "-at"]),
                   # The audit page: newest first, by who or what.
                   models.Index(fields=["-at", "-id"], name="audit_at_id"),
                   models.Index(fields=["actor_name", "-at", "-id"], name="audit_actor_at"),
                   models.Index(fields=["action", "-at", "-id"], name="audit_action_at"),
                   models.Index(fields=["target_type", "-at", "-id"], name="audit_type_at")]
        permissions = [("read_audit_log", "Can read the whole audit log (managers and admins)")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name} {self.get_action_display()} {self.target_repr}"

    @property
    def field_changes(self) -> list[dict]:
        return field_changes(self.changes)

    @property
    def field_changes_in_words(self) -> list[tuple[str, str, str]]:
        """field_changes as the pages show them: (field, old, new), JSON for structured values, "—" for none."""
        def shown(value) -> str:
            if value is None or value == "":
                return "—"
            if isinstance(value, (dict, list, bool)):
                return json.dumps(value, ensure_ascii=False)
            return str(value)

        return [(row["field"].replace("_", " "), shown(row.get("old")), shown(row.get("new")))
                for row in self.field_changes]

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Audit events are append-only.")
        super().save(*args, **kwargs)


def field_changes(changes) -> list[dict]:
    """What an event's `changes` changed, field by field: [{field, old, new}]. Reads the {"diff": [...]} the log writes
    now and the {field: [old, new]} pairs of older events; anything else it carries is not a field change."""
    from .services import MASK, audit_value, is_secret

    changes = changes if isinstance(changes, dict) else {}
    if isinstance(changes.get("diff"), list):
        return [row for row in changes["diff"] if isinstance(row, dict) and "field" in row]
    rows = []
    for field, pair in changes.items():
        if isinstance(pair, list) and len(pair) == 2:
            old, new = (MASK, MASK) if is_secret(field) else pair
            rows.append({"field": field, "old": audit_value(old), "new": audit_value(new)})
    return rows
