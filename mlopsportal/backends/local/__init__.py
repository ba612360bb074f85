"""The local backend: training, artifacts and serving on this machine (backend.py), the launcher of a deployment's
inference server (server.py), the supervisor of a training job (supervisor.py) and the endpoint router (router.py)."""
from .backend import LocalBackend

__all__ = ("LocalBackend",)
