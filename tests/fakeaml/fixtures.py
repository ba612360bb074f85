"""The `fake_aml` fixture: a FakeAzureML for one test, with this process routed to it.

Use it from a conftest with `from tests.fakeaml.fixtures import fake_aml  # noqa: F401`. Teardown stops the fake (and
every process it started), removes the DNS patch and restores the environment, including AZUREML_CURRENT_CLOUD,
which MLClient sets process-wide (gotcha G1 in /work/shared/docs/azure-ml-offline.md).
"""
import os
from contextlib import contextmanager

import pytest

from . import dns
from .server import FakeAzureML

CLOUD_ENV = "AZUREML_CURRENT_CLOUD"


@contextmanager
def serving(monkeypatch: pytest.MonkeyPatch, **options):
    """Starts a FakeAzureML and routes this process to it; `monkeypatch` undoes the environment changes."""
    cloud_before = os.environ.get(CLOUD_ENV)
    previous_port = dns.installed_port()
    fake = FakeAzureML(**options).start()
    try:
        for key, value in fake.env().items():
            monkeypatch.setenv(key, value)
        dns.install(fake.port)
        yield fake
    finally:
        fake.stop()
        if previous_port is None:
            dns.uninstall()
        else:
            dns.install(previous_port)
        if cloud_before is None:
            os.environ.pop(CLOUD_ENV, None)
        else:
            os.environ[CLOUD_ENV] = cloud_before


@pytest.fixture
def fake_aml(monkeypatch):
    with serving(monkeypatch) as fake:
        yield fake
