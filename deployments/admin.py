import copy

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.forms.models import construct_instance
from simple_history.admin import SimpleHistoryAdmin

from audit.admin_mixins import AuditedAdminMixin, RevisionNoteAdminMixin, RevisionNoteForm
from mlopsportal.backends import get_backend
from mlopsportal.lib.forms import SuggestionsInput, instance_type_options

from .models import Deployment, DeploymentProfile, Endpoint, FunctionalTestCase, Promotion, StressProfile
from .serving import services as serving


class DeploymentProfileForm(RevisionNoteForm):
    """A profile, refused when an endpoint that uses it could not run it (the instance type's limits, the request
    timeout maximums of its platform): said now, not at the next promotion."""

    class Meta:
        model = DeploymentProfile
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The production cluster's instance types (from the workspace's last "Test connection"), as suggestions.
        options = instance_type_options(get_backend().instance_types())
        self.fields["kubernetes_instance_type"].widget = SuggestionsInput(options, attrs={"class": "vTextField"})

    def clean(self):
        cleaned = super().clean()
        if self.errors or self.instance.pk is None:
            return cleaned
        candidate = construct_instance(self, copy.copy(self.instance))  # the posted values, not yet saved
        settings = candidate.serving_settings()
        problems = [p for endpoint in self.instance.endpoints.all()
                    for p in serving.endpoint_profile_problems(endpoint, settings)]
        if problems:
            raise ValidationError(problems)
        return cleaned


@admin.register(DeploymentProfile)
class DeploymentProfileAdmin(RevisionNoteAdminMixin, SimpleHistoryAdmin):
    form = DeploymentProfileForm
    list_display = ("name", "instance_count", "autoscale_enabled", "min_instances", "max_instances", "cpu_request",
                    "memory_request_gb", "request_timeout_ms", "max_concurrent_requests_per_instance", "auth_enabled")
    fieldsets = [
        (None, {"fields": ["name", "description", "auth_enabled"]}),
        ("Instances", {"fields": ["instance_count", "autoscale_enabled", "min_instances", "max_instances",
                                  "target_utilization", "polling_interval_seconds"]}),
        ("Resources per instance", {"fields": ["kubernetes_instance_type", "cpu_request", "memory_request_gb"]}),
        ("Requests", {"fields": ["request_timeout_ms", "max_concurrent_requests_per_instance", "max_queue_wait_ms"]}),
    ]


@admin.register(Endpoint)
class EndpointAdmin(RevisionNoteAdminMixin, SimpleHistoryAdmin):
    list_display = ("name", "stage", "profile", "auth_enabled", "created_at")
    list_filter = ("stage",)
    exclude = ("key",)  # never shown here; engineers and admins reveal it on the endpoint page
    readonly_fields = ("created_at", "created_by", "traffic_updated_at")

    def get_readonly_fields(self, request, obj=None):
        # A stage changed afterwards would slip an endpoint past the production guard of the serving services.
        return (*self.readonly_fields, "stage") if obj is not None else self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        # Deleting the row would leave its deployments' servers running with no row; production changes only
        # through a promotion or a rollback. An empty staging endpoint may go.
        if obj is not None and (obj.stage == Endpoint.Stage.PRODUCTION
                                or obj.deployments.exclude(status=Deployment.Status.DELETED).exists()):
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # the bulk delete checks no row: one endpoint at a time, as above
        return actions


@admin.register(Deployment)
class DeploymentAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("__str__", "model_version", "status", "traffic", "restarts", "created_at")
    list_filter = ("status", "endpoint")
    readonly_fields = [f.name for f in Deployment._meta.fields]

    def has_add_permission(self, request):
        return False  # deployments are created by the portal, which starts their servers

    def has_delete_permission(self, request, obj=None):
        return False  # deleting must stop the server: use the endpoint page


@admin.register(FunctionalTestCase)
class FunctionalTestCaseAdmin(RevisionNoteAdminMixin, SimpleHistoryAdmin):
    list_display = ("name", "model", "expected_status", "expect_field", "expected_value", "tolerance", "enabled")
    list_filter = ("model", "enabled")


@admin.register(StressProfile)
class StressProfileAdmin(RevisionNoteAdminMixin, SimpleHistoryAdmin):
    list_display = ("name", "model", "concurrency", "duration_seconds", "request_count", "p95_ms_max",
                    "error_rate_max", "min_rps", "shards")
    list_filter = ("model",)


@admin.register(Promotion)
class PromotionAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("__str__", "state", "requested_by", "decided_by", "created_at")
    list_filter = ("state", "production_endpoint")
    readonly_fields = [f.name for f in Promotion._meta.fields]

    def has_add_permission(self, request):
        return False  # promotions start from a version's page, which queues their pipeline

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # Deleting one in flight left production half-shifted with no owner, and deleting any took its evidence
        # (steps, functional and stress runs) with it. A promotion is never deleted; an active one is canceled.
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions
