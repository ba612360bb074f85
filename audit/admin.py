from django.contrib import admin
from django.utils.html import format_html_join

from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("at", "actor_name", "action", "target_type", "target_repr", "via")
    list_filter = ("action", "via", "target_type")
    search_fields = ("actor_name", "target_repr", "summary")
    date_hierarchy = "at"
    fields = ("at", "actor", "actor_name", "action", "target_type", "target_id", "target_repr", "via", "credential",
              "summary", "what_changed", "changes")
    readonly_fields = ("what_changed",)

    @admin.display(description="What changed")
    def what_changed(self, event: AuditEvent):
        rows = event.field_changes_in_words
        if not rows:
            return "-"
        return format_html_join("\n", "<div>{}: {} → {}</div>", rows)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
