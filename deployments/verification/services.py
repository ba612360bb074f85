"""Running a model's functional test cases, and stress runs, against a deployment."""
from __future__ import annotations

import json
import time

import requests
from django.utils import timezone

from ..models import Deployment, FunctionalTestCase, FunctionalTestRun, StressRun, StressShard, TestOutcome
from ..serving.services import scoring_headers
from . import stress

BODY_KEPT = 4000  # characters of each response kept as evidence


def _headers(deployment: Deployment) -> dict[str, str]:
    return scoring_headers(deployment.endpoint, deployment.name)


def functional_run(*, deployment: Deployment, promotion=None, through_endpoint_url: str,
                   purpose: str = "Functional tests") -> FunctionalTestRun:
    """Send every enabled case of the deployment's model through the endpoint URL to this deployment."""
    cases = list(FunctionalTestCase.objects.filter(model=deployment.model_version.model, enabled=True))
    run = FunctionalTestRun.objects.create(deployment=deployment, promotion=promotion, purpose=purpose)
    results = []
    timeout = deployment.serving_settings.get("request_timeout_ms", 60_000) / 1000 + 5
    for case in cases:
        started = time.perf_counter()
        try:
            response = requests.post(through_endpoint_url, data=json.dumps(case.payload).encode(),
                                     headers=_headers(deployment), timeout=timeout)
            status, body = response.status_code, response.text
            passed, reason = case.evaluate(status, body)
        except requests.RequestException as exc:
            status, body, passed, reason = 0, "", False, f"no answer: {exc.__class__.__name__}"
        results.append({"case": case.name, "case_id": case.pk, "passed": passed, "reason": reason, "status": status,
                        "body": body[:BODY_KEPT], "ms": round((time.perf_counter() - started) * 1000, 2)})
    outcome = TestOutcome.PASSED if results and all(r["passed"] for r in results) else TestOutcome.FAILED
    FunctionalTestRun.objects.filter(pk=run.pk).update(results=results, status=outcome, finished_at=timezone.now())
    run.refresh_from_db()
    return run


def stress_plan(run: StressRun, *, url: str, shard: int) -> stress.Plan:
    """This shard's part of the run: an even split of users and of the request count."""
    plan, shards = run.plan, run.plan["shards"]
    users = plan["concurrency"] // shards + (1 if shard < plan["concurrency"] % shards else 0)
    count = None
    if plan["request_count"] is not None:
        count = plan["request_count"] // shards + (1 if shard < plan["request_count"] % shards else 0)
    return stress.Plan(
        url=url, payloads=[json.dumps(p).encode() for p in plan["payloads"]], concurrency=max(1, users),
        duration_s=plan["duration_seconds"], request_count=count, headers=_headers(run.deployment),
        timeout_s=run.deployment.serving_settings.get("request_timeout_ms", 60_000) / 1000)


def stress_shard_run(*, run_id: int, shard: int, url: str, worker: str = "") -> bool:
    """Run one shard and keep its result. Does nothing if that shard already finished (a redelivered task)."""
    run = StressRun.objects.select_related("deployment__endpoint").get(pk=run_id)
    if run.status != TestOutcome.RUNNING or StressShard.objects.filter(run=run, index=shard).exists():
        return False
    result = stress.run_blocking(stress_plan(run, url=url, shard=shard))
    StressShard.objects.get_or_create(run=run, index=shard, defaults={"result": result.to_json(), "worker": worker})
    return True


def stress_finish(run: StressRun) -> StressRun:
    """Merge the shards, compare with the thresholds, and record the outcome."""
    shards = [stress.Result.from_json(s.result) for s in run.shard_results.order_by("index")]
    merged = stress.Result.merge(shards)
    summary = merged.summary()
    plan = run.plan
    missed = stress.check_thresholds(summary, p95_ms_max=plan["p95_ms_max"], error_rate_max=plan["error_rate_max"],
                                       min_rps=plan["min_rps"])
    StressRun.objects.filter(pk=run.pk, status=TestOutcome.RUNNING).update(
        summary=summary, series=merged.series(), latency_buckets=merged.latency_buckets(), missed=missed,
        status=TestOutcome.FAILED if missed else TestOutcome.PASSED, finished_at=timezone.now())
    run.refresh_from_db()
    return run
