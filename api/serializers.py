"""What the API returns and takes. Output serializers are read-only views of the rows (no key, no secret, no backend
reference); input serializers check the shape, and the services check the rules, as they do for the pages."""
from __future__ import annotations

from functools import cached_property, lru_cache
from urllib.parse import quote

from django.conf import settings
from django.urls import get_script_prefix, reverse
from rest_framework import serializers

from audit.models import AuditEvent, field_changes
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


_SENTINEL = 7_919_000_000_000_000  # stands in for a path's arguments; no name or id is this long


@lru_cache(maxsize=64)
def _path_template(viewname: str, arity: int, prefix: str) -> str:
    path = reverse(viewname, args=[_SENTINEL + i for i in range(arity)]).replace("{", "{{").replace("}", "}}")
    for i in range(arity):
        path = path.replace(str(_SENTINEL + i), f"{{{i}}}")
    return path


def path_for(viewname: str, *args) -> str:
    """reverse(viewname, args=args) for names and ids (no slashes): one reverse() per route, then a format."""
    return _path_template(viewname, len(args), get_script_prefix()).format(*(quote(str(a), safe="") for a in args))


class Rows(serializers.ListSerializer):
    def to_representation(self, data):
        rows = list(data)
        self.child.prepare(rows)
        return [self.child.to_representation(row) for row in rows]


class RowsMixin:
    """A list route's serializer fed `values()` rows instead of model instances, for lists that page through
    100,000s of rows: no instance per row, no attribute walk per field. Mixed into the route's own serializer, so
    the fields (and the schema) are the same: each plain field reads the column its source names ("model.name" reads
    model__name), `derive(row)` gives the method fields and any in `derived`, from the columns in `reads`, and
    `prepare(rows)` may fetch once per page what the rows share. tests/api/test_api.py checks that every list item
    equals the route's serializer on the same row."""
    derived: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()

    class Meta:
        list_serializer_class = Rows

    @classmethod
    def columns(cls) -> list[str]:
        return sorted({column for _, column, _ in cls()._plan} | set(cls.reads))

    @classmethod
    def rows(cls, queryset):
        return queryset.values(*cls.columns())

    @cached_property
    def _plan(self) -> list[tuple[str, str, serializers.Field]]:
        return [(name, field.source.replace(".", "__"), field) for name, field in self.fields.items()
                if not isinstance(field, serializers.SerializerMethodField) and name not in self.derived]

    def prepare(self, rows: list[dict]) -> None:
        pass

    def derive(self, row: dict) -> dict:
        raise NotImplementedError

    def to_representation(self, row: dict) -> dict:
        out = self.derive(row)
        for name, column, field in self._plan:
            value = row[column]
            out[name] = None if value is None else field.to_representation(value)
        return {name: out[name] for name in self.fields}


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


class VersionRows(RowsMixin, VersionSerializer):
    reads = ("created_by__username",)

    class Meta(VersionSerializer.Meta, RowsMixin.Meta):
        pass

    def derive(self, row: dict) -> dict:
        name, number = row["model__name"], row["version"]
        return {"ref": f"{name}:{number}", "created_by": row["created_by__username"],
                "url": path_for("api:version-detail", name, number)}


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


class RunRows(RowsMixin, RunSerializer):
    reads = ("launched_by__username",)

    class Meta(RunSerializer.Meta, RowsMixin.Meta):
        pass

    def prepare(self, rows: list[dict]) -> None:
        self._versions: dict[int, list[str]] = {}
        for run_id, name, number in ModelVersion.objects.filter(training_run__in=[row["id"] for row in rows]) \
                .order_by("model", "-version").values_list("training_run", "model__name", "version"):
            self._versions.setdefault(run_id, []).append(f"{name}:{number}")

    def derive(self, row: dict) -> dict:
        return {"launched_by": row["launched_by__username"], "versions": self._versions.get(row["id"], []),
                "url": path_for("api:run-detail", row["id"])}


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


class AuditRows(RowsMixin, AuditEventSerializer):
    derived = ("action",)
    reads = ("action", "changes")

    class Meta(AuditEventSerializer.Meta, RowsMixin.Meta):
        pass

    def derive(self, row: dict) -> dict:
        return {"action": AuditEvent.Action(row["action"]).label, "changes": field_changes(row["changes"])}


class TokenSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.get_username")

    class Meta:
        model = ApiToken
        fields = ["prefix", "name", "user", "read_only", "state", "created_at", "expires_at", "last_used_at"]
