"""The promotion pipeline's decisions, driven step by step on the in-memory backend: no worker, no server, the clock
moved by hand. (tests/deployments/test_promotion.py runs the pipeline end to end on the local backend.)"""
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from deployments.models import Deployment, FunctionalTestRun, Promotion, PromotionStep, StressRun, StressShard
from deployments.promotions import services as promotions
from deployments.serving import services

from .conftest import make_version
from .test_promotion import add_checks, promote

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(fake, engineer, staging, profile):
    """Staging and production endpoints, on the in-memory backend."""
    prod = services.endpoint_create(name="titanic-prod", stage="production", profile=profile, actor=engineer)
    return staging, prod


def test_second_promotion_to_same_endpoint_is_refused(engineer, setup, titanic_outputs, settings):
    v1 = make_version(engineer, titanic_outputs)
    stress = add_checks(v1.model)
    promote(v1, setup, engineer, stress)  # nothing runs it: it stays running
    with pytest.raises(ValidationError, match="is still in progress on titanic-prod"):
        promote(v1, setup, engineer, stress)
    assert Promotion.objects.count() == 1


def at_the_stress_step(engineer, setup, titanic_outputs):
    """A promotion whose stress step is running against a staging deployment, for driving the step by hand."""
    staging, prod = setup
    v1 = make_version(engineer, titanic_outputs)
    stress = add_checks(v1.model)
    deployment = Deployment.objects.create(endpoint=staging, name="promo-x", model_version=v1, status="healthy",
                                           scoring_url="http://127.0.0.1:9/score")
    promotion = Promotion.objects.create(version=v1, production_endpoint=prod, staging_endpoint=staging,
                                         requested_by=engineer, approval_required=False, traffic_steps=[100],
                                         stress_profile=stress, staging_deployment=deployment)
    step = PromotionStep.objects.create(promotion=promotion, position=0, kind="stress", label="stress",
                                        status="running")
    return promotion, step


def test_missing_stress_shard_is_queued_again_once_then_fails_the_step(engineer, setup, titanic_outputs, settings,
                                                                       monkeypatch):
    """A worker died holding a shard: past the planned time the shard is queued again, once; if it still does not
    report back, the stress step fails saying so. Driven step by step, with the clock moved by hand."""
    promotion, step = at_the_stress_step(engineer, setup, titanic_outputs)
    queued = []
    monkeypatch.setattr(promotions, "enqueue", lambda name, *args: queued.append(args))
    settings.MLOPS_STRESS_REQUEUE_SECONDS, settings.MLOPS_STRESS_GRACE_SECONDS = 30, 120

    outcome = promotions._stress(promotion, step)  # starts the run: both shards queued
    run = StressRun.objects.get(promotion=promotion)
    assert outcome.kind == "wait" and [a[1] for a in queued] == [0, 1]
    StressShard.objects.create(run=run, index=0, result={"requests": 1})  # shard 1's worker dies

    planned = run.plan["duration_seconds"]
    StressRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(seconds=planned + 10))
    outcome = promotions._stress(promotion, step)
    assert outcome.kind == "wait" and "1 of 2 shards done" in outcome.detail and len(queued) == 2  # not yet

    StressRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(seconds=planned + 31))
    outcome = promotions._stress(promotion, step)
    run.refresh_from_db()
    assert outcome.kind == "wait" and "queued them again" in outcome.detail
    assert run.requeued == 1 and [a[1] for a in queued[2:]] == [1]  # only the missing shard
    outcome = promotions._stress(promotion, step)
    assert len(queued) == 3  # once only

    # The shard queued again has its own time, counted from when it was queued: not failed yet ...
    StressRun.objects.filter(pk=run.pk).update(requeued_at=timezone.now() - timedelta(seconds=planned + 140))
    assert promotions._stress(promotion, step).kind == "wait"
    # ... but once that time is up too, the step fails saying so.
    StressRun.objects.filter(pk=run.pk).update(requeued_at=timezone.now() - timedelta(seconds=planned + 151))
    outcome = promotions._stress(promotion, step)
    run.refresh_from_db()
    assert outcome.kind == "fail" and "Only 1 of 2 stress shards reported back in time" in outcome.detail
    assert run.status == "failed" and run.missed == ["a shard never reported back"]


def test_a_shard_queued_again_after_a_long_worker_outage_is_waited_for(engineer, setup, titanic_outputs, settings,
                                                                       monkeypatch):
    """Issue #10: a worker outage of about 170 s during a stress run failed the promotion right after queueing the
    missing shard again, without waiting for it. Now the shard gets its time, and its result is used."""
    promotion, step = at_the_stress_step(engineer, setup, titanic_outputs)
    monkeypatch.setattr(promotions, "enqueue", lambda name, *args: None)
    settings.MLOPS_STRESS_REQUEUE_SECONDS, settings.MLOPS_STRESS_GRACE_SECONDS = 30, 120
    promotions._stress(promotion, step)
    run = StressRun.objects.get(promotion=promotion)
    result = {"requests": 10, "failures": 0, "by_status": {"200": 10}, "by_exception": {}, "elapsed_s": 2,
              "histogram": "", "series": []}
    StressShard.objects.create(run=run, index=0, result=result)
    StressRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(seconds=170))  # the outage
    assert "queued them again" in promotions._stress(promotion, step).detail
    outcome = promotions._stress(promotion, step)  # the next advance, a second later
    assert outcome.kind == "wait" and "1 of 2 shards done" in outcome.detail


def test_runs_left_running_by_a_dead_worker_are_stopped_when_their_promotion_ends(engineer, setup, titanic_outputs):
    staging, prod = setup
    v1 = make_version(engineer, titanic_outputs)
    deployment = Deployment.objects.create(endpoint=staging, name="promo-x", model_version=v1, status="healthy")
    promotion = Promotion.objects.create(version=v1, production_endpoint=prod, staging_endpoint=staging,
                                         requested_by=engineer, approval_required=False, traffic_steps=[100],
                                         state="succeeded")
    smoke = FunctionalTestRun.objects.create(deployment=deployment, promotion=promotion, purpose="Smoke check at 100%")
    other = Promotion.objects.create(version=v1, production_endpoint=prod, staging_endpoint=staging,
                                     requested_by=engineer, approval_required=False, traffic_steps=[100])
    running = FunctionalTestRun.objects.create(deployment=deployment, promotion=other)
    assert promotions.promotions_resume() == []  # beat's resume check also closes them
    smoke.refresh_from_db()
    running.refresh_from_db()
    assert smoke.status == "stopped" and smoke.finished_at is not None
    assert running.status == "running"  # its promotion still runs: it may yet finish
