"""Cancel replaces deleting a promotion: the pipeline's own clean-up restores production and removes its deployments,
and the promotion stays, with its steps and evidence."""
import pytest
from django.urls import reverse

from audit.models import AuditEvent
from deployments.models import Deployment, DeploymentProfile, Promotion, PromotionStep
from deployments.promotions import services as promotions
from deployments.serving import services
from models_registry.models import ModelVersion, RegisteredModel

pytestmark = pytest.mark.django_db


@pytest.fixture
def halfway(engineer):
    """A promotion stopped at its 10% step: production at 90/10 between blue (v1) and its green (v2)."""
    profile = DeploymentProfile.objects.create(name="p", instance_count=1)
    staging = services.endpoint_create(name="t-staging", stage="staging", profile=profile, actor=engineer)
    prod = services.endpoint_create(name="t-prod", stage="production", profile=profile, actor=engineer)
    model = RegisteredModel.objects.create(name="titanic", created_by=engineer)
    v1, v2 = (ModelVersion.objects.create(model=model, version=n, artifact_uri=f"local:registry/titanic/{n}",
                                          created_by=engineer) for n in (1, 2))
    Deployment.objects.create(endpoint=prod, name="blue", model_version=v1, status="healthy", traffic=90)
    green = Deployment.objects.create(endpoint=prod, name="green", model_version=v2, status="healthy", traffic=10)
    promo = Deployment.objects.create(endpoint=staging, name="promo-1", model_version=v2, status="healthy")
    promotion = Promotion.objects.create(version=v2, staging_endpoint=staging, production_endpoint=prod,
                                         requested_by=engineer, approval_required=False, traffic_steps=[10, 100],
                                         previous_traffic={"blue": 100}, staging_deployment=promo,
                                         production_deployment=green)
    for position, (kind, status) in enumerate([("deploy_production", "succeeded"), ("traffic", "waiting"),
                                               ("traffic", "pending")]):
        PromotionStep.objects.create(promotion=promotion, position=position, kind=kind, label=kind, status=status)
    return promotion


def live(endpoint):
    return dict(endpoint.deployments.filter(status__in=Deployment.LIVE).values_list("name", "traffic"))


def test_cancel_restores_production_and_keeps_the_evidence(engineer_client, engineer, halfway):
    url = reverse("deployments:promotion_cancel", args=[halfway.pk])
    page = engineer_client.get(halfway.get_absolute_url()).content.decode()
    assert 'data-testid="cancel-form"' in page
    response = engineer_client.post(url, {"reason": "  "}, follow=True)
    assert "Say why you cancel" in response.content.decode()
    halfway.refresh_from_db()
    assert halfway.state == "running"  # refused: nothing changed

    response = engineer_client.post(url, {"reason": "wrong features in v2"}, follow=True)
    assert "Canceled promotion" in response.content.decode()
    halfway.refresh_from_db()
    assert halfway.state == "canceled" and halfway.failure_reason.endswith("wrong features in v2")
    assert live(halfway.production_endpoint) == {"blue": 100}  # green removed, blue serves all again
    assert Deployment.objects.get(name="promo-1").status in ("deleting", "deleted")
    assert halfway.steps.count() == 3 and set(halfway.steps.values_list("status", flat=True)) == {"succeeded",
                                                                                                  "canceled"}
    assert AuditEvent.objects.filter(summary__startswith=f"canceled {halfway}", actor=engineer).exists()
    response = engineer_client.post(url, {"reason": "again"}, follow=True)
    assert "nothing to cancel" in response.content.decode()


def test_a_step_that_returns_after_the_cancel_records_nothing_and_cleans_up(monkeypatch, engineer, halfway):
    """A worker was running the traffic step when the promotion was canceled: when the step returns, it finds the
    promotion no longer running, records nothing and cleans up again."""
    def cancel_while_running(promotion, step):
        promotions.promotion_cancel(promotion=Promotion.objects.get(pk=promotion.pk), actor=engineer,
                                    reason="canceled mid-step")
        Deployment.objects.filter(name="green").update(traffic=50)  # what the step did meanwhile
        Deployment.objects.filter(name="blue").update(traffic=50)
        return promotions.done("shifted")

    monkeypatch.setitem(promotions.HANDLERS, "traffic", cancel_while_running)
    monkeypatch.setattr(promotions, "enqueue", lambda *args, **kwargs: None)
    assert promotions.promotion_advance(promotion_id=halfway.pk) is None
    halfway.refresh_from_db()
    assert halfway.state == "canceled"
    assert halfway.steps.get(position=1).status == "canceled"  # the step's "done" was not recorded
    assert live(halfway.production_endpoint)["blue"] == 100
