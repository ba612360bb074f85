"""The promotion pipeline end to end on the local backend: real workers, real inference servers, the router."""
from itertools import pairwise
from unittest import mock

import pytest
import requests
from django.core.exceptions import ValidationError

from deployments.models import (
    Deployment,
    DeploymentProfile,
    Endpoint,
    FunctionalTestCase,
    Promotion,
    PromotionStep,
    StressProfile,
    StressRun,
)
from deployments.promotions import services as promotions
from deployments.serving import services
from mlopsportal.backends import get_backend
from tests.conftest import wait_for

from .conftest import make_version

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
SEED = {"Pclass": 1, "Sex": 0, "Age": 38, "SibSp": 1, "Parch": 0, "Fare": 71.2833, "Embarked": 2}
SIX = [{"Pclass": 3, "Sex": 1, "Age": 34.5, "SibSp": 0, "Parch": 0, "Fare": 7.8292, "Embarked": 2},
       {"Pclass": 3, "Sex": 0, "Age": 40, "SibSp": 1, "Parch": 1, "Fare": 2.56, "Embarked": 0}]


@pytest.fixture
def setup(engineer, staging, profile):
    prod_profile = DeploymentProfile.objects.create(name="prod", instance_count=1, request_timeout_ms=5000)
    prod = services.endpoint_create(name="titanic-prod", stage="production", profile=prod_profile, actor=engineer)
    Endpoint.objects.filter(pk=prod.pk).update(traffic_steps="50,100")
    prod.refresh_from_db()
    return staging, prod


def add_checks(model, *, expected=1, p95_ms_max=2000.0):
    FunctionalTestCase.objects.create(model=model, name="seed passenger survives", payload=SEED,
                                      expect_field="prediction", expected_value=expected)
    return StressProfile.objects.create(model=model, name="quick", concurrency=4, duration_seconds=2, payloads=SIX,
                                        p95_ms_max=p95_ms_max, error_rate_max=0.0, min_rps=1, shards=2)


def promote(version, setup, actor, stress):
    staging, prod = setup
    return promotions.promotion_start(version=version, production_endpoint=prod, staging_endpoint=staging,
                                      stress_profile=stress, reason="better model", actor=actor)


def settle(promotion, states, timeout=120):
    def reached():
        promotion.refresh_from_db()
        return promotion.state in states

    wait_for(reached, timeout=timeout, message=f"{promotion} to reach {states}")
    return promotion


def serving(endpoint):
    return {d.name: (d.model_version.version, d.traffic) for d in
            endpoint.deployments.filter(status__in=Deployment.LIVE).select_related("model_version")}


def test_promote_v1_then_v2_blue_green_then_rollback(worker, router, engineer, manager, setup, titanic_outputs):
    staging, prod = setup
    v1 = make_version(engineer, titanic_outputs)
    stress = add_checks(v1.model)

    first = settle(promote(v1, setup, engineer, stress), {"awaiting", "failed"})
    assert first.state == "awaiting", first.failure_reason
    stress_run = StressRun.objects.get(promotion=first)
    assert stress_run.status == "passed" and stress_run.shard_results.count() == 2
    assert stress_run.summary["requests"] > 0 and stress_run.summary["by_status"] == {"200": stress_run.summary["requests"]}
    assert stress_run.series and stress_run.latency_buckets
    with pytest.raises(ValidationError, match="someone else must approve"):
        promotions.promotion_decide(promotion=first, actor=engineer, approve=True, comment="looks fine")
    with pytest.raises(ValidationError, match="Say why"):
        promotions.promotion_decide(promotion=first, actor=manager, approve=True, comment=" ")
    promotions.promotion_decide(promotion=first, actor=manager, approve=True, comment="tests and stress are green")
    first = settle(first, {"succeeded", "failed"})
    assert first.state == "succeeded", first.failure_reason
    assert serving(prod) == {"blue": (1, 100)}
    assert not staging.deployments.filter(status__in=Deployment.LIVE).exists()  # the staging copy is removed

    # The seed's functional test, as a client would run it against production.
    response = requests.post(services.endpoint_scoring_url(prod), json=SEED,
                             headers={"Authorization": f"Bearer {prod.key}"}, timeout=10)
    assert response.status_code == 200 and response.json()["prediction"] == 1

    v2 = make_version(engineer, titanic_outputs, job_suffix="-v2")
    second = settle(promote(v2, setup, engineer, stress), {"awaiting", "failed"})
    assert second.state == "awaiting", second.failure_reason
    promotions.promotion_decide(promotion=second, actor=manager, approve=True, comment="ok")
    second = settle(second, {"succeeded", "failed"})
    assert second.state == "succeeded", second.failure_reason
    assert serving(prod) == {"blue": (1, 0), "green": (2, 100)}  # v1 kept, idle, for rollback
    steps = list(second.steps.values_list("kind", "percent", "status"))
    assert ("traffic", 50, "succeeded") in steps and ("traffic", 100, "succeeded") in steps
    runs = second.functional_runs.order_by("started_at")
    assert [(r.purpose, r.deployment.name, r.status) for r in runs] == [
        ("Functional tests", f"promo-{second.pk}", "passed"),
        *[(f"Smoke check at {p}% of traffic", "green", "passed") for p in second.traffic_steps]]
    assert "step to 50%" in " ".join(prod_audit(prod))

    services.endpoint_rollback(endpoint=prod, actor=engineer, reason="error rate up")
    assert serving(prod) == {"blue": (1, 100), "green": (2, 0)}
    assert any("rolled back from titanic v2 to titanic v1" in s for s in prod_audit(prod))
    assert Deployment.objects.count() == 4  # two staging copies (retired) and blue and green on production
    assert_every_change_audited(engineer)


def assert_every_change_audited(requester):
    """Issue #10: every deployment the pipeline made has its create event (the requester's), then an event for each
    status it went through, with the old and the new status, and, once retired, one delete event (the pipeline's:
    the system); every promotion has an event for each state it went through."""
    from audit.models import AuditEvent

    wait_for(lambda: not Deployment.objects.filter(status__in=["creating", "deleting"]).exists(),
             message="deployments to settle")

    def moves(target, field):
        events = AuditEvent.objects.filter(target_type__model=target._meta.model_name, target_id=str(target.pk))
        chain = [(row["old"], row["new"]) for event in events.order_by("id") for row in event.field_changes
                 if row["field"] == field]
        assert chain and chain[0][0] is None, (target, chain)
        assert all(a[1] == b[0] for a, b in pairwise(chain)), (target, chain)
        assert chain[-1][1] == getattr(target, field), (target, chain)
        return events, [new for _, new in chain]

    deployments = list(Deployment.objects.all())
    assert deployments
    for deployment in deployments:
        events, statuses = moves(deployment, "status")
        created = events.get(action="create")
        assert created.actor == requester and statuses[:2] == ["creating", "healthy"], (deployment, statuses)
        deleted = list(events.filter(action="delete"))
        if deployment.status == "deleted":
            assert statuses[-2:] == ["deleting", "deleted"], (deployment, statuses)
            assert len(deleted) == 1 and deleted[0].actor is None and deleted[0].actor_name == "system"
        else:
            assert deleted == []
    for promotion in Promotion.objects.all():
        events, states = moves(promotion, "state")
        assert events.get(action="create").actor == requester and states[0] == "running"


def prod_audit(endpoint):
    from audit.models import AuditEvent

    return list(AuditEvent.objects.filter(target_id=str(endpoint.pk), target_type__model="endpoint")
                .values_list("summary", flat=True))


def test_failing_functional_case_stops_before_production(worker, router, engineer, setup, titanic_outputs):
    staging, prod = setup
    v1 = make_version(engineer, titanic_outputs)
    stress = add_checks(v1.model, expected=0)  # the seed passenger survives: this expectation is wrong
    promotion = settle(promote(v1, setup, engineer, stress), {"failed", "awaiting", "succeeded"})
    assert promotion.state == "failed"
    assert "Functional tests: 1 of 1 cases failed: seed passenger survives (prediction is 1, expected 0)" \
        in promotion.failure_reason
    statuses = dict(promotion.steps.values_list("kind", "status"))
    assert statuses["functional"] == "failed" and statuses["stress"] == "canceled"
    # The clean-up runs right after the promotion is marked failed, in the same worker.
    wait_for(lambda: not staging.deployments.filter(status__in=Deployment.LIVE).exists(), timeout=10,
             message="staging cleanup")
    assert serving(prod) == {}
    run = promotion.functional_runs.get()
    assert run.results[0]["status"] == 200 and '"prediction": 1' in run.results[0]["body"]
    assert_every_change_audited(engineer)


def test_missed_stress_threshold_stops_with_evidence(worker, router, engineer, setup, titanic_outputs):
    staging, prod = setup
    v1 = make_version(engineer, titanic_outputs)
    stress = add_checks(v1.model, p95_ms_max=0.001)
    promotion = settle(promote(v1, setup, engineer, stress), {"failed", "awaiting", "succeeded"})
    assert promotion.state == "failed" and "Thresholds missed: p95 latency" in promotion.failure_reason
    run = StressRun.objects.get(promotion=promotion)
    assert run.status == "failed" and run.summary["requests"] > 0 and run.missed
    assert serving(prod) == {}


def test_failing_init_stops_at_staging_with_log(worker, router, engineer, setup, titanic_outputs):
    staging, prod = setup
    broken = "def init():\n    raise RuntimeError('cannot load weights')\n\ndef run(raw):\n    return raw\n"
    v1 = make_version(engineer, titanic_outputs, score_py=broken)
    stress = add_checks(v1.model)
    promotion = settle(promote(v1, setup, engineer, stress), {"failed", "awaiting", "succeeded"})
    assert promotion.state == "failed" and "cannot load weights" in promotion.failure_reason
    assert dict(promotion.steps.values_list("kind", "status"))["deploy_staging"] == "failed"
    assert serving(prod) == {}


def test_rejected_promotion_cleans_up(worker, router, engineer, manager, setup, titanic_outputs):
    staging, prod = setup
    v1 = make_version(engineer, titanic_outputs)
    promotion = settle(promote(v1, setup, engineer, add_checks(v1.model)), {"awaiting", "failed"})
    assert promotion.state == "awaiting", promotion.failure_reason
    promotions.promotion_decide(promotion=promotion, actor=manager, approve=False, comment="not this quarter")
    promotion.refresh_from_db()
    assert promotion.state == "rejected" and promotion.decision_comment == "not this quarter"
    assert dict(promotion.steps.values_list("kind", "status"))["deploy_production"] == "canceled"
    wait_for(lambda: not staging.deployments.filter(status__in=Deployment.LIVE).exists(), message="staging cleanup")
    assert_every_change_audited(engineer)


def test_killed_worker_mid_promotion_resumes(start_celery, router, engineer, manager, setup, titanic_outputs):
    staging, prod = setup
    fast = {"MLOPS_RESUME_STALE_EVERY": "1", "MLOPS_PROMOTION_STALE_SECONDS": "3", "MLOPS_STRESS_REQUEUE_SECONDS": "3"}
    v1 = make_version(engineer, titanic_outputs)
    first = start_celery("worker", **fast)
    promotion = promote(v1, setup, engineer, add_checks(v1.model))
    wait_for(lambda: PromotionStep.objects.filter(promotion=promotion, kind="stress", status="running").exists(),
             timeout=90, message="stress step to start")
    first.kill()
    start_celery("worker", **fast)
    start_celery("beat", **fast)
    promotion = settle(promotion, {"awaiting", "failed"}, timeout=150)
    assert promotion.state == "awaiting", promotion.failure_reason
    assert not promotion.steps.filter(status="running").exists()
    run = StressRun.objects.get(promotion=promotion)
    # Whether the killed worker held a shard depends on timing (it usually does: then it is queued again once).
    assert run.status == "passed" and run.shard_results.count() == 2 and run.requeued <= 1


def test_failed_smoke_check_during_rollout_restores_production(router, worker, engineer, setup, titanic_outputs):
    """The new deployment dies mid-rollout: the pipeline stops and the old one gets all its traffic back."""
    staging, prod = setup
    v1 = make_version(engineer, titanic_outputs)
    v2 = make_version(engineer, titanic_outputs, job_suffix="-v2")
    add_checks(v1.model)
    dead = "http://127.0.0.1:9/score"  # nothing listens there: the new deployment's server is gone
    blue = Deployment.objects.create(endpoint=prod, name="blue", model_version=v1, status="healthy", traffic=100,
                                     scoring_url=dead, backend_ref={"dir": "deployments/x/blue", "port": 9})
    green = Deployment.objects.create(endpoint=prod, name="green", model_version=v2, status="healthy", traffic=0,
                                      scoring_url=dead, backend_ref={"dir": "deployments/x/green", "port": 9})
    services.routing_publish()  # rows made here, not through the services: this is how the router learns of them
    promotion = Promotion.objects.create(version=v2, production_endpoint=prod, staging_endpoint=staging,
                                         requested_by=engineer, approval_required=False, traffic_steps=[50, 100],
                                         previous_traffic={"blue": 100}, production_deployment=green)
    for position, (kind, percent) in enumerate([("traffic", 50), ("traffic", 100), ("finish", None)]):
        PromotionStep.objects.create(promotion=promotion, position=position, kind=kind, percent=percent, label=kind)

    assert promotions.promotion_advance(promotion_id=promotion.pk) is None
    promotion.refresh_from_db()
    assert promotion.state == "failed" and "smoke check at 50% failed" in promotion.failure_reason
    assert "HTTP 502" in promotion.failure_reason
    blue.refresh_from_db(), green.refresh_from_db()
    assert blue.traffic == 100 and green.traffic == 0 and green.status in ("deleting", "deleted")
    wait_for(lambda: Deployment.objects.get(pk=green.pk).status == "deleted", message="green to be removed")
    assert list(promotion.steps.values_list("kind", "percent", "status")) == [
        ("traffic", 50, "failed"), ("traffic", 100, "canceled"), ("finish", None, "canceled")]
    assert any("traffic restored: blue 100%, green 0%" in s for s in prod_audit(prod))


def test_traffic_the_platform_never_applies_times_out_and_restores_production(router, engineer, setup,
                                                                              titanic_outputs, settings):
    """A traffic step waits for the platform, but not forever: past MLOPS_TRAFFIC_TIMEOUT_SECONDS it fails with what
    the platform reports, and production's split is put back."""
    staging, prod = setup
    v1 = make_version(engineer, titanic_outputs)
    v2 = make_version(engineer, titanic_outputs, job_suffix="-v2")
    blue = Deployment.objects.create(endpoint=prod, name="blue", model_version=v1, status="healthy", traffic=100,
                                     scoring_url="http://127.0.0.1:9/score", backend_ref={"dir": "x/blue", "port": 9})
    green = Deployment.objects.create(endpoint=prod, name="green", model_version=v2, status="healthy", traffic=0,
                                      scoring_url="http://127.0.0.1:9/score", backend_ref={"dir": "x/green", "port": 9})
    promotion = Promotion.objects.create(version=v2, production_endpoint=prod, staging_endpoint=staging,
                                         requested_by=engineer, approval_required=False, traffic_steps=[50, 100],
                                         previous_traffic={"blue": 100}, production_deployment=green)
    PromotionStep.objects.create(promotion=promotion, position=0, kind="traffic", percent=50, label="50%")
    settings.MLOPS_TRAFFIC_TIMEOUT_SECONDS = 3
    backend = type(get_backend())
    with mock.patch.object(backend, "endpoint_traffic_applied", return_value=False), \
            mock.patch.object(backend, "endpoint_traffic_status", return_value="the router answers 503."):
        wait_for(lambda: promotions.promotion_advance(promotion_id=promotion.pk) is None
                 and Promotion.objects.get(pk=promotion.pk).state == "failed", timeout=20, interval=1,
                 message="the traffic step to time out")
    promotion.refresh_from_db()
    assert promotion.failure_reason.endswith(
        "The platform did not route 50% to green within 3 s: the router answers 503.")
    blue.refresh_from_db(), green.refresh_from_db()
    assert (blue.traffic, green.traffic) == (100, 0)
