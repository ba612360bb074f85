"""Reads for the promotion pages."""
from django.db.models import Prefetch, QuerySet

from audit.services import audit_events_for
from mlopsportal.lib.charts import Chart, Series

from ..models import Promotion, PromotionStep, ReleaseEvent
from ..verification.selectors import capacity_change, stress_baseline


def promotion_list() -> QuerySet[Promotion]:
    return Promotion.objects.select_related("version__model", "production_endpoint", "staging_endpoint",
                                            "requested_by", "decided_by", "stress_profile")


def promotions_waiting_for(user) -> QuerySet[Promotion]:
    """Promotions waiting for a decision that `user` may make: approvers, on promotions someone else asked for.
    Oldest first (the longest wait on top), with the evidence steps (functional, stress) fetched along."""
    if not user.has_perm("deployments.approve_promotion"):
        return Promotion.objects.none()
    evidence = PromotionStep.objects.filter(kind__in=("functional", "stress")).order_by("position")
    return (promotion_list().filter(state=Promotion.State.AWAITING_APPROVAL).exclude(requested_by=user)
            .prefetch_related(Prefetch("steps", queryset=evidence, to_attr="evidence_steps"))
            .order_by("created_at", "pk"))


def promotions_waiting_count(user) -> int:
    return promotions_waiting_for(user).count()  # none() for non-approvers: 0, with no query


def promotion_progress(*, promotion: Promotion) -> dict:
    """What the live part of a promotion's page shows while it runs: its steps and functional runs."""
    return {
        "promotion": promotion,
        "steps": list(promotion.steps.all()),
        "functional_runs": list(promotion.functional_runs.select_related("deployment").order_by("started_at")),
    }


def promotion_evidence(*, promotion: Promotion) -> dict:
    """The promotion with its steps, test results and stress charts, for its page."""
    stress = promotion.stress_runs.order_by("-started_at").first()
    charts = {}
    if stress is not None and stress.series:
        rows = stress.series
        charts["latency"] = Chart(
            series=[Series(f"p{p}", [(r["t"], r[f"p{p}"]) for r in rows]) for p in (50, 95, 99)],
            title="Latency percentiles over time", x_label="seconds", y_label="ms")
        charts["throughput"] = Chart(
            series=[Series("ok / s", [(r["t"], r["ok"]) for r in rows]),
                    Series("failed / s", [(r["t"], r["failed"]) for r in rows], css="series-2")],
            title="Requests per second", x_label="seconds", y_label="requests", y_format="{:.0f}")
        charts["histogram"] = Chart(bars=[(f"{b['upto_ms']:g}", b["count"]) for b in stress.latency_buckets],
                                    title="Latency histogram", x_label="latency up to (ms)", y_label="requests",
                                    height=240)
    return {
        **promotion_progress(promotion=promotion),
        "baseline": stress_baseline(stress) if stress is not None and stress.summary else None,
        "capacity": capacity_change(promotion.version),
        "stress": stress,
        "charts": charts,
        # The promotion's own events and those of the deployments it made (created, healthy, retired).
        "events": audit_events_for(promotion, *(d for d in (promotion.staging_deployment,
                                                            promotion.production_deployment) if d is not None)),
    }


def promotion_report(*, promotion: Promotion) -> dict:
    """Everything the evidence report prints: the promotion's page, and the ledger's changes it made."""
    return {**promotion_evidence(promotion=promotion),
            "releases": list(ReleaseEvent.objects.filter(promotion=promotion).select_related("endpoint")
                             .order_by("at", "id"))}
