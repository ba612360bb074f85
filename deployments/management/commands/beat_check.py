"""Exit 0 when celery beat has sent the reconcile lately, 1 otherwise: docker-compose's healthcheck of beat.

django-celery-beat's DatabaseScheduler writes each periodic task's last run to the database (every few minutes), so a
beat that stopped sending shows as a reconcile whose last run is old."""
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django_celery_beat.models import PeriodicTask


class Command(BaseCommand):
    help = "Check that celery beat sent the deployments' reconcile within the last --within seconds."

    def add_arguments(self, parser):
        parser.add_argument("--within", type=int, default=600, help="seconds (default 600)")

    def handle(self, *args, within, **options):
        task = PeriodicTask.objects.filter(name="reconcile-deployments").first()
        last = task.last_run_at if task else None
        if last is None or timezone.now() - last > timedelta(seconds=within):
            raise CommandError(f"beat has not sent the reconcile within {within} s (last: {last or 'never'})")
        self.stdout.write(f"beat sent the reconcile at {last:%Y-%m-%d %H:%M:%S %Z}")
