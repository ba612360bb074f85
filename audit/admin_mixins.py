"""For the admins of the portal's models: each edit lands in the audit log with every field's old and new value."""
from .services import field_diff, model_snapshot
from .signals import admin_diff


class AuditedAdminMixin:
    """Put it before ModelAdmin (or SimpleHistoryAdmin) in the bases. Values of secret fields (key, *_secret,
    password, credential, token) are masked, long ones cut (audit.services.field_diff)."""

    def save_model(self, request, obj, form, change):
        before = None
        if change and obj.pk is not None:
            current = type(obj)._default_manager.filter(pk=obj.pk).first()
            before = model_snapshot(current) if current is not None else None
        super().save_model(request, obj, form, change)
        obj._audit_diff = field_diff(before if before is not None else {}, model_snapshot(obj))

    def log_addition(self, request, obj, message):
        with admin_diff(getattr(obj, "_audit_diff", None)):
            return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        with admin_diff(getattr(obj, "_audit_diff", None)):
            return super().log_change(request, obj, message)

    def log_deletions(self, request, queryset):
        # One LogEntry per row: for several rows Django writes them in one bulk insert, which sends no post_save,
        # so the bulk "delete selected" action would leave no audit event.
        entries = []
        for obj in queryset:
            entries.extend(super().log_deletions(request, [obj]))
        return entries
