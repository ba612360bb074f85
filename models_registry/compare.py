"""Versions of one model side by side: metrics with their differences, parameters, checksums and artifact files
(what differs marked), the latest functional results, and the latest stress results (headline figures marked better
or worse only beyond run-to-run noise; latency over time and latency distributions overlaid on one chart each).

A fixed number of queries for any number of versions (at most MAX_VERSIONS).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import OuterRef, Subquery

from deployments.models import FunctionalTestRun, StressRun, TestOutcome
from deployments.verification.selectors import BASELINE_FIGURES, figure_change
from mlopsportal.lib.charts import Chart, Series

from .models import ModelVersion, RegisteredModel

MAX_VERSIONS = 6


class CompareError(ValueError):
    """What is wrong with the versions asked for, in words."""


@dataclass
class Row:
    label: str
    values: list  # one per version, in the order asked
    differs: bool = False
    changes: list[str] = field(default_factory=list)  # against the first version ("" for it)
    verdicts: list[str] = field(default_factory=list)


def parse_versions(model: RegisteredModel, asked: list[str]) -> list[ModelVersion]:
    """The versions asked for (numbers, as the checkboxes send them), oldest first; CompareError otherwise."""
    numbers = []
    for text in asked:
        if not text.strip().isdigit() or len(text.strip()) > 9:
            raise CompareError(f"“{text[:20]}” is not a version number.")
        if int(text) not in numbers:
            numbers.append(int(text))
    if len(numbers) < 2:
        raise CompareError("Pick at least two versions to compare.")
    if len(numbers) > MAX_VERSIONS:
        raise CompareError(f"Compare at most {MAX_VERSIONS} versions at a time.")
    found = {v.version: v for v in model.versions.filter(version__in=numbers).select_related("training_run")
             .defer("training_run__log")}
    missing = [n for n in numbers if n not in found]
    if missing:
        raise CompareError(f"{model.name} has no version {', '.join(f'v{n}' for n in missing)}.")
    return [found[n] for n in sorted(numbers)]  # oldest first: the others' differences are against it


def _differs(values: list) -> bool:
    return len({repr(v) for v in values}) > 1


def _number_change(value, first) -> str:
    if isinstance(value, bool) or isinstance(first, bool):
        return ""
    if not isinstance(value, (int, float)) or not isinstance(first, (int, float)):
        return ""
    return f"{value - first:+.4g}"


def _latest(model_class, versions: list[ModelVersion], **filters):
    """The latest finished run of `model_class` for each version (two queries)."""
    latest = (model_class.objects.filter(deployment__model_version=OuterRef("pk"), **filters)
              .exclude(status=TestOutcome.RUNNING).order_by("-started_at", "-pk").values("pk")[:1])
    ids = dict(ModelVersion.objects.filter(pk__in=[v.pk for v in versions]).annotate(run_id=Subquery(latest))
               .values_list("pk", "run_id"))
    runs = model_class.objects.select_related("deployment__endpoint").in_bulk([i for i in ids.values() if i])
    return [runs.get(ids.get(v.pk)) for v in versions]


def compare_versions(model: RegisteredModel, versions: list[ModelVersion]) -> dict:
    labels = [f"v{v.version}" for v in versions]
    metric_names = sorted({name for v in versions for name in (v.metrics or {})},
                          key=lambda name: (name != model.key_metric, name))
    metrics = []
    for name in metric_names:
        values = [(v.metrics or {}).get(name) for v in versions]
        metrics.append(Row(name, values, _differs(values), ["", *(_number_change(x, values[0]) for x in values[1:])]))
    param_names = sorted({name for v in versions for name in (v.params or {})})
    params = [Row(name, values, _differs(values))
              for name in param_names for values in [[(v.params or {}).get(name) for v in versions]]]
    checks = [Row(label, values, _differs(values)) for label, values in (
        ("Data (SHA-256)", [v.dataset_sha256 for v in versions]),
        ("Code version", [v.code_version for v in versions]),
        ("Artifact (SHA-256)", [v.artifact_sha256 for v in versions]),
        ("Artifact size (bytes)", [v.artifact_size for v in versions]),
        ("Training run", [v.training_run_id for v in versions]),
    )]
    paths = sorted({f["path"] for v in versions for f in v.artifact_files or [] if isinstance(f, dict) and "path" in f})
    by_path = [{f.get("path"): f for f in v.artifact_files or [] if isinstance(f, dict)} for v in versions]
    files = [Row(path, values, _differs([(f or {}).get("sha256") for f in values]))
             for path in paths for values in [[files.get(path) for files in by_path]]]

    functional = _latest(FunctionalTestRun, versions)
    cases = sorted({r.get("case", "") for run in functional if run for r in run.results or []})
    functional_rows = []
    for case in cases:
        values = []
        for run in functional:
            result = next((r for r in (run.results if run else []) if r.get("case") == case), None)
            values.append(result)
        functional_rows.append(Row(case, values, _differs([r and r.get("passed") for r in values])))

    stress = _latest(StressRun, versions, summary__isnull=False)
    stress = [run if run is not None and run.summary else None for run in stress]
    figures = []
    base = stress[0]
    for label, key, unit, higher_is_better in BASELINE_FIGURES:
        values = [run.summary.get(key) if run else None for run in stress]
        changes, verdicts = [""], [""]
        for run in stress[1:]:
            change, verdict = (figure_change(key, run, base, higher_is_better=higher_is_better)
                               if run is not None and base is not None else ("", ""))
            changes.append(change)
            verdicts.append(verdict)
        figures.append(Row(f"{label}{unit and f' ({unit.strip()})'}", values, _differs(values), changes, verdicts))

    charts = {}
    if any(run and run.series for run in stress):
        charts["latency"] = Chart(
            title="p95 latency over time, by version", x_label="seconds since the start", y_label="p95 (ms)",
            series=[Series(label, [(row["t"], row["p95"]) for row in run.series])
                    for label, run in zip(labels, stress, strict=True) if run and run.series])
    if any(run and run.latency_buckets for run in stress):
        series = []
        for label, run in zip(labels, stress, strict=True):
            if run and run.latency_buckets:
                total = sum(b["count"] for b in run.latency_buckets) or 1
                series.append(Series(label, [(b["upto_ms"], b["count"] / total * 100) for b in run.latency_buckets]))
        charts["histogram"] = Chart(title="Latency distribution, by version", x_label="latency up to (ms)",
                                    y_label="share of requests (%)", series=series, markers=True)
    return {"labels": labels, "versions": versions, "metrics": metrics, "params": params, "checks": checks,
            "files": files, "functional": functional, "functional_rows": functional_rows, "stress": stress,
            "figures": figures, "charts": charts,
            "same_load": len({repr({k: run.plan.get(k) for k in ("concurrency", "duration_seconds", "request_count")})
                              for run in stress if run}) <= 1}
