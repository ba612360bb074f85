"""Each user sees times in their own zone, labelled with it; the default comes from settings."""
import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import UserSettings
from audit.models import AuditEvent
from audit.services import audit_record
from deployments.models import DeploymentProfile
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_a_user_chooses_their_time_zone_and_every_page_follows(engineer_client, manager_client, manager, admin_user):
    profile = DeploymentProfile.objects.create(name="small")
    event = audit_record(actor=admin_user, action=AuditEvent.Action.UPDATE, target=profile, summary="edited")
    AuditEvent.objects.filter(pk=event.pk).update(at="2026-07-01T12:00:00Z")  # summer: Paris is UTC+2
    url = reverse("audit:audit_log")
    assert "2026-07-01 12:00:00" in manager_client.get(url).content.decode()

    response = manager_client.post(reverse("user_settings"), {"time_zone": "Europe/Paris"})
    assert response.status_code == 302 and UserSettings.objects.get(user=manager).time_zone == "Europe/Paris"
    page = manager_client.get(url).content.decode()
    assert "2026-07-01 14:00:00" in page and "Times are Europe/Paris" in page
    # Someone else still sees the default.
    assert "(UTC)" in engineer_client.get(reverse("user_settings")).content.decode()
    assert "(Europe/Paris)" in manager_client.get(reverse("user_settings")).content.decode()

    # Kept across sign-ins.
    fresh = Client()
    fresh.post(reverse("login"), {"username": manager.username, "password": PASSWORD})
    assert "2026-07-01 14:00:00" in fresh.get(url).content.decode()


def test_a_zone_that_does_not_exist_is_refused(engineer_client, engineer):
    response = engineer_client.post(reverse("user_settings"), {"time_zone": "Mars/Olympus_Mons"})
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not UserSettings.objects.filter(user=engineer).exists()
