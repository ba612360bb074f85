"""Reads for the promotion pages."""
from django.db.models import QuerySet

from audit.services import audit_events_for
from mlopsportal.lib.charts import Series, bar_chart, multi_line_chart

from ..models import Promotion
from ..verification.selectors import stress_baseline


def promotion_list() -> QuerySet[Promotion]:
    return Promotion.objects.select_related("version__model", "production_endpoint", "staging_endpoint",
                                            "requested_by", "decided_by", "stress_profile")


def promotion_evidence(*, promotion: Promotion) -> dict:
    """The promotion with its steps, test results and stress charts, for its page."""
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
