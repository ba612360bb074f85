"""Loaded by every Celery worker the tests start (tests/settings.py, CELERY_IMPORTS).

A worker outlives the tests it serves (tests/conftest.py, SharedWorker), and each transactional test ends with the
tables emptied and the content types made again under new ids; Django caches content type ids per process, so a
long-lived worker would write audit events pointing at ids that no longer exist. Each task starts with that cache
empty. (A real deployment never renumbers its content types.)"""
from celery.signals import task_prerun
from django.contrib.contenttypes.models import ContentType


@task_prerun.connect
def _forget_content_types(**kwargs) -> None:
    ContentType.objects.clear_cache()
