"""Roles: the groups and their permissions, and a change of role taking effect on the very next request."""
import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from accounts import roles

pytestmark = pytest.mark.django_db


def test_groups_carry_the_documented_permissions():
    engineer = {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name=roles.ENGINEER).permissions.all()}
    manager = {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name=roles.MANAGER).permissions.all()}
    admin = {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name=roles.ADMIN).permissions.all()}
    assert "models_registry.add_trainingrun" in engineer and "models_registry.add_modelversion" in engineer
    assert "deployments.add_promotion" in engineer and "deployments.approve_promotion" not in engineer
    assert {code for code in manager if not code.split(".")[1].startswith("view_")} == {
        "deployments.approve_promotion", "audit.read_audit_log"}
    assert "audit.read_audit_log" in admin and "audit.read_audit_log" not in engineer
    assert "models_registry.view_registeredmodel" in manager
    assert "auth.change_user" in admin and "models_registry.delete_registeredmodel" in admin
    assert not {"audit.change_auditevent", "audit.delete_auditevent", "audit.add_auditevent"} & (engineer | admin)


def test_revoked_role_takes_effect_on_next_request(engineer_client, engineer):
    url = reverse("models_registry:run_launch")
    assert engineer_client.get(url).status_code == 200
    engineer.groups.set([Group.objects.get(name=roles.MANAGER)])
    assert engineer_client.get(url).status_code == 403
    engineer.groups.clear()
    assert engineer_client.get(reverse("models_registry:model_list")).status_code == 403


def test_granted_role_takes_effect_on_next_request(outsider_client, outsider):
    url = reverse("models_registry:model_list")
    assert outsider_client.get(url).status_code == 403
    outsider.groups.add(Group.objects.get(name=roles.MANAGER))
    assert outsider_client.get(url).status_code == 200


def test_deactivated_user_loses_access(engineer_client, engineer):
    engineer.is_active = False
    engineer.save()
    response = engineer_client.get(reverse("models_registry:model_list"))
    assert response.status_code == 302  # signed out: back to the login page


def test_header_shows_role(engineer_client):
    body = engineer_client.get(reverse("models_registry:model_list")).content.decode()
    assert "eve-engineer · ML engineer" in body


def test_demo_setup_creates_one_user_per_role(capsys):
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("demo_setup", password="demo-pass-xyz")
    out = capsys.readouterr().out
    users = {u.username: u for u in get_user_model().objects.all()}
    assert {"engineer", "manager", "admin"} <= set(users)
    assert users["engineer"].groups.get().name == roles.ENGINEER
    assert users["manager"].groups.get().name == roles.MANAGER
    assert users["admin"].is_staff and users["admin"].groups.get().name == roles.ADMIN
    assert users["manager"].check_password("demo-pass-xyz") and "demo-pass-xyz" in out
    assert "Registered model 'titanic'" in out
    from deployments.models import Endpoint

    prod = Endpoint.objects.get(name="titanic-prod")
    assert prod.stage == "production" and prod.profile.min_instances == 3 and prod.profile.max_instances == 6
    assert Endpoint.objects.get(name="titanic-staging").stage == "staging"
    call_command("demo_setup", password="demo-pass-xyz")  # a second run changes nothing
    assert Endpoint.objects.count() == 2


def test_demo_setup_again_keeps_what_people_changed(capsys):
    """portal.py run calls demo_setup at every start: a changed password, a removed user and the signed-in
    sessions must survive it, and the users it made are in the audit log."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from audit.models import AuditEvent

    User = get_user_model()
    call_command("demo_setup", password="first-pass")
    assert AuditEvent.objects.filter(summary__startswith="created demo user").count() == 3
    engineer = User.objects.get(username="engineer")
    engineer.set_password("my-own-pass")
    engineer.save()
    session_hash = engineer.get_session_auth_hash()
    User.objects.get(username="manager").delete()
    capsys.readouterr()

    call_command("demo_setup", password="first-pass")
    out = capsys.readouterr().out
    engineer.refresh_from_db()
    assert engineer.check_password("my-own-pass") and engineer.get_session_auth_hash() == session_hash
    assert not User.objects.filter(username="manager").exists()
    assert "first-pass" not in out and "Nobody's password or role was changed" in out
    assert AuditEvent.objects.filter(summary__startswith="created demo user").count() == 3


def test_demo_setup_makes_no_demo_users_beside_real_ones(capsys, django_user_model):
    from django.core.management import call_command

    django_user_model.objects.create_user("alice", password="x" * 12)
    call_command("demo_setup", password="demo-pass-xyz")
    assert list(django_user_model.objects.values_list("username", flat=True)) == ["alice"]
