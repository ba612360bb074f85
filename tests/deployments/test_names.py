"""A taken name is refused in words, whether it was taken before or by a concurrent request a moment ago."""
import pytest
from django.core.exceptions import ValidationError

from deployments.models import Deployment
from deployments.serving import services

from .conftest import make_version

pytestmark = pytest.mark.django_db


def test_a_taken_deployment_name_is_refused_in_words(engineer, staging, titanic_outputs):
    version = make_version(engineer, titanic_outputs)
    services.deployment_create(endpoint=staging, version=version, name="blue", actor=engineer, start=False)
    with pytest.raises(ValidationError) as refused:
        services.deployment_create(endpoint=staging, version=version, name="blue", actor=engineer, start=False)
    assert refused.value.message_dict == {"name": ["titanic-staging already has a deployment named blue."]}


def test_a_name_taken_by_a_concurrent_request_is_refused_in_the_same_words(monkeypatch, engineer, staging,
                                                                            titanic_outputs):
    version = make_version(engineer, titanic_outputs)
    spec = services._spec

    def the_other_request_wins(deployment):  # runs after the name check, before the insert
        Deployment.objects.create(endpoint=staging, name=deployment.name, model_version=version, created_by=engineer)
        return spec(deployment)

    monkeypatch.setattr(services, "_spec", the_other_request_wins)
    with pytest.raises(ValidationError) as refused:
        services.deployment_create(endpoint=staging, version=version, name="blue", actor=engineer, start=False)
    assert refused.value.message_dict == {"name": ["titanic-staging already has a deployment named blue."]}
    assert Deployment.objects.filter(name="blue").count() == 1  # the other request's, and nothing half-saved


def test_a_name_taken_by_a_concurrent_profile_import_is_refused_in_words(monkeypatch, admin_user):
    from deployments.models import DeploymentProfile

    clean = DeploymentProfile.full_clean

    def the_other_request_wins(self, *args, **kwargs):
        clean(self, *args, **kwargs)
        DeploymentProfile.objects.create(name=self.name)

    monkeypatch.setattr(DeploymentProfile, "full_clean", the_other_request_wins)
    with pytest.raises(ValidationError) as refused:
        services.profile_import(name="aks", text="computeType: ACI\n", actor=admin_user)
    assert refused.value.message_dict == {"name": ["There is already a deployment profile named aks."]}
