"""Admins edit through Django admin too; its LogEntry rows are mirrored into our audit log.

The admins of the portal's own models (audit.admin_mixins.AuditedAdminMixin) also say what each edit changed, field
by field: they put it in `admin_diff` while Django writes the LogEntry, and the mirror keeps it in the event."""
from contextlib import contextmanager
from contextvars import ContextVar

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import AuditEvent

_ACTIONS = {ADDITION: AuditEvent.Action.CREATE, CHANGE: AuditEvent.Action.UPDATE, DELETION: AuditEvent.Action.DELETE}
_admin_diff: ContextVar[tuple[list | None, str]] = ContextVar("audit_admin_diff", default=(None, ""))


@contextmanager
def admin_diff(diff: list | None, note: str = ""):
    """While Django admin logs an action: the [{field, old, new}] it made and the admin's note, for the mirrored
    event."""
    token = _admin_diff.set((diff, note))
    try:
        yield
    finally:
        _admin_diff.reset(token)


@receiver(post_save, sender=LogEntry, dispatch_uid="audit.mirror_admin_log")
def mirror_admin_log_entry(sender, instance: LogEntry, created: bool, **kwargs) -> None:
    if not created or instance.content_type_id is None:
        return
    diff, note = _admin_diff.get()
    summary = instance.get_change_message() + (f" Note: {note}" if note else "")
    AuditEvent.objects.create(
        actor=instance.user,
        actor_name=instance.user.get_username(),
        action=_ACTIONS.get(instance.action_flag, AuditEvent.Action.UPDATE),
        target_type_id=instance.content_type_id,
        target_id=str(instance.object_id or ""),
        target_repr=instance.object_repr[:300],
        summary=summary[:500],
        changes={"diff": diff} if diff else {},
        via="admin",
    )
