"""Running a model's functional test cases, and stress runs, against a deployment. Both send with the client that
mlopsportal.lib.clients picks for the target URL, so a target's functional tests and its stress runs go through the
same one."""
from __future__ import annotations

import asyncio
import codecs
import json
import time

import uvloop
from django.utils import timezone

from mlopsportal.lib.clients import Client, client_for
from mlopsportal.lib.http1 import HTTPClientError, Reply

from ..models import Deployment, FunctionalTestCase, FunctionalTestRun, StressRun, StressShard, TestOutcome
from ..serving.services import scoring_headers
from . import stress

BODY_KEPT = 4000  # characters of each response kept as evidence


def _headers(deployment: Deployment) -> dict[str, str]:
    return scoring_headers(deployment.endpoint, deployment.name)


def _text(reply: Reply) -> str:
    """The body as text, in the charset its Content-Type names (UTF-8 when it names none Python knows)."""
    charset = "utf-8"
    for parameter in reply.content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"')
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    return reply.body.decode(charset, "replace")


async def _send_each(client: Client, bodies: list[bytes]) -> list[tuple[Reply | Exception, float]]:
    """POST each body in turn over one connection: its reply (or why there was none) and the milliseconds taken."""
    sender = client.sender()
    answers = []
    try:
        for body in bodies:
            started = time.perf_counter()
            try:
                answer = await sender.post(body)
            except (TimeoutError, HTTPClientError, OSError) as exc:
                answer = exc
            answers.append((answer, round((time.perf_counter() - started) * 1000, 2)))
    finally:
        await sender.aclose()
    return answers


def functional_run(*, deployment: Deployment, promotion=None, through_endpoint_url: str,
                   purpose: str = "Functional tests") -> FunctionalTestRun:
    """Send every enabled case of the deployment's model through the endpoint URL to this deployment."""
    cases = list(FunctionalTestCase.objects.filter(model=deployment.model_version.model, enabled=True))
    if promotion is not None:  # the same check run again after a worker died in it: the old one is over
        FunctionalTestRun.objects.filter(promotion=promotion, deployment=deployment, purpose=purpose,
                                         status=TestOutcome.RUNNING).update(status=TestOutcome.STOPPED,
                                                                            finished_at=timezone.now())
    run = FunctionalTestRun.objects.create(deployment=deployment, promotion=promotion, purpose=purpose)
    timeout = deployment.serving_settings.get("request_timeout_ms", 60_000) / 1000 + 5
    try:
        client = client_for(through_endpoint_url, _headers(deployment), timeout_s=timeout)
    except ValueError as exc:  # nothing can be sent (a bad URL or header, a proxy setting that cannot be used)
        answers = [(exc, 0.0) for _ in cases]
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            answers = runner.run(_send_each(client, [json.dumps(case.payload).encode() for case in cases]))
    results = []
    for case, (answer, ms) in zip(cases, answers, strict=True):
        if isinstance(answer, Reply):
            status, body = answer.status, _text(answer)
            passed, reason = case.evaluate(status, body)
        elif isinstance(answer, ValueError):
            status, body, passed, reason = 0, "", False, f"cannot send: {answer}"
        else:
            status, body, passed, reason = 0, "", False, f"no answer: {answer.__class__.__name__} ({answer})"
        results.append({"case": case.name, "case_id": case.pk, "passed": passed, "reason": reason, "status": status,
                        "body": body[:BODY_KEPT], "ms": ms})
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
