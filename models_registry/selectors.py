"""Reads for the registry pages. Each returns a queryset whose query count does not grow with the data."""
from django.contrib.contenttypes.models import ContentType
from django.db.models import CharField, F, Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from audit.models import AuditEvent
from mlopsportal.lib.charts import Chart, Series

from .models import ModelVersion, RegisteredModel, TrainingRun


def registered_model_list(*, search: str = "") -> QuerySet[RegisteredModel]:
    models = RegisteredModel.objects.select_related("latest_version", "latest_version__created_by")
    if search:
        models = models.filter(Q(name__icontains=search) | Q(description__icontains=search))
    return models.order_by(F("updated_at").desc(), "name")


def model_version_list(*, model: RegisteredModel) -> QuerySet[ModelVersion]:
    return (model.versions.select_related("created_by", "training_run")
            .defer("artifact_files", "training_run__log").order_by("-version"))


def model_metric_chart(*, model: RegisteredModel) -> Chart:
    """The model's key metric across its versions, as a chart to draw."""
    points = model_metric_series(model=model, metric=model.key_metric)
    return Chart(title=f"{model.key_metric} across versions of {model.name}", x_label="version",
                 y_label=model.key_metric, series=[Series(model.key_metric, points)], x_format="v{:g}",
                 y_format="{:.4f}", y_from_zero=False, x_ticks_at_points=True, markers=True)


def model_metric_series(*, model: RegisteredModel, metric: str) -> list[tuple[int, float]]:
    """(version, value) of one metric across all versions, oldest first, in one query."""
    rows = model.versions.annotate(value=KT(f"metrics__{metric}")).order_by("version").values_list("version", "value")
    series = []
    for version, value in rows:
        try:
            series.append((version, float(value)))
        except (TypeError, ValueError):
            continue
    return series


def training_run_list(*, status: str = "", experiment: str = "") -> QuerySet[TrainingRun]:
    runs = TrainingRun.objects.select_related("launched_by", "register_as").defer("log")
    if status:
        runs = runs.filter(status=status)
    if experiment:
        runs = runs.filter(experiment_name=experiment)
    return runs


def model_history(*, model: RegisteredModel, limit: int = 50) -> QuerySet[AuditEvent]:
    """Audit events on the model and on any of its versions, newest first, in one query."""
    version_ids = model.versions.annotate(key=Cast("pk", CharField())).values("key")
    return AuditEvent.objects.filter(
        Q(target_type=ContentType.objects.get_for_model(RegisteredModel), target_id=str(model.pk))
        | Q(target_type=ContentType.objects.get_for_model(ModelVersion), target_id__in=version_ids)
    ).select_related("actor")[:limit]
