"""Reads of verification results: a stress run against another (the last one that passed, or another version's),
each headline figure marked better or worse only when the change is bigger than run-to-run noise; capacity tests
charted, and one version's capacity against the last one's."""
import math
import statistics

from mlopsportal.lib.charts import Chart, Series

from ..models import CapacityTest, StressRun, TestOutcome

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


# --- capacity tests ---------------------------------------------------------------------------------------------
def capacity_charts(test: CapacityTest) -> list[Chart]:
    """Throughput and p95 against the load asked for, each step a point, the knee marked (the check at the
    sustained rate is a step like the others)."""
    steps = sorted(test.steps, key=lambda s: s["rate_rps"])
    knee = next((s for s in steps if s.get("role") != "confirm" and s["achieved_rps"] == test.knee_rps), None)
    marks = [(knee["rate_rps"], f"knee {knee['achieved_rps']:g} req/s")] if knee else []
    throughput = Chart(title="Throughput against load", x_label="load asked (req/s)", y_label="carried (req/s)",
                       series=[Series("carried", [(s["rate_rps"], s["achieved_rps"]) for s in steps]),
                               Series("asked", [(s["rate_rps"], s["rate_rps"]) for s in steps])],
                       markers=True, marks=marks, x_ticks_at_points=True, x_format="{:.0f}", y_format="{:.0f}")
    slo = [(steps[0]["rate_rps"], test.p95_slo_ms), (steps[-1]["rate_rps"], test.p95_slo_ms)] if steps else []
    latency = Chart(title="p95 latency against load", x_label="load asked (req/s)", y_label="p95 (ms)",
                    series=[Series("p95", [(s["rate_rps"], s["p95_ms"]) for s in steps]),
                            Series(f"SLO {test.p95_slo_ms:g} ms", slo)],
                    markers=True, marks=marks, x_ticks_at_points=True, x_format="{:.0f}", y_format="{:.0f}")
    return [throughput, latency]


def capacity_latest(version_ids) -> dict[int, CapacityTest]:
    """The latest finished, confirmed capacity test of each of these model versions."""
    latest = {}
    for test in (CapacityTest.objects.filter(model_version_id__in=list(version_ids), status=CapacityTest.Status.DONE,
                                             confirmed=True).defer("steps", "payloads").order_by("started_at")):
        latest[test.model_version_id] = test
    return latest


def capacity_change(version) -> dict | None:
    """How this version's capacity per instance compares with the last earlier version of its model that was
    tested: flagged when it sustains less, beyond run-to-run noise (NOISE_RELATIVE), so that the same load would
    need more instances. None when either has no confirmed test."""
    now = capacity_latest([version.pk]).get(version.pk)
    if now is None:
        return None
    then = (CapacityTest.objects.filter(model_version__model_id=version.model_id, model_version__version__lt=version.version,
                                        status=CapacityTest.Status.DONE, confirmed=True)
            .select_related("model_version").defer("steps", "payloads")
            .order_by("-model_version__version", "-started_at").first())
    change = {"now": now, "then": then, "needs_more": False, "words": ""}
    if then is None:
        return change
    ratio = now.per_instance_rps / then.per_instance_rps if then.per_instance_rps else 1.0
    change["change"] = f"{ratio - 1:+.0%}"
    if ratio < 1 - NOISE_RELATIVE:
        change["needs_more"] = True
        proposal = then.proposals.order_by("-created_at").first()
        extra = ""
        if proposal is not None:
            before = math.ceil(proposal.target_rps / then.per_instance_rps)
            after = math.ceil(proposal.target_rps / now.per_instance_rps)
            extra = (f" For the {proposal.target_rps:g} req/s proposed for v{then.model_version.version}, it needs "
                     f"{after} instances instead of {before}.")
        change["words"] = (f"v{version.version} needs more capacity than v{then.model_version.version}: one instance "
                           f"sustains {now.per_instance_rps:g} req/s within p95 {now.p95_slo_ms:g} ms, against "
                           f"{then.per_instance_rps:g} req/s ({change['change']})." + extra)
    return change
