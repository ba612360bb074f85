"""Work is queued after the transaction commits, and a promotion never depends on beat to take its next step; a
step that keeps breaking fails the promotion after a capped number of retries, production traffic as it was."""
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deployments.models import (
    Deployment,
    DeploymentProfile,
    Endpoint,
    Promotion,
    PromotionStep,
    StressProfile,
)
from deployments.promotions import services as promotions
from deployments.serving import services as serving
from mlopsportal import celery as celery_module
from mlopsportal.lib import queue
from tests.conftest import wait_for

from .conftest import make_version

PROMOTIONS = 20


def test_enqueue_sends_only_after_commit_and_never_after_a_rollback(transactional_db, monkeypatch):
    sent = []
    monkeypatch.setattr(queue, "send_now", lambda name, *args, countdown=None: sent.append((name, args)))
    with transaction.atomic():
        queue.enqueue("deployments.tasks.promotion_advance", 1)
        assert sent == []  # a worker could not see the row yet
    assert sent == [("deployments.tasks.promotion_advance", (1,))]
    with pytest.raises(RuntimeError), transaction.atomic():
        queue.enqueue("deployments.tasks.promotion_advance", 2)
        raise RuntimeError("rolled back")
    assert len(sent) == 1


def test_an_unknown_task_name_fails_at_once(transactional_db):
    with pytest.raises(KeyError):
        queue.send_now("deployments.tasks.no_such_task", 1)


def test_redelivery_timeout_is_longer_than_every_task_time_limit():
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    if "visibility_timeout" not in options:
        pytest.skip("the filesystem queue does not redeliver")
    app = celery_module.app
    app.loader.import_default_modules()
    limits = {name: task.time_limit for name, task in app.tasks.items() if task.time_limit}
    assert limits and max(limits.values()) < options["visibility_timeout"], limits


# --- twenty promotions, a real worker, no beat --------------------------------------------------------------------
@pytest.fixture
def twenty_endpoints(engineer):
    profile = DeploymentProfile.objects.create(name="small", instance_count=1, request_timeout_ms=5000)
    staging = serving.endpoint_create(name="many-staging", stage="staging", profile=profile, actor=engineer)
    prods = [serving.endpoint_create(name=f"many-prod-{i}", stage="production", profile=profile, actor=engineer)
             for i in range(PROMOTIONS)]
    return staging, prods


def _delays(pairs) -> list[float]:
    return sorted(round((later - earlier).total_seconds(), 2) for earlier, later in pairs)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_twenty_starts_each_reach_their_first_step_without_beat(engineer, twenty_endpoints, titanic_outputs,
                                                                start_worker):
    """Each start is picked up by the worker at once: none waits for beat's resume check (there is no beat)."""
    staging, prods = twenty_endpoints
    version = make_version(engineer, titanic_outputs)
    stress = StressProfile.objects.create(model=version.model, name="quick", concurrency=1, duration_seconds=1,
                                          payloads=[{}])
    start_worker()
    started = [promotions.promotion_start(version=version, production_endpoint=prod, staging_endpoint=staging,
                                          stress_profile=stress, reason="load", actor=engineer) for prod in prods]

    def all_validated():  # the model has no functional cases: the first step runs and refuses, at once
        return PromotionStep.objects.filter(promotion__in=started, kind="validate",
                                            finished_at__isnull=False).count() == PROMOTIONS

    wait_for(all_validated, timeout=120, message="every promotion's first step to run")
    steps = PromotionStep.objects.filter(promotion__in=started, kind="validate").select_related("promotion")
    delays = _delays((s.promotion.created_at, s.finished_at) for s in steps)
    print(f"\nstart -> first step done, {PROMOTIONS} promotions (s): {delays}")
    assert all("no functional test cases" in p.failure_reason for p in Promotion.objects.filter(pk__in=[
        p.pk for p in started]))


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_twenty_approvals_each_reach_their_next_step_without_beat(engineer, manager, twenty_endpoints,
                                                                  titanic_outputs, start_worker):
    staging, prods = twenty_endpoints
    version = make_version(engineer, titanic_outputs)
    # No score.py in the version's code: the production deploy the approval leads to is refused at once, so the
    # test starts no servers; what it measures is that the worker took the step.
    (settings.MLOPS_ARTIFACT_ROOT / "jobs" / version.training_run.backend_job_id / "code" / "score.py").unlink()
    awaiting = []
    for prod in prods:
        promotion = Promotion.objects.create(
            version=version, production_endpoint=prod, staging_endpoint=staging, requested_by=engineer,
            approval_required=True, traffic_steps=[100], state=Promotion.State.AWAITING_APPROVAL)
        PromotionStep.objects.create(promotion=promotion, position=0, kind="approval", label="Approval",
                                     status=PromotionStep.Status.WAITING)
        PromotionStep.objects.create(promotion=promotion, position=1, kind="deploy_production", label="Deploy")
        PromotionStep.objects.create(promotion=promotion, position=2, kind="traffic", percent=100, label="100%")
        PromotionStep.objects.create(promotion=promotion, position=3, kind="finish", label="Finish")
        awaiting.append(promotion)
    start_worker()
    for promotion in awaiting:
        promotions.promotion_decide(promotion=promotion, actor=manager, approve=True, comment="fine")

    def all_taken():
        return PromotionStep.objects.filter(promotion__in=awaiting, kind="deploy_production",
                                            started_at__isnull=False).count() == PROMOTIONS

    wait_for(all_taken, timeout=120, message="every approved promotion's next step to start")
    steps = PromotionStep.objects.filter(promotion__in=awaiting, kind="deploy_production").select_related("promotion")
    delays = _delays((s.promotion.decided_at, s.started_at) for s in steps)
    print(f"\napproval -> next step started, {PROMOTIONS} promotions (s): {delays}")
    wait_for(lambda: not Promotion.objects.filter(pk__in=[p.pk for p in awaiting],
                                                  state=Promotion.State.RUNNING).exists(),
             timeout=60, message="the refused deploys to fail their promotions")


# --- a step that keeps breaking -------------------------------------------------------------------------------------
@pytest.fixture
def mid_rollout(engineer, titanic_outputs):
    """Production halfway through a blue/green switch: blue 50%, green (the new version) 50%, the 100% step next."""
    profile = DeploymentProfile.objects.create(name="p", instance_count=1, request_timeout_ms=5000)
    staging = Endpoint.objects.create(name="broken-staging", stage="staging", profile=profile)
    prod = Endpoint.objects.create(name="broken-prod", stage="production", profile=profile, traffic_steps="50,100")
    v1 = make_version(engineer, titanic_outputs)
    v2 = make_version(engineer, titanic_outputs, job_suffix="-v2")
    blue = Deployment.objects.create(endpoint=prod, name="blue", model_version=v1, status="healthy", traffic=50,
                                     scoring_url="http://127.0.0.1:9/score")
    green = Deployment.objects.create(endpoint=prod, name="green", model_version=v2, status="healthy", traffic=50,
                                      scoring_url="http://127.0.0.1:9/score")
    promotion = Promotion.objects.create(version=v2, production_endpoint=prod, staging_endpoint=staging,
                                         requested_by=engineer, approval_required=False, traffic_steps=[50, 100],
                                         previous_traffic={"blue": 100}, production_deployment=green)
    PromotionStep.objects.create(promotion=promotion, position=0, kind="traffic", percent=50, label="50%",
                                 status="succeeded")
    PromotionStep.objects.create(promotion=promotion, position=1, kind="traffic", percent=100, label="Shift 100%")
    PromotionStep.objects.create(promotion=promotion, position=2, kind="finish", label="Finish")
    return promotion, blue, green


@pytest.mark.django_db
def test_a_broken_step_fails_the_promotion_after_its_retries_with_production_as_it_was(mid_rollout, monkeypatch,
                                                                                       settings):
    promotion, blue, green = mid_rollout
    calls = []

    def broken(promotion, step):
        calls.append(step.pk)
        raise KeyError("a bug in the step")

    monkeypatch.setitem(promotions.HANDLERS, "traffic", broken)
    settings.MLOPS_PROMOTION_STEP_RETRIES = 3
    delays = [promotions.promotion_advance(promotion_id=promotion.pk) for _ in range(3)]
    assert all(d and d > 0 for d in delays) and delays == sorted(delays)  # again, later each time
    step = promotion.steps.get(position=1)
    assert step.retries == 3 and "KeyError" in step.detail and "3 of 3" in step.detail
    promotion.refresh_from_db()
    assert promotion.state == "running"

    assert promotions.promotion_advance(promotion_id=promotion.pk) is None  # the fourth breakage ends it
    assert len(calls) == 4
    promotion.refresh_from_db()
    assert promotion.state == "failed"
    assert "Shift 100%: it broke 4 times" in promotion.failure_reason
    assert "KeyError: 'a bug in the step'" in promotion.failure_reason
    blue.refresh_from_db(), green.refresh_from_db()
    assert (blue.traffic, green.traffic) == (100, 0)  # production as it was before the promotion
    assert green.status == "deleting"
    assert list(promotion.steps.values_list("status", flat=True)) == ["succeeded", "failed", "canceled"]


@pytest.mark.django_db
def test_a_step_that_keeps_stalling_is_resumed_a_capped_number_of_times(mid_rollout, settings,
                                                                      django_capture_on_commit_callbacks):
    """A worker that dies on the step every time (say, killed for memory): beat's resume re-queues it a few times,
    then fails the promotion saying why, instead of re-queuing it every minute forever."""
    promotion, blue, green = mid_rollout
    settings.MLOPS_PROMOTION_STEP_RETRIES = 2
    queued = []
    for _ in range(2):
        Promotion.objects.filter(pk=promotion.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
        with django_capture_on_commit_callbacks() as callbacks:
            queued += promotions.promotions_resume()
        assert len(callbacks) == 1  # the advance, queued once the resume commits
    assert queued == [promotion.pk, promotion.pk]
    Promotion.objects.filter(pk=promotion.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    assert promotions.promotions_resume() == []
    promotion.refresh_from_db()
    assert promotion.state == "failed" and "it stalled 3 times" in promotion.failure_reason
    blue.refresh_from_db()
    assert blue.traffic == 100


@pytest.mark.django_db
def test_a_fresh_promotion_is_not_resumed(mid_rollout):
    promotion, _, _ = mid_rollout
    assert promotions.promotions_resume() == []  # updated just now: its worker is taken to be alive
    assert promotion.steps.get(position=1).retries == 0
