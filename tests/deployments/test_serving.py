"""Serving on the local backend, end to end: real workers start Azure ML's inference server, the router routes."""
import collections
import json
import os
import signal

import pytest
import requests
from django.conf import settings
from django.core.exceptions import ValidationError

from audit.models import AuditEvent
from deployments.models import Deployment, DeploymentProfile, Endpoint
from deployments.serving import services
from mlopsportal.backends import get_backend
from mlopsportal.backends.local.router import RoutesFile
from tests.conftest import wait_for

from .conftest import make_version, pause, wait_healthy

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
SEED = {"Pclass": 1, "Sex": 0, "Age": 38, "SibSp": 1, "Parch": 0, "Fare": 71.2833, "Embarked": 2}


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on `port`, from /proc/net/tcp (IPv4) and tcp6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, port_hex = local.rsplit(":", 1)
                if state == "0A" and int(port_hex, 16) == port:
                    found.add(address)
    return found


def test_deployment_serves_score_py_on_loopback_only(worker, engineer, staging, titanic_outputs):
    version = make_version(engineer, titanic_outputs)
    deployment = wait_healthy(services.deployment_create(endpoint=staging, version=version, name="blue",
                                                         actor=engineer))
    assert deployment.status == Deployment.Status.HEALTHY, deployment.error
    port = deployment.backend_ref["port"]
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1 and nothing else
    response = requests.post(deployment.scoring_url, json=SEED, timeout=10)
    assert response.status_code == 200 and response.json()["prediction"] == 1
    bad = requests.post(deployment.scoring_url, json={"Pclass": 9}, timeout=10)
    assert bad.status_code == 400 and "missing field(s)" in bad.json()["error"]
    assert requests.get(deployment.scoring_url.removesuffix("score"), timeout=5).text.strip() == "Healthy"


def test_router_weights_header_and_key(worker, router, engineer, staging, titanic_outputs):
    blue_version = make_version(engineer, titanic_outputs)
    green_version = make_version(engineer, titanic_outputs, job_suffix="-b")
    blue = services.deployment_create(endpoint=staging, version=blue_version, name="blue", actor=engineer)
    green = services.deployment_create(endpoint=staging, version=green_version, name="green", actor=engineer)
    wait_healthy(blue), wait_healthy(green)
    url = services.endpoint_scoring_url(staging)
    auth = {"Authorization": f"Bearer {staging.key}"}

    pause(0.5)
    assert requests.post(url, json=SEED, headers=auth, timeout=10).status_code == 503  # nobody has traffic yet
    services.endpoint_traffic_set(endpoint=staging, traffic={"blue": 100}, actor=engineer)
    pause(0.5)  # the router reloads its table every 0.2 s
    response = requests.post(url, json=SEED, headers=auth, timeout=10)
    assert response.status_code == 200 and response.json() == {"prediction": 1, "probability": response.json()["probability"]}
    assert response.headers["azureml-model-deployment"] == "blue"

    assert requests.post(url, json=SEED, timeout=10).status_code == 401
    assert requests.post(url, json=SEED, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
    picked = requests.post(url, json=SEED, headers={**auth, "azureml-model-deployment": "green"}, timeout=10)
    assert picked.status_code == 200 and picked.headers["azureml-model-deployment"] == "green"
    assert requests.post(url, json=SEED, headers={**auth, "azureml-model-deployment": "red"}, timeout=10).status_code == 404
    assert requests.post(url.replace("titanic-staging", "nope"), json=SEED, timeout=10).status_code == 404
    bad = requests.post(url, data="{not json", headers={**auth, "Content-Type": "application/json"}, timeout=10)
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]

    services.endpoint_traffic_set(endpoint=staging, traffic={"blue": 50, "green": 50}, actor=engineer)
    pause(0.5)
    served = collections.Counter(
        requests.post(url, json=SEED, headers=auth, timeout=10).headers["azureml-model-deployment"] for _ in range(60))
    assert served["blue"] > 10 and served["green"] > 10

    services.endpoint_traffic_set(endpoint=staging, traffic={"green": 100}, actor=engineer)
    pause(0.5)
    served = {requests.post(url, json=SEED, headers=auth, timeout=10).headers["azureml-model-deployment"]
              for _ in range(20)}
    assert served == {"green"}
    event = AuditEvent.objects.filter(action="update", target_id=str(staging.pk)).first()
    assert event.summary == "changed traffic: blue 0%, green 100%"


def test_traffic_rules(worker, engineer, staging, titanic_outputs):
    blue = wait_healthy(services.deployment_create(endpoint=staging, version=make_version(engineer, titanic_outputs),
                                                   name="blue", actor=engineer))
    for traffic, message in [
        ({"blue": 60}, "add up to 100% (it adds up to 60%)"),
        ({"blue": 100, "red": 0}, "no live deployment named red"),
        ({"blue": 101}, "whole number from 0 to 100"),
        ({"blue": "100"}, "whole number from 0 to 100"),
    ]:
        with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
            services.endpoint_traffic_set(endpoint=staging, traffic=traffic, actor=engineer)
    blue.refresh_from_db()
    assert blue.traffic == 0


def test_failing_init_fails_deployment_with_server_log(worker, engineer, staging, titanic_outputs):
    broken = "def init():\n    raise RuntimeError('model file is corrupt')\n\ndef run(raw):\n    return raw\n"
    version = make_version(engineer, titanic_outputs, score_py=broken)
    deployment = wait_healthy(services.deployment_create(endpoint=staging, version=version, name="blue",
                                                         actor=engineer))
    assert deployment.status == Deployment.Status.FAILED
    assert "model file is corrupt" in deployment.error
    assert listening_addresses(deployment.backend_ref["port"]) == set()
    with pytest.raises(ValidationError, match="no live deployment named blue"):
        services.endpoint_traffic_set(endpoint=staging, traffic={"blue": 100}, actor=engineer)


def test_dead_server_is_restarted_by_reconcile(worker, engineer, staging, titanic_outputs):
    deployment = wait_healthy(services.deployment_create(
        endpoint=staging, version=make_version(engineer, titanic_outputs), name="blue", actor=engineer))
    state = json.loads((settings.MLOPS_ARTIFACT_ROOT / deployment.backend_ref["dir"] / "server.json").read_text())
    os.killpg(state["pid"], signal.SIGKILL)  # the server and its workers die
    pause(0.5)
    assert services.deployments_reconcile() == [deployment.pk]
    deployment.refresh_from_db()
    assert deployment.restarts == 1 and deployment.status == Deployment.Status.UNHEALTHY
    assert AuditEvent.objects.filter(via="system", summary__startswith="restarted titanic-staging/blue").exists()

    def back():
        services.deployments_reconcile()
        deployment.refresh_from_db()
        return deployment.status == Deployment.Status.HEALTHY

    wait_for(back, timeout=60, message="restarted server to be healthy")
    assert requests.post(deployment.scoring_url, json=SEED, timeout=10).json()["prediction"] == 1


def test_delete_refuses_deployment_with_traffic_then_stops_server(worker, engineer, staging, titanic_outputs):
    deployment = wait_healthy(services.deployment_create(
        endpoint=staging, version=make_version(engineer, titanic_outputs), name="blue", actor=engineer))
    services.endpoint_traffic_set(endpoint=staging, traffic={"blue": 100}, actor=engineer)
    deployment.refresh_from_db()
    with pytest.raises(ValidationError, match="still takes 100% of the traffic"):
        services.deployment_delete(deployment=deployment, actor=engineer)
    services.endpoint_traffic_set(endpoint=staging, traffic={"blue": 0}, actor=engineer)
    deployment.refresh_from_db()
    services.deployment_delete(deployment=deployment, actor=engineer)
    wait_for(lambda: Deployment.objects.get(pk=deployment.pk).status == Deployment.Status.DELETED, timeout=30,
             message="deployment to be deleted")
    wait_for(lambda: listening_addresses(deployment.backend_ref["port"]) == set(), timeout=20,
             message="server to stop")


def test_duplicate_name_and_bad_name_are_refused(engineer, staging, titanic_outputs):
    version = make_version(engineer, titanic_outputs)
    with pytest.raises(ValidationError, match="lowercase"):
        services.deployment_create(endpoint=staging, version=version, name="Blue!", actor=engineer)
    assert not Deployment.objects.exists()


def test_try_it_page_sends_through_the_router(worker, router, engineer, engineer_client, staging, titanic_outputs):
    from django.urls import reverse

    wait_healthy(services.deployment_create(endpoint=staging, version=make_version(engineer, titanic_outputs),
                                            name="blue", actor=engineer))
    services.endpoint_traffic_set(endpoint=staging, traffic={"blue": 100}, actor=engineer)
    pause(0.5)
    url = reverse("deployments:endpoint_try", args=[staging.name])
    response = engineer_client.post(url, {"payload": json.dumps(SEED)}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and "HTTP 200" in body and "served by <strong>blue</strong>" in body
    assert "&quot;prediction&quot;: 1" in body
    bad = engineer_client.post(url, {"payload": json.dumps({"Pclass": 1})}, HTTP_HX_REQUEST="true")
    assert "HTTP 400" in bad.content.decode() and "missing field(s)" in bad.content.decode()


def test_deployment_outlives_the_worker_that_started_it(start_worker, engineer, staging, titanic_outputs):
    worker = start_worker()
    deployment = wait_healthy(services.deployment_create(
        endpoint=staging, version=make_version(engineer, titanic_outputs), name="blue", actor=engineer))
    worker.stop()  # a worker restart (or the web server's) must not take serving down
    response = requests.post(deployment.scoring_url, json=SEED, timeout=10)
    assert response.status_code == 200 and response.json()["prediction"] == 1


@pytest.mark.parametrize("router_refresh", [60])  # no periodic reload during the test: only the on-miss one
def test_router_knows_a_deployment_made_healthy_just_before_the_request(router, engineer, staging, titanic_outputs):
    version = make_version(engineer, titanic_outputs)
    url = services.endpoint_scoring_url(staging)
    headers = {"Authorization": f"Bearer {staging.key}", "azureml-model-deployment": "fresh"}
    assert requests.post(url, json=SEED, headers=headers, timeout=10).status_code == 404
    Deployment.objects.create(endpoint=staging, name="fresh", model_version=version, status="healthy",
                              scoring_url="http://127.0.0.1:9/score", backend_ref={"dir": "x", "port": 9})
    # What deployment_poll tells the backend when it marks a deployment healthy.
    get_backend().deployment_route_set(endpoint_name=staging.name, deployment_name="fresh",
                                       scoring_url="http://127.0.0.1:9/score")
    # Right away, well inside any rate limit: the router must read the table again rather than answer 404.
    response = requests.post(url, json=SEED, headers=headers, timeout=10)
    assert response.status_code == 502 and response.headers["azureml-model-deployment"] == "fresh"


def test_routing_publish_fills_the_table_after_an_upgrade_and_keeps_it_true(engineer, staging, titanic_outputs):
    """An installation upgraded from when the router read the database has no routing table: beat's reconcile fills
    it from the rows (the serving deployments, healthy or unhealthy, and their traffic; not the failed or the
    deleting), and a later publish drops what the portal no longer has and takes what changed behind the services
    (a profile edited in Django admin)."""
    version = make_version(engineer, titanic_outputs)
    prod = Endpoint.objects.create(name="titanic-prod", stage="production", auth_enabled=False, created_by=engineer,
                                   profile=DeploymentProfile.objects.create(name="big", request_timeout_ms=900))
    for name, status, traffic, port in [("blue", "healthy", 100, 9), ("green", "unhealthy", 0, 8),
                                        ("red", "failed", 0, 7), ("old", "deleting", 0, 6)]:
        Deployment.objects.create(endpoint=prod, name=name, model_version=version, status=status, traffic=traffic,
                                  scoring_url=f"http://127.0.0.1:{port}/score", backend_ref={"dir": "x", "port": port})
    routes = get_backend().routes_path
    routes.unlink()  # as the upgrade finds it
    services.deployments_reconcile()
    table = RoutesFile(routes).load_table()
    assert set(table) == {"titanic-staging", "titanic-prod"}
    assert (table["titanic-staging"].auth_enabled, table["titanic-staging"].key) == (True, staging.key.encode())
    assert table["titanic-staging"].deployments == {} and table["titanic-staging"].names == []
    assert (table["titanic-prod"].auth_enabled, table["titanic-prod"].timeout_s) == (False, 0.9)
    assert {name: target.port for name, target in table["titanic-prod"].deployments.items()} == {"blue": 9, "green": 8}
    assert (table["titanic-prod"].names, table["titanic-prod"].weights) == (["blue"], [100])

    get_backend().endpoint_configure("deleted-meanwhile", auth_enabled=False, key="", timeout_ms=1000)
    DeploymentProfile.objects.filter(name="big").update(request_timeout_ms=2500)
    services.routing_publish()
    table = RoutesFile(routes).load_table()
    assert set(table) == {"titanic-staging", "titanic-prod"} and table["titanic-prod"].timeout_s == 2.5


def test_run_router_fills_a_missing_table_before_it_serves(request, engineer, staging, titanic_outputs):
    """After an upgrade the router starts with no table of its own: `manage.py run_router` publishes one from the
    database first, so an endpoint's existing deployments are routed from its first request."""
    Deployment.objects.create(endpoint=staging, name="blue", model_version=make_version(engineer, titanic_outputs),
                              status="healthy", traffic=100, scoring_url="http://127.0.0.1:9/score",
                              backend_ref={"dir": "x", "port": 9})
    get_backend().routes_path.unlink()
    request.getfixturevalue("router")  # started now, on the rows above
    response = requests.post(services.endpoint_scoring_url(staging), json=SEED, timeout=10,
                             headers={"Authorization": f"Bearer {staging.key}"})
    assert response.status_code == 502 and response.headers["azureml-model-deployment"] == "blue"
