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

from mlopsportal.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins; tests only
# Tests serve static files from the source folders; the hashed manifest exists only after collectstatic.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
