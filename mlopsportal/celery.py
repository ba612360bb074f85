"""The Celery app. Workers and beat start from here: `celery -A mlopsportal worker`."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlopsportal.settings")

app = Celery("mlopsportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The deployments app keeps its tasks in its rooms.
app.autodiscover_tasks(["deployments.serving", "deployments.verification", "deployments.promotions"])
