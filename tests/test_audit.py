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


# --- edits say what changed, field by field; configurations keep revisions --------------------------------------------
PROFILE_FORM = {"name": "small", "description": "", "auth_enabled": "on", "instance_count": "1",
                "min_instances": "1", "max_instances": "1", "target_utilization": "70", "cpu_request": "0.50",
                "memory_request_gb": "1.00", "request_timeout_ms": "60000", "max_concurrent_requests_per_instance": "1",
                "max_queue_wait_ms": "500", "polling_interval_seconds": "1", "kubernetes_instance_type": ""}


def _profile_edit(client, profile, **changed):
    url = reverse("admin:deployments_deploymentprofile_change", args=[profile.pk])
    response = client.post(url, {**PROFILE_FORM, **changed})
    assert response.status_code == 302, response.content.decode()[:2000]


def test_admin_edit_records_each_field_old_and_new(admin_client_, admin_user):
    from deployments.models import DeploymentProfile

    profile = DeploymentProfile.objects.create(name="small")
    _profile_edit(admin_client_, profile, instance_count="3", description="three replicas",
                  revision_note="launch week traffic")
    event = AuditEvent.objects.get(via="admin", action="update", target_id=str(profile.pk))
    assert event.actor == admin_user and event.summary.endswith("Note: launch week traffic")
    revision = profile.history.latest()
    assert (revision.history_user, revision.history_change_reason) == (admin_user, "launch week traffic")
    assert sorted(event.field_changes, key=lambda row: row["field"]) == [
        {"field": "description", "old": "", "new": "three replicas"},
        {"field": "instance_count", "old": 1, "new": 3}]
    page = admin_client_.get(reverse("admin:audit_auditevent_change", args=[event.pk])).content.decode()
    assert "instance count: 1 → 3" in page
    # Saved again with nothing changed: an event, and no field in it.
    _profile_edit(admin_client_, profile, instance_count="3", description="three replicas")
    assert AuditEvent.objects.filter(via="admin", action="update").order_by("-id").first().field_changes == []


def test_admin_edit_of_an_endpoint_shows_on_its_page_and_never_holds_the_key(admin_client_, admin_user, engineer):
    import json

    from deployments.models import DeploymentProfile, Endpoint
    from deployments.serving import services

    profile = DeploymentProfile.objects.create(name="small")
    other = DeploymentProfile.objects.create(name="large", instance_count=4, max_instances=4)
    endpoint = services.endpoint_create(name="edit-prod", stage="production", profile=profile, actor=engineer)
    key = endpoint.key
    response = admin_client_.post(reverse("admin:deployments_endpoint_change", args=[endpoint.pk]), {
        "name": "edit-prod", "description": "policy reviewed", "auth_enabled": "on", "profile": other.pk,
        "traffic_steps": "25,100"})  # approval_required left out: unchecked
    assert response.status_code == 302, response.content.decode()[:2000]
    endpoint.refresh_from_db()
    assert endpoint.key == key and endpoint.traffic_steps == "25,100"
    event = AuditEvent.objects.get(via="admin", target_id=str(endpoint.pk))
    assert {row["field"]: (row["old"], row["new"]) for row in event.field_changes} == {
        "description": ("", "policy reviewed"), "profile": ("small", "large"), "approval_required": (True, False),
        "traffic_steps": ("10,50,100", "25,100")}
    page = admin_client_.get(endpoint.get_absolute_url()).content.decode()
    assert "traffic steps:</span> 10,50,100 → 25,100" in page and "profile:</span> small → large" in page
    # The key is in no event and in no revision; the revisions are there, with who made them.
    assert all(key not in json.dumps([e.summary, e.changes, e.target_repr]) for e in AuditEvent.objects.all())
    revisions = list(endpoint.history.order_by("history_id"))
    assert [r.history_type for r in revisions] == ["+", "~"] and revisions[-1].history_user == admin_user
    assert "key" not in {f.name for f in Endpoint.history.model._meta.get_fields()}
    for url in (reverse("admin:deployments_endpoint_history", args=[endpoint.pk]),
                reverse("admin:deployments_endpoint_simple_history", args=[endpoint.pk, revisions[0].history_id])):
        response = admin_client_.get(url)
        assert response.status_code == 200 and key not in response.content.decode()
    # Added in admin: the event lists the new row's values, its key masked.
    response = admin_client_.post(reverse("admin:deployments_endpoint_add"), {
        "name": "added-staging", "stage": "staging", "auth_enabled": "on", "profile": profile.pk,
        "traffic_steps": "10,50,100"})
    assert response.status_code == 302, response.content.decode()[:2000]
    added = Endpoint.objects.get(name="added-staging")
    event = AuditEvent.objects.get(via="admin", action="create", target_id=str(added.pk))
    values = {row["field"]: row["new"] for row in event.field_changes}
    assert values["key"] == "••••" and values["stage"] == "staging" and values["profile"] == "small"
    assert added.key not in json.dumps(event.changes)
    assert all(key not in json.dumps(row, default=str) and added.key not in json.dumps(row, default=str)
               for row in Endpoint.history.values())


def test_a_revision_reverted_in_admin_is_audited_with_its_diff(admin_client_, admin_user):
    from deployments.models import DeploymentProfile

    profile = DeploymentProfile.objects.create(name="small")
    _profile_edit(admin_client_, profile, instance_count="3")
    first = profile.history.earliest("history_date")
    assert first.instance_count == 1 and profile.history.count() == 2
    diff = profile.history.latest("history_date").diff_against(first)
    assert [(c.field, c.old, c.new) for c in diff.changes] == [("instance_count", 1, 3)]
    url = reverse("admin:deployments_deploymentprofile_simple_history", args=[profile.pk, first.history_id])
    assert admin_client_.get(url).status_code == 200
    response = admin_client_.post(url, {**PROFILE_FORM, "instance_count": "1", "revision_note": "3 was too many"})
    assert response.status_code == 302, response.content.decode()[:2000]
    profile.refresh_from_db()
    assert profile.instance_count == 1 and profile.history.count() == 3
    assert profile.history.latest().history_change_reason == "3 was too many"
    event = AuditEvent.objects.filter(via="admin", target_id=str(profile.pk)).order_by("-id").first()
    assert event.field_changes == [{"field": "instance_count", "old": 3, "new": 1}]


def test_bulk_delete_in_admin_records_every_row(admin_client_, engineer):
    from deployments.models import FunctionalTestCase

    model = make_model(engineer)
    cases = [FunctionalTestCase.objects.create(model=model, name=f"case {i}", payload={}) for i in range(3)]
    response = admin_client_.post(reverse("admin:deployments_functionaltestcase_changelist"), {
        "action": "delete_selected", "_selected_action": [c.pk for c in cases], "post": "yes"})
    assert response.status_code == 302
    assert not FunctionalTestCase.objects.exists()
    assert sorted(AuditEvent.objects.filter(via="admin", action="delete").values_list("target_id", flat=True)) == \
        sorted(str(c.pk) for c in cases)


def test_secret_fields_are_masked_and_long_values_cut():
    from audit.services import MASK, VALUE_MAX_CHARS, field_diff

    rows = field_diff({"key": "k1", "client_secret": "s1", "key_metric": "auc", "password": "", "notes": "a"},
                      {"key": "k2", "client_secret": "s2", "key_metric": "f1", "password": "p", "notes": "b" * 999})
    assert {row["field"]: (row["old"], row["new"]) for row in rows if row["field"] != "notes"} == {
        "key": (MASK, MASK), "client_secret": (MASK, MASK), "key_metric": ("auc", "f1"), "password": ("", MASK)}
    notes = next(row for row in rows if row["field"] == "notes")
    assert len(notes["new"]) == VALUE_MAX_CHARS and notes["new"].endswith("…")


# --- every state change is an event ---------------------------------------------------------------------------------
def _status_events(target):
    return [(e.action, e.actor_name, e.field_changes) for e in
            AuditEvent.objects.filter(target_type__model=target._meta.model_name, target_id=str(target.pk))
            .order_by("id")]


def test_training_run_status_changes_are_audited_once_each(engineer):
    from datetime import timedelta

    from django.utils import timezone

    from models_registry import services
    from models_registry.models import TrainingRun

    from .models_registry.factories import make_run

    queued = make_run(engineer, status=TrainingRun.Status.QUEUED, started_at=None)
    services._not_started(queued.pk, "the task queue is unreachable")
    services._not_started(queued.pk, "the task queue is unreachable")  # failed already: nothing more
    assert _status_events(queued) == [("update", "system", [{"field": "status", "old": "queued", "new": "failed"}])]

    running = make_run(engineer, status=TrainingRun.Status.RUNNING)  # no job: nothing to cancel on the platform
    assert services.training_run_cancel(run=running, actor=engineer)
    assert not services.training_run_cancel(run=running, actor=engineer)
    assert _status_events(running) == [
        ("cancel", engineer.username, [{"field": "status", "old": "running", "new": "canceled"}])]

    stale = make_run(engineer, status=TrainingRun.Status.RUNNING, last_polled_at=timezone.now() - timedelta(hours=1))
    assert services.training_run_poll(run_id=stale.pk) is False  # never submitted: it fails, saying why
    [(action, actor, changes)] = _status_events(stale)
    assert (action, actor, changes) == ("update", "system", [{"field": "status", "old": "running", "new": "failed"}])
    assert AuditEvent.objects.get(target_id=str(stale.pk), target_type__model="trainingrun").summary == \
        "the run failed: The worker stopped before the job was submitted; launch it again."


def test_deployment_status_changes_made_by_workers_are_audited(engineer):
    from deployments.models import Deployment, DeploymentProfile
    from deployments.serving import services

    from .models_registry.factories import make_model

    model = make_model(engineer, versions=1)
    endpoint = services.endpoint_create(name="moves-staging", stage="staging",
                                        profile=DeploymentProfile.objects.create(name="moves"), actor=engineer)
    deployment = Deployment.objects.create(endpoint=endpoint, name="blue", model_version=model.versions.get())
    services._not_started(deployment.pk, "the task queue is unreachable")
    services._not_started(deployment.pk, "the task queue is unreachable")
    deployment.refresh_from_db()
    assert deployment.status == "failed" and deployment.error.startswith("Not started")
    assert _status_events(deployment) == [
        ("update", "system", [{"field": "status", "old": "creating", "new": "failed"}])]
    # A refused move (not in the status it must come from) writes nothing.
    assert not services._status_write(deployment.pk, was="deleting", to="deleted", summary="is deleted")
    assert len(_status_events(deployment)) == 1


def test_a_promotion_page_shows_the_events_of_the_deployments_it_made(engineer_client, engineer):
    from audit.services import audit_record, status_change
    from deployments.models import Deployment, DeploymentProfile, Promotion
    from deployments.serving import services

    version = make_model(engineer, versions=1).versions.get()
    profile = DeploymentProfile.objects.create(name="pages")
    staging = services.endpoint_create(name="page-staging", stage="staging", profile=profile, actor=engineer)
    prod = services.endpoint_create(name="page-prod", stage="production", profile=profile, actor=engineer)
    made = Deployment.objects.create(endpoint=staging, name="promo-1", model_version=version, status="healthy")
    other = Deployment.objects.create(endpoint=staging, name="other", model_version=version, status="healthy")
    promotion = Promotion.objects.create(version=version, staging_endpoint=staging, production_endpoint=prod,
                                         requested_by=engineer, approval_required=True, traffic_steps=[100],
                                         state="failed", staging_deployment=made)
    audit_record(actor=None, action="update", target=made, summary="page-staging/promo-1 is healthy",
                 changes=status_change("status", "creating", "healthy"))
    audit_record(actor=None, action="update", target=other, summary="page-staging/other is healthy")
    page = engineer_client.get(promotion.get_absolute_url()).content.decode()
    assert "page-staging/promo-1 is healthy" in page and "status:</span> creating → healthy" in page
    assert "page-staging/other" not in page


@pytest.mark.parametrize("admin_url", ["deployments_deploymentprofile", "deployments_endpoint",
                                       "deployments_functionaltestcase", "deployments_stressprofile",
                                       "workspaces_azuremlworkspace"])
def test_every_configuration_admin_asks_for_a_note_and_keeps_revisions(admin_client_, admin_url):
    page = admin_client_.get(reverse(f"admin:{admin_url}_add"))
    assert page.status_code == 200 and 'name="revision_note"' in page.content.decode()
    assert admin_client_.get(reverse(f"admin:{admin_url}_changelist")).status_code == 200
    from django.apps import apps
    from django.contrib import admin
    from simple_history.admin import SimpleHistoryAdmin

    model = apps.get_model(*admin_url.split("_", 1))
    assert isinstance(admin.site._registry[model], SimpleHistoryAdmin) and hasattr(model, "history")
