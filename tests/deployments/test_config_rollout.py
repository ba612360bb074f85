"""A config rollout end to end on the local backend (real worker, real inference servers, the router): the version
serving production is deployed again with its profile's new settings, through staging, functional and stress
tests, approval and blue/green; the release ledger records the configuration applied; a rollback brings back the
deployment with the old settings."""
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from deployments.models import Deployment, DeploymentProfile, Endpoint, Promotion, ReleaseEvent
from deployments.promotions import services as promotions
from deployments.serving import services
from mlopsportal.backends import get_backend

from .conftest import make_version
from .test_promotion import add_checks, serving, settle

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def serving_v1(worker, router, engineer, manager, staging, titanic_outputs):
    profile = DeploymentProfile.objects.create(name="prod", instance_count=1, request_timeout_ms=5000)
    prod = services.endpoint_create(name="titanic-prod", stage="production", profile=profile, actor=engineer)
    Endpoint.objects.filter(pk=prod.pk).update(traffic_steps="50,100")
    prod.refresh_from_db()
    v1 = make_version(engineer, titanic_outputs)
    stress = add_checks(v1.model)
    first = settle(promotions.promotion_start(version=v1, production_endpoint=prod, staging_endpoint=staging,
                                              stress_profile=stress, reason="first", actor=engineer),
                   {"awaiting", "failed"})
    promotions.promotion_decide(promotion=first, actor=manager, approve=True, comment="green")
    assert settle(first, {"succeeded", "failed"}).state == "succeeded", first.failure_reason
    return prod, staging, stress, v1


def test_config_rollout_through_every_gate_then_rollback(serving_v1, admin_user, manager, client):
    prod, staging, stress, v1 = serving_v1
    with pytest.raises(ValidationError, match="nothing to roll out"):
        promotions.config_rollout_start(production_endpoint=prod, staging_endpoint=staging, stress_profile=stress,
                                        reason="no change", actor=admin_user)
    profile = prod.profile
    profile.instance_count, profile.request_timeout_ms = 2, 8000
    profile._change_reason, profile._history_user = "two workers for the peak", admin_user
    profile.save()
    pinned = profile.history.latest().history_id

    client.force_login(admin_user)
    page = client.get(reverse("deployments:endpoint_config_rollout", args=[prod.name])).content.decode()
    assert 'data-testid="rollout-changes"' in page and "Instances" in page
    started = client.post(reverse("deployments:endpoint_config_rollout", args=[prod.name]),
                          {"staging_endpoint": staging.pk, "stress_profile": stress.pk, "reason": "the peak"})
    assert started.status_code == 302
    rollout = Promotion.objects.get(kind=Promotion.Kind.CONFIG)
    assert rollout.version == v1 and rollout.profile_revision == pinned
    # Edited again while it runs: the rollout keeps the revision it started with.
    profile.instance_count = 3
    profile.save()

    rollout = settle(rollout, {"awaiting", "failed"}, timeout=150)
    assert rollout.state == "awaiting", rollout.failure_reason
    staged = rollout.staging_deployment
    assert staged.serving_settings["instance_count"] == 2 and staged.profile_revision == pinned
    assert rollout.stress_runs.get().status == "passed"
    with pytest.raises(ValidationError, match="someone else must approve"):
        promotions.promotion_decide(promotion=rollout, actor=admin_user, approve=True, comment="mine")
    promotions.promotion_decide(promotion=rollout, actor=manager, approve=True, comment="stress is green")
    rollout = settle(rollout, {"succeeded", "failed"}, timeout=150)
    assert rollout.state == "succeeded", rollout.failure_reason

    assert serving(prod) == {"blue": (1, 0), "green": (1, 100)}
    green = prod.deployments.get(name="green", status__in=Deployment.LIVE)
    assert green.serving_settings["instance_count"] == 2 and green.serving_settings["request_timeout_ms"] == 8000
    assert green.profile_revision == pinned
    assert get_backend().deployment_settings(green.backend_ref) == {"instance_count": 2, "request_timeout_ms": 8000}
    applied = ReleaseEvent.objects.get(endpoint=prod, kind=ReleaseEvent.Kind.CONFIG)
    assert applied.promotion == rollout and "revision 2 applied" in applied.summary
    history = client.get(reverse("deployments:endpoint_releases", args=[prod.name])).content.decode()
    assert "Configuration applied" in history

    services.endpoint_rollback(endpoint=prod, actor=admin_user, reason="latency up with two workers")
    assert serving(prod) == {"blue": (1, 100), "green": (1, 0)}
    blue = prod.deployments.get(name="blue", status__in=Deployment.LIVE)
    assert blue.serving_settings["instance_count"] == 1


@pytest.mark.browser
def test_admin_rolls_out_a_profile_change_in_the_browser(serving_v1, live_server, browser_page, admin_user,
                                                         manager):
    from tests.configs.test_admin_browser import _look
    from tests.conftest import sign_in

    prod, staging, stress, v1 = serving_v1
    page, base = browser_page, live_server.url
    sign_in(page, base, admin_user)
    page.goto(f"{base}/configs/profiles/{prod.profile.pk}/edit/")
    page.fill("#id_instance_count", "2")
    page.fill("#id_note", "Two workers for the Monday peak")
    page.click("[data-testid=config-review-button]")
    page.click("[data-testid=config-save]")
    page.wait_for_selector("text=as revision 2")
    page.goto(f"{base}/endpoints/{prod.name}/drift/")
    assert page.is_visible("[data-testid=profile-drift]")
    page.click("[data-testid=rollout-link]")
    page.wait_for_selector("[data-testid=rollout-changes]")
    _look(page, "rollout")
    page.fill("#id_reason", "Monday peak: two workers")
    page.click("[data-testid=start-rollout]")
    page.wait_for_selector("h1:has-text('config rollout')")
    rollout = settle(Promotion.objects.get(kind=Promotion.Kind.CONFIG), {"awaiting", "failed"}, timeout=150)
    assert rollout.state == "awaiting", rollout.failure_reason

    page.click("button:has-text('Sign out')")
    sign_in(page, base, manager)
    page.click("[data-testid=waiting-link]")
    page.fill(f"#comment-{rollout.pk}", "Stress passed with two workers")
    page.click(f"[data-testid=inbox-decision-{rollout.pk}] button:has-text('Approve')")
    page.wait_for_selector("[data-testid=inbox-empty]")
    assert settle(rollout, {"succeeded", "failed"}, timeout=150).state == "succeeded", rollout.failure_reason
    page.goto(f"{base}/endpoints/{prod.name}/releases/")
    assert "Configuration applied" in page.inner_text("main")
    _look(page, "releases-after-rollout")
    page.goto(f"{base}/configs/profiles/{prod.profile.pk}/")
    assert page.is_visible("[data-testid=read-only]")
