"""An admin's configuration work in a real browser (headless Chromium via Playwright) against the live server: edit
a deployment profile with a note, review the diff and what it reaches, save, compare revisions, see the drift on
the endpoint, revert; a manager then sees the same pages read-only. Each page is looked at, and fits, at 1366 px and
at 390 px."""
import pytest

from deployments.models import DeploymentProfile
from deployments.serving import services
from tests.conftest import look, sign_in
from tests.deployments.test_releases import _adopt
from tests.models_registry.factories import make_model

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]



def _look(page, name: str):
    look(page, f"admin-{name}")


def test_admin_edits_reviews_reverts_and_a_manager_reads(live_server, browser_page, admin_user, manager, engineer):
    page, base = browser_page, live_server.url
    profile = DeploymentProfile.objects.create(name="titanic-aks", request_timeout_ms=5000)
    prod = services.endpoint_create(name="titanic-prod", stage="production", profile=profile, actor=engineer)
    model = make_model(engineer, name="titanic", versions=1)
    blue = _adopt(prod, "blue", model.versions.get())
    blue.serving_settings = profile.serving_settings()
    blue.profile_revision = services._profile_revision(profile)
    blue.save(update_fields=["serving_settings", "profile_revision"])

    sign_in(page, base, admin_user)
    page.click("nav a:has-text('Configurations')")
    page.wait_for_selector("[data-testid=configs-profiles]")
    _look(page, "configs")
    page.click("[data-testid=configs-profiles] a:has-text('titanic-aks')")
    page.click("[data-testid=config-edit]")
    page.fill("#id_instance_count", "3")
    page.fill("#id_request_timeout_ms", "12000")
    page.click("[data-testid=config-review-button]")  # no note: refused, on its field
    page.wait_for_selector("[data-testid=config-errors]")
    assert DeploymentProfile.objects.get(pk=profile.pk).instance_count == 1
    page.fill("#id_note", "Three replicas for the Monday peak")
    page.click("[data-testid=config-review-button]")
    page.wait_for_selector("[data-testid=config-review]")
    assert "1" in page.inner_text("[data-testid=diff-instance_count]") and \
        "3" in page.inner_text("[data-testid=diff-instance_count]")
    uses = page.inner_text("[data-testid=config-uses]")
    assert "titanic-prod" in uses and "would run differently in: instances, request timeout" in uses
    _look(page, "review")
    page.click("[data-testid=config-save]")
    page.wait_for_selector("text=as revision 2")
    assert "Three replicas for the Monday peak" in page.inner_text("[data-testid=revisions]")
    _look(page, "profile")
    page.click("[data-testid=compare-revisions]")
    page.wait_for_selector("[data-testid=config-diff]")
    assert "12000" in page.inner_text("[data-testid=diff-request_timeout_ms]")

    page.goto(f"{base}/endpoints/titanic-prod/")
    page.click("[data-testid=drift-link]")
    page.wait_for_selector("[data-testid=drift-blue]")
    assert page.is_visible("[data-testid=profile-drift]")
    assert "Instances" in page.inner_text("[data-testid=drift-summary-blue]")
    _look(page, "drift")

    page.goto(f"{base}/configs/profiles/{profile.pk}/diff/?a=1&b=2")
    page.fill("#revert-note", "Back to one replica: the peak moved")
    page.click("[data-testid=config-revert]")
    page.wait_for_selector("text=as revision 3")
    profile.refresh_from_db()
    assert (profile.instance_count, profile.request_timeout_ms) == (1, 5000)
    assert profile.history.latest().history_change_reason == "Back to one replica: the peak moved"

    page.click("button:has-text('Sign out')")
    sign_in(page, base, manager)
    page.goto(f"{base}/configs/profiles/{profile.pk}/")
    page.wait_for_selector("[data-testid=read-only]")
    assert not page.is_visible("[data-testid=config-edit]")
    assert "Back to one replica" in page.inner_text("[data-testid=revisions]")
    _look(page, "profile-manager")
    response = page.goto(f"{base}/configs/profiles/{profile.pk}/edit/")
    assert response.status == 403
