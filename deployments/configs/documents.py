"""Configurations as YAML documents, to keep in git and review there: a deployment profile as Azure ML v2 online
deployment YAML (what `az ml online-deployment create -f` takes, less what belongs to one deployment), which the
profile import reads back."""
from decimal import Decimal

import yaml

from ..models import DeploymentProfile

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
