"""The capacity advisor's measurement on the Titanic example: a staging deployment (Azure ML's inference server on
the local backend, one instance) is stepped up with the stress engine's open-loop rate mode until its p95 misses the
SLO; the knee gives what one instance sustains. Then two fixed-rate checks: a load at that rate (it should meet the
SLO) and one at 1.3 times it (it should not).

    .venv/bin/python benchmarks/bench_capacity.py [--slo-ms 100] [--step-seconds 10] [--instances 1]

Prints every step (rate asked, rate carried, p50/p95/p99, errors, verdict), the knee, the predicted sustained rate per
instance, and the two checks. Numbers, not pass/fail: the machine's speed drifts.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_serving import SEED, configure, deploy, trained_version  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slo-ms", type=float, default=100, help="the p95 latency SLO")
    parser.add_argument("--step-seconds", type=float, default=10, help="length of each step and check")
    parser.add_argument("--instances", type=int, default=1, help="instances (inference server workers)")
    args = parser.parse_args()
    configure()
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test.utils import setup_databases, teardown_databases

    from deployments.models import DeploymentProfile
    from deployments.serving import services
    from deployments.verification import capacity, stress
    from mlopsportal.backends import get_backend

    old = setup_databases(verbosity=0, interactive=False)
    deployment = None
    try:
        user = get_user_model().objects.create_user("bench", password="bench-password-1")
        version = trained_version(user)
        profile = DeploymentProfile.objects.create(name="bench", instance_count=args.instances,
                                                   request_timeout_ms=30_000)
        staging = services.endpoint_create(name="bench-staging", stage="staging", profile=profile, actor=user)
        deployment = deploy(staging, version, "blue")
        plan = stress.Plan(url=deployment.scoring_url, payloads=[json.dumps(SEED).encode()], concurrency=64,
                           duration_s=args.step_seconds)
        print(f"{version} on one deployment of {args.instances} instance(s), cores: {os.cpu_count()}; "
              f"p95 SLO {args.slo_ms:g} ms; steps of {args.step_seconds:g} s")
        started = time.perf_counter()
        search = capacity.capacity_search(plan, p95_slo_ms=args.slo_ms, instances=args.instances)
        print(f"{'rate asked':>11}{'carried':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}  verdict")
        for step in sorted(search.steps, key=lambda s: s.rate_rps):
            print(f"{step.rate_rps:>11.1f}{step.achieved_rps:>9.1f}{step.p50_ms or 0:>9.1f}{step.p95_ms or 0:>9.1f}"
                  f"{step.p99_ms or 0:>9.1f}{step.error_rate:>8.2%}  {'met' if step.met else 'missed: ' + step.why}")
        print(f"search took {time.perf_counter() - started:.0f} s in {len(search.steps)} steps")
        if search.knee is None:
            sys.exit("no step met the SLO")
        sustained = search.per_instance_rps * args.instances
        print(f"knee: {search.knee_rps:.1f} req/s; predicted: one instance sustains {search.per_instance_rps:.1f} "
              f"req/s within p95 {args.slo_ms:g} ms (the knee less {100 - capacity.SUSTAIN_MARGIN * 100:.0f}%)")
        for label, rate in (("at the predicted rate", sustained), ("at 1.3 times it", sustained * 1.3)):
            check = capacity.measure(plan, rate, p95_slo_ms=args.slo_ms, error_rate_max=0.01)
            print(f"fixed load {label}: {rate:.1f} req/s asked, {check.achieved_rps:.1f} carried, p95 "
                  f"{check.p95_ms} ms, errors {check.error_rate:.2%}: {'meets' if check.met else 'misses'} the SLO"
                  + (f" ({check.why})" if check.why else ""))
    finally:
        if deployment is not None:
            deployment.refresh_from_db()
            get_backend().deployment_delete(deployment.backend_ref)
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
