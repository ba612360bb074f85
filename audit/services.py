"""Writing to and reading from the audit log."""
from django.contrib.contenttypes.models import ContentType
from django.db import models

from .models import AuditEvent


def audit_record(*, actor, action: str, target: models.Model, summary: str = "", changes: dict | None = None,
                 via: str = "") -> AuditEvent:
    """Record an action; with no actor it was the system's own doing (a worker, beat)."""
    via = via or ("portal" if actor is not None else "system")
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
