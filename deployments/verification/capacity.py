"""The capacity test: the stress engine's open-loop mode, stepped up until a deployment misses its latency or error
SLO, to find the knee — the highest request rate it carries within the SLO — and so what one instance sustains; and
the profile values that follow from it for a target load.

Steps grow geometrically from `start_rps` until one misses; then the gap between the last step that met the SLO and
the first that did not is halved (geometrically) `refine` times. A step meets the SLO when its p95 is within it, its
errors within their share, and it carried the rate asked for (at least 95%): past the knee an open-loop load queues,
so latency climbs steeply and the miss is plain. What one instance *sustains* is the knee with a safety margin
(`SUSTAIN_MARGIN`): the knee is the edge, measured once, on a machine whose speed drifts. A last step, at the rate
the deployment is said to sustain, confirms it.

The search is a pure function of the steps measured so far (`next_rate`), so a test can be taken step by step by
tasks, and carried on where it was after a worker died.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from . import stress

SUSTAIN_MARGIN = 0.9
CARRIED = 0.95  # of the rate asked for, for a step to count as carried
CLIMB, REFINE, CONFIRM = "climb", "refine", "confirm"


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
    role: str = CLIMB

    @classmethod
    def from_json(cls, data: dict) -> Step:
        return cls(**{name: data.get(name) for name in cls.__dataclass_fields__ if name in data})

    def meets(self, p95_slo_ms: float, error_rate_max: float) -> bool:
        """Whether this step is within a (possibly stricter) SLO than the one it was measured for."""
        return self.met and self.p95_ms is not None and self.p95_ms <= p95_slo_ms \
            and self.error_rate <= error_rate_max


@dataclass(frozen=True)
class Settings:
    """How a search steps: where it starts, how fast it climbs, where it gives up."""
    start_rps: float = 5
    growth: float = 1.6
    max_rps: float = 5_000
    max_steps: int = 14
    refine: int = 3
    confirm: bool = True


DEFAULT_SETTINGS = Settings()
ONE_GO = Settings(confirm=False)


@dataclass
class Search:
    p95_slo_ms: float
    error_rate_max: float
    instances: int
    steps: list[Step] = field(default_factory=list)

    @property
    def searched(self) -> list[Step]:
        return [s for s in self.steps if s.role != CONFIRM]

    def knee_for(self, p95_slo_ms: float | None = None) -> Step | None:
        """The step with the highest rate within the SLO (the test's, or a stricter one: a step's p95 tells)."""
        slo = self.p95_slo_ms if p95_slo_ms is None else min(p95_slo_ms, self.p95_slo_ms)
        return max((s for s in self.searched if s.meets(slo, self.error_rate_max)), key=lambda s: s.rate_rps,
                   default=None)

    @property
    def knee(self) -> Step | None:
        return self.knee_for()

    @property
    def first_miss(self) -> Step | None:
        return min((s for s in self.searched if not s.met), key=lambda s: s.rate_rps, default=None)

    @property
    def knee_rps(self) -> float | None:
        return self.knee.achieved_rps if self.knee else None

    def sustained_rps(self, p95_slo_ms: float | None = None) -> float | None:
        """What the deployment as tested (all its instances) sustains within the SLO: the knee less the margin."""
        knee = self.knee_for(p95_slo_ms)
        return round(knee.achieved_rps * SUSTAIN_MARGIN, 2) if knee else None

    @property
    def per_instance_rps(self) -> float | None:
        """What one instance sustains within the SLO: the knee with the margin, shared by the instances."""
        sustained = self.sustained_rps()
        return round(sustained / self.instances, 2) if sustained is not None else None

    @property
    def confirmation(self) -> Step | None:
        return next((s for s in self.steps if s.role == CONFIRM), None)

    def to_json(self) -> dict:
        return {"p95_slo_ms": self.p95_slo_ms, "error_rate_max": self.error_rate_max, "instances": self.instances,
                "steps": [asdict(s) for s in self.steps], "knee_rps": self.knee_rps,
                "per_instance_rps": self.per_instance_rps}


def next_step(search: Search, how: Settings = DEFAULT_SETTINGS) -> tuple[float, str] | None:
    """The rate to measure next and why (climb, refine, confirm), or None when the search is over."""
    searched = search.searched
    if search.confirmation is not None:
        return None
    missed = search.first_miss
    over = missed is None and (len(searched) >= how.max_steps
                               or how.start_rps * how.growth ** len(searched) > how.max_rps)
    if missed is None and not over:
        return how.start_rps * how.growth ** len(searched), CLIMB
    good = search.knee
    refined = sum(1 for s in searched if s.role == REFINE)
    if missed is not None and good is not None and refined < how.refine and len(searched) < how.max_steps \
            and missed.rate_rps / good.rate_rps >= 1.05:  # within 5%: close enough for a measurement this noisy
        return math.sqrt(good.rate_rps * missed.rate_rps), REFINE
    if how.confirm and good is not None:
        return search.sustained_rps(), CONFIRM
    return None


def step_verdict(summary: dict, rate: float, *, p95_slo_ms: float, error_rate_max: float) -> tuple[bool, str]:
    missed = []
    if not summary["requests"]:
        missed.append("no request was answered")
    if summary["p95_ms"] is None or summary["p95_ms"] > p95_slo_ms:
        missed.append(f"p95 {summary['p95_ms'] or 0:.1f} ms is over the SLO of {p95_slo_ms:g} ms")
    if summary["error_rate"] > error_rate_max:
        seen = {**{f"HTTP {code}": n for code, n in (summary.get("by_status") or {}).items()
                   if int(code) >= 400}, **(summary.get("by_exception") or {})}
        what = ", ".join(f"{name}: {n}" for name, n in seen.items())
        missed.append(f"errors {summary['error_rate']:.2%} are over {error_rate_max:.2%}" + (f" ({what})" if what else ""))
    if summary["throughput_rps"] < CARRIED * rate:
        missed.append(f"it carried {summary['throughput_rps']:.1f} of the {rate:.1f} req/s asked for")
    return not missed, "; ".join(missed)


def measure(plan: stress.Plan, rate: float, *, p95_slo_ms: float, error_rate_max: float, role: str = CLIMB,
            run: Callable[[stress.Plan], stress.Result] = stress.run_blocking) -> Step:
    """One fixed-rate load of `plan`'s duration at `rate`."""
    summary = run(stress.Plan(url=plan.url, payloads=plan.payloads, concurrency=plan.concurrency,
                              duration_s=plan.duration_s, headers=plan.headers, timeout_s=plan.timeout_s,
                              rate_rps=rate)).summary()
    met, why = step_verdict(summary, rate, p95_slo_ms=p95_slo_ms, error_rate_max=error_rate_max)
    return Step(rate_rps=round(rate, 2), achieved_rps=summary["throughput_rps"], p50_ms=summary["p50_ms"],
                p95_ms=summary["p95_ms"], p99_ms=summary["p99_ms"], error_rate=summary["error_rate"],
                requests=summary["requests"], met=met, why=why, role=role)


def capacity_search(plan: stress.Plan, *, p95_slo_ms: float, error_rate_max: float = 0.01, instances: int = 1,
                    how: Settings = ONE_GO,
                    run: Callable[[stress.Plan], stress.Result] = stress.run_blocking) -> Search:
    """Step the load on the deployment `plan` points at (its url, payloads, headers, in-flight cap and step
    duration) until it misses the SLO, then narrow the knee down; all in one go (the portal takes it step by step)."""
    search = Search(p95_slo_ms=p95_slo_ms, error_rate_max=error_rate_max, instances=instances)
    while (step := next_step(search, how)) is not None:
        rate, role = step
        search.steps.append(measure(plan, rate, p95_slo_ms=p95_slo_ms, error_rate_max=error_rate_max, role=role,
                                    run=run))
    return search


# --- the proposal --------------------------------------------------------------------------------------------------
HEADROOM = 1.5  # autoscale's maximum: this much more than the target load, for bursts and for a slow scale-out
UTILIZATION_BOUNDS = (50, 80)  # percent: below, it scales out on noise; above, it scales too late for the knee
TIMEOUT_FACTOR = 3  # a request this many times the SLO (or the knee's p99) has failed its caller anyway


@dataclass(frozen=True)
class Proposal:
    values: dict  # profile field -> value
    reasons: list[str]  # in words, one per decision
    needed_instances: int
    per_instance_rps: float
    limited: bool = False  # the platform's maximum instance count cut the proposal short of the target


def propose(search: Search, *, target_rps: float, p95_slo_ms: float, max_instances: int,
            timeout_max_ms: int, tested_concurrency: int | None = None) -> Proposal | None:
    """Profile values for carrying `target_rps` within `p95_slo_ms`, from what the search measured; None when no
    step of it met that SLO."""
    knee = search.knee_for(p95_slo_ms)
    if knee is None:
        return None
    slo = min(p95_slo_ms, search.p95_slo_ms)
    per_instance = round(knee.achieved_rps * SUSTAIN_MARGIN / search.instances, 2)
    knee_per_instance = knee.achieved_rps / search.instances
    reasons = []
    if p95_slo_ms > search.p95_slo_ms:
        reasons.append(f"The test looked for the knee under a p95 of {search.p95_slo_ms:g} ms, not {p95_slo_ms:g}: "
                       f"what it found holds within the looser SLO too, but a deployment may carry more than this "
                       f"proposal counts on (test again with the SLO of {p95_slo_ms:g} ms to know).")
    elif p95_slo_ms < search.p95_slo_ms:
        reasons.append(f"Under the stricter SLO of {p95_slo_ms:g} ms the knee is the step at {knee.rate_rps:g} "
                       f"req/s (p95 {knee.p95_ms:g} ms).")
    needed = max(1, math.ceil(target_rps / per_instance))
    limited = needed > max_instances
    reasons.append(
        f"At the knee, {search.instances} instance{'s' if search.instances != 1 else ''} carried "
        f"{knee.achieved_rps:g} req/s with p95 {knee.p95_ms:g} ms, so one instance sustains {per_instance:g} req/s "
        f"within {slo:g} ms (the knee less {100 - SUSTAIN_MARGIN * 100:.0f}%). {target_rps:g} req/s needs "
        f"{target_rps:g} / {per_instance:g} → {needed} instance{'s' if needed != 1 else ''}.")
    if limited:
        reasons.append(f"That is more than the {max_instances} instances the platform allows: the proposal stops "
                       f"there and carries about {max_instances * per_instance:g} req/s. A larger instance type or a "
                       f"faster model is needed for the target.")
        needed = max_instances
    top = min(max_instances, max(needed + 1, math.ceil(needed * HEADROOM)))
    utilization = round(100 * target_rps / (needed * knee_per_instance))
    target_utilization = min(max(utilization, UTILIZATION_BOUNDS[0]), UTILIZATION_BOUNDS[1])
    reasons.append(
        f"Autoscale from {needed} (enough for the target at once, with no wait for a scale-out) to {top} instances "
        f"(room for {top / needed - 1:.0%} more load while more start). At the target each instance runs at about "
        f"{utilization}% of its knee; scaling at {target_utilization}% utilization "
        f"(kept within {UTILIZATION_BOUNDS[0]}–{UTILIZATION_BOUNDS[1]}%) adds instances before the others reach it.")
    in_flight = knee_per_instance * (knee.p95_ms or 0) / 1000  # Little's law, with the p95 as the time in system
    concurrency = max(1, math.ceil(in_flight))
    reasons.append(
        f"At the knee an instance had about {in_flight:.1f} requests in flight ({knee_per_instance:.1f} req/s × "
        f"{knee.p95_ms:g} ms, Little's law with the p95), so up to {concurrency} concurrent "
        f"request{'s' if concurrency != 1 else ''} per instance: more would only queue inside it, past the SLO.")
    if tested_concurrency is not None and concurrency > tested_concurrency:
        reasons.append(f"The test ran with at most {tested_concurrency} per instance; the higher cap was not "
                       f"measured: test again after applying it.")
    slowest = max(slo, knee.p99_ms or 0)
    timeout = min(timeout_max_ms, max(1000, math.ceil(TIMEOUT_FACTOR * slowest / 100) * 100))
    reasons.append(
        f"A request timeout of {timeout:,} ms: {TIMEOUT_FACTOR}× the slower of the SLO and the knee's p99 "
        f"({slowest:g} ms), at least 1 s"
        + (f", at most the platform's {timeout_max_ms:,} ms" if timeout == timeout_max_ms else "")
        + "; an answer that late has failed its caller anyway, and timing it out frees the instance.")
    values = {"instance_count": needed, "autoscale_enabled": True, "min_instances": needed, "max_instances": top,
              "target_utilization": target_utilization, "max_concurrent_requests_per_instance": concurrency,
              "request_timeout_ms": timeout}
    return Proposal(values=values, reasons=reasons, needed_instances=needed, per_instance_rps=per_instance,
                    limited=limited)
