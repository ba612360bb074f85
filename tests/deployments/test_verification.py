"""Functional test runs and stress shards (deployments.checks) against an https scoring URL, as an Azure endpoint's:
both go through the same client, trusting a certificate through REQUESTS_CA_BUNDLE."""
import asyncio
import json
import ssl
import threading

import pytest
from aiohttp import web

from deployments.models import Deployment, DeploymentProfile, FunctionalTestCase, StressRun
from deployments.serving import services
from deployments.verification import services as verification
from models_registry.models import ModelVersion, RegisteredModel
from tests.fakeaml import certs

pytestmark = pytest.mark.django_db
SEED = {"Pclass": 1, "Sex": 0}


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch):
    """Each test sets the proxy and trust variables it means; none come from the machine running the tests."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def https_server(tmp_path):
    """POST /score answers {"prediction": 1} over TLS on 127.0.0.1 (a self-signed certificate); records the
    User-Agent and Authorization of each request. Yields (URL, certificate path, what it recorded)."""
    cert, key = certs.generate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    seen = []

    async def score(request):
        await request.read()
        seen.append((request.headers.get("User-Agent", ""), request.headers.get("Authorization", "")))
        return web.Response(text=json.dumps({"prediction": 1, "note": "é" * 5000}, ensure_ascii=False),
                            content_type="application/json", charset="utf-8")

    app = web.Application()
    app.router.add_post("/score", score)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{port}/score", str(cert), seen
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


@pytest.fixture
def deployment(engineer):
    model = RegisteredModel.objects.create(name="titanic")
    version = ModelVersion.objects.create(model=model, version=1, artifact_uri="azureml:titanic:1",
                                          artifact_sha256="0" * 64)
    profile = DeploymentProfile.objects.create(name="small", instance_count=1, request_timeout_ms=5000)
    endpoint = services.endpoint_create(name="titanic-staging", stage="staging", profile=profile, actor=engineer)
    FunctionalTestCase.objects.create(model=model, name="survives", payload=SEED, expect_field="prediction",
                                      expected_value=1)
    FunctionalTestCase.objects.create(model=model, name="wrongly expected to die", payload=SEED,
                                      expect_field="prediction", expected_value=0)
    return Deployment.objects.create(endpoint=endpoint, name="blue", model_version=version, status="healthy",
                                     serving_settings=profile.serving_settings())


def stress(deployment, url):
    run = StressRun.objects.create(deployment=deployment, plan={
        "concurrency": 2, "duration_seconds": None, "request_count": 6, "payloads": [SEED], "p95_ms_max": 5000,
        "error_rate_max": 0.0, "min_rps": None, "shards": 1, "profile": "quick"})
    assert verification.stress_shard_run(run_id=run.pk, shard=0, url=url)
    return verification.stress_finish(run)


def test_functional_run_and_stress_reach_an_https_target_through_the_same_client(https_server, deployment,
                                                                                 monkeypatch):
    url, cert, seen = https_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)
    auth = f"Bearer {deployment.endpoint.key}"

    run = verification.functional_run(deployment=deployment, through_endpoint_url=url)
    assert run.status == "failed"  # one case expects the wrong answer
    passed, wrong = run.results
    assert (passed["case"], passed["passed"], passed["status"], passed["reason"]) == ("survives", True, 200, "")
    assert (wrong["passed"], wrong["status"], wrong["reason"]) == (False, 200, "prediction is 1, expected 0")
    assert len(passed["body"]) == verification.BODY_KEPT and passed["body"].startswith('{"prediction": 1, "note": "éé')
    assert all(0 < r["ms"] < 5000 for r in run.results)

    stressed = stress(deployment, url)
    assert stressed.status == "passed" and stressed.summary["by_status"] == {"200": 6}
    assert len(seen) == 8 and {authorization for _, authorization in seen} == {auth}
    assert all(" aiohttp/" in agent for agent, _ in seen)  # the functional run's two and the stress run's six


def test_an_untrusted_certificate_fails_both_with_the_reason(https_server, deployment):
    url, _, seen = https_server

    run = verification.functional_run(deployment=deployment, through_endpoint_url=url)
    assert run.status == "failed" and {r["status"] for r in run.results} == {0}
    assert all(r["reason"].startswith("no answer: ConnectError (failed the TLS handshake") for r in run.results)
    stressed = stress(deployment, url)
    assert stressed.status == "failed" and stressed.summary["by_exception"] == {"ConnectError": 6}
    assert seen == []


def test_a_proxy_setting_that_cannot_be_used_fails_the_cases_with_the_reason(deployment, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "socks5://proxy.corp:1080")
    run = verification.functional_run(deployment=deployment, through_endpoint_url="https://scoring.example/score")
    assert run.status == "failed" and [(r["status"], r["passed"], r["ms"]) for r in run.results] == [(0, False, 0.0)] * 2
    assert run.results[0]["reason"] == ("cannot send: only http://[user:pass@]host:port proxies can be used, not "
                                        "'socks5://proxy.corp:1080' (HTTPS_PROXY)")
