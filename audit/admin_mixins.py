"""For the admins of the portal's models: each edit lands in the audit log with every field's old and new value;
the configurations' admins also ask for a note, kept with the revision and the event."""
from django import forms
from django.contrib.admin.utils import flatten_fieldsets

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
        with admin_diff(getattr(obj, "_audit_diff", None), getattr(obj, "_change_reason", "") or ""):
            return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        with admin_diff(getattr(obj, "_audit_diff", None), getattr(obj, "_change_reason", "") or ""):
            return super().log_change(request, obj, message)

    def log_deletions(self, request, queryset):
        # One LogEntry per row: for several rows Django writes them in one bulk insert, which sends no post_save,
        # so the bulk "delete selected" action would leave no audit event.
        entries = []
        for obj in queryset:
            entries.extend(super().log_deletions(request, [obj]))
        return entries


class RevisionNoteForm(forms.ModelForm):
    revision_note = forms.CharField(
        max_length=100, required=False, label="Note",
        help_text="Why this change (or this revert): kept with the revision and in the audit log.")


class RevisionNoteAdminMixin(AuditedAdminMixin):
    """For SimpleHistoryAdmin's configurations: every save, a revert too, asks for an optional note, which becomes
    the revision's change reason and ends the audit event's summary."""

    form = RevisionNoteForm

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if "revision_note" in flatten_fieldsets(fieldsets):
            return fieldsets
        return [*fieldsets, ("Revision", {"fields": ["revision_note"]})]

    def save_model(self, request, obj, form, change):
        obj._change_reason = form.cleaned_data.get("revision_note", "").strip() or None
        super().save_model(request, obj, form, change)
