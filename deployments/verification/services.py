"""Running a model's functional test cases, and stress runs, against a deployment. Both send with the client that
mlopsportal.lib.clients picks for the target URL, so a target's functional tests and its stress runs go through the
same one."""
from __future__ import annotations

import asyncio
import codecs
import json
import logging
import time
from dataclasses import asdict
from datetime import timedelta

import uvloop
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record, status_change
from mlopsportal.lib.clients import Client, client_for
from mlopsportal.lib.http1 import HTTPClientError, Reply
from mlopsportal.lib.queue import enqueue

from ..models import (
    CapacityTest,
    Deployment,
    Endpoint,
    FunctionalTestCase,
    FunctionalTestRun,
    StressRun,
    StressShard,
    TestOutcome,
)
from ..serving.services import endpoint_scoring_url, scoring_headers
from . import capacity, stress

log = logging.getLogger(__name__)

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


# --- capacity tests ---------------------------------------------------------------------------------------------
CAPACITY_SEARCH = {"growth": 1.6, "max_steps": 14, "refine": 3}


def _capacity_instances(settings: dict) -> int:
    return int(settings.get("instance_count") or 1)


def capacity_test_start(*, deployment: Deployment, p95_slo_ms: float, payloads: list, actor,
                        error_rate_max: float = 0.01, step_seconds: int = 10, start_rps: float = 5,
                        max_rps: float = 2_000, max_in_flight: int = 64) -> CapacityTest:
    """Queue a capacity test of a live staging deployment. Refused (ValidationError) on production, on a deployment
    that is not serving, and while another capacity test loads the same endpoint (each would measure the other)."""
    if deployment.endpoint.stage != Endpoint.Stage.STAGING:
        raise ValidationError("Capacity tests load staging deployments only: production serves real callers.")
    if deployment.status != Deployment.Status.HEALTHY:
        # A deployment still starting answers errors for a moment: its first steps would measure that.
        raise ValidationError(f"Deployment {deployment.name} is {deployment.get_status_display().lower()}: "
                              "only a healthy deployment can be tested.")
    busy = CapacityTest.objects.filter(deployment__endpoint=deployment.endpoint,
                                       status=CapacityTest.Status.RUNNING).first()
    if busy is not None:
        raise ValidationError(f"Capacity test #{busy.pk} is loading {deployment.endpoint.name}; two at once would "
                              "measure each other. Wait for it, or stop it.")
    if not isinstance(payloads, list) or not payloads:
        raise ValidationError("The test needs request bodies: give the model a stress profile or functional cases.")
    test = CapacityTest(deployment=deployment, model_version=deployment.model_version, requested_by=actor,
                        p95_slo_ms=p95_slo_ms, error_rate_max=error_rate_max, step_seconds=step_seconds,
                        start_rps=start_rps, max_rps=max_rps, max_in_flight=max_in_flight, payloads=payloads,
                        instances=_capacity_instances(deployment.serving_settings),
                        serving_settings=deployment.serving_settings)
    test.full_clean()
    with transaction.atomic():
        test.save()
        audit_record(actor=actor, action=AuditEvent.Action.LAUNCH, target=test,
                     summary=f"capacity test of {deployment.model_version} on {deployment.endpoint.name}/"
                             f"{deployment.name}, p95 SLO {p95_slo_ms:g} ms")
        enqueue("deployments.tasks.capacity_test_advance", test.pk,
                unavailable=lambda message: _capacity_end(test.pk, status=CapacityTest.Status.STOPPED,
                                                          detail=message))
    return test


def capacity_search(test: CapacityTest) -> capacity.Search:
    return capacity.Search(p95_slo_ms=test.p95_slo_ms, error_rate_max=test.error_rate_max, instances=test.instances,
                           steps=[capacity.Step.from_json(s) for s in test.steps])


def _capacity_settings(test: CapacityTest) -> capacity.Settings:
    return capacity.Settings(start_rps=test.start_rps, max_rps=test.max_rps, **CAPACITY_SEARCH)


def _capacity_end(test_id: int, *, status: str, detail: str, **fields) -> bool:
    return bool(CapacityTest.objects.filter(pk=test_id, status=CapacityTest.Status.RUNNING).update(
        status=status, detail=detail, leased_until=None, finished_at=timezone.now(), **fields))


def capacity_outcome(search: capacity.Search, test: CapacityTest) -> dict:
    """The knee, what one instance sustains, whether the check confirmed it, and all of it in words."""
    knee, miss, check = search.knee, search.first_miss, search.confirmation
    if knee is None:
        first = search.searched[0] if search.searched else None
        why = f" At {first.rate_rps:g} req/s {first.why}." if first else ""
        return {"detail": f"No step met the SLO, so there is no knee.{why} Start at a lower rate, or look at why the "
                          "deployment is slow.", "knee_rps": None, "per_instance_rps": None, "confirmed": None}
    parts = [f"The knee: {knee.achieved_rps:.1f} req/s carried at p95 {knee.p95_ms:.1f} ms (SLO {test.p95_slo_ms:g} ms)."]
    if miss is None:
        parts.append(f"It met the SLO at every rate tried, up to {knee.rate_rps:g} req/s: the true knee is higher, "
                     "so these figures are a floor. Raise the highest rate to find it.")
    else:
        parts.append(f"At {miss.rate_rps:.1f} req/s it missed: {miss.why}.")
    parts.append(f"One instance (of {test.instances}) sustains {search.per_instance_rps:g} req/s within the SLO "
                 f"(the knee less {100 - capacity.SUSTAIN_MARGIN * 100:.0f}%).")
    if check is not None:
        parts.append(f"Confirmed: a fixed load at {check.rate_rps:g} req/s for {test.step_seconds} s met the SLO "
                     f"(p95 {check.p95_ms:.1f} ms)." if check.met else
                     f"Not confirmed: a fixed load at {check.rate_rps:g} req/s missed the SLO ({check.why}). The "
                     "machine's speed moved during the test; test again with longer steps.")
    return {"detail": " ".join(parts), "knee_rps": search.knee_rps, "per_instance_rps": search.per_instance_rps,
            "confirmed": check.met if check is not None else None}


def _capacity_plan(test: CapacityTest) -> stress.Plan:
    deployment = test.deployment
    return stress.Plan(url=endpoint_scoring_url(deployment.endpoint),
                       payloads=[json.dumps(p).encode() for p in test.payloads], concurrency=test.max_in_flight,
                       duration_s=test.step_seconds, headers=_headers(deployment),
                       timeout_s=deployment.serving_settings.get("request_timeout_ms", 60_000) / 1000)


def capacity_test_advance(*, test_id: int) -> bool:
    """Measure the test's next step, or finish it. True when there is another step to take. A step is measured
    under a lease, so two deliveries of the task never load the deployment at once; a worker killed in the middle
    of a step leaves the lease to run out, and `capacity_tests_resume` queues the test again."""
    now = timezone.now()
    test = CapacityTest.objects.filter(pk=test_id).select_related("deployment__endpoint").first()
    if test is None:
        log.warning("capacity test %s is gone; nothing to advance", test_id)
        return False
    lease = now + timedelta(seconds=test.step_seconds + settings.MLOPS_CAPACITY_LEASE_GRACE_SECONDS)
    leased = CapacityTest.objects.filter(pk=test_id, status=CapacityTest.Status.RUNNING).filter(
        models.Q(leased_until__isnull=True) | models.Q(leased_until__lt=now)).update(leased_until=lease)
    if not leased:
        return False  # over, or another worker is measuring a step of it
    deployment = Deployment.objects.get(pk=test.deployment_id)
    if not deployment.is_live:
        _capacity_end(test_id, status=CapacityTest.Status.STOPPED,
                      detail=f"Stopped: deployment {deployment.name} was {deployment.get_status_display().lower()} "
                             f"after {len(test.steps)} steps, so there was nothing left to load.")
        return False
    search = capacity_search(test)
    wanted = capacity.next_step(search, _capacity_settings(test))
    if wanted is None:
        outcome = capacity_outcome(search, test)
        _capacity_end(test_id, status=CapacityTest.Status.DONE, **outcome)
        return False
    rate, role = wanted
    step = capacity.measure(_capacity_plan(test), rate, p95_slo_ms=test.p95_slo_ms,
                            error_rate_max=test.error_rate_max, role=role)
    kept = CapacityTest.objects.filter(pk=test_id, status=CapacityTest.Status.RUNNING, leased_until=lease).update(
        steps=[*test.steps, asdict(step)], leased_until=None, stepped_at=timezone.now())
    return bool(kept)  # not kept: stopped meanwhile, or the lease ran out and another worker took the step


def capacity_test_stop(*, test: CapacityTest, actor) -> bool:
    stopped = _capacity_end(test.pk, status=CapacityTest.Status.STOPPED,
                            detail=f"Stopped by {actor.get_username()} after {len(test.steps)} steps.")
    if stopped:
        audit_record(actor=actor, action=AuditEvent.Action.CANCEL, target=test, summary=f"stopped {test}",
                     changes=status_change("status", CapacityTest.Status.RUNNING, CapacityTest.Status.STOPPED))
    return stopped


def capacity_tests_resume() -> list[int]:
    """Running tests nobody is measuring: a worker died holding a step (the lease ran out), or the task for the
    next step was lost (no lease, and no step kept for a while). Each is queued again; the lease keeps it single."""
    now = timezone.now()
    idle_since = now - timedelta(seconds=settings.MLOPS_CAPACITY_LEASE_GRACE_SECONDS)
    stale = list(CapacityTest.objects.filter(status=CapacityTest.Status.RUNNING).filter(
        models.Q(leased_until__lt=now)
        | models.Q(leased_until__isnull=True, stepped_at__lt=idle_since)
        | models.Q(leased_until__isnull=True, stepped_at__isnull=True, started_at__lt=idle_since))
        .values_list("pk", flat=True))
    for test_id in stale:
        log.warning("capacity test %s has no worker measuring it; queueing it again", test_id)
        enqueue("deployments.tasks.capacity_test_advance", test_id)
    return stale
