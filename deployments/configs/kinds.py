"""The kinds of configuration the portal keeps as revisions, and what of each one an admin edits."""
from dataclasses import dataclass

from django.db import models

from ..models import DeploymentProfile, Endpoint, FunctionalTestCase, StressProfile


@dataclass(frozen=True)
class ConfigKind:
    slug: str  # in URLs
    model: type[models.Model]
    label: str
    plural: str
    fields: tuple[str, ...]  # what an admin edits, what the revisions compare and what a revert brings back
    about: str
    creatable: bool = True  # endpoints are created where they are served from (their first deployment's page)

    @property
    def codename(self) -> str:
        return self.model._meta.model_name

    def perm(self, action: str) -> str:
        return f"{self.model._meta.app_label}.{action}_{self.codename}"

    def field_label(self, name: str) -> str:
        return str(self.model._meta.get_field(name).verbose_name)

    def queryset(self):
        related = [f for f in ("model", "profile") if f in self.fields]
        return self.model.objects.select_related(*related)


PROFILE_FIELDS = (
    "name", "description", "auth_enabled", "instance_count", "autoscale_enabled", "min_instances", "max_instances",
    "target_utilization", "polling_interval_seconds", "kubernetes_instance_type", "cpu_request", "memory_request_gb",
    "request_timeout_ms", "max_concurrent_requests_per_instance", "max_queue_wait_ms")

KINDS = {kind.slug: kind for kind in (
    ConfigKind("profiles", DeploymentProfile, "Deployment profile", "Deployment profiles", PROFILE_FIELDS,
               "How a deployment runs: instances, autoscale, CPU and memory, request settings."),
    ConfigKind("endpoints", Endpoint, "Endpoint policy", "Endpoint policies",
               ("description", "profile", "auth_enabled", "approval_required", "traffic_steps"),
               "Which profile an endpoint's deployments run with, whether promotions need approval, and the traffic "
               "steps of blue/green.", creatable=False),
    ConfigKind("functional-tests", FunctionalTestCase, "Functional test case", "Functional test cases",
               ("model", "name", "payload", "expected_status", "expect_field", "expected_value", "tolerance",
                "enabled"),
               "A payload and what the model must answer, run against every new deployment of the model."),
    ConfigKind("stress-profiles", StressProfile, "Stress profile", "Stress profiles",
               ("model", "name", "concurrency", "duration_seconds", "request_count", "payloads", "p95_ms_max",
                "error_rate_max", "min_rps", "shards"),
               "How hard a staging deployment is pushed, and the thresholds it must meet to pass."),
)}
