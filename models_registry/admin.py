from django.contrib import admin

from audit.admin_mixins import AuditedAdminMixin

from . import services
from .models import ModelVersion, RegisteredModel, TrainingRun


@admin.register(RegisteredModel)
class RegisteredModelAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("name", "key_metric", "latest_version", "updated_at")
    search_fields = ("name", "description")
    readonly_fields = ("latest_version", "created_at", "created_by", "updated_at")


@admin.register(ModelVersion)
class ModelVersionAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("model", "version", "created_at", "created_by")
    list_filter = ("model",)
    readonly_fields = ("model", "version", "metrics", "params", "artifact_uri", "artifact_sha256", "artifact_size",
                       "artifact_files", "training_run", "dataset_sha256", "code_version", "created_at", "created_by")

    def delete_model(self, request, obj):
        model = obj.model
        super().delete_model(request, obj)
        services.registered_model_refresh_latest(model=model)

    def delete_queryset(self, request, queryset):
        models = list(RegisteredModel.objects.filter(versions__in=queryset).distinct())
        super().delete_queryset(request, queryset)
        for model in models:
            services.registered_model_refresh_latest(model=model)


@admin.register(TrainingRun)
class TrainingRunAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("id", "experiment_name", "example", "status", "launched_by", "created_at")
    list_filter = ("status", "example")
    search_fields = ("experiment_name",)
    readonly_fields = [f.name for f in TrainingRun._meta.fields]

    def has_add_permission(self, request):
        return False  # runs are launched from the portal, which queues their work
