"""Reads of verification results: a stress run against the last one that passed."""
from ..models import StressRun, TestOutcome

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
