"""Writing to and reading from the audit log."""
import json
from decimal import Decimal

from django.contrib.contenttypes.models import ContentType
from django.db import models

from .context import acting
from .models import AuditEvent

MASK = "••••"
VALUE_MAX_CHARS = 200  # a value longer than this is cut: the log says what changed, the row keeps the whole of it
SECRET_WORDS = {"secret", "password", "passwd", "credential", "credentials", "token"}


def is_secret(field: str) -> bool:
    """Whether a field's values must never be written to the log: key (but not key_metric), *_secret, password..."""
    parts = field.lower().split("_")
    return parts[-1] == "key" or bool(SECRET_WORDS.intersection(parts))


def audit_value(value):
    """A value as the log keeps it: JSON, small."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dict, list, tuple)):
        text = json.dumps(value, default=str, ensure_ascii=False)
        return value if len(text) <= VALUE_MAX_CHARS else text[:VALUE_MAX_CHARS - 1] + "…"
    text = str(value)
    return text if len(text) <= VALUE_MAX_CHARS else text[:VALUE_MAX_CHARS - 1] + "…"


def field_diff(before: dict, after: dict) -> list[dict]:
    """[{field, old, new}] for each field whose value differs (a field missing on one side is None there);
    secrets are masked, long values cut."""
    rows = []
    for field in [*before, *(name for name in after if name not in before)]:
        old, new = before.get(field), after.get(field)
        if old == new:
            continue
        if is_secret(field):
            old, new = MASK if old not in (None, "") else old, MASK if new not in (None, "") else new
        rows.append({"field": field, "old": audit_value(old), "new": audit_value(new)})
    return rows


def model_snapshot(instance: models.Model) -> dict:
    """The row's own values by field name, as they read: a related row by its name, not its id. Leaves out the
    primary key and the timestamps Django sets itself on every save."""
    values = {}
    for field in instance._meta.concrete_fields:
        if field.primary_key or getattr(field, "auto_now", False):
            continue
        if field.is_relation:
            related_id = getattr(instance, field.attname)
            values[field.name] = None if related_id is None else str(getattr(instance, field.name))
        else:
            values[field.name] = field.value_from_object(instance)
    return values


def status_change(field: str, old, new) -> dict:
    """The `changes` of an event that moves one field (a status, a state) from `old` to `new`."""
    return {"diff": field_diff({field: old}, {field: new})}


def audit_record(*, actor, action: str, target: models.Model, summary: str = "", changes: dict | None = None,
                 via: str = "") -> AuditEvent:
    """Record an action; with no actor it was the system's own doing (a worker, beat). Inside an API request the
    event says so, and names the token (audit.context)."""
    now = acting() if actor is not None else None
    via = via or (now.via if now else "portal" if actor is not None else "system")
    return AuditEvent.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_name=actor.get_username() if actor is not None and actor.is_authenticated else "system",
        action=action,
        target_type=ContentType.objects.get_for_model(target, for_concrete_model=False),
        target_id=str(target.pk),
        target_repr=str(target)[:300],
        summary=summary[:500],
        changes=changes or {},
        via=via,
        credential=now.credential if now else "",
    )


def audit_events_for(*targets: models.Model, limit: int = 50):
    """Events on any of the given objects, newest first."""
    query = models.Q()
    for target in targets:
        query |= models.Q(target_type=ContentType.objects.get_for_model(target, for_concrete_model=False),
                          target_id=str(target.pk))
    if not targets:
        return AuditEvent.objects.none()
    return AuditEvent.objects.filter(query).select_related("actor")[:limit]
