"""`manage.py azureml_smoke`: check a real Azure ML workspace end to end, with clean-up and a printed report."""
import secrets

from django.core.management.base import BaseCommand, CommandError

from mlopsportal.backends import get_backend
from workspaces.smoke import Smoke


class Command(BaseCommand):
    help = ("Run the portal's Azure ML path on the workspace set on the Workspace page: Test connection, a training "
            "job and its registration, a job that must fail, a staging deployment, Kubernetes deployments with "
            "autoscale off and on and one too big for its instance type, traffic 10/50/100 and a stress run. "
            "Removes the endpoints it made; prints what each check proves.")

    def add_arguments(self, parser):
        parser.add_argument("--prefix", default="", help="Name prefix of what it creates (default: smoke-<random>).")
        parser.add_argument("--poll", type=float, default=10, help="Seconds between polls (default 10).")
        parser.add_argument("--timeout", type=float, default=1800, help="Seconds each wait may take (default 1800).")
        parser.add_argument("--stress-seconds", type=float, default=10, help="Length of the stress run (default 10).")

    def handle(self, *args, prefix, poll, timeout, stress_seconds, **options):
        prefix = prefix or f"smoke-{secrets.token_hex(3)}"
        if not prefix[0].isalpha() or len(prefix) > 24:
            raise CommandError("The prefix must start with a letter and be at most 24 characters (endpoint names "
                               "are at most 32).")
        self.stdout.write(f"Azure ML smoke test, creating {prefix}-*")
        smoke = Smoke(get_backend("azureml"), prefix=prefix, poll_seconds=poll, timeout_seconds=timeout,
                      stress_seconds=stress_seconds, say=self.stdout.write)
        report = smoke.run()
        self.stdout.write("")
        for line in report.lines():
            self.stdout.write(line)
        if not report.ok:
            raise CommandError("The smoke test failed: see the checks marked FAIL above.")
