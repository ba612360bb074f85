"""Configurations as YAML documents, to keep in git and review there: a deployment profile as Azure ML v2 online
deployment YAML (what `az ml online-deployment create -f` takes, less what belongs to one deployment), which the
profile import reads back; the other kinds as their fields, an endpoint with its whole setup."""
import json
from dataclasses import dataclass, field
from decimal import Decimal

import yaml
from django.db import models

from ..models import DeploymentProfile, Endpoint, FunctionalTestCase, StressProfile
from ..serving.profile_import import ProfileImportError, excerpt, yaml_tree
from ..serving.selectors import serving_deployment
from .kinds import KINDS, ConfigKind

KIND_FIELDS = {slug: kind.fields for slug, kind in KINDS.items()}

SCHEMA = "https://azuremlschemas.azureedge.net/latest/kubernetesOnlineDeployment.schema.json"


def _number(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def profile_document(profile: DeploymentProfile) -> dict:
    scale = ({"type": "target_utilization", "min_instances": profile.min_instances,
              "max_instances": profile.max_instances,
              "target_utilization_percentage": profile.target_utilization,
              "polling_interval": profile.polling_interval_seconds}
             if profile.autoscale_enabled else {"type": "default"})
    document = {"instance_count": profile.instance_count}
    if profile.kubernetes_instance_type:
        document["instance_type"] = profile.kubernetes_instance_type
    document.update({
        "scale_settings": scale,
        "request_settings": {"request_timeout_ms": profile.request_timeout_ms,
                             "max_concurrent_requests_per_instance": profile.max_concurrent_requests_per_instance,
                             "max_queue_wait_ms": profile.max_queue_wait_ms},
        # Memory in GB (10^9 bytes), written in Kubernetes' decimal unit, as the portal sends it.
        "resources": {"requests": {"cpu": f"{_number(profile.cpu_request):g}",
                                   "memory": f"{_number(profile.memory_request_gb):g}G"}},
    })
    return document


def profile_yaml(profile: DeploymentProfile, revision: int) -> str:
    header = (f"# Deployment profile {profile.name}, revision {revision}, from the MLOps portal.\n"
              f"# Azure ML v2 online deployment settings; name, endpoint, model, code and environment are set by each\n"
              f"# promotion. Import it back on the profile's page as a new revision.\n")
    return header + yaml.safe_dump(profile_document(profile), sort_keys=False, allow_unicode=True)


def _plain(value):
    if isinstance(value, Decimal):
        return _number(value)
    if isinstance(value, models.Model):
        return str(getattr(value, "name", value))
    return value


def config_document(kind: ConfigKind, obj) -> dict:
    """The kind's fields as plain values (a related row by its name). An endpoint's also carries its whole setup,
    for reading: its profile as v2 YAML, and the functional tests and stress profiles of the model it serves."""
    if isinstance(obj, DeploymentProfile):
        return profile_document(obj)
    document = {name: _plain(getattr(obj, name)) for name in kind.fields}
    if isinstance(obj, Endpoint):
        document["traffic_steps"] = obj.traffic_step_list()
        serving = serving_deployment(obj)
        setup = {"stage": obj.stage, "auth_mode": "key" if obj.auth_enabled else "none",
                 "deployment_profile": {"name": obj.profile.name, **profile_document(obj.profile)}}
        if serving is not None:
            model = serving.model_version.model
            setup["serving"] = str(serving.model_version)
            setup["functional_tests"] = [
                {name: _plain(getattr(case, name)) for name in KIND_FIELDS["functional-tests"] if name != "model"}
                for case in FunctionalTestCase.objects.filter(model=model)]
            setup["stress_profiles"] = [
                {name: _plain(getattr(p, name)) for name in KIND_FIELDS["stress-profiles"] if name != "model"}
                for p in StressProfile.objects.filter(model=model)]
        document["setup"] = setup
    return document


def config_yaml(kind: ConfigKind, obj, revision: int) -> str:
    if isinstance(obj, DeploymentProfile):
        return profile_yaml(obj, revision)
    header = (f"# {kind.label} {obj}, revision {revision}, from the MLOps portal.\n"
              f"# Import it back on its page as a new revision"
              + (" (the policy fields; `setup` is there to read)" if isinstance(obj, Endpoint) else "") + ".\n")
    return header + yaml.safe_dump(config_document(kind, obj), sort_keys=False, allow_unicode=True)


@dataclass
class ReadDocument:
    source: str
    fields: dict = field(default_factory=dict)
    not_imported: list[str] = field(default_factory=list)
    defaults: list[str] = field(default_factory=list)


JSON_FIELDS = {"payload", "payloads", "expected_value"}


def config_from_yaml(kind: ConfigKind, text: str) -> ReadDocument:
    """A YAML of the kind's fields, as values for its form (which applies every rule); what it cannot take is listed
    with its line. Raises ProfileImportError, with the line, for YAML that is malformed or of the wrong shape."""
    data, lines = yaml_tree(text)
    read = ReadDocument(source=f"{kind.label.lower()} YAML")
    for key, value in data.items():
        where = f"{key} (line {lines.get(str(key), '?')})"
        if key not in kind.fields:
            read.not_imported.append(f"{where}: not a setting of a {kind.label.lower()}")
            continue
        model_field = kind.model._meta.get_field(key)
        if key in JSON_FIELDS:
            try:
                read.fields[key] = json.dumps(value, allow_nan=False)
            except ValueError:
                raise ProfileImportError(f"{where}: NaN and infinities are not JSON values.") from None
        elif model_field.is_relation:
            related = model_field.related_model.objects.filter(name=value).first() if isinstance(value, str) else None
            if related is None:
                raise ProfileImportError(f"{where}: there is no {model_field.related_model._meta.verbose_name} "
                                         f"named {excerpt(value)}.")
            read.fields[key] = related.pk
        elif model_field.get_internal_type() == "BooleanField":
            if not isinstance(value, bool):
                raise ProfileImportError(f"{where} must be true or false, not {excerpt(value)}.")
            read.fields[key] = value
        elif key == "traffic_steps" and isinstance(value, list):
            read.fields[key] = ",".join(str(step) for step in value)
        elif isinstance(value, (dict, list)):
            raise ProfileImportError(f"{where} must be a single value, not {excerpt(value)}.")
        else:
            read.fields[key] = "" if value is None else value
    return read
