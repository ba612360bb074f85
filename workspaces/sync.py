"""Bring what changed in the Azure ML workspace outside the portal into view, marked as changed outside.

Runs periodically (beat) on a backend that keeps an inventory of its own (azureml; local does not). It reads the
backend's Inventory (endpoints, their deployments and traffic, and model versions, in the portal's words) and
compares it with the portal's rows:
* a model version registered outside the portal gets a row (no training run), marked;
* an endpoint or deployment created outside gets a row, marked; one the portal has but Azure lost is marked gone;
* traffic that differs from the portal's is taken over from Azure (Azure is what clients reach), marked.
Rows the portal is busy with (creating, deleting) are left alone. Each finding is in the audit log, `via` system.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.db.models import Max
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from deployments.models import Deployment, DeploymentProfile, Endpoint, new_endpoint_key
from deployments.serving import services as serving
from mlopsportal.backends import BackendError, get_backend
from mlopsportal.backends.base import BUSY, READY, InventoryDeployment, InventoryEndpoint, InventoryModel
from models_registry.models import ModelVersion, RegisteredModel

from .models import AzureMLWorkspace

log = logging.getLogger(__name__)
Status = Deployment.Status
OUTSIDE = "in Azure ML outside the portal"
# A deployment the portal made healthy moments ago may not be listed yet; give Azure this long before calling it gone.
GONE_AFTER = timedelta(minutes=2)


def _note(findings: list[str], target, summary: str) -> None:
    findings.append(summary)
    audit_record(actor=None, action=AuditEvent.Action.UPDATE, target=target, via="system", summary=summary)


def _sync_models(models: tuple[InventoryModel, ...], findings: list[str]) -> None:
    for found in sorted(models, key=lambda m: m.name):
        name = found.name
        model = RegisteredModel.objects.filter(name=name).first()
        if model is None:
            model = RegisteredModel.objects.create(name=name, description="Found in the Azure ML workspace.")
            _note(findings, model, f"model {name} was created in Azure ML outside the portal")
        known = set(model.versions.values_list("version", flat=True))
        for found_version in sorted(found.versions, key=lambda v: v.number):
            if found_version.number in known:
                continue
            version = ModelVersion.objects.create(
                model=model, version=found_version.number, artifact_uri=found_version.artifact_uri,
                artifact_sha256="", description="Registered in Azure ML outside the portal.",
                changed_outside=f"registered {OUTSIDE}")
            _note(findings, version, f"{version} was registered {OUTSIDE}")
        newest = model.versions.aggregate(n=Max("version"))["n"]
        if newest and (model.latest_version is None or model.latest_version.version != newest):
            model.latest_version = model.versions.get(version=newest)
            model.save(update_fields=["latest_version", "updated_at"])


def _version_for(found: InventoryDeployment) -> ModelVersion | None:
    if not found.model_name or found.model_version is None:
        return None
    return ModelVersion.objects.filter(model__name=found.model_name, version=found.model_version).first()


def _sync_endpoint(backend, item: InventoryEndpoint, findings: list[str]) -> None:
    if item.state != READY:
        return  # being created or updated (a traffic change, say): look again next time
    endpoint = Endpoint.objects.filter(name=item.name).first()
    if endpoint is None:
        profile = DeploymentProfile.objects.order_by("pk").first() or DeploymentProfile.objects.create(
            name="found-in-azure", description="Made by the sync for endpoints created outside the portal.")
        access = backend.endpoint_access(item.name)  # None: the portal's router serves it
        token = access is not None and access.auth_mode != "key"
        endpoint = Endpoint.objects.create(
            name=item.name, stage=Endpoint.Stage(item.stage), profile=profile,
            description="Found in the Azure ML workspace.",
            key="" if token else (access and access.key) or new_endpoint_key(),
            platform_scoring_url=access.scoring_url if access else "", changed_outside=f"created {OUTSIDE}" + (
                f"; it uses {access.auth_mode} auth, so the portal has no key to call it with: switch it to key "
                "auth in Azure ML to test and promote through it" if token else ""))
        _note(findings, endpoint, f"endpoint {endpoint.name} was created {OUTSIDE}")
    elif endpoint.platform_scoring_url:
        access = backend.endpoint_access(endpoint.name)
        if access and access.key and access.key != endpoint.key:  # regenerated in Azure: the old one no longer works
            Endpoint.objects.filter(pk=endpoint.pk).update(key=access.key, platform_scoring_url=access.scoring_url,
                                                           changed_outside=f"key regenerated {OUTSIDE}")
            _note(findings, endpoint, f"the key of {endpoint.name} was regenerated {OUTSIDE}")
    rows = {d.name: d for d in endpoint.deployments.exclude(status=Status.DELETED)}
    in_azure = {d.name: d for d in item.deployments}
    for name, found in sorted(in_azure.items()):
        if name in rows or found.state == BUSY:
            continue  # being created, updated or deleted: look again next time
        version = _version_for(found)
        if version is None:
            findings.append(f"{endpoint.name}/{name} serves {found.artifact_uri or 'a model'} that the portal does "
                            "not know; it is not shown")
            continue
        deployment = serving.deployment_adopt(endpoint=endpoint, name=name, version=version,
                                              healthy=found.state == READY, ref=found.ref,
                                              scoring_url=item.scoring_url, summary=f"created {OUTSIDE}")
        rows[name] = deployment
        findings.append(f"deployment {deployment} was created {OUTSIDE}")
    now = timezone.now()
    for name, row in rows.items():
        if name not in in_azure and row.status in (Status.HEALTHY, Status.UNHEALTHY) and \
                (row.healthy_at or row.created_at) < now - GONE_AFTER:
            if serving.deployment_gone(deployment=row, summary=f"deleted {OUTSIDE}"):
                findings.append(f"deployment {row} was deleted {OUTSIDE}")
    text = serving.endpoint_traffic_record(endpoint=endpoint, traffic=item.traffic, summary=OUTSIDE)
    if text:
        findings.append(f"traffic of {endpoint.name} was set to {text} {OUTSIDE}")


def _sync_gone_endpoints(in_azure: set[str], findings: list[str]) -> None:
    """Endpoints Azure served for the portal that are no longer in the workspace."""
    for endpoint in Endpoint.objects.exclude(platform_scoring_url="").exclude(name__in=in_azure):
        if endpoint.deployments.filter(status=Status.CREATING).exists() or endpoint.changed_outside.startswith("deleted"):
            continue  # being created again by the portal, or already marked
        serving.endpoint_gone(endpoint=endpoint, summary=f"deleted {OUTSIDE}")
        findings.append(f"endpoint {endpoint.name} was deleted {OUTSIDE}")


def azureml_sync() -> list[str]:
    """One pass of the sync. Returns what it found; records when it ran and whether it worked."""
    backend = get_backend()
    findings: list[str] = []
    try:
        known = dict(RegisteredModel.objects.annotate(newest=Max("versions__version")).filter(newest__isnull=False)
                     .values_list("name", "newest"))
        inventory = backend.inventory(known_versions=known)
        if inventory is None:
            return []  # nothing changes outside the portal on this backend
        _sync_models(inventory.models, findings)
        for item in inventory.endpoints:
            _sync_endpoint(backend, item, findings)
        _sync_gone_endpoints({item.name for item in inventory.endpoints}, findings)
    except BackendError as exc:
        log.warning("azure ml sync failed: %s", exc)
        workspace = AzureMLWorkspace.load()
        AzureMLWorkspace.objects.filter(pk=workspace.pk).update(synced_at=timezone.now(), sync_ok=False,
                                                                sync_message=str(exc)[:2000])
        return findings
    workspace = AzureMLWorkspace.load()
    message = ("Found: " + "; ".join(findings) + ".") if findings else "Nothing changed outside the portal."
    AzureMLWorkspace.objects.filter(pk=workspace.pk).update(synced_at=timezone.now(), sync_ok=True,
                                                            sync_message=message[:2000])
    return findings
