"""ML-platform backends, chosen by settings.MLOPS_BACKEND and imported lazily.

A backend imports no Django app. When it needs configuration that the portal keeps (the Azure ML workspace's
coordinates, say), settings.MLOPS_BACKEND_CONFIG names a callable that returns it, and the backend receives that
callable as `config_provider`.
"""
from functools import lru_cache

from django.conf import settings
from django.utils.module_loading import import_string

from .base import BackendError, MLBackend

__all__ = ("BackendError", "MLBackend", "get_backend")


@lru_cache(maxsize=4)
def _load(name: str) -> MLBackend:
    try:
        dotted = settings.MLOPS_BACKENDS[name]
    except KeyError:
        raise BackendError(f"Unknown ML backend '{name}'. Choose one of: {', '.join(settings.MLOPS_BACKENDS)}.") from None
    backend_class = import_string(dotted)
    provider = settings.MLOPS_BACKEND_CONFIG.get(name)
    if provider:
        return backend_class(config_provider=import_string(provider))
    return backend_class()


def get_backend(name: str | None = None) -> MLBackend:
    return _load(name or settings.MLOPS_BACKEND)
