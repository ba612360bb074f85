"""Reads of verification results: a stress run against another (the last one that passed, or another version's),
each headline figure marked better or worse only when the change is bigger than run-to-run noise."""
import math
import statistics

from ..models import StressRun, TestOutcome

BASELINE_FIGURES = (  # (label, summary key, unit, higher is better)
    ("Throughput", "throughput_rps", " req/s", True), ("p50", "p50_ms", " ms", False), ("p95", "p95_ms", " ms", False),
    ("p99", "p99_ms", " ms", False), ("Error rate", "error_rate", "", False),
)


# A change smaller than this share of the earlier figure is within noise, whatever the spread says: a documented
# tolerance (README, "Comparing versions"), because two runs of one version on a shared machine differ by a few
# percent while each run's own spread can be tiny.
NOISE_RELATIVE = 0.10
NOISE_ERROR_RATE = 0.005  # half a percentage point of error rate
PER_SECOND = {"p50_ms": "p50", "p95_ms": "p95", "p99_ms": "p99", "throughput_rps": "ok"}


def _standard_error(run: StressRun, key: str) -> float:
    """How far the run's figure could move by chance: the standard error of its per-second values (for latency
    and throughput), or of its error rate as a proportion of its requests."""
    if key == "error_rate":
        rate, requests = run.summary.get("error_rate"), run.summary.get("requests") or 0
        return math.sqrt(rate * (1 - rate) / requests) if isinstance(rate, (int, float)) and requests else 0.0
    values = [row[PER_SECOND[key]] for row in run.series or [] if row.get(PER_SECOND[key]) is not None] \
        if key in PER_SECOND else []
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0


def figure_change(key: str, now_run: StressRun, then_run: StressRun, *, higher_is_better: bool) -> tuple[str, str]:
    """(the change in words, "better" | "worse" | "within noise" | "") of one summary figure between two runs. A
    change counts only when it is larger than both NOISE_RELATIVE (NOISE_ERROR_RATE for the error rate) and twice
    the two runs' combined standard error."""
    now, then = now_run.summary.get(key), then_run.summary.get(key)
    if not isinstance(now, (int, float)) or not isinstance(then, (int, float)):
        return "", ""
    change = f"{now / then - 1:+.0%}" if then else ""
    if now == then:
        return change, ""
    floor = NOISE_ERROR_RATE if key == "error_rate" else abs(then) * NOISE_RELATIVE
    spread = 2 * math.hypot(_standard_error(now_run, key), _standard_error(then_run, key))
    if abs(now - then) <= max(floor, spread):
        return change, "within noise"
    return change, "better" if (now > then) == higher_is_better else "worse"


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
        change, verdict = figure_change(key, stress, before, higher_is_better=higher_is_better)
        rows.append({"label": label, "now": now, "then": then, "unit": unit, "change": change, "verdict": verdict})
    same_load = all(stress.plan.get(k) == before.plan.get(k) for k in ("concurrency", "duration_seconds", "request_count"))
    return {"run": before, "rows": rows, "same_load": same_load}
