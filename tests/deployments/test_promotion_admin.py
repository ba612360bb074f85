"""Django admin cannot delete a promotion: not one in flight (production would be left half-shifted with no owner),
not a finished one (its steps and test runs are the evidence the portal keeps)."""
import pytest
from django.urls import reverse

from deployments.models import DeploymentProfile, Endpoint, Promotion, PromotionStep
from models_registry.models import ModelVersion, RegisteredModel
from tests.conftest import running_promotion

pytestmark = pytest.mark.django_db


@pytest.fixture
def promotion(admin_user):
    profile = DeploymentProfile.objects.create(name="p", instance_count=1)
    prod = Endpoint.objects.create(name="titanic-prod", stage="production", profile=profile, created_by=admin_user)
    model = RegisteredModel.objects.create(name="titanic", created_by=admin_user)
    version = ModelVersion.objects.create(model=model, version=1, artifact_uri="local:registry/titanic/1",
                                          created_by=admin_user)
    promotion = running_promotion(prod, version, admin_user)
    PromotionStep.objects.create(promotion=promotion, position=1, kind="deploy_staging", label="Deploy to staging")
    return promotion


@pytest.mark.parametrize("state", ["running", "succeeded"])
def test_admin_cannot_delete_a_promotion(admin_client_, promotion, state):
    Promotion.objects.filter(pk=promotion.pk).update(state=state)
    url = reverse("admin:deployments_promotion_delete", args=[promotion.pk])
    assert admin_client_.get(url).status_code == 403
    assert admin_client_.post(url, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:deployments_promotion_changelist")
    response = admin_client_.post(changelist, {"action": "delete_selected", "_selected_action": [promotion.pk],
                                               "post": "yes"})
    assert response.status_code in (200, 302)
    assert Promotion.objects.filter(pk=promotion.pk).exists() and promotion.steps.count() == 1
