"""Reads for the serving pages."""
from django.db.models import Prefetch, QuerySet

from mlopsportal.lib.charts import Series, bar_chart, multi_line_chart

from .models import Deployment, Endpoint, Promotion


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
        "steps": list(promotion.steps.all()),
        "functional_runs": list(promotion.functional_runs.select_related("deployment").order_by("started_at")),
        "stress": stress,
        "charts": charts,
        "events": audit_events_for(promotion),
    }
