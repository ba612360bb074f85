"""The audit log: written for every change, shown on the object's page, never editable."""
import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from audit.models import AuditEvent
from models_registry.models import RegisteredModel

from .models_registry.factories import make_model

pytestmark = pytest.mark.django_db


def test_events_are_append_only(engineer):
    from audit.services import audit_record

    event = audit_record(actor=engineer, action="update", target=make_model(engineer), summary="x")
    event.summary = "rewritten"
    with pytest.raises(ValueError, match="append-only"):
        event.save()


def test_admin_edits_are_mirrored_into_audit_log(admin_client_, admin_user, engineer):
    model = make_model(engineer)
    url = reverse("admin:models_registry_registeredmodel_change", args=[model.pk])
    response = admin_client_.post(url, {"name": model.name, "description": "edited in admin",
                                        "key_metric": "score", "key_metric_goal": "max"})
    assert response.status_code == 302
    event = AuditEvent.objects.get(via="admin")
    assert event.actor == admin_user and event.action == "update" and event.target_id == str(model.pk)
    admin_client_.post(reverse("admin:models_registry_registeredmodel_delete", args=[model.pk]), {"post": "yes"})
    assert not RegisteredModel.objects.exists()
    assert AuditEvent.objects.filter(via="admin", action="delete", target_repr=model.name).exists()


def test_nobody_can_edit_audit_events_in_admin(admin_client_, engineer):
    from audit.services import audit_record

    event = audit_record(actor=engineer, action="update", target=make_model(engineer))
    assert admin_client_.get(reverse("admin:audit_auditevent_changelist")).status_code == 200
    response = admin_client_.post(reverse("admin:audit_auditevent_change", args=[event.pk]), {"summary": "x"})
    assert response.status_code == 403
    assert admin_client_.post(reverse("admin:audit_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).summary == ""


def test_non_staff_cannot_use_admin(engineer_client, manager_client):
    for client in (engineer_client, manager_client):
        response = client.get(reverse("admin:index"))
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_admin_deleting_latest_version_moves_latest_back(admin_client_, engineer):
    model = make_model(engineer, versions=2)
    latest = model.latest_version
    response = admin_client_.post(reverse("admin:models_registry_modelversion_delete", args=[latest.pk]), {"post": "yes"})
    assert response.status_code == 302
    model.refresh_from_db()
    assert model.latest_version.version == 1
    assert AuditEvent.objects.filter(via="admin", action="delete", target_id=str(latest.pk)).exists()


def test_viewing_a_key_reads_in_plain_words_old_rows_too(engineer_client, engineer):
    from deployments.models import DeploymentProfile
    from deployments.serving import services

    endpoint = services.endpoint_create(name="words-prod", stage="production",
                                        profile=DeploymentProfile.objects.create(name="words"), actor=engineer)
    old = AuditEvent.objects.create(actor=engineer, actor_name=engineer.username, action="reveal",
                                    target_type=ContentType.objects.get_for_model(endpoint),
                                    target_id=str(endpoint.pk), target_repr=endpoint.name, summary="revealed the key")
    engineer_client.post(reverse("deployments:endpoint_key", args=[endpoint.name]))
    new = AuditEvent.objects.filter(action="reveal").exclude(pk=old.pk).get()
    assert new.summary == "viewed the key of words-prod"
    assert str(old).endswith("eve-engineer viewed the key of words-prod")
    page = engineer_client.get(endpoint.get_absolute_url()).content.decode()
    assert page.count("viewed the key of") >= 2 and "revealed the key of" not in page
