"""The capacity advisor in a real browser: an admin opens a finished capacity test (the chart with its knee, the
steps), asks for a profile for a target load, reads the proposal and its reasons, applies it in one click and lands
on the profile's new revision; an engineer starts a capacity test from the staging endpoint's page. Each page is
looked at, and fits, at 1366 px and at 390 px."""
import pytest

from deployments.models import CapacityTest, Deployment, DeploymentProfile, Endpoint, FunctionalTestCase
from tests.conftest import look, sign_in
from tests.models_registry.factories import make_model

from .test_capacity import finished_test

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]



def test_admin_sizes_a_profile_from_a_capacity_test(live_server, browser_page, admin_user, engineer):
    page, base = browser_page, live_server.url
    model = make_model(engineer, name="titanic", versions=1)
    version = model.versions.get()
    profile = DeploymentProfile.objects.create(name="titanic-aks", request_timeout_ms=5000)
    staging = Endpoint.objects.create(name="titanic-staging", stage="staging", profile=profile)
    prod = Endpoint.objects.create(name="titanic-prod", stage="production", profile=profile)
    Deployment.objects.create(endpoint=prod, name="blue", model_version=version, status="healthy", traffic=100)
    live = Deployment.objects.create(endpoint=staging, name="cap", model_version=version, status="healthy",
                                     serving_settings=profile.serving_settings())
    FunctionalTestCase.objects.create(model=model, name="one", payload={"Pclass": 1})
    test = finished_test(live, version, user=engineer)

    sign_in(page, base, admin_user)
    page.click("nav a:has-text('Capacity')")
    page.click(f"a:has-text('#{test.pk}')")
    page.wait_for_selector("[data-testid=capacity-chart] svg")
    assert "39.6 req/s" in page.inner_text("[data-testid=capacity-per-instance]")
    assert page.locator(".chart-mark").count() == 2  # the knee, on both charts
    look(page, "capacity-test")
    page.fill("#id_target_rps", "100")
    page.fill("#id_p95_slo_ms", "5")  # stricter than every step measured: refused on the field
    page.click("[data-testid=propose]")
    page.wait_for_selector(".errorlist:has-text('No step of the test met a p95 of 5 ms')")
    page.fill("#id_p95_slo_ms", "100")
    page.click("[data-testid=propose]")
    page.wait_for_selector("[data-testid=proposal]")
    reasons = page.inner_text("[data-testid=proposal-reasons]")
    assert "one instance sustains 39.6 req/s" in reasons and "Little's law" in reasons
    look(page, "capacity-proposal")
    page.click("[data-testid=apply-proposal]")
    page.wait_for_selector("text=Applied as revision 2 of profile titanic-aks")
    assert "Capacity proposal #" in page.inner_text("[data-testid=revisions]")
    profile.refresh_from_db()
    assert (profile.instance_count, profile.max_instances, profile.autoscale_enabled) == (3, 5, True)
    look(page, "capacity-applied")
    page.goto(f"{base}{test.get_absolute_url()}")
    assert "Applied as revision 2" in page.inner_text("[data-testid=proposal-applied]")

    page.click("button:has-text('Sign out')")
    sign_in(page, base, engineer)
    page.goto(f"{base}{staging.get_absolute_url()}")
    page.click("[data-testid=capacity-link]")
    page.wait_for_selector("[data-testid=capacity-form]")
    look(page, "capacity-new")
    page.fill("#id_start_rps", "300")
    page.fill("#id_max_rps", "200")
    page.click("[data-testid=capacity-start]")
    page.wait_for_selector(".errorlist:has-text('Start at or below the highest rate')")
    assert CapacityTest.objects.count() == 1
    page.fill("#id_start_rps", "5")
    page.fill("#id_p95_slo_ms", "120")
    page.click("[data-testid=capacity-start]")
    page.wait_for_selector("[data-testid=capacity-progress]")
    started = CapacityTest.objects.latest("started_at")
    assert started.p95_slo_ms == 120 and started.deployment == live and started.status == "running"
    page.click("[data-testid=capacity-stop]")
    page.wait_for_selector("text=stopped")
    page.click("nav a:has-text('Capacity')")
    look(page, "capacity-list")
