"""The capacity advisor, without load: the search's next step from the steps measured so far, the proposal's
arithmetic and words, the pages (start a test, its chart and knee, propose and apply as a profile revision), the
refusals on every form, and the flag on a promotion whose version sustains less per instance than the last one."""
import math
from dataclasses import asdict

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from deployments.models import (
    CapacityProposal,
    CapacityTest,
    Deployment,
    DeploymentProfile,
    Endpoint,
    FunctionalTestCase,
    Promotion,
    StressProfile,
)
from deployments.verification import capacity
from deployments.verification import services as verification
from tests.models_registry.factories import make_model


def step(rate, *, achieved=None, p95=20.0, met=True, role=capacity.CLIMB, p99=None, errors=0.0):
    return capacity.Step(rate_rps=rate, achieved_rps=rate if achieved is None else achieved, p50_ms=p95 / 2,
                         p95_ms=p95, p99_ms=p99 or p95 * 1.5, error_rate=errors, requests=int(rate * 10), met=met,
                         why="" if met else f"p95 {p95} ms is over the SLO", role=role)


def search_of(*steps, slo=100.0, instances=1):
    return capacity.Search(p95_slo_ms=slo, error_rate_max=0.01, instances=instances, steps=list(steps))


# --- the search, a step at a time ------------------------------------------------------------------------------
def test_next_step_climbs_refines_then_confirms():
    how = capacity.Settings(start_rps=10, growth=2, refine=2)
    search = search_of()
    assert capacity.next_step(search, how) == (10, capacity.CLIMB)
    search.steps += [step(10), step(20), step(40)]
    assert capacity.next_step(search, how) == (80, capacity.CLIMB)
    search.steps.append(step(80, achieved=60, p95=900, met=False))
    rate, role = capacity.next_step(search, how)
    assert role == capacity.REFINE and rate == pytest.approx(math.sqrt(40 * 80))
    search.steps.append(step(rate, p95=40, role=capacity.REFINE))  # met: the knee moves up
    rate2, role = capacity.next_step(search, how)
    assert role == capacity.REFINE and rate2 == pytest.approx(math.sqrt(rate * 80))
    search.steps.append(step(rate2, p95=400, met=False, role=capacity.REFINE))
    rate3, role = capacity.next_step(search, how)  # two refinements done: check the sustained rate
    assert role == capacity.CONFIRM and rate3 == pytest.approx(round(rate * capacity.SUSTAIN_MARGIN, 2))
    search.steps.append(step(rate3, role=capacity.CONFIRM))
    assert capacity.next_step(search, how) is None
    assert search.knee.rate_rps == pytest.approx(rate) and search.confirmation.met


def test_next_step_ends_without_a_knee_and_at_the_highest_rate():
    how = capacity.Settings(start_rps=10, growth=2, max_rps=40)
    assert capacity.next_step(search_of(step(10, p95=500, met=False)), how) is None  # the first step missed
    top = search_of(step(10), step(20), step(40))  # 80 is over the highest rate: confirm what held
    assert capacity.next_step(top, how) == (36.0, capacity.CONFIRM)
    assert capacity.next_step(top, capacity.Settings(start_rps=10, growth=2, max_rps=40, confirm=False)) is None


def test_a_stricter_slo_takes_the_knee_from_the_steps_measured():
    search = search_of(step(10, p95=10), step(20, p95=30), step(40, p95=80), step(60, p95=300, met=False))
    assert search.knee.rate_rps == 40
    assert search.knee_for(50).rate_rps == 20
    assert search.knee_for(5) is None
    assert search.knee_for(1000).rate_rps == 40  # looser than the test's: the test's own knee, no more


# --- the proposal ----------------------------------------------------------------------------------------------
def test_proposal_numbers_and_reasons():
    search = search_of(step(20, p95=15), step(44, p95=26, p99=40), step(70, p95=400, met=False))
    proposal = capacity.propose(search, target_rps=100, p95_slo_ms=100, max_instances=50, timeout_max_ms=180_000,
                                tested_concurrency=1)
    per = round(44 * capacity.SUSTAIN_MARGIN, 2)  # 39.6
    assert proposal.per_instance_rps == per
    assert proposal.values == {
        "instance_count": 3, "autoscale_enabled": True, "min_instances": 3, "max_instances": 5,
        "target_utilization": 76,  # 100 req/s over 3 instances of a 44 req/s knee
        "max_concurrent_requests_per_instance": 2,  # 44 req/s × 26 ms = 1.1 in flight
        "request_timeout_ms": 1000}  # 3 × max(SLO 100, p99 40) = 300 ms, at least 1 s
    words = " ".join(proposal.reasons)
    assert "one instance sustains 39.6 req/s" in words and "3 instances" in words
    assert "Little's law" in words and "was not measured" in words  # 2 per instance; the test ran with 1


def test_proposal_stops_at_the_platform_maximum_and_says_so():
    search = search_of(step(10, p95=50, p99=2000), step(20, p95=300, met=False))
    proposal = capacity.propose(search, target_rps=1000, p95_slo_ms=100, max_instances=50, timeout_max_ms=3000)
    assert proposal.limited and proposal.values["instance_count"] == 50 and proposal.values["max_instances"] == 50
    assert "more than the 50 instances the platform allows" in " ".join(proposal.reasons)
    assert proposal.values["request_timeout_ms"] == 3000  # 3 × 2000 ms, cut to the platform's maximum


def test_proposal_under_a_looser_or_impossible_slo():
    search = search_of(step(10, p95=50), step(20, p95=300, met=False))
    looser = capacity.propose(search, target_rps=5, p95_slo_ms=500, max_instances=50, timeout_max_ms=180_000)
    assert "not 500" in looser.reasons[0] and looser.values["instance_count"] == 1
    assert capacity.propose(search, target_rps=5, p95_slo_ms=10, max_instances=50, timeout_max_ms=180_000) is None


# --- pages -------------------------------------------------------------------------------------------------------
pages = pytest.mark.django_db


@pytest.fixture
def setup(engineer):
    model = make_model(engineer, name="titanic", versions=2)
    profile = DeploymentProfile.objects.create(name="prod", request_timeout_ms=5000)
    staging = Endpoint.objects.create(name="titanic-staging", stage="staging", profile=profile)
    prod = Endpoint.objects.create(name="titanic-prod", stage="production", profile=profile)
    v1, v2 = model.versions.order_by("version")
    live = Deployment.objects.create(endpoint=staging, name="cap-v2", model_version=v2, status="healthy",
                                     serving_settings=profile.serving_settings())
    Deployment.objects.create(endpoint=prod, name="blue", model_version=v1, status="healthy", traffic=100)
    FunctionalTestCase.objects.create(model=model, name="one", payload={"Pclass": 1})
    return {"model": model, "profile": profile, "staging": staging, "prod": prod, "v1": v1, "v2": v2, "live": live}


def finished_test(deployment, version, *, knee=44.0, confirmed=True, slo=100.0, user=None):
    steps = [step(knee / 2, p95=15), step(knee, p95=26, p99=40), step(knee * 1.6, p95=400, met=False),
             step(round(knee * capacity.SUSTAIN_MARGIN, 2), p95=20, met=confirmed, role=capacity.CONFIRM)]
    test = CapacityTest.objects.create(
        deployment=deployment, model_version=version, requested_by=user, p95_slo_ms=slo, payloads=[{"a": 1}],
        instances=1, serving_settings=deployment.serving_settings, steps=[asdict(s) for s in steps])
    search = verification.capacity_search(test)
    outcome = verification.capacity_outcome(search, test)
    CapacityTest.objects.filter(pk=test.pk).update(status="done", finished_at=timezone.now(), **outcome)
    test.refresh_from_db()
    return test


@pages
def test_engineer_starts_a_capacity_test_from_the_form(setup, engineer_client):
    url = reverse("deployments:capacity_new")
    page = engineer_client.get(url + f"?deployment={setup['live'].pk}").content.decode()
    assert "titanic-staging/cap-v2" in page and "titanic-prod/blue" not in page  # staging deployments only
    answer = engineer_client.post(url, {"deployment": setup["live"].pk, "p95_slo_ms": 100, "error_rate_max": 0.01,
                                        "step_seconds": 5, "start_rps": 5, "max_rps": 200, "max_in_flight": 32})
    test = CapacityTest.objects.get()
    assert answer.status_code == 302 and answer.url == test.get_absolute_url()
    assert test.model_version == setup["v2"] and test.payloads == [{"Pclass": 1}] and test.status == "running"
    assert AuditEvent.objects.filter(action="launch", target_id=str(test.pk)).exists()
    again = engineer_client.post(url, {"deployment": setup["live"].pk, "p95_slo_ms": 100, "error_rate_max": 0.01,
                                       "step_seconds": 5, "start_rps": 5, "max_rps": 200, "max_in_flight": 32})
    assert again.status_code == 400 and "would measure each other" in again.content.decode()
    detail = engineer_client.get(test.get_absolute_url()).content.decode()
    assert 'hx-trigger="every 2s"' in detail and "0 steps measured" in detail
    stop = engineer_client.post(reverse("deployments:capacity_stop", args=[test.pk]))
    test.refresh_from_db()
    assert stop.status_code == 302 and test.status == "stopped" and "Stopped by eve-engineer" in test.detail


@pages
@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"p95_slo_ms": "0"}, "p95_slo_ms", "greater than or equal to 1"),
    ({"p95_slo_ms": "nan"}, "p95_slo_ms", "Enter a number"),
    ({"error_rate_max": "0.9"}, "error_rate_max", "less than or equal to 0.5"),
    ({"step_seconds": "1"}, "step_seconds", "greater than or equal to 2"),
    ({"start_rps": "300"}, "start_rps", "at or below the highest rate"),
    ({"max_in_flight": "10000"}, "max_in_flight", "less than or equal to 512"),
    ({"deployment": "prod"}, "deployment", "Select a valid choice"),
    ({"payloads_from": "other"}, "payloads_from", "belongs to other"),
])
def test_capacity_form_refuses_bad_input_on_the_field(setup, engineer, engineer_client, changes, field, message):
    other = make_model(engineer, name="other")
    foreign = StressProfile.objects.create(model=other, name="load", payloads=[{"x": 1}])
    data = {"deployment": setup["live"].pk, "p95_slo_ms": 100, "error_rate_max": 0.01, "step_seconds": 5,
            "start_rps": 5, "max_rps": 200, "max_in_flight": 32}
    data.update(changes)
    if data["deployment"] == "prod":
        data["deployment"] = setup["prod"].deployments.get().pk
    if data.get("payloads_from") == "other":
        data["payloads_from"] = foreign.pk
    answer = engineer_client.post(reverse("deployments:capacity_new"), data)
    assert answer.status_code == 400
    assert message in str(answer.context["form"].errors[field]), answer.context["form"].errors
    assert not CapacityTest.objects.exists()


@pages
def test_only_a_healthy_deployment_is_tested(setup, engineer, engineer_client):
    """One still starting answers errors for a moment: the test would measure its start, not its capacity."""
    Deployment.objects.filter(pk=setup["live"].pk).update(status="creating")
    page = engineer_client.get(reverse("deployments:capacity_new")).content.decode()
    assert "cap-v2" not in page and 'data-testid="no-staging"' in page
    setup["live"].refresh_from_db()
    with pytest.raises(ValidationError, match="only a healthy deployment"):
        verification.capacity_test_start(deployment=setup["live"], payloads=[{"a": 1}], p95_slo_ms=100,
                                         actor=engineer)
    assert not CapacityTest.objects.exists()


def test_a_step_says_which_errors_it_saw():
    met, why = capacity.step_verdict({"requests": 10, "p95_ms": 5.0, "error_rate": 0.8, "throughput_rps": 10,
                                      "by_status": {"200": 2, "503": 8}, "by_exception": {}}, 10,
                                     p95_slo_ms=100, error_rate_max=0.01)
    assert not met and "errors 80.00% are over 1.00% (HTTP 503: 8)" in why


@pages
def test_a_model_with_no_request_bodies_is_told_so(setup, engineer_client):
    FunctionalTestCase.objects.all().delete()
    answer = engineer_client.post(reverse("deployments:capacity_new"), {
        "deployment": setup["live"].pk, "p95_slo_ms": 100, "error_rate_max": 0.01, "step_seconds": 5,
        "start_rps": 5, "max_rps": 200, "max_in_flight": 32})
    assert answer.status_code == 400 and "no enabled functional cases" in answer.content.decode()


@pages
def test_admin_proposes_and_applies_in_one_click(setup, admin_user, admin_client_):
    test = finished_test(setup["live"], setup["v2"])
    assert test.confirmed and test.knee_rps == 44.0 and test.per_instance_rps == 39.6
    page = admin_client_.get(test.get_absolute_url()).content.decode()
    assert page.count('data-testid="capacity-chart"') == 2 and "knee 44 req/s" in page
    assert 'data-testid="knee-row"' in page and "Confirmed: a fixed load at 39.6 req/s" in page
    assert f'<option value="{setup["profile"].pk}" selected>' in page  # production's profile, chosen
    Deployment.objects.filter(endpoint=setup["prod"]).delete()  # before the first promotion: the only production one
    page = admin_client_.get(test.get_absolute_url()).content.decode()
    assert f'<option value="{setup["profile"].pk}" selected>' in page

    made = admin_client_.post(reverse("deployments:capacity_propose", args=[test.pk]),
                              {"profile": setup["profile"].pk, "target_rps": 100, "p95_slo_ms": 100})
    proposal = CapacityProposal.objects.get()
    assert made.status_code == 302 and proposal.values["instance_count"] == 3 and proposal.based_on_revision == 1
    page = admin_client_.get(test.get_absolute_url()).content.decode()
    assert "Apply as revision 2 of prod" in page and "Little&#x27;s law" in page

    applied = admin_client_.post(reverse("deployments:capacity_apply", args=[proposal.pk]))
    assert applied.status_code == 302
    profile = DeploymentProfile.objects.get(pk=setup["profile"].pk)
    assert (profile.instance_count, profile.min_instances, profile.max_instances) == (3, 3, 5)
    assert profile.autoscale_enabled and profile.max_concurrent_requests_per_instance == 2
    revision = profile.history.latest()
    assert revision.history_user == admin_user and f"Capacity proposal #{proposal.pk}" in revision.history_change_reason
    proposal.refresh_from_db()
    assert proposal.applied_revision == 2
    event = AuditEvent.objects.filter(action="update", target_id=str(profile.pk)).latest("at")
    assert "instance_count" in str(event.changes)
    twice = admin_client_.post(reverse("deployments:capacity_apply", args=[proposal.pk]), follow=True)
    assert "applied already, as revision 2" in twice.content.decode()
    assert profile.history.count() == 2


@pages
def test_a_proposal_is_refused_on_a_changed_profile_and_on_bad_input(setup, admin_client_):
    test = finished_test(setup["live"], setup["v2"])
    url = reverse("deployments:capacity_propose", args=[test.pk])
    for bad, field in (({"target_rps": "nan"}, "target_rps"), ({"target_rps": "-1"}, "target_rps"),
                       ({"p95_slo_ms": "5"}, "p95_slo_ms"), ({"profile": "999"}, "profile")):
        answer = admin_client_.post(url, {"profile": setup["profile"].pk, "target_rps": 100, "p95_slo_ms": 100,
                                          **bad})
        assert answer.status_code == 400 and field in answer.context["proposal_form"].errors, bad
    assert not CapacityProposal.objects.exists()
    admin_client_.post(url, {"profile": setup["profile"].pk, "target_rps": 100, "p95_slo_ms": 100})
    proposal = CapacityProposal.objects.get()
    profile = setup["profile"]
    profile.description = "edited meanwhile"
    profile.save()
    answer = admin_client_.post(reverse("deployments:capacity_apply", args=[proposal.pk]), follow=True)
    assert "changed since this proposal was made" in answer.content.decode()
    assert DeploymentProfile.objects.get(pk=profile.pk).instance_count == 1


@pages
def test_the_platform_limits_are_named_in_a_proposal(setup, admin_client_):
    Endpoint.objects.filter(pk=setup["prod"].pk).update(stage="production")
    test = finished_test(setup["live"], setup["v2"], knee=2.0)
    admin_client_.post(reverse("deployments:capacity_propose", args=[test.pk]),
                       {"profile": setup["profile"].pk, "target_rps": 10_000, "p95_slo_ms": 100})
    proposal = CapacityProposal.objects.get()
    assert proposal.values["instance_count"] == 100  # the local backend's maximum: the profile's own
    assert any("more than the 100 instances" in reason for reason in proposal.reasons)


@pages
def test_an_unconfirmed_test_proposes_nothing_and_roles_are_kept(setup, admin_client_, engineer_client,
                                                                 manager_client):
    shaky = finished_test(setup["live"], setup["v2"], confirmed=False)
    assert shaky.confirmed is False and "Not confirmed" in shaky.detail
    answer = admin_client_.post(reverse("deployments:capacity_propose", args=[shaky.pk]),
                                {"profile": setup["profile"].pk, "target_rps": 10, "p95_slo_ms": 100})
    assert answer.status_code == 400 and "did not confirm" in answer.content.decode()
    good = finished_test(setup["live"], setup["v2"])
    for client in (engineer_client, manager_client):
        page = client.get(good.get_absolute_url())
        assert page.status_code == 200 and 'data-testid="proposal-form"' not in page.content.decode()
        assert client.post(reverse("deployments:capacity_propose", args=[good.pk]),
                           {"profile": setup["profile"].pk, "target_rps": 10, "p95_slo_ms": 100}).status_code == 403
    assert manager_client.post(reverse("deployments:capacity_new"), {}).status_code == 403
    assert manager_client.post(reverse("deployments:capacity_stop", args=[good.pk])).status_code == 403
    assert not CapacityProposal.objects.exists()


@pages
def test_a_version_that_sustains_less_is_flagged_on_its_promotion(setup, engineer, admin_user, engineer_client):
    old = Deployment.objects.create(endpoint=setup["staging"], name="cap-v1", model_version=setup["v1"],
                                    status="deleted", serving_settings=setup["profile"].serving_settings())
    before = finished_test(old, setup["v1"], knee=44.0)
    CapacityProposal.objects.create(test=before, profile=setup["profile"], target_rps=100, p95_slo_ms=100,
                                    values={}, reasons=[], based_on_revision=1, created_by=admin_user)
    promotion = Promotion.objects.create(version=setup["v2"], staging_endpoint=setup["staging"],
                                         production_endpoint=setup["prod"], requested_by=engineer,
                                         approval_required=True, reason="better")
    page = engineer_client.get(promotion.get_absolute_url()).content.decode()
    assert 'data-testid="capacity-flag"' not in page  # v2 not tested yet
    finished_test(setup["live"], setup["v2"], knee=42.0)  # within noise of 44
    page = engineer_client.get(promotion.get_absolute_url()).content.decode()
    assert 'data-testid="capacity-same"' in page and 'data-testid="capacity-flag"' not in page
    finished_test(setup["live"], setup["v2"], knee=30.0)
    page = engineer_client.get(promotion.get_absolute_url()).content.decode()
    assert 'data-testid="capacity-flag"' in page
    assert "v2 needs more capacity than v1" in page and "needs 4 instances instead of 3" in page
    version_page = engineer_client.get(setup["v2"].get_absolute_url()).content.decode()
    assert 'data-testid="version-capacity"' in version_page and "v2 needs more capacity" in version_page
