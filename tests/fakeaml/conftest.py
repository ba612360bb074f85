from tests.fakeaml.fixtures import fake_aml  # noqa: F401
