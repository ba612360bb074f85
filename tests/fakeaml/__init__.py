"""A fake Azure ML service for tests: the real azure-ai-ml SDK talks to it in-process over HTTPS.

    from tests.fakeaml import FakeAzureML, FakeCredential   # or the `fake_aml` fixture (tests/fakeaml/fixtures.py)
"""
from .common import ACCOUNT, CONTAINER, DATASTORE, REGION, RG, SUB, WS
from .server import FakeAzureML, FakeCredential

__all__ = ["FakeAzureML", "FakeCredential", "SUB", "RG", "WS", "REGION", "ACCOUNT", "CONTAINER", "DATASTORE"]
