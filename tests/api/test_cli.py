"""The whole flow through the command line only, against a running portal (live server, a real Celery worker, the
router): train and register, promote with --wait while a manager approves with their own token, a promotion that
fails its stress thresholds, and a retried promote that starts one promotion."""
import json
import os
import subprocess
import sys

import pytest

from deployments.models import DeploymentProfile, Endpoint, FunctionalTestCase, Promotion, StressProfile
from deployments.serving.services import endpoint_create
from models_registry.services import registered_model_ensure
from tests.api.conftest import make_token
from tests.conftest import ROOT, wait_for
from tests.deployments.conftest import router, router_refresh, stop_deployment_servers  # noqa: F401 - fixtures

pytestmark = [pytest.mark.worker, pytest.mark.processes, pytest.mark.django_db(transaction=True)]

PASSENGER = {"Pclass": 3, "Sex": 1, "Age": 34.5, "SibSp": 0, "Parch": 0, "Fare": 7.8292, "Embarked": 2}


def cli(base: str, token: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlops_cli", "--url", base, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "MLOPS_PORTAL_TOKEN": token})


def cli_started(base: str, token: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mlops_cli", "--url", base, "--progress", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MLOPS_PORTAL_TOKEN": token})


def test_train_promote_approve_fail_and_retry_through_the_cli(live_server, worker, router, engineer,  # noqa: F811
                                                              manager):
    base = live_server.url
    engineer_token, manager_token = make_token(engineer, name="ci"), make_token(manager, name="approvals")
    model, _ = registered_model_ensure(name="titanic", actor=engineer)
    profile = DeploymentProfile.objects.create(name="small", request_timeout_ms=5000)
    endpoint_create(name="titanic-staging", stage="staging", profile=profile, actor=engineer)
    prod = endpoint_create(name="titanic-prod", stage="production", profile=profile, actor=engineer)
    Endpoint.objects.filter(pk=prod.pk).update(traffic_steps="100")
    FunctionalTestCase.objects.create(model=model, name="third-class man", payload=PASSENGER,
                                      expect_field="prediction", expected_value=0)
    for name, p95 in (("steady", 2000), ("impossible", 0.001)):
        StressProfile.objects.create(model=model, name=name, concurrency=2, duration_seconds=2,
                                     payloads=[PASSENGER], p95_ms_max=p95, error_rate_max=0, shards=1)

    # CI: train and register.
    trained = cli(base, engineer_token, "train", "--example", "titanic", "--register-as", "titanic", "--wait",
                  "--poll", "1", "--timeout", "400")
    assert trained.returncode == 0, trained.stderr
    result = json.loads(trained.stdout)
    assert result["outcome"] == "succeeded" and result["version"] == "titanic:1"

    # CD: promote and wait; a manager approves with their own token; a retry with the same key starts nothing.
    args = ("promote", "titanic:1", "--to", "titanic-prod", "--stress-profile", "steady", "--reason",
            "release 1.0", "--idempotency-key", "release-1.0")
    waiting = cli_started(base, engineer_token, *args, "--wait", "--poll", "1", "--timeout", "500")
    progress = []
    for line in waiting.stderr:  # approve only once the CLI has said it waits (it polls each second)
        progress.append(line)
        if "awaiting approval" in line:
            break
    promotion = wait_for(lambda: Promotion.objects.filter(state=Promotion.State.AWAITING_APPROVAL).first(),
                         timeout=300, message="the promotion to wait for approval")
    retried = cli(base, engineer_token, *args)
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["promotion"]["id"] == promotion.pk
    assert Promotion.objects.count() == 1
    own = cli(base, engineer_token, "decide", str(promotion.pk), "approve", "--comment", "mine")
    assert own.returncode == 6, own.stderr  # the requester never decides
    approved = cli(base, manager_token, "decide", str(promotion.pk), "approve", "--comment", "tests are green")
    assert approved.returncode == 0, approved.stderr
    out, err = waiting.communicate(timeout=400)
    err = "".join(progress) + err
    assert waiting.returncode == 0, err
    assert json.loads(out)["outcome"] == "succeeded"
    assert "awaiting approval" in err  # progress on stderr
    status = json.loads(cli(base, engineer_token, "status").stdout)
    serving = next(e for e in status["endpoints"] if e["name"] == "titanic-prod")["serving"]
    assert [d["version"] for d in serving.values() if d["traffic"] == 100] == ["titanic:1"]

    # A promotion that misses its stress thresholds: a non-zero exit and the reason.
    failed = cli(base, engineer_token, "promote", "titanic:1", "--to", "titanic-prod", "--stress-profile",
                 "impossible", "--reason", "same version, harder load", "--wait", "--poll", "1", "--timeout", "500")
    assert failed.returncode == 1, (failed.stdout, failed.stderr)
    assert "p95" in failed.stderr and json.loads(failed.stdout)["outcome"] == "failed"
    assert Promotion.objects.count() == 2
