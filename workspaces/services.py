"""Writes for the workspace settings: edits by admins, and the result of "Test connection"; and the settings as the
azureml backend reads them (settings.MLOPS_BACKEND_CONFIG names azureml_config)."""
from dataclasses import asdict

from django.db import transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from mlopsportal.backends import get_backend
from mlopsportal.backends.azureml import AzureMLConfig

from .models import AzureMLWorkspace

FIELDS = ["subscription_id", "resource_group", "workspace_name", "aks_compute", "training_cluster", "staging_on",
          "managed_instance_type", "default_instance_type", "training_environment", "inference_environment"]


def azureml_config() -> AzureMLConfig:
    """The saved workspace settings, for the azureml backend (read afresh each time: an admin may change them)."""
    return AzureMLWorkspace.load().config()


def workspace_update(*, form, actor) -> AzureMLWorkspace:
    """Save a valid WorkspaceForm and record what changed."""
    before = model_to_dict(AzureMLWorkspace.load(), fields=FIELDS)
    with transaction.atomic():
        workspace = form.save(commit=False)
        workspace.pk = 1
        workspace.updated_by = actor
        workspace.save()
        after = model_to_dict(workspace, fields=FIELDS)
        changes = {name: [before[name], after[name]] for name in FIELDS if before[name] != after[name]}
        if changes:
            audit_record(actor=actor, action=AuditEvent.Action.UPDATE, target=workspace,
                         summary="changed the Azure ML workspace settings: " + ", ".join(changes), changes=changes)
    return workspace


def workspace_connection_test(*, actor) -> AzureMLWorkspace:
    """Try the saved settings against Azure, step by step, and keep what happened."""
    workspace = AzureMLWorkspace.load()
    results = get_backend("azureml").connection_check()
    ok = all(r.ok for r in results)
    AzureMLWorkspace.objects.filter(pk=workspace.pk).update(checked_at=timezone.now(), check_ok=ok,
                                                            check_results=[asdict(r) for r in results])
    audit_record(actor=actor, action=AuditEvent.Action.UPDATE, target=workspace,
                 summary="tested the Azure ML connection: " + ("it works" if ok else
                                                               next(r.message for r in results if not r.ok)))
    workspace.refresh_from_db()
    return workspace
