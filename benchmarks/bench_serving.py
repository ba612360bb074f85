"""Serving benchmarks, each measured side by side in one run, against Azure ML's inference server serving the
Titanic forest (the example's default 200 trees):

  (a) the endpoint URL (through the router) vs the deployment's own URL, same load: p50/p99 and throughput;
  (b) the portal's stress engine vs wrk against the same deployment at the same concurrency;
  (c) the time from Promote to production, with a 10-second stress test (approval not required, to time the
      pipeline itself; the promotion page shows each step's time).

    python3 portal.py setup && apt-get install wrk    # wrk only for (b)
    .venv/bin/python benchmarks/bench_serving.py [--seconds 10] [--concurrency 1 8] [--skip-promotion]

Uses PostgreSQL and Redis on 127.0.0.1 when they answer (a throw-away test database and Redis database 13),
else SQLite and the filesystem queue. Only loopback addresses are used; every load is bounded in time.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SEED = {"Pclass": 1, "Sex": 0, "Age": 38, "SibSp": 1, "Parch": 0, "Fare": 71.2833, "Embarked": 2}


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def configure() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="mlops-bench-serving-"))
    if "DATABASE_URL" not in os.environ and port_open(5432):
        os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/mlops_bench_serving"
    if "CELERY_BROKER_URL" not in os.environ and port_open(6379):
        os.environ["CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/13"
    os.environ.update({"MLOPS_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "mlopsportal.settings",
                       "LOG_LEVEL": "WARNING", "MLOPS_ROUTER_URL": f"http://127.0.0.1:{free_port()}",
                       "CELERY_QUEUE": f"bench-{os.getpid()}", "MLOPS_DEPLOY_POLL_SECONDS": "0.5"})


def database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def trained_version(user):
    """Train the Titanic example with its default parameters and register it, as the worker would."""
    from django.conf import settings

    from mlopsportal.examples import get_example
    from models_registry import services as registry
    from models_registry.models import TrainingRun

    example = get_example("titanic")
    run = TrainingRun.objects.create(experiment_name="bench", example="titanic", params={}, compute_target="local",
                                     backend="local", timeout_seconds=600, status="succeeded", launched_by=user)
    job = settings.MLOPS_ARTIFACT_ROOT / "jobs" / run.job_name
    (job / "code").mkdir(parents=True)
    for path in example.code_files():
        shutil.copy(path, job / "code" / path.name)
    subprocess.run([sys.executable, "training.py", "--data", str(example.data_path), "--output-dir",
                    str(job / "outputs")], cwd=job / "code", check=True, capture_output=True, timeout=600)
    metrics = json.loads((job / "outputs" / "metrics.json").read_text())
    TrainingRun.objects.filter(pk=run.pk).update(backend_job_id=run.job_name, metrics=metrics)
    run.refresh_from_db()
    model, _ = registry.registered_model_ensure(name="titanic", actor=user)
    return registry.model_version_register_from_run(run=run, model=model, actor=user)


def deploy(endpoint, version, name):
    from deployments.models import Deployment
    from deployments.serving import services

    deployment = Deployment.objects.create(endpoint=endpoint, name=name, model_version=version,
                                           serving_settings=endpoint.profile.serving_settings())
    services.deployment_start(deployment_id=deployment.pk)
    while services.deployment_poll(deployment_id=deployment.pk):
        time.sleep(0.3)
    deployment.refresh_from_db()
    if deployment.status != "healthy":
        sys.exit(f"deployment failed: {deployment.error}")
    return deployment


def engine(url, headers, concurrency, seconds):
    from deployments.verification import stress as loadtest

    payloads = [json.dumps(SEED).encode()]
    result = loadtest.run_blocking(loadtest.Plan(url=url, payloads=payloads, concurrency=concurrency,
                                                 duration_s=seconds, headers=headers))
    return result.summary()


def wrk(url, headers, concurrency, seconds):
    if shutil.which("wrk") is None:
        return None
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(SEED))}",
             'wrk.headers["Content-Type"] = "application/json"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    script.unlink()

    def latency(label):
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if not match:
            return None
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"throughput_rps": float(rps.group(1)) if rps else None, "p50_ms": latency("50"),
            "p99_ms": latency("99"), "errors": int(errors.group(1)) if errors else 0}


def interleaved(direct_url, endpoint_url, auth, seconds):
    """One user alternating request by request between the two URLs, for the same length of time: slow drifts of a
    busy machine then hit both sides alike, so the difference of the p50s is what the routing adds. The user sends
    with the stress engine's client, one connection per side, kept alive where the server allows it (the router
    does; the inference server closes each one)."""
    import asyncio
    import statistics

    import uvloop

    from mlopsportal.lib.http1 import Connection, Target

    body = json.dumps(SEED).encode()
    sides = {"direct": (Connection(Target.from_url(direct_url, {"Content-Type": "application/json"})), []),
             "endpoint": (Connection(Target.from_url(endpoint_url, {"Content-Type": "application/json", **auth})), [])}

    async def go():
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pair = []
            for connection, _ in sides.values():
                started = time.perf_counter()
                reply = await connection.post(body)
                pair.append((time.perf_counter() - started) * 1000 if reply.status == 200 else None)
            if None not in pair:  # only pairs where both sides answered 200
                for (_, samples), ms in zip(sides.values(), pair, strict=True):
                    samples.append(ms)
        for connection, _ in sides.values():
            connection.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(go())

    def p(samples, q):
        return statistics.quantiles(samples, n=100)[q - 1]

    figures = {name: {"n": len(samples), "p50_ms": statistics.median(samples), "p99_ms": p(samples, 99)}
               for name, (_, samples) in sides.items()}
    direct, routed = (samples for _, samples in sides.values())
    return figures, statistics.median(r - d for d, r in zip(direct, routed, strict=True))


def alternate(rounds, first, second):
    """Run the two sides in turn `rounds` times, which one goes first swapping every round (so a machine slowly
    getting faster or slower does not favour either); the median of each figure per side."""
    import statistics

    runs = ([], [])
    for round_ in range(rounds):
        if round_ % 2:
            runs[1].append(second())
            runs[0].append(first())
        else:
            runs[0].append(first())
            runs[1].append(second())
    return tuple({key: statistics.median(r[key] for r in side) for key in ("throughput_rps", "p50_ms", "p99_ms")}
                 | {"failures": sum(r.get("failures", r.get("errors", 0)) for r in side)} for side in runs)


def row(label, s):
    print(f"  {label:<34}{s['throughput_rps']:>10.1f}{s['p50_ms']:>10.2f}{s['p99_ms']:>10.2f}{s['failures']:>9}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5, help="length of each load")
    parser.add_argument("--rounds", type=int, default=4,
                        help="the two sides alternate this many times; medians are printed (the machine is noisy)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--skip-promotion", action="store_true")
    args = parser.parse_args()
    configure()
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test.utils import setup_databases, teardown_databases

    from deployments.models import DeploymentProfile
    from deployments.serving import services

    old = setup_databases(verbosity=0, interactive=False)
    children, deployments = [], []
    env = {**os.environ, "DATABASE_URL": database_url(), "DATABASE_CONN_MAX_AGE": "0"}
    try:
        user = get_user_model().objects.create_user("bench", password="bench-password-1")
        print(f"database: {env['DATABASE_URL'].split(':')[0]}; cores: {os.cpu_count()}; each load runs "
              f"{args.seconds:g} s, the two sides alternate {args.rounds} times, medians shown")
        started = time.perf_counter()
        version = trained_version(user)
        print(f"trained and registered {version} in {time.perf_counter() - started:.1f} s "
              f"(cv_accuracy {version.metrics['cv_accuracy']:.4f})")
        profile = DeploymentProfile.objects.create(name="bench", instance_count=1, request_timeout_ms=30_000)
        staging = services.endpoint_create(name="bench-staging", stage="staging", profile=profile, actor=user)
        router_port = int(os.environ["MLOPS_ROUTER_URL"].rsplit(":", 1)[1])
        children.append(subprocess.Popen([sys.executable, "manage.py", "run_router", "--port", str(router_port)],
                                         cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        blue = deploy(staging, version, "blue")
        deployments.append(blue)
        services.endpoint_traffic_set(endpoint=staging, traffic={"blue": 100}, actor=user)
        while not port_open(router_port):
            time.sleep(0.1)
        time.sleep(0.5)
        auth = {"Authorization": f"Bearer {staging.key}"}
        endpoint_url = services.endpoint_scoring_url(staging)
        engine(blue.scoring_url, {}, 2, 2)  # warm up the server's worker

        print("\n(a) through the endpoint URL (router) vs straight at the deployment; the portal's engine drives both")
        print(f"  {'':<34}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>9}")
        for concurrency in args.concurrency:
            direct, routed = alternate(args.rounds, lambda c=concurrency: engine(blue.scoring_url, {}, c, args.seconds),
                                       lambda c=concurrency: engine(endpoint_url, auth, c, args.seconds))
            row(f"direct, {concurrency} users", direct)
            row(f"endpoint URL, {concurrency} users", routed)
            print(f"  -> routing adds {routed['p50_ms'] - direct['p50_ms']:+.2f} ms at p50 and keeps "
                  f"{routed['throughput_rps'] / direct['throughput_rps']:.0%} of direct throughput")

        print("\n(a') one user alternating request by request between the two URLs "
              f"({args.seconds * args.rounds * 2:g} s)")
        both, paired = interleaved(blue.scoring_url, endpoint_url, auth, args.seconds * args.rounds * 2)
        for name, figures in both.items():
            print(f"  {name:<34}{figures['n']:>10}{figures['p50_ms']:>10.2f}{figures['p99_ms']:>10.2f}  (requests, p50, p99)")
        print(f"  -> routing adds {both['endpoint']['p50_ms'] - both['direct']['p50_ms']:+.2f} ms at p50 "
              f"(median of the per-pair differences: {paired:+.2f} ms)")

        print("\n(b) the stress engine vs wrk, same deployment, same concurrency, same duration")
        print(f"  {'':<34}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>9}")
        for concurrency in args.concurrency:
            if shutil.which("wrk") is None:
                print("  wrk is not installed (apt-get install wrk); skipped")
                break
            theirs, ours = alternate(args.rounds, lambda c=concurrency: wrk(blue.scoring_url, {}, c, int(args.seconds)),
                                     lambda c=concurrency: engine(blue.scoring_url, {}, c, args.seconds))
            row(f"wrk, {concurrency} connections", theirs)
            row(f"engine, {concurrency} users", ours)
            print(f"  -> engine reaches {ours['throughput_rps'] / theirs['throughput_rps']:.0%} of wrk's throughput; "
                  f"p50 {ours['p50_ms'] / theirs['p50_ms'] - 1:+.0%} vs wrk")

        if not args.skip_promotion:
            promote_timing(user, version, staging, profile, env, children)
    finally:
        from deployments.models import Deployment
        from mlopsportal.backends import get_backend

        for deployment in Deployment.objects.exclude(backend_ref={}):
            get_backend().deployment_delete(deployment.backend_ref)
        for child in children:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
        teardown_databases(old, verbosity=0)


def promote_timing(user, version, staging, profile, env, children) -> None:
    from deployments.models import Endpoint, FunctionalTestCase, StressProfile
    from deployments.promotions import services as promotions
    from deployments.serving import services

    print("\n(c) Promote -> production with a 10-second stress test (a real worker; approval not required here)")
    prod = services.endpoint_create(name="bench-prod", stage="production", profile=profile, actor=user)
    Endpoint.objects.filter(pk=prod.pk).update(approval_required=False)
    prod.refresh_from_db()
    FunctionalTestCase.objects.create(model=version.model, name="seed passenger survives", payload=SEED,
                                      expect_field="prediction", expected_value=1)
    examples = json.loads((ROOT / "examples/titanic/tests/stress_payloads.json").read_text())
    stress = StressProfile.objects.create(model=version.model, name="seed-six", concurrency=4, duration_seconds=10,
                                          payloads=examples, p95_ms_max=1000, error_rate_max=0.01, min_rps=5)
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "mlopsportal", "worker", "--concurrency", "2",
                               "--without-mingle", "--without-gossip", "--queues", os.environ["CELERY_QUEUE"],
                               "--loglevel", "WARNING"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    children.append(worker)
    time.sleep(3)
    started = time.perf_counter()
    promotion = promotions.promotion_start(version=version, production_endpoint=prod, staging_endpoint=staging,
                                           stress_profile=stress, reason="benchmark", actor=user)
    while True:
        promotion.refresh_from_db()
        if not promotion.is_active:
            break
        if time.perf_counter() - started > 300:
            sys.exit("the promotion took more than 5 minutes")
        time.sleep(0.2)
    total = time.perf_counter() - started
    print(f"  {promotion.get_state_display()} in {total:.1f} s  {promotion.failure_reason}")
    for step in promotion.steps.all():
        if step.started_at and step.finished_at:
            print(f"    {step.label:<60}{(step.finished_at - step.started_at).total_seconds():>7.1f} s  "
                  f"{step.get_status_display()}")


if __name__ == "__main__":
    main()
