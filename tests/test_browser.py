"""The main flow in a real browser: sign in, launch two Titanic runs, watch them finish, see both versions charted.

Headless Chromium (Debian's `chromium`) driven by Playwright, against the live server, with a real worker.
Screenshots go to test-artifacts/.
"""
import pytest

from models_registry import services
from models_registry.models import ModelVersion

from .conftest import ARTIFACTS, PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

def launch_from_form(page, base, **params):
    page.goto(f"{base}/runs/new/?example=titanic")
    page.fill("input[name=experiment_name]", "titanic-browser")
    for name, value in params.items():
        page.fill(f"input[name=param_{name}]", str(value))
    page.click("button:has-text('Launch')")
    page.wait_for_selector("text=Launched run")
    # The status card polls with htmx and the page refreshes itself once the run ends.
    page.wait_for_selector("[data-testid=run-status]:has-text('Succeeded')", timeout=120_000)


def test_engineer_trains_two_versions_and_sees_them_charted(live_server, worker, engineer, browser_page):
    page, base = browser_page, live_server.url
    services.registered_model_ensure(name="titanic", key_metric="cv_accuracy", actor=engineer)

    page.goto(f"{base}/models/")
    assert "/accounts/login/" in page.url  # anonymous users get the login page
    page.fill("input[name=username]", engineer.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_selector("h1:has-text('Models')")

    launch_from_form(page, base, n_estimators=60)
    assert "10-fold CV accuracy" in page.inner_text("[data-testid=run-log]")
    page.screenshot(path=str(ARTIFACTS / "run-detail.png"), full_page=True)
    page.click("text=titanic v1")
    page.wait_for_selector("h1:has-text('titanic v1')")
    page.screenshot(path=str(ARTIFACTS / "version-detail.png"), full_page=True)

    launch_from_form(page, base, n_estimators=120, max_depth=4)
    page.goto(f"{base}/models/titanic/")
    assert page.locator("#version-table tbody tr").count() == 2
    assert page.locator("svg.chart circle").count() == 2
    page.screenshot(path=str(ARTIFACTS / "model-detail.png"), full_page=True)

    versions = list(ModelVersion.objects.order_by("version"))
    assert [v.version for v in versions] == [1, 2]
    assert all(v.metrics["cv_accuracy"] >= 0.78 for v in versions)
    assert versions[1].params["max_depth"] == 4

    page.goto(f"{base}/models/")
    page.screenshot(path=str(ARTIFACTS / "models-list.png"), full_page=True)

