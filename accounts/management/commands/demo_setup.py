"""Creates one demo user per role, the Titanic model and its staging and production endpoints, for trying the portal."""
import json
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from accounts import roles
from deployments.models import DeploymentProfile, Endpoint, FunctionalTestCase, StressProfile
from deployments.serving import services as serving
from mlopsportal import examples
from models_registry import services

DEMO_USERS = (
    ("engineer", roles.ENGINEER, False),
    ("manager", roles.MANAGER, False),
    ("admin", roles.ADMIN, True),
)


class Command(BaseCommand):
    help = "Create demo users (one per role) and register the worked Titanic example as a model. Demo use only."

    def add_arguments(self, parser):
        parser.add_argument("--password", help="Password for all demo users (default: a random one, printed).")

    def handle(self, *args, password=None, **options):
        User = get_user_model()
        password = password or secrets.token_urlsafe(9)
        roles.ensure_role_groups()
        lines = []
        for username, role, staff in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
            user.is_staff = staff
            user.is_superuser = False
            user.set_password(password)
            user.save()
            user.groups.set([Group.objects.get(name=role)])
            lines.append(f"  {role:<12} {username:<10} {password}")

        example = examples.get_example("titanic")
        admin = User.objects.get(username="admin")
        model, created = services.registered_model_ensure(
            name=example.model_name,
            description=example.description,
            key_metric=example.key_metric,
            actor=admin,
        )
        self.stdout.write(("Registered" if created else "Found") + f" model '{model.name}' (key metric {model.key_metric}).")
        self._endpoints(admin)
        self._checks(model, example)
        self.stdout.write("Demo users (for trying the portal only; change or remove them before real use):")
        for line in lines:
            self.stdout.write(line)

    def _endpoints(self, admin) -> None:
        """A staging and a production endpoint for the Titanic model, with the seed's AKS settings for production."""
        staging_profile, _ = DeploymentProfile.objects.get_or_create(name="staging-small", defaults=dict(
            description="One instance, for tests before production.", instance_count=1, cpu_request=0.5,
            memory_request_gb=1, request_timeout_ms=60_000, max_concurrent_requests_per_instance=1,
            auth_enabled=True))
        production_profile, _ = DeploymentProfile.objects.get_or_create(name="titanic-aks", defaults=dict(
            description="The seed's aksDeploymentConfig.yml.", instance_count=3, autoscale_enabled=True,
            min_instances=3, max_instances=6, target_utilization=50, cpu_request=0.5, memory_request_gb=1,
            request_timeout_ms=60_000, max_concurrent_requests_per_instance=2, auth_enabled=True))
        for name, stage, profile in (("titanic-staging", Endpoint.Stage.STAGING, staging_profile),
                                     ("titanic-prod", Endpoint.Stage.PRODUCTION, production_profile)):
            if not Endpoint.objects.filter(name=name).exists():
                serving.endpoint_create(name=name, stage=stage, profile=profile, actor=admin)
                self.stdout.write(f"Created {stage} endpoint '{name}'.")

    def _checks(self, model, example) -> None:
        """The example's functional test cases and a stress profile with the seed's six passengers."""
        cases = json.loads((example.path / "tests" / "functional_cases.json").read_text())
        for case in cases:
            FunctionalTestCase.objects.get_or_create(model=model, name=case["name"], defaults=dict(
                payload=case["payload"], expect_field=case["expect"]["field"], expected_value=case["expect"]["equals"]))
        payloads = json.loads((example.path / "tests" / "stress_payloads.json").read_text())
        StressProfile.objects.get_or_create(model=model, name="seed-six-passengers", defaults=dict(
            concurrency=4, duration_seconds=10, payloads=payloads, p95_ms_max=500, error_rate_max=0.01, min_rps=10,
            shards=1))
