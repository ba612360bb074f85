"""Drift: how each live deployment of an endpoint runs (as the platform reports it) against the settings it was
deployed with, the profile revision those came from, and the profile as it is now."""
from dataclasses import dataclass, field

from mlopsportal.backends import BackendError, get_backend
from mlopsportal.lib.display import shown

from ..models import Deployment, DeploymentProfile, Endpoint

LABELS = {
    "instance_count": "Instances", "autoscale_enabled": "Autoscale", "min_instances": "Min instances",
    "max_instances": "Max instances", "target_utilization": "Target utilization (%)",
    "polling_interval_seconds": "Polling interval (s)", "instance_type": "Instance type", "cpu_request": "CPU",
    "memory_request_gb": "Memory (GB)", "request_timeout_ms": "Request timeout (ms)",
    "max_concurrent_requests_per_instance": "Concurrent requests per instance",
    "max_queue_wait_ms": "Max queue wait (ms)", "auth_enabled": "Auth",
}


@dataclass
class SettingRow:
    key: str
    label: str
    reported: object  # None: the platform does not report it
    deployed: object
    made_from: object
    now: object

    @property
    def shown(self) -> dict[str, str]:
        """Each column's value as the page shows it."""
        return {column: shown(getattr(self, column)) for column in ("reported", "deployed", "made_from", "now")}

    @property
    def platform_differs(self) -> bool:
        """Changed on the platform since it was deployed (outside the portal)."""
        return self.reported is not None and _same(self.reported) != _same(self.deployed)

    @property
    def profile_differs(self) -> bool:
        """The profile has changed since: the next deployment would run differently."""
        return _same(self.deployed) != _same(self.now)


def _same(value):
    return round(float(value), 6) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


@dataclass
class DeploymentDrift:
    deployment: Deployment
    made_from: int | None  # revision number
    now: int
    rows: list[SettingRow] = field(default_factory=list)
    reported: bool = False  # whether the platform said how it runs
    platform_error: str = ""

    @property
    def platform_drift(self) -> list[SettingRow]:
        return [row for row in self.rows if row.platform_differs]

    @property
    def profile_drift(self) -> list[SettingRow]:
        return [row for row in self.rows if row.profile_differs]


def endpoint_drift(endpoint: Endpoint, *, ask_platform: bool = True) -> list[DeploymentDrift]:
    """One entry per live deployment. With `ask_platform`, one call per deployment to the backend (a platform
    that does not answer is said, not raised)."""
    profile = endpoint.profile
    now_settings = profile.serving_settings()
    now_number = profile.history.count()
    backend = get_backend() if ask_platform else None
    drifts = []
    for deployment in (endpoint.deployments.filter(status__in=Deployment.LIVE)
                       .select_related("model_version__model").order_by("name")):
        made_from = deployment.profile_revision_row()
        made_from_settings = made_from.instance.serving_settings() if made_from is not None else {}
        reported, error = None, ""
        if backend is not None and deployment.backend_ref:
            try:
                reported = backend.deployment_settings(deployment.backend_ref)
            except BackendError as exc:
                error = str(exc)
        deployed = deployment.serving_settings
        drift = DeploymentDrift(deployment, DeploymentProfile.revision_number(made_from.history_id, made_from.id) if made_from else None,
                                now_number, reported=reported is not None, platform_error=error)
        for key, label in LABELS.items():
            if key not in deployed and key not in now_settings:
                continue
            drift.rows.append(SettingRow(key, label, (reported or {}).get(key), deployed.get(key),
                                         made_from_settings.get(key), now_settings.get(key)))
        drifts.append(drift)
    return drifts
