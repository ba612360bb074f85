"""Who a configuration reaches: the endpoints, deployments and models that use it, and what a change to it would
change for each, said before it is saved."""
from dataclasses import dataclass, field

from ..models import Deployment, DeploymentProfile, Endpoint, FunctionalTestCase, Promotion, StressProfile
from .kinds import ConfigKind

SETTING_LABELS = {
    "instance_count": "instances", "autoscale_enabled": "autoscale", "min_instances": "min instances",
    "max_instances": "max instances", "target_utilization": "target utilization", "cpu_request": "CPU",
    "memory_request_gb": "memory", "request_timeout_ms": "request timeout",
    "max_concurrent_requests_per_instance": "concurrent requests per instance", "max_queue_wait_ms": "max queue wait",
    "polling_interval_seconds": "polling interval", "instance_type": "instance type", "auth_enabled": "auth",
}


@dataclass
class Use:
    """One thing a configuration reaches, and in words what the change would do to it."""
    kind: str  # "endpoint", "deployment", "model", "promotion"
    name: str
    url: str
    effect: str = ""
    changes: list[str] = field(default_factory=list)  # the settings that would differ from what runs now


def settings_differences(deployed: dict, wanted: dict) -> list[str]:
    """The serving settings (by label) in which a deployment as deployed differs from `wanted`."""
    return [SETTING_LABELS.get(name, name) for name in wanted if deployed.get(name) != wanted[name]]


def _live(endpoint_ids) -> list[Deployment]:
    return list(Deployment.objects.filter(endpoint_id__in=endpoint_ids, status__in=Deployment.LIVE)
                .select_related("endpoint", "model_version__model").order_by("endpoint__name", "name"))


def _profile_uses(profile: DeploymentProfile, candidate: DeploymentProfile | None) -> list[Use]:
    wanted = (candidate or profile).serving_settings()
    endpoints = list(Endpoint.objects.filter(profile=profile).order_by("stage", "name")) if profile.pk else []
    uses = []
    for endpoint in endpoints:
        when = ("the next deployment to it runs with it" if endpoint.stage == Endpoint.Stage.STAGING else
                "production deployments keep what they run until the next promotion to it")
        uses.append(Use("endpoint", f"{endpoint.name} ({endpoint.get_stage_display().lower()})",
                        endpoint.get_absolute_url(), when))
    for deployment in _live([e.pk for e in endpoints]):
        differs = settings_differences(deployment.serving_settings, wanted)
        uses.append(Use("deployment", str(deployment), deployment.endpoint.get_absolute_url(),
                        f"serves {deployment.model_version}" + ("; would run differently in: " + ", ".join(differs)
                                                                 if differs else "; runs as the profile says"),
                        differs))
    return uses


def _model_uses(model, label: str) -> list[Use]:
    uses = [Use("model", model.name, model.get_absolute_url(), f"every new deployment of its versions is judged by "
                                                                f"this {label}")]
    for promotion in (Promotion.objects.filter(version__model=model, state__in=Promotion.ACTIVE)
                      .select_related("version", "production_endpoint")):
        uses.append(Use("promotion", f"#{promotion.pk}: {promotion.version} → {promotion.production_endpoint}",
                        promotion.get_absolute_url(), "in flight: a test that has not run yet uses the saved values"))
    return uses


def _endpoint_uses(endpoint: Endpoint, candidate: Endpoint | None) -> list[Use]:
    uses = [Use("endpoint", endpoint.name, endpoint.get_absolute_url(), "promotions that start from now on follow it")]
    wanted = (candidate or endpoint).profile.serving_settings()
    for deployment in _live([endpoint.pk]):
        differs = settings_differences(deployment.serving_settings, wanted)
        uses.append(Use("deployment", str(deployment), endpoint.get_absolute_url(),
                        f"serves {deployment.model_version}" + ("; its profile would differ in: " + ", ".join(differs)
                                                                 if differs else ""), differs))
    for promotion in endpoint.promotions.filter(state__in=Promotion.ACTIVE).select_related("version"):
        uses.append(Use("promotion", f"#{promotion.pk}: {promotion.version}", promotion.get_absolute_url(),
                        "in flight: keeps the approval rule and traffic steps it started with"))
    return uses


def config_uses(kind: ConfigKind, obj, candidate=None) -> list[Use]:
    """What uses `obj`; with `candidate` (the edited, unsaved values), what the change would do to each."""
    if isinstance(obj, DeploymentProfile):
        return _profile_uses(obj, candidate)
    if isinstance(obj, Endpoint):
        return _endpoint_uses(obj, candidate)
    if isinstance(obj, (StressProfile, FunctionalTestCase)):
        model = (candidate or obj).model
        return _model_uses(model, kind.label.lower())
    return []
