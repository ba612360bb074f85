"""Celery tasks of the workspace: the periodic sync with Azure ML."""
from celery import shared_task

from . import sync


@shared_task(soft_time_limit=240, time_limit=300)
def azureml_sync() -> list[str]:
    return sync.azureml_sync()
