"""Test settings: the project's settings with a private data folder, a private queue and the test examples.

Set through the environment before the base settings load, so a worker started by the tests (which inherits the
environment) sees exactly the same configuration.
"""
import os
import tempfile
from pathlib import Path

os.environ.setdefault("MLOPS_DATA_DIR", tempfile.mkdtemp(prefix="mlops-test-"))
os.environ.setdefault("MLOPS_EXTRA_EXAMPLES_DIRS", str(Path(__file__).parent / "fixtures" / "examples"))
os.environ.setdefault("CELERY_QUEUE", f"mlops-test-{os.getpid()}")
os.environ.setdefault("MLOPS_TRAINING_POLL_SECONDS", "0.5")
os.environ.setdefault("MLOPS_DEPLOY_POLL_SECONDS", "0.5")
# The tests' webhook receivers listen on 127.0.0.1; tests/test_webhooks.py turns the refusal back on to test it.
os.environ.setdefault("MLOPS_WEBHOOK_ALLOW_PRIVATE", "1")
os.environ.setdefault("MLOPS_WEBHOOK_BACKOFF_SECONDS", "0.3")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# One router port per test session, known to every worker the tests start (tests/deployments/conftest.py).
os.environ.setdefault("MLOPS_ROUTER_URL", f"http://127.0.0.1:{_free_port()}")

from mlopsportal.settings import *  # noqa: E402,F403
from tests.fakeaml import dns as _fake_azure_dns  # noqa: E402

# A worker started by a test of the azureml backend reaches the test's fake Azure ML (tests/fakeaml) this way.
_fake_azure_dns.install_from_env()

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins; tests only
# Tests serve static files from the source folders; the hashed manifest exists only after collectstatic.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
# Workers the tests start forget cached content type ids before each task (tests/worker_hooks.py).
CELERY_IMPORTS = ("tests.worker_hooks",)
