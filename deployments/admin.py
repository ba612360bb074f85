from django.contrib import admin

from .models import Deployment, DeploymentProfile, Endpoint


@admin.register(DeploymentProfile)
class DeploymentProfileAdmin(admin.ModelAdmin):
    list_display = ("name", "instance_count", "autoscale_enabled", "min_instances", "max_instances", "cpu_request",
                    "memory_request_gb", "request_timeout_ms", "max_concurrent_requests_per_instance", "auth_enabled")
    fieldsets = [
        (None, {"fields": ["name", "description", "auth_enabled"]}),
        ("Instances", {"fields": ["instance_count", "autoscale_enabled", "min_instances", "max_instances",
                                  "target_utilization"]}),
        ("Resources per instance", {"fields": ["cpu_request", "memory_request_gb"]}),
        ("Requests", {"fields": ["request_timeout_ms", "max_concurrent_requests_per_instance"]}),
    ]


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ("name", "stage", "profile", "auth_enabled", "created_at")
    list_filter = ("stage",)
    exclude = ("key",)  # never shown here; engineers and admins reveal it on the endpoint page
    readonly_fields = ("created_at", "created_by", "traffic_updated_at")


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ("__str__", "model_version", "status", "traffic", "restarts", "created_at")
    list_filter = ("status", "endpoint")
    readonly_fields = [f.name for f in Deployment._meta.fields]

    def has_add_permission(self, request):
        return False  # deployments are created by the portal, which starts their servers

    def has_delete_permission(self, request, obj=None):
        return False  # deleting must stop the server: use the endpoint page
