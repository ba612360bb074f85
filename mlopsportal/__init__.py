"""The MLOps portal project: settings, the Celery app, URLs and the ML-platform backends."""
from .celery import app as celery_app

__all__ = ("celery_app",)
