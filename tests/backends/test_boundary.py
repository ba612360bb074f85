"""The backend boundary stays closed: backends import no Django app of the portal, and get their configuration from
the provider that settings names."""
import ast
from pathlib import Path

import pytest

from mlopsportal.backends import get_backend
from mlopsportal.backends.azureml import AzureMLBackend
from mlopsportal.backends.base import BackendError, ConnectionCheck

BACKENDS = Path(__file__).resolve().parents[2] / "mlopsportal" / "backends"
APPS = {"accounts", "audit", "deployments", "models_registry", "workspaces"}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(BACKENDS.glob("*.py")), ids=lambda p: p.name)
def test_backends_import_no_app(path):
    assert not {name for name in imported_modules(path) if name.split(".")[0] in APPS}


def test_the_azureml_backend_reads_its_workspace_through_the_provider(db):
    from workspaces.models import AzureMLWorkspace

    AzureMLWorkspace.objects.update_or_create(pk=1, defaults={"training_cluster": "gpu-cluster"})
    assert [t.name for t in get_backend("azureml").compute_targets()] == ["gpu-cluster"]


def test_without_a_provider_the_azureml_backend_says_what_is_missing(tmp_path):
    backend = AzureMLBackend(root=tmp_path)
    with pytest.raises(BackendError, match="MLOPS_BACKEND_CONFIG"):
        backend.compute_targets()
    [check] = backend.connection_check()
    assert check == ConnectionCheck("Settings", False, check.message) and "MLOPS_BACKEND_CONFIG" in check.message
