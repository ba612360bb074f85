"""The capacity test: the stress engine's open-loop mode, stepped up until a deployment misses its latency or error
SLO, to find the knee — the highest request rate it carries within the SLO — and so what one instance sustains.

Steps grow geometrically from `start_rps` until one misses; then the gap between the last step that met the SLO and
the first that did not is halved (geometrically) `refine` times. A step meets the SLO when its p95 is within it, its
errors within their share, and it carried the rate asked for (at least 95%): past the knee an open-loop load queues,
so latency climbs steeply and the miss is plain. What one instance *sustains* is the knee with a safety margin
(`SUSTAIN_MARGIN`): the knee is the edge, measured once, on a machine whose speed drifts.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from . import stress

SUSTAIN_MARGIN = 0.9
CARRIED = 0.95  # of the rate asked for, for a step to count as carried


@dataclass(frozen=True)
class Step:
    rate_rps: float
    achieved_rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    error_rate: float
    requests: int
    met: bool
    why: str = ""  # what it missed


@dataclass
class Search:
    p95_slo_ms: float
    error_rate_max: float
    instances: int
    steps: list[Step] = field(default_factory=list)

    @property
    def knee(self) -> Step | None:
        """The step with the highest rate that met the SLO."""
        return max((s for s in self.steps if s.met), key=lambda s: s.rate_rps, default=None)

    @property
    def first_miss(self) -> Step | None:
        return min((s for s in self.steps if not s.met), key=lambda s: s.rate_rps, default=None)

    @property
    def knee_rps(self) -> float | None:
        return self.knee.achieved_rps if self.knee else None

    @property
    def per_instance_rps(self) -> float | None:
        """What one instance sustains within the SLO: the knee with the margin, shared by the instances."""
        return round(self.knee_rps * SUSTAIN_MARGIN / self.instances, 2) if self.knee else None

    def to_json(self) -> dict:
        return {"p95_slo_ms": self.p95_slo_ms, "error_rate_max": self.error_rate_max, "instances": self.instances,
                "steps": [asdict(s) for s in self.steps], "knee_rps": self.knee_rps,
                "per_instance_rps": self.per_instance_rps}


def step_verdict(summary: dict, rate: float, *, p95_slo_ms: float, error_rate_max: float) -> tuple[bool, str]:
    missed = []
    if not summary["requests"]:
        missed.append("no request was answered")
    if summary["p95_ms"] is None or summary["p95_ms"] > p95_slo_ms:
        missed.append(f"p95 {summary['p95_ms']} ms is over the SLO of {p95_slo_ms:g} ms")
    if summary["error_rate"] > error_rate_max:
        missed.append(f"errors {summary['error_rate']:.2%} are over {error_rate_max:.2%}")
    if summary["throughput_rps"] < CARRIED * rate:
        missed.append(f"it carried {summary['throughput_rps']} of the {rate:g} req/s asked for")
    return not missed, "; ".join(missed)


def measure(plan: stress.Plan, rate: float, *, p95_slo_ms: float, error_rate_max: float,
            run: Callable[[stress.Plan], stress.Result] = stress.run_blocking) -> Step:
    """One fixed-rate load of `plan`'s duration at `rate`."""
    summary = run(stress.Plan(url=plan.url, payloads=plan.payloads, concurrency=plan.concurrency,
                              duration_s=plan.duration_s, headers=plan.headers, timeout_s=plan.timeout_s,
                              rate_rps=rate)).summary()
    met, why = step_verdict(summary, rate, p95_slo_ms=p95_slo_ms, error_rate_max=error_rate_max)
    return Step(rate_rps=round(rate, 2), achieved_rps=summary["throughput_rps"], p50_ms=summary["p50_ms"],
                p95_ms=summary["p95_ms"], p99_ms=summary["p99_ms"], error_rate=summary["error_rate"],
                requests=summary["requests"], met=met, why=why)


def capacity_search(plan: stress.Plan, *, p95_slo_ms: float, error_rate_max: float = 0.01, instances: int = 1,
                    start_rps: float = 5, growth: float = 1.6, max_rps: float = 5_000, max_steps: int = 14,
                    refine: int = 3, run: Callable[[stress.Plan], stress.Result] = stress.run_blocking) -> Search:
    """Step the load on the deployment `plan` points at (its url, payloads, headers, in-flight cap and step
    duration) until it misses the SLO, then narrow the knee down."""
    search = Search(p95_slo_ms=p95_slo_ms, error_rate_max=error_rate_max, instances=instances)

    def at(rate: float) -> Step:
        step = measure(plan, rate, p95_slo_ms=p95_slo_ms, error_rate_max=error_rate_max, run=run)
        search.steps.append(step)
        return step

    rate = start_rps
    while len(search.steps) < max_steps and rate <= max_rps:
        if not at(rate).met:
            break
        rate *= growth
    good, bad = search.knee, search.first_miss
    for _ in range(refine):
        if good is None or bad is None or len(search.steps) >= max_steps:
            break
        middle = math.sqrt(good.rate_rps * bad.rate_rps)
        if bad.rate_rps / good.rate_rps < 1.05:
            break  # within 5%: close enough for a measurement this noisy
        step = at(middle)
        good, bad = (step, bad) if step.met else (good, step)
    return search
