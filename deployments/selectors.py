"""Reads for the serving pages."""
from django.db.models import Prefetch, QuerySet

from mlopsportal.lib.charts import Series, bar_chart, multi_line_chart

from .models import Deployment, Endpoint, Promotion, StressRun, TestOutcome


def endpoint_list() -> QuerySet[Endpoint]:
    serving = Deployment.objects.filter(status__in=Deployment.LIVE).select_related("model_version__model")
    return Endpoint.objects.select_related("profile").prefetch_related(
        Prefetch("deployments", queryset=serving, to_attr="live_deployments"))


def endpoint_deployments(*, endpoint: Endpoint) -> QuerySet[Deployment]:
    return (endpoint.deployments.select_related("model_version__model", "created_by")
            .order_by("-created_at"))


def promotion_list() -> QuerySet[Promotion]:
    return Promotion.objects.select_related("version__model", "production_endpoint", "staging_endpoint",
                                            "requested_by", "decided_by", "stress_profile")


def promotion_evidence(*, promotion: Promotion) -> dict:
    """The promotion with its steps, test results and stress charts, for its page."""
    from audit.services import audit_events_for

    stress = promotion.stress_runs.order_by("-started_at").first()
    charts = {}
    if stress is not None and stress.series:
        rows = stress.series
        charts["latency"] = multi_line_chart(
            [Series(f"p{p}", [(r["t"], r[f"p{p}"]) for r in rows]) for p in (50, 95, 99)],
            title="Latency percentiles over time", x_label="seconds", y_label="ms")
        charts["throughput"] = multi_line_chart(
            [Series("ok / s", [(r["t"], r["ok"]) for r in rows]),
             Series("failed / s", [(r["t"], r["failed"]) for r in rows], css="series-2")],
            title="Requests per second", x_label="seconds", y_label="requests", y_format="{:.0f}")
        charts["histogram"] = bar_chart([(f"{b['upto_ms']:g}", b["count"]) for b in stress.latency_buckets],
                                        title="Latency histogram", x_label="latency up to (ms)", y_label="requests")
    return {
        "promotion": promotion,
        "baseline": stress_baseline(stress) if stress is not None and stress.summary else None,
        "steps": list(promotion.steps.all()),
        "functional_runs": list(promotion.functional_runs.select_related("deployment").order_by("started_at")),
        "stress": stress,
        "charts": charts,
        "events": audit_events_for(promotion),
    }


BASELINE_FIGURES = (  # (label, summary key, unit, higher is better)
    ("Throughput", "throughput_rps", " req/s", True), ("p50", "p50_ms", " ms", False), ("p95", "p95_ms", " ms", False),
    ("p99", "p99_ms", " ms", False), ("Error rate", "error_rate", "", False),
)


def stress_baseline(stress: StressRun) -> dict | None:
    """The last passed stress test of the same model before this one, and each headline figure side by side with
    its change, so a reviewer sees whether the new version is slower than what passed before."""
    before = (StressRun.objects.filter(status=TestOutcome.PASSED, started_at__lt=stress.started_at,
                                       deployment__model_version__model_id=stress.deployment.model_version.model_id)
              .exclude(pk=stress.pk).exclude(summary={})
              .select_related("deployment__model_version__model", "deployment__endpoint")
              .defer("series", "latency_buckets").order_by("-started_at").first())
    if before is None:
        return None
    rows = []
    for label, key, unit, higher_is_better in BASELINE_FIGURES:
        now, then = stress.summary.get(key), before.summary.get(key)
        change, verdict = "", ""
        if isinstance(now, (int, float)) and isinstance(then, (int, float)):
            if then:
                change = f"{now / then - 1:+.0%}"
            if now != then:
                verdict = "better" if (now > then) == higher_is_better else "worse"
        rows.append({"label": label, "now": now, "then": then, "unit": unit, "change": change, "verdict": verdict})
    same_load = all(stress.plan.get(k) == before.plan.get(k) for k in ("concurrency", "duration_seconds", "request_count"))
    return {"run": before, "rows": rows, "same_load": same_load}
