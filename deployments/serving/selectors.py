"""Reads for the serving pages."""
from django.db.models import Prefetch, QuerySet

from ..models import Deployment, Endpoint


def endpoint_list() -> QuerySet[Endpoint]:
    serving = Deployment.objects.filter(status__in=Deployment.LIVE).select_related("model_version__model")
    return Endpoint.objects.select_related("profile").prefetch_related(
        Prefetch("deployments", queryset=serving, to_attr="live_deployments"))


def endpoint_deployments_busy(deployments) -> bool:
    """Whether any of these deployments is still being created or deleted (its row is about to change)."""
    return any(d.status in (Deployment.Status.CREATING, Deployment.Status.DELETING) for d in deployments)


def endpoint_deployments(*, endpoint: Endpoint) -> QuerySet[Deployment]:
    return (endpoint.deployments.select_related("model_version__model", "created_by")
            .order_by("-created_at"))


def serving_deployment(endpoint: Endpoint) -> Deployment | None:
    """The live deployment taking the most of the endpoint's traffic, or None when nothing takes any."""
    live = endpoint.deployments.filter(status__in=Deployment.LIVE, traffic__gt=0).select_related("model_version__model")
    return max(live, key=lambda d: d.traffic, default=None)
