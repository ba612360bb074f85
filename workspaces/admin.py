from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from audit.admin_mixins import RevisionNoteAdminMixin

from .models import AzureMLWorkspace


@admin.register(AzureMLWorkspace)
class AzureMLWorkspaceAdmin(RevisionNoteAdminMixin, SimpleHistoryAdmin):
    list_display = ("__str__", "subscription_id", "resource_group", "aks_compute", "training_cluster", "synced_at")
    readonly_fields = ("updated_at", "updated_by", "checked_at", "check_ok", "check_results", "synced_at", "sync_ok",
                       "sync_message")

    def has_add_permission(self, request):
        return not AzureMLWorkspace.objects.exists() and super().has_add_permission(request)
