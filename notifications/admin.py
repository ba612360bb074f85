from django.contrib import admin

from .models import Delivery


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """Every delivery, for admins to see what went out and what failed; nothing here is edited."""
    list_display = ("created_at", "user", "channel", "event", "subject", "status", "attempts", "error")
    list_filter = ("status", "channel", "event")
    search_fields = ("subject", "user__username")
    readonly_fields = [f.name for f in Delivery._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
