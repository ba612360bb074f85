"""Creates one demo user per role and registers the Titanic example, so a newcomer has something to click."""
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from accounts import roles
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
        self.stdout.write("Demo users (for trying the portal only; change or remove them before real use):")
        for line in lines:
            self.stdout.write(line)
