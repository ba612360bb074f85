"""No orphans: a server started by a worker that died before it wrote down what it started is adopted, not started
twice, and a server that no deployment owns is stopped by beat's reconcile. Real inference servers on the local
backend."""
import os
from pathlib import Path

import psutil
import pytest
import requests
from django.conf import settings

from deployments.models import Deployment
from deployments.serving import services
from mlopsportal.backends import get_backend
from mlopsportal.backends.local.backend import SERVER_MARKERS
from tests.conftest import wait_for

from .conftest import make_version

pytestmark = [pytest.mark.django_db(transaction=True)]
SEED = {"Pclass": 1, "Sex": 0, "Age": 38, "SibSp": 1, "Parch": 0, "Fare": 71.2833, "Embarked": 2}


class WorkerDied(BaseException):
    """What kill -9 does to the task: nothing after this point runs (not even except clauses for Exception)."""


def servers_in(folder: str) -> int:
    """How many inference servers (process groups) run for that deployment folder, read off the processes."""
    path = str((settings.MLOPS_ARTIFACT_ROOT / folder).resolve())
    groups = set()
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if any(SERVER_MARKERS[0] in part for part in cmdline) and "--dir" in cmdline:
            if str(Path(cmdline[cmdline.index("--dir") + 1]).resolve()) == path:
                try:
                    groups.add(os.getpgid(process.info["pid"]))
                except ProcessLookupError:
                    pass
    return len(groups)


def poll_until_healthy(deployment: Deployment) -> Deployment:
    def healthy():
        services.deployment_poll(deployment_id=deployment.pk)
        deployment.refresh_from_db()
        assert deployment.status in (Deployment.Status.CREATING, Deployment.Status.HEALTHY), deployment.error
        return deployment.status == Deployment.Status.HEALTHY

    wait_for(healthy, timeout=90, interval=0.5, message=f"{deployment} to be healthy")
    return deployment


def test_a_start_resumed_after_the_worker_died_adopts_the_server(monkeypatch, engineer, staging, titanic_outputs):
    deployment = services.deployment_create(endpoint=staging, version=make_version(engineer, titanic_outputs),
                                            name="blue", actor=engineer, start=False)
    backend = get_backend()
    create = type(backend).deployment_create

    def start_then_die(self, spec, plan=None):
        create(self, spec, plan)
        raise WorkerDied  # the server runs; backend_ref was never written

    monkeypatch.setattr(type(backend), "deployment_create", start_then_die)
    with pytest.raises(WorkerDied):
        services.deployment_start(deployment_id=deployment.pk)
    monkeypatch.undo()
    deployment.refresh_from_db()
    assert deployment.backend_ref == {} and deployment.backend_plan["dir"]  # the intent was recorded first
    assert servers_in(deployment.backend_plan["dir"]) == 1

    assert services.deployment_start(deployment_id=deployment.pk)  # the task again, on another worker
    deployment.refresh_from_db()
    assert deployment.backend_ref["dir"] == deployment.backend_plan["dir"]
    assert servers_in(deployment.backend_plan["dir"]) == 1  # adopted, not started twice
    poll_until_healthy(deployment)
    assert requests.post(deployment.scoring_url, json=SEED, timeout=10).json()["prediction"] == 1
    assert services.deployments_reconcile() == []
    assert servers_in(deployment.backend_ref["dir"]) == 1  # its own server is not taken for an orphan


def test_reconcile_stops_servers_no_deployment_owns(engineer, staging, titanic_outputs):
    version = make_version(engineer, titanic_outputs)
    kept = services.deployment_create(endpoint=staging, version=version, name="blue", actor=engineer, start=False)
    services.deployment_start(deployment_id=kept.pk)
    lost = services.deployment_create(endpoint=staging, version=version, name="green", actor=engineer, start=False)
    services.deployment_start(deployment_id=lost.pk)
    kept.refresh_from_db()
    lost.refresh_from_db()
    assert servers_in(kept.backend_plan["dir"]) == 1 and servers_in(lost.backend_plan["dir"]) == 1
    Deployment.objects.filter(pk=lost.pk).delete()  # a row gone by hand (or never written): its server is an orphan

    services.deployments_reconcile()
    assert servers_in(lost.backend_plan["dir"]) == 0
    assert servers_in(kept.backend_plan["dir"]) == 1  # still creating, its server belongs to it
    poll_until_healthy(kept)


def test_a_failed_deployment_keeps_no_server(engineer, staging, titanic_outputs):
    deployment = services.deployment_create(endpoint=staging, version=make_version(engineer, titanic_outputs),
                                            name="blue", actor=engineer, start=False)
    services.deployment_start(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    Deployment.objects.filter(pk=deployment.pk).update(status=Deployment.Status.FAILED)  # its delete was lost
    services.deployments_reconcile()
    assert servers_in(deployment.backend_plan["dir"]) == 0
