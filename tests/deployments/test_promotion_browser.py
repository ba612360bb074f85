"""Promote -> approve -> done in a real browser (headless Chromium via Playwright), with screenshots."""
import pytest

from deployments.models import DeploymentProfile, Endpoint, FunctionalTestCase, StressProfile
from deployments.serving.services import endpoint_create
from tests.conftest import ARTIFACTS, PASSWORD

from .conftest import make_version, titanic_trained_once

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_promote_approve_done_with_screenshots(live_server, worker, router, engineer, manager, browser_page):
    """Engineer presses Promote; the pipeline runs staging, tests and stress; the manager approves; done."""
    page, base = browser_page, live_server.url
    version = make_version(engineer, titanic_trained_once())
    profile = DeploymentProfile.objects.create(name="small", request_timeout_ms=5000)
    endpoint_create(name="titanic-staging", stage="staging", profile=profile, actor=engineer)
    prod = endpoint_create(name="titanic-prod", stage="production", profile=profile, actor=engineer)
    Endpoint.objects.filter(pk=prod.pk).update(traffic_steps="50,100")
    FunctionalTestCase.objects.create(model=version.model, name="seed passenger survives",
                                      payload={"Pclass": 1, "Sex": 0, "Age": 38, "SibSp": 1, "Parch": 0,
                                               "Fare": 71.2833, "Embarked": 2},
                                      expect_field="prediction", expected_value=1)
    StressProfile.objects.create(model=version.model, name="seed-six", concurrency=4, duration_seconds=3,
                                 payloads=[{"Pclass": 3, "Sex": 1, "Age": 34.5, "SibSp": 0, "Parch": 0,
                                            "Fare": 7.8292, "Embarked": 2}], p95_ms_max=2000, error_rate_max=0,
                                 shards=2)

    def sign_in(user):
        page.goto(f"{base}/accounts/login/")
        page.fill("input[name=username]", user.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button:has-text('Sign in')")
        page.wait_for_selector("h1:has-text('Models')")

    sign_in(engineer)
    page.goto(f"{base}{version.get_absolute_url()}")
    page.fill("[data-testid=promote-form] textarea[name=reason]", "First Titanic model for production")
    page.click("[data-testid=promote-form] button:has-text('Promote')")
    page.wait_for_selector("[data-testid=promotion-state]:has-text('Awaiting approval')", timeout=120_000)
    assert page.locator("[data-testid=decision-form]").count() == 0  # the requester cannot approve
    page.screenshot(path=str(ARTIFACTS / "promotion-awaiting.png"), full_page=True)
    assert page.locator("[data-testid=cancel-form] input[name=reason]").is_visible()  # the requester may cancel
    size = page.viewport_size
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the form and the timeline still fit
    page.screenshot(path=str(ARTIFACTS / "promotion-awaiting-390.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size(size)
    promotion_url = page.url

    page.click("button:has-text('Sign out')")
    sign_in(manager)
    page.goto(promotion_url)
    page.fill("[data-testid=decision-form] textarea[name=comment]", "Functional and stress results are green")
    page.click("[data-testid=decision-form] button:has-text('Approve')")
    page.wait_for_selector("[data-testid=promotion-state]:has-text('Succeeded')", timeout=120_000)
    page.screenshot(path=str(ARTIFACTS / "promotion-done.png"), full_page=True)
    page.locator("#stress").screenshot(path=str(ARTIFACTS / "stress-charts.png"))
    assert page.locator("#stress svg.chart").count() == 3
    steps = page.locator("[data-testid=timeline] li")
    assert all(status in ("succeeded", "skipped") for status in
               [steps.nth(i).get_attribute("data-status") for i in range(steps.count())])
    page.goto(f"{base}{prod.get_absolute_url()}")
    assert page.locator("[data-testid=deployment-status-blue]").inner_text() == "Healthy"
    page.screenshot(path=str(ARTIFACTS / "production-endpoint.png"), full_page=True)
