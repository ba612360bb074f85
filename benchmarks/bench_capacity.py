"""The capacity advisor's done-when check on the Titanic example, through the portal: a staging deployment (Azure
ML's inference server on the local backend, one instance) behind the portal's router gets a capacity test, taken
step by step by the same service the worker's task calls, with the load sent to the endpoint's scoring URL as
callers send it. The test finds the knee and checks the rate it says one instance sustains; then two fixed-rate
loads: at that rate (it should meet the SLO) and at 1.3 times it (it should not). Last, the profile it proposes for
a target load.

    .venv/bin/python benchmarks/bench_capacity.py [--slo-ms 100] [--step-seconds 10] [--instances 1] [--target 100]

Prints every step (rate asked, rate carried, p50/p95/p99, errors, verdict), the knee, the predicted sustained rate per
instance, the two checks and the proposal. Numbers, not pass/fail: the machine's speed drifts.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_serving import (  # noqa: E402
    SEED,
    configure,
    database_url,
    deploy,
    port_open,
    trained_version,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slo-ms", type=float, default=100, help="the p95 latency SLO")
    parser.add_argument("--step-seconds", type=float, default=10, help="length of each step and check")
    parser.add_argument("--instances", type=int, default=1, help="instances (inference server workers)")
    parser.add_argument("--target", type=float, default=100, help="the target load (req/s) to propose a profile for")
    args = parser.parse_args()
    configure()
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test.utils import setup_databases, teardown_databases

    from deployments.configs import services as configs
    from deployments.models import DeploymentProfile
    from deployments.serving import services
    from deployments.verification import capacity
    from deployments.verification import services as verification
    from mlopsportal.backends import get_backend

    old = setup_databases(verbosity=0, interactive=False)
    deployment, router = None, None
    try:
        user = get_user_model().objects.create_user("bench", password="bench-password-1")
        version = trained_version(user)
        profile = DeploymentProfile.objects.create(name="bench", instance_count=args.instances,
                                                   request_timeout_ms=30_000)
        staging = services.endpoint_create(name="bench-staging", stage="staging", profile=profile, actor=user)
        env = {**os.environ, "DATABASE_URL": database_url()}
        router_port = int(os.environ["MLOPS_ROUTER_URL"].rsplit(":", 1)[1])
        router = subprocess.Popen([sys.executable, "manage.py", "run_router", "--port", str(router_port)],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deployment = deploy(staging, version, "blue")
        while not port_open(router_port):
            time.sleep(0.1)
        time.sleep(1)  # the router reads its table
        print(f"{version} on one deployment of {args.instances} instance(s), cores: {os.cpu_count()}; "
              f"p95 SLO {args.slo_ms:g} ms; steps of {args.step_seconds:g} s; load sent to "
              f"{services.endpoint_scoring_url(staging)}")
        test = verification.capacity_test_start(deployment=deployment, payloads=[SEED], p95_slo_ms=args.slo_ms,
                                                step_seconds=int(args.step_seconds), start_rps=5, max_rps=2000,
                                                max_in_flight=64, actor=user)
        started = time.perf_counter()
        while verification.capacity_test_advance(test_id=test.pk):
            pass
        test.refresh_from_db()
        print(f"{'rate asked':>11}{'carried':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}  step     verdict")
        for step in test.steps:
            print(f"{step['rate_rps']:>11.1f}{step['achieved_rps']:>9.1f}{step['p50_ms'] or 0:>9.1f}"
                  f"{step['p95_ms'] or 0:>9.1f}{step['p99_ms'] or 0:>9.1f}{step['error_rate']:>8.2%}  "
                  f"{step['role']:<8} {'met' if step['met'] else 'missed: ' + step['why']}")
        print(f"capacity test #{test.pk}: {test.get_status_display()} in {time.perf_counter() - started:.0f} s, "
              f"{len(test.steps)} steps\n{test.detail}")
        if test.per_instance_rps is None:
            sys.exit("no knee")
        sustained = test.per_instance_rps * test.instances
        print(f"knee: {test.knee_rps:.1f} req/s; predicted: one instance sustains {test.per_instance_rps:.1f} req/s "
              f"within p95 {args.slo_ms:g} ms")
        plan = verification._capacity_plan(test)
        for label, rate in (("at the predicted rate", sustained), ("at 1.3 times it", sustained * 1.3)):
            check = capacity.measure(plan, rate, p95_slo_ms=args.slo_ms, error_rate_max=0.01)
            print(f"fixed load {label}: {rate:.1f} req/s asked, {check.achieved_rps:.1f} carried, p95 "
                  f"{check.p95_ms} ms, errors {check.error_rate:.2%}: {'meets' if check.met else 'misses'} the SLO"
                  + (f" ({check.why})" if check.why else ""))
        if test.confirmed:
            proposal = configs.capacity_proposal_make(test=test, profile=profile, target_rps=args.target,
                                                      p95_slo_ms=args.slo_ms, actor=user)
            print(f"proposal for {args.target:g} req/s within p95 {args.slo_ms:g} ms: {proposal.values}")
            for reason in proposal.reasons:
                print(f"  - {reason}")
    finally:
        if deployment is not None:
            deployment.refresh_from_db()
            get_backend().deployment_delete(deployment.backend_ref)
        if router is not None:
            router.terminate()
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
