"""Creates one demo user per role, the Titanic model and its staging and production endpoints, for trying the portal."""
import json
import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts import roles
from audit.models import AuditEvent
from audit.services import audit_record
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
    help = ("Create demo users (one per role) on a database that has no users yet, and register the worked Titanic "
            "example as a model. Run again, it keeps users as they are: changed passwords, removed users. Demo use only.")

    def add_arguments(self, parser):
        parser.add_argument("--password", help="Password for the demo users it creates (default: a random one, printed).")
        parser.add_argument("--password-file", help="Read that password from this file (portal.py run keeps one).")

    def handle(self, *args, password=None, password_file=None, **options):
        if password_file:
            password = Path(password_file).read_text().strip()
        roles.ensure_role_groups()
        created = self._users(password or secrets.token_urlsafe(9))

        example = examples.get_example("titanic")
        users = get_user_model().objects.filter(is_active=True).order_by("pk")
        admin = (users.filter(username="admin").first() or users.filter(is_superuser=True).first()
                 or users.filter(groups__name=roles.ADMIN).first())
        if admin is None:
            self.stdout.write("No active admin to register the Titanic example as; skipped it.")
            return
        model, made = services.registered_model_ensure(
            name=example.model_name,
            description=example.description,
            key_metric=example.key_metric,
            actor=admin,
        )
        self.stdout.write(("Registered" if made else "Found") + f" model '{model.name}' (key metric {model.key_metric}).")
        self._endpoints(admin)
        self._checks(model, example)
        if created:
            self.stdout.write("Demo users (for trying the portal only; change or remove them before real use):")
            for line in created:
                self.stdout.write(line)
        else:
            where = f" (first password in {password_file})" if password_file else ""
            self.stdout.write(f"Users exist already; demo users are made only on a new database{where}. "
                              "Nobody's password or role was changed.")

    def _users(self, password: str) -> list[str]:
        """One user per role, only when there are no users at all: later runs must not undo what people changed."""
        User = get_user_model()
        lines = []
        with transaction.atomic():
            if User.objects.select_for_update().exists():
                return lines
            for username, role, staff in DEMO_USERS:
                user = User(username=username, email=f"{username}@example.com", is_staff=staff)
                user.set_password(password)
                user.save()
                user.groups.set([Group.objects.get(name=role)])
                audit_record(actor=None, action=AuditEvent.Action.CREATE, target=user,
                             summary=f"created demo user {username} ({role})")
                lines.append(f"  {role:<12} {username:<10} {password}")
        return lines

    def _endpoints(self, admin) -> None:
        """A staging and a production endpoint for the Titanic model, with the seed's AKS settings for production."""
        staging_profile, _ = DeploymentProfile.objects.get_or_create(name="staging-small", defaults=dict(
            description="One instance, for tests before production.", instance_count=1, cpu_request=0.5,
            memory_request_gb=1, request_timeout_ms=60_000, max_concurrent_requests_per_instance=1,
            auth_enabled=True))
        production_profile, _ = DeploymentProfile.objects.get_or_create(name="titanic-aks", defaults=dict(
            description="The seed's aksDeploymentConfig.yml.", instance_count=3, autoscale_enabled=True,
            min_instances=3, max_instances=6, target_utilization=50, cpu_request=0.5, memory_request_gb=1,
            request_timeout_ms=60_000, max_concurrent_requests_per_instance=2, max_queue_wait_ms=180_000,
            polling_interval_seconds=1, auth_enabled=True))
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
