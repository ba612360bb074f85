"""What the API returns and takes. Output serializers are read-only views of the rows (no key, no secret, no backend
reference); input serializers check the shape, and the services check the rules, as they do for the pages."""
from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from audit.models import AuditEvent
from deployments.models import (
    Deployment,
    Endpoint,
    FunctionalTestRun,
    Promotion,
    PromotionStep,
    StressRun,
)
from models_registry.models import NAME_VALIDATOR, ModelVersion, RegisteredModel, TrainingRun

from .models import ApiToken

RUN_LOG_TAIL_LINES = 50


def _username(user) -> str | None:
    return user.get_username() if user is not None else None


class ModelSerializer(serializers.ModelSerializer):
    latest_version = serializers.IntegerField(source="latest_version.version", allow_null=True, read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = RegisteredModel
        fields = ["name", "description", "key_metric", "key_metric_goal", "latest_version", "created_at",
                  "updated_at", "url"]

    def get_url(self, obj) -> str:
        return reverse("api:model-detail", args=[obj.name])


class ArtifactFileSerializer(serializers.Serializer):
    path = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    download = serializers.CharField()


class VersionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name", read_only=True)
    ref = serializers.SerializerMethodField(help_text="model:version, as the CLI takes it.")
    training_run = serializers.IntegerField(source="training_run_id", allow_null=True, read_only=True)
    created_by = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = ["model", "version", "ref", "description", "metrics", "params", "tags", "artifact_size",
                  "training_run", "code_version", "created_at", "created_by", "url"]

    def get_ref(self, obj) -> str:
        return f"{obj.model.name}:{obj.version}"

    def get_created_by(self, obj) -> str | None:
        return _username(obj.created_by)

    def get_url(self, obj) -> str:
        return reverse("api:version-detail", args=[obj.model.name, obj.version])


class VersionDetailSerializer(VersionSerializer):
    files = serializers.SerializerMethodField()

    class Meta(VersionSerializer.Meta):
        fields = [*VersionSerializer.Meta.fields, "files"]

    def get_files(self, obj) -> list[dict]:
        return ArtifactFileSerializer([
            {**entry, "download": reverse("api:version-file", args=[obj.model.name, obj.version, entry["path"]])}
            for entry in obj.artifact_files], many=True).data


class RunSerializer(serializers.ModelSerializer):
    register_as = serializers.CharField(source="register_as.name", allow_null=True, read_only=True)
    launched_by = serializers.SerializerMethodField()
    versions = serializers.SerializerMethodField(help_text="The versions registered from this run, model:version.")
    url = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = ["id", "experiment_name", "example", "params", "compute_target", "backend", "timeout_seconds",
                  "register_as", "status", "metrics", "error", "registration_error", "launched_by", "created_at",
                  "started_at", "finished_at", "versions", "url"]

    def get_launched_by(self, obj) -> str | None:
        return _username(obj.launched_by)

    def get_versions(self, obj) -> list[str]:
        return [f"{v.model.name}:{v.version}" for v in obj.versions.all()]

    def get_url(self, obj) -> str:
        return reverse("api:run-detail", args=[obj.pk])


class RunDetailSerializer(RunSerializer):
    log_tail = serializers.SerializerMethodField(help_text=f"The last lines of the log (?log_lines=, default "
                                                           f"{RUN_LOG_TAIL_LINES}, at most 1000).")

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "log_tail"]

    def get_log_tail(self, obj) -> str:
        lines = self.context.get("log_lines", RUN_LOG_TAIL_LINES)
        return "\n".join(obj.log.splitlines()[-lines:]) if lines else ""


class RunLaunchSerializer(serializers.Serializer):
    example = serializers.CharField(max_length=63, help_text="A training example of the portal (examples/<name>/).")
    experiment_name = serializers.CharField(max_length=63, validators=[NAME_VALIDATOR], required=False,
                                            help_text="Default: <example>-experiment.")
    compute_target = serializers.CharField(max_length=100, required=False,
                                           help_text="Default: the backend's first compute target.")
    timeout_minutes = serializers.IntegerField(min_value=1, default=30)
    params = serializers.DictField(child=serializers.JSONField(), required=False, default=dict,
                                   help_text="The example's parameters; missing ones take their defaults.")
    register_as = serializers.CharField(max_length=63, validators=[NAME_VALIDATOR], required=False, allow_blank=True,
                                        help_text="On success, register the output as the next version of this "
                                                  "model (made if it does not exist).")

    def validate_timeout_minutes(self, value: int) -> int:
        most = max(1, settings.MLOPS_TRAINING_MAX_TIMEOUT // 60)
        if value > most:
            raise serializers.ValidationError(f"Ensure this value is less than or equal to {most}.")
        return value


class RegisterSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=63, validators=[NAME_VALIDATOR],
                                  help_text="The model to register the run's output under (made if new).")
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class DeploymentSerializer(serializers.ModelSerializer):
    version = serializers.SerializerMethodField()

    class Meta:
        model = Deployment
        fields = ["name", "version", "status", "traffic", "profile_revision", "error", "created_at", "healthy_at",
                  "deleted_at"]

    def get_version(self, obj) -> str:
        return f"{obj.model_version.model.name}:{obj.model_version.version}"


class EndpointSerializer(serializers.ModelSerializer):
    profile = serializers.CharField(source="profile.name", read_only=True)
    deployments = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Endpoint
        fields = ["name", "stage", "description", "auth_enabled", "approval_required", "traffic_steps", "profile",
                  "platform_error", "traffic_updated_at", "deployments", "url"]

    def get_deployments(self, obj) -> list[dict]:
        live = [d for d in obj.deployments.all() if d.status in Deployment.LIVE]
        return DeploymentSerializer(live, many=True).data

    def get_url(self, obj) -> str:
        return reverse("api:endpoint-detail", args=[obj.name])


class TrafficSerializer(serializers.Serializer):
    traffic = serializers.DictField(child=serializers.IntegerField(min_value=0, max_value=100), allow_empty=False,
                                    help_text="Percent per live deployment name; they add up to 100.")


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, help_text="Kept with the change; approvers and the log read it.")


class StepSerializer(serializers.ModelSerializer):
    class Meta:
        model = PromotionStep
        fields = ["position", "kind", "label", "percent", "status", "detail", "started_at", "finished_at"]


class FunctionalRunSerializer(serializers.ModelSerializer):
    passed = serializers.IntegerField(source="passed_count")
    total = serializers.SerializerMethodField()
    cases = serializers.SerializerMethodField()

    class Meta:
        model = FunctionalTestRun
        fields = ["purpose", "status", "passed", "total", "cases", "started_at", "finished_at"]

    def get_total(self, obj) -> int:
        return len(obj.results)

    def get_cases(self, obj) -> list[dict]:
        return [{"case": r.get("case"), "passed": bool(r.get("passed")), "reason": r.get("reason", ""),
                 "status": r.get("status"), "ms": r.get("ms")} for r in obj.results]


class StressRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = StressRun
        fields = ["status", "plan", "summary", "missed", "started_at", "finished_at"]


class PromotionSerializer(serializers.ModelSerializer):
    version = serializers.SerializerMethodField()
    production_endpoint = serializers.CharField(source="production_endpoint.name")
    staging_endpoint = serializers.CharField(source="staging_endpoint.name")
    stress_profile = serializers.CharField(source="stress_profile.name", allow_null=True)
    requested_by = serializers.SerializerMethodField()
    decided_by = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Promotion
        fields = ["id", "kind", "version", "production_endpoint", "staging_endpoint", "stress_profile", "reason",
                  "state", "failure_reason", "approval_required", "requested_by", "decision", "decided_by",
                  "decision_comment", "decided_at", "created_at", "finished_at", "url"]

    def get_version(self, obj) -> str:
        return f"{obj.version.model.name}:{obj.version.version}"

    def get_requested_by(self, obj) -> str | None:
        return _username(obj.requested_by)

    def get_decided_by(self, obj) -> str | None:
        return _username(obj.decided_by)

    def get_url(self, obj) -> str:
        return reverse("api:promotion-detail", args=[obj.pk])


class PromotionDetailSerializer(PromotionSerializer):
    steps = StepSerializer(many=True, read_only=True)
    functional_runs = FunctionalRunSerializer(many=True, read_only=True)
    stress_runs = StressRunSerializer(many=True, read_only=True)

    class Meta(PromotionSerializer.Meta):
        fields = [*PromotionSerializer.Meta.fields, "steps", "functional_runs", "stress_runs"]


class PromoteSerializer(serializers.Serializer):
    version = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9_.-]*:[0-9]+$", max_length=80,
                                     help_text="model:version, e.g. titanic:3.")
    production_endpoint = serializers.CharField(max_length=32)
    staging_endpoint = serializers.CharField(max_length=32, required=False,
                                             help_text="Default: the only staging endpoint, if there is one.")
    stress_profile = serializers.CharField(max_length=100, required=False,
                                           help_text="Default: the model's only stress profile, if it has one.")
    reason = serializers.CharField(max_length=2000)


class DecisionSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["approve", "reject"])
    comment = serializers.CharField(max_length=2000)


class AuditEventSerializer(serializers.ModelSerializer):
    action = serializers.CharField(source="get_action_display")
    target_type = serializers.CharField(source="target_type.model")
    changes = serializers.SerializerMethodField()

    class Meta:
        model = AuditEvent
        fields = ["id", "at", "actor_name", "via", "credential", "action", "target_type", "target_id",
                  "target_repr", "summary", "changes"]

    def get_changes(self, obj) -> list[dict]:
        return obj.field_changes  # secrets already masked when written


class TokenSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.get_username")

    class Meta:
        model = ApiToken
        fields = ["prefix", "name", "user", "read_only", "state", "created_at", "expires_at", "last_used_at"]
