"""Promotion pages: who may promote, approve and roll back; evidence shown; bad input changes nothing."""
import pytest
from django.db.models import ProtectedError
from django.urls import reverse

from deployments.models import (
    Deployment,
    DeploymentProfile,
    FunctionalTestRun,
    Promotion,
    PromotionStep,
    StressProfile,
    StressRun,
)
from deployments.promotions import services as promotions
from deployments.serving import services
from tests.models_registry.factories import make_model, make_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(engineer):
    profile = DeploymentProfile.objects.create(name="p")
    staging = services.endpoint_create(name="titanic-staging", stage="staging", profile=profile, actor=engineer)
    prod = services.endpoint_create(name="titanic-prod", stage="production", profile=profile, actor=engineer)
    model = make_model(engineer, name="titanic", versions=2)
    stress = StressProfile.objects.create(model=model, name="quick", concurrency=2, duration_seconds=1,
                                          payloads=[{"Pclass": 1}])
    return staging, prod, model, stress


def promote_data(world):
    staging, prod, model, stress = world
    return {"production_endpoint": prod.pk, "staging_endpoint": staging.pk, "stress_profile": stress.pk,
            "reason": "better"}


def test_manager_cannot_promote(manager_client, world):
    url = reverse("deployments:version_promote", args=["titanic", 2])
    assert manager_client.post(url, promote_data(world)).status_code == 403
    assert not Promotion.objects.exists()


def test_promote_bad_input_changes_nothing(engineer_client, world):
    url = reverse("deployments:version_promote", args=["titanic", 2])
    staging = world[0]
    response = engineer_client.post(url, {**promote_data(world), "production_endpoint": staging.pk}, follow=True)
    assert "Select a valid choice" in response.content.decode()
    response = engineer_client.post(url, {**promote_data(world), "reason": ""}, follow=True)
    assert "This field is required" in response.content.decode()
    assert not Promotion.objects.exists()


def test_promote_creates_pipeline_and_second_is_refused(engineer_client, world):
    url = reverse("deployments:version_promote", args=["titanic", 2])
    response = engineer_client.post(url, promote_data(world))
    promotion = Promotion.objects.get()
    assert response["Location"] == promotion.get_absolute_url()
    kinds = list(promotion.steps.values_list("kind", "percent"))
    assert kinds == [("validate", None), ("deploy_staging", None), ("functional", None), ("stress", None),
                     ("approval", None), ("deploy_production", None), ("traffic", 10), ("traffic", 50),
                     ("traffic", 100), ("finish", None)]
    again = engineer_client.post(url, promote_data(world), follow=True)
    assert "is still in progress on titanic-prod" in again.content.decode()
    assert Promotion.objects.count() == 1


def awaiting(world, engineer):
    staging, prod, model, stress = world
    promotion = Promotion.objects.create(version=model.latest_version, production_endpoint=prod,
                                         staging_endpoint=staging, stress_profile=stress, requested_by=engineer,
                                         approval_required=True, traffic_steps=[10, 50, 100],
                                         state=Promotion.State.AWAITING_APPROVAL)
    PromotionStep.objects.create(promotion=promotion, position=0, kind="approval", label="Approval",
                                 status="waiting")
    return promotion


def test_requester_cannot_approve_and_engineer_has_no_approve_right(engineer_client, engineer, world):
    promotion = awaiting(world, engineer)
    url = reverse("deployments:promotion_decide", args=[promotion.pk])
    assert engineer_client.post(url, {"decision": "approve", "comment": "mine"}).status_code == 403
    promotion.refresh_from_db()
    assert promotion.state == "awaiting"


def test_admin_who_asked_cannot_approve_own(admin_client_, admin_user, world):
    promotion = awaiting(world, admin_user)
    response = admin_client_.post(reverse("deployments:promotion_decide", args=[promotion.pk]),
                                  {"decision": "approve", "comment": "mine"}, follow=True)
    assert "someone else must approve" in response.content.decode()
    assert Promotion.objects.get(pk=promotion.pk).state == "awaiting"


def test_manager_rejects_with_comment(manager_client, manager, engineer, world):
    promotion = awaiting(world, engineer)
    url = reverse("deployments:promotion_decide", args=[promotion.pk])
    response = manager_client.post(url, {"decision": "approve", "comment": ""}, follow=True)
    assert "say why in a comment" in response.content.decode()
    page = manager_client.get(promotion.get_absolute_url()).content.decode()
    assert 'data-testid="decision-form"' in page
    manager_client.post(url, {"decision": "reject", "comment": "wait for the audit"})
    promotion.refresh_from_db()
    assert promotion.state == "rejected" and promotion.decided_by == manager
    assert promotion.decision_comment == "wait for the audit"


def test_promotion_page_shows_evidence_and_charts(manager_client, engineer, world):
    promotion = awaiting(world, engineer)
    staging = world[0]
    deployment = Deployment.objects.create(endpoint=staging, name="p1", model_version=promotion.version,
                                           status="healthy")
    FunctionalTestRun.objects.create(deployment=deployment, promotion=promotion, status="passed", results=[
        {"case": "seed passenger", "passed": True, "reason": "", "status": 200, "body": '{"prediction": 1}',
         "ms": 3.2}])
    StressRun.objects.create(
        deployment=deployment, promotion=promotion, status="passed",
        plan={"concurrency": 4, "duration_seconds": 2, "request_count": None, "shards": 2, "p95_ms_max": 100,
              "error_rate_max": 0.005, "min_rps": None, "payloads": []},
        summary={"requests": 100, "failures": 0, "error_rate": 0, "throughput_rps": 50, "p50_ms": 5, "p90_ms": 8,
                 "p95_ms": 9, "p99_ms": 12, "p99_9_ms": 15, "max_ms": 16, "by_status": {"200": 100},
                 "by_exception": {}},
        series=[{"t": 0, "ok": 50, "failed": 0, "p50": 5, "p95": 9, "p99": 12},
                {"t": 1, "ok": 50, "failed": 0, "p50": 5, "p95": 8, "p99": 11}],
        latency_buckets=[{"upto_ms": 5, "count": 60}, {"upto_ms": 16, "count": 40}])
    body = manager_client.get(promotion.get_absolute_url()).content.decode()
    assert "seed passenger" in body and "Latency percentiles over time" in body and "Latency histogram" in body
    assert body.count("<polyline") >= 4 and "200: 100" in body
    assert "thresholds: p95 ≤ 100 ms, error rate ≤ 0.005, no minimum throughput" in body
    live = manager_client.get(promotion.get_absolute_url(), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="promotion-live")
    assert live.status_code == 286  # waiting on a person: no polling


def test_rollback_rules(engineer_client, manager_client, engineer, world):
    staging, prod, model, stress = world
    url = reverse("deployments:endpoint_rollback", args=[prod.name])
    assert manager_client.post(url).status_code == 403
    response = engineer_client.post(url, {"reason": "errors"}, follow=True)
    assert "no previous deployment to roll back to" in response.content.decode()
    assert 'data-testid="rollback"' not in engineer_client.get(prod.get_absolute_url()).content.decode()
    old = Deployment.objects.create(endpoint=prod, name="blue", model_version=model.versions.get(version=1),
                                    status="healthy", traffic=0)
    Deployment.objects.create(endpoint=prod, name="green", model_version=model.latest_version, status="healthy",
                              traffic=100)
    page = engineer_client.get(prod.get_absolute_url()).content.decode()
    assert "Roll back to titanic v1 (blue)</button>" in page
    assert "<td>titanic v2 (green, 100%)</td><td>titanic v1 (blue, 0% → 100%)</td>" in page  # what changes, first
    assert "Send all traffic from titanic v2 (green) to titanic v1 (blue)?" in page
    assert 'data-testid="rollback"' not in manager_client.get(prod.get_absolute_url()).content.decode()
    response = engineer_client.post(url, {"reason": "  "}, follow=True)
    assert "Say why you roll back" in response.content.decode()
    old.refresh_from_db()
    assert old.traffic == 0  # refused: nothing changed
    engineer_client.post(url, {"reason": "error rate up since the switch"})
    old.refresh_from_db()
    assert old.traffic == 100
    page = engineer_client.get(prod.get_absolute_url()).content.decode()
    assert "rolled back from titanic v2 to titanic v1: error rate up since the switch" in page
    # Pressed again, it does not roll forward to v2: only a promotion brings a newer version back.
    assert 'data-testid="rollback"' not in page
    response = engineer_client.post(url, {"reason": "again"}, follow=True)
    assert "nothing healthy serves an older version" in response.content.decode()
    old.refresh_from_db()
    assert old.traffic == 100


def test_functional_case_validation(engineer):
    from django.core.exceptions import ValidationError

    from deployments.models import FunctionalTestCase

    model = make_model(engineer, name="m1")
    case = FunctionalTestCase(model=model, name="x", payload={"a": 1}, expect_field="prediction")
    with pytest.raises(ValidationError, match="Say what the field must equal"):
        case.full_clean()
    case = FunctionalTestCase(model=model, name="x", payload={"a": 1}, expect_field="p", expected_value="yes",
                              tolerance=0.1)
    with pytest.raises(ValidationError, match="numeric expected value"):
        case.full_clean()
    case = FunctionalTestCase(model=model, name="x", payload={}, expect_field="p", expected_value=0.5, tolerance=0.1)
    assert case.evaluate(200, '{"p": 0.55}') == (True, "")
    assert case.evaluate(200, '{"p": 0.7}')[0] is False
    assert case.evaluate(500, "oops") == (False, "HTTP 500, expected 200")
    assert case.evaluate(200, "not json") == (False, "the response has no field 'p'")


def test_stress_profile_validation(admin_client_, engineer):
    model = make_model(engineer, name="m2")
    url = reverse("admin:deployments_stressprofile_add")
    base = {"model": model.pk, "name": "s", "concurrency": 4, "duration_seconds": 10, "request_count": "",
            "payloads": '[{"Pclass": 1}]', "p95_ms_max": 100, "error_rate_max": 0.01, "min_rps": 1, "shards": 1}
    for change, message in [({"payloads": "[{not json"}, "Enter a valid JSON"),
                            ({"payloads": "[]"}, "non-empty JSON list"),
                            ({"request_count": 100}, "either a duration or a request count"),
                            ({"shards": 8}, "no more shards than concurrent users"),
                            ({"error_rate_max": 2}, "less than or equal to 1")]:
        response = admin_client_.post(url, {**base, **change})
        assert message in response.content.decode(), change
    assert not StressProfile.objects.filter(name="s").exists()
    assert admin_client_.post(url, base).status_code == 302


def test_validate_step_refuses_model_without_cases(engineer, world):
    staging, prod, model, stress = world
    run = make_run(engineer, backend_job_id="run-1-x")
    version = model.latest_version
    version.training_run = run
    version.save()
    promotion = promotions.promotion_start(version=version, production_endpoint=prod, staging_endpoint=staging,
                                           stress_profile=stress, reason="r", actor=engineer)
    assert promotions.promotion_advance(promotion_id=promotion.pk) is None
    promotion.refresh_from_db()
    assert promotion.state == "failed" and "has no functional test cases" in promotion.failure_reason


def test_stress_results_are_compared_with_the_last_passed_run_of_the_model(manager_client, engineer, world):
    import datetime

    from django.utils import timezone

    promotion = awaiting(world, engineer)
    staging, prod, model, _ = world
    now = timezone.now()
    plan = {"concurrency": 4, "duration_seconds": 10, "request_count": None, "shards": 1, "p95_ms_max": 100,
            "error_rate_max": 0.01, "min_rps": None, "payloads": []}

    def stress_run(name, version, status, minutes_ago, p95, rps, promotion=None, **plan_changes):
        deployment = Deployment.objects.create(endpoint=staging, name=name, model_version=model.versions.get(version=version),
                                               status="deleted")
        run = StressRun.objects.create(deployment=deployment, promotion=promotion, status=status, plan={**plan, **plan_changes},
                                       summary={"requests": 100, "failures": 0, "error_rate": 0.0, "throughput_rps": rps,
                                                "p50_ms": 10.0, "p90_ms": 20.0, "p95_ms": p95, "p99_ms": 40.0,
                                                "p99_9_ms": 50.0, "max_ms": 60.0, "by_status": {"200": 100},
                                                "by_exception": {}})
        StressRun.objects.filter(pk=run.pk).update(started_at=now - datetime.timedelta(minutes=minutes_ago))
        return run

    stress_run("old-pass", 1, "passed", 60, p95=25.0, rps=90.0)
    stress_run("last-pass", 1, "passed", 30, p95=30.0, rps=80.0)
    stress_run("last-fail", 1, "failed", 20, p95=500.0, rps=5.0)  # failed runs are no baseline
    stress_run("this", 2, "passed", 0, p95=36.0, rps=100.0, promotion=promotion)
    body = manager_client.get(promotion.get_absolute_url()).content.decode()
    assert "titanic v1 on titanic-staging/last-pass" in body and "compare with care" not in body
    assert "<th>p95</th><td>36.0 ms</td><td>30.0 ms</td>\n      <td>+20% <span class=\"tag worse\">worse</span>" in body
    assert "<th>Throughput</th><td>100.0 req/s</td><td>80.0 req/s</td>\n      <td>+25% <span class=\"tag better\">better" in body
    assert "<th>p50</th><td>10.0 ms</td><td>10.0 ms</td>\n      <td>+0%</td>" in body

    StressRun.objects.filter(deployment__name="this").update(plan={**plan, "concurrency": 8})
    assert "a different load from this one" in manager_client.get(promotion.get_absolute_url()).content.decode()
    StressRun.objects.exclude(deployment__name="this").delete()
    assert 'data-testid="stress-comparison"' not in manager_client.get(promotion.get_absolute_url()).content.decode()


def test_deleting_an_endpoint_or_deployment_cannot_cascade_a_promotions_evidence_away(admin_client_, engineer, world):
    promotion = awaiting(world, engineer)
    staging = world[0]
    deployment = Deployment.objects.create(endpoint=staging, name="p1", model_version=promotion.version,
                                           status="deleted")
    FunctionalTestRun.objects.create(deployment=deployment, promotion=promotion, status="passed")
    StressRun.objects.create(deployment=deployment, promotion=promotion, status="passed", plan={})
    for row in (staging, deployment, promotion):
        with pytest.raises(ProtectedError):
            type(row).objects.filter(pk=row.pk).delete()
    admin_client_.post(reverse("admin:deployments_endpoint_delete", args=[staging.pk]), {"post": "yes"})
    assert FunctionalTestRun.objects.filter(promotion=promotion).count() == 1
    assert StressRun.objects.filter(promotion=promotion).count() == 1
    assert PromotionStep.objects.filter(promotion=promotion).count() == 1


def test_waiting_for_you_lists_what_the_approver_may_decide_with_a_count(manager_client, admin_client_, admin_user,
                                                                         engineer_client, engineer, world):
    """The inbox and the top bar's count: approvers only, never their own requests; decided from the inbox."""
    inbox = reverse("deployments:promotion_inbox")
    page = manager_client.get(reverse("models_registry:model_list")).content.decode()
    assert 'data-testid="waiting-link"' in page and 'data-testid="waiting-count"' not in page
    assert 'data-testid="inbox-empty"' in manager_client.get(inbox).content.decode()

    theirs = awaiting(world, engineer)
    PromotionStep.objects.create(promotion=theirs, position=1, kind="functional", label="Functional tests",
                                 status="succeeded", detail="12 of 12 cases passed.")
    PromotionStep.objects.create(promotion=theirs, position=2, kind="stress", label="Stress test",
                                 status="succeeded", detail="p95 41 ms (threshold 500 ms), 0.0% errors.")
    Promotion.objects.filter(pk=theirs.pk).update(reason="v2 is 3 points better on cross-validation")
    page = manager_client.get(reverse("models_registry:model_list")).content.decode()
    assert 'data-testid="waiting-count" aria-label="1 waiting">1<' in page
    page = manager_client.get(inbox).content.decode()
    assert f'data-testid="waiting-{theirs.pk}"' in page and "v2 is 3 points better on cross-validation" in page
    assert "12 of 12 cases passed." in page and "p95 41 ms (threshold 500 ms)" in page

    # An admin's own request is not theirs to decide: not listed, not counted, though the manager's count shows it.
    Promotion.objects.filter(pk=theirs.pk).update(state=Promotion.State.FAILED)
    own = awaiting(world, admin_user)
    assert f'data-testid="waiting-{own.pk}"' not in admin_client_.get(inbox).content.decode()
    assert 'data-testid="waiting-count"' not in admin_client_.get(inbox).content.decode()
    # Engineers decide nothing: no link, and the page is refused.
    assert 'data-testid="waiting-link"' not in engineer_client.get(reverse("models_registry:model_list")).content.decode()
    assert engineer_client.get(inbox).status_code == 403

    response = manager_client.post(reverse("deployments:promotion_decide", args=[own.pk]),
                                   {"decision": "approve", "comment": "evidence is fine", "from": "inbox"})
    assert response.status_code == 302 and response["Location"] == inbox
    own.refresh_from_db()
    assert own.state == Promotion.State.RUNNING and own.decision_comment == "evidence is fine"
    assert 'data-testid="waiting-count"' not in manager_client.get(inbox).content.decode()
