"""ML-platform backends, chosen by settings.MLOPS_BACKEND and imported lazily."""
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
    return import_string(dotted)()


def get_backend(name: str | None = None) -> MLBackend:
    return _load(name or settings.MLOPS_BACKEND)
