"""The fake Azure ML, driven through the real azure-ai-ml SDK: every operation the portal's backend uses, the
Titanic example trained, registered, deployed and scored for real, the failure hooks, and clean teardown.

No database: nothing here is marked django_db.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
import requests

with warnings.catch_warnings():  # the SDK's own marshmallow deprecation warnings, at import time
    warnings.simplefilter("ignore")
    from azure.ai.ml import MLClient, Output, command
    from azure.ai.ml._artifacts._artifact_utilities import download_artifact_from_aml_uri
    from azure.ai.ml.entities import (
        CodeConfiguration,
        KubernetesOnlineDeployment,
        KubernetesOnlineEndpoint,
        ManagedOnlineDeployment,
        ManagedOnlineEndpoint,
        Model,
        OnlineRequestSettings,
        ResourceRequirementsSettings,
        ResourceSettings,
        TargetUtilizationScaleSettings,
    )
    from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from tests.fakeaml import RG, SUB, WS, FakeCredential, dns
from tests.fakeaml.fixtures import CLOUD_ENV, serving
from tests.fakeaml.workloads import alive

# The SDK and the storage client warn about their own deprecations on every call; not ours to fix.
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:The `context` parameter is deprecated")]
ROOT = Path(__file__).resolve().parents[2]
TITANIC = ROOT / "examples" / "titanic"
ENV = "azureml:AzureML-sklearn-1.5@latest"
OUTPUTS = "azureml://datastores/workspaceblobstore/paths/mlops-portal/jobs"
PASSENGER = {"Pclass": 1, "Sex": "female", "Age": 29, "SibSp": 0, "Parch": 0, "Fare": 80.0, "Embarked": "C"}
TRAIN = ("python training.py --data data/titanic.csv --output-dir ${{outputs.model}} --n_estimators "
         "${{inputs.n_estimators}} 2>&1 | tee ${{outputs.logs}}/std_log.txt; exit ${PIPESTATUS[0]}")


def wait_for(predicate, timeout=30.0, message="condition", interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def client() -> MLClient:
    return MLClient(FakeCredential(), SUB, RG, WS, show_progress=True)  # production-identical: no cloud= kwarg


def short(path: str) -> str:
    return path.split(f"/workspaces/{WS}", 1)[-1] or "/"


def titanic_code(tmp_path: Path) -> Path:
    code = tmp_path / "titanic"
    (code / "data").mkdir(parents=True)
    for name in ("training.py", "score.py", "features.py"):
        shutil.copy(TITANIC / name, code / name)
    shutil.copy(TITANIC / "data" / "titanic.csv", code / "data" / "titanic.csv")
    return code


def small_code(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for file, text in files.items():
        (folder / file).write_text(text)
    return folder


def job_status(ml, name, wanted=("Completed", "Failed", "Canceled"), timeout=60.0):
    seen = []

    def done():
        status = ml.jobs.get(name).status
        if not seen or seen[-1] != status:
            seen.append(status)
        return status in wanted

    wait_for(done, timeout, f"job {name} to reach {wanted}", interval=0.2)
    return seen


def provisioned(ml, deployment, endpoint, timeout=60.0):
    def state():
        value = ml.online_deployments.get(deployment, endpoint).provisioning_state
        return value if value not in ("Creating", "Updating") else None

    return wait_for(state, timeout, f"deployment {deployment} on {endpoint}", interval=0.2)


def endpoint_ready(ml, name, timeout=10.0):
    return wait_for(lambda: ml.online_endpoints.get(name).provisioning_state == "Succeeded", timeout, name)


def test_titanic_end_to_end(fake_aml, tmp_path):
    fake_aml.random.seed(7)
    ml = client()
    assert ml.workspaces.get(WS).location == "westeurope"
    assert ml.compute.get("aks-prod").type == "kubernetes"
    assert ml.compute.get("cpu-cluster").type == "amlcompute"
    with pytest.raises(ResourceNotFoundError):
        ml.compute.get("nope")
    with pytest.raises(ResourceNotFoundError):
        ml.jobs.get("no-such-job")

    # --- train: the code snapshot goes to the fake blob store, the command really runs -------------------------------
    name = f"titanic-{int(time.time() * 1000)}"
    job = command(name=name, code=str(titanic_code(tmp_path)), command=TRAIN, environment=ENV, compute="cpu-cluster",
                  inputs={"n_estimators": 50}, experiment_name="titanic", display_name="Titanic training",
                  outputs={"model": Output(type="uri_folder", path=f"{OUTPUTS}/{name}/model/"),
                           "logs": Output(type="uri_folder", path=f"{OUTPUTS}/{name}/logs/")})
    created = ml.jobs.create_or_update(job)
    assert created.status == "Queued"
    seen = job_status(ml, name)
    assert seen[-1] == "Completed" and "Running" in seen, seen
    done = ml.jobs.get(name)
    assert done.outputs["model"].path == f"{OUTPUTS}/{name}/model/"
    assert done.studio_url.startswith(f"https://ml.azure.com/runs/{name}?wsid=") and "&tid=" in done.studio_url
    assert done.properties["StartTimeUtc"] and done.properties["EndTimeUtc"]
    code_id = done.code
    assert "/codes/" in code_id and code_id.endswith("/versions/1")
    put = fake_aml.find("PUT", rf"/jobs/{name}$")[0]
    assert put.api_version == "2025-01-01-preview" and put.body["properties"]["inputs"]["n_estimators"] == {
        "jobInputType": "literal", "value": "50"}
    assert fake_aml.find("PUT", r"/code-[0-9a-f]+/titanic/data/titanic\.csv$")  # uploaded to the fake blob store

    downloaded = tmp_path / "downloaded"
    download_artifact_from_aml_uri(uri=f"{OUTPUTS}/{name}/model/", destination=str(downloaded),
                                   datastore_operation=ml.datastores)
    assert {"model.pkl", "metrics.json"} <= {p.name for p in downloaded.rglob("*")}
    metrics = json.loads(next(downloaded.rglob("metrics.json")).read_text())
    assert 0.7 < metrics["cv_accuracy"] < 0.95
    assert "CV accuracy" in (fake_aml.datastore_path(f"{OUTPUTS}/{name}/logs/") / "std_log.txt").read_text()

    # --- register from the job output: no upload; the service answers with the datastore path ----------------------
    model = ml.models.create_or_update(Model(name="titanic", version="3", path=f"azureml://jobs/{name}/outputs/model",
                                             type="custom_model", description="RF", tags={"job": name}))
    assert model.path.endswith(f"/datastores/workspaceblobstore/paths/mlops-portal/jobs/{name}/model/")
    assert ml.models.get("titanic", "3").tags == {"job": name}
    assert "titanic" in [m.name for m in ml.models.list()]
    assert [m.version for m in ml.models.list(name="titanic")] == ["3"]
    ml.models.download("titanic", "3", download_path=str(tmp_path / "model"))
    assert list((tmp_path / "model").rglob("model.pkl"))

    # --- endpoints and deployments (polled, never blocked on) -----------------------------------------------------
    with pytest.raises(ResourceNotFoundError):
        ml.online_endpoints.get("ep")
    ml.online_endpoints.begin_create_or_update(KubernetesOnlineEndpoint(name="titanic-prod", compute="aks-prod",
                                                                       auth_mode="key", tags={}))
    ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="titanic-staging", auth_mode="key"))
    endpoint_ready(ml, "titanic-prod")
    endpoint_ready(ml, "titanic-staging")
    assert ml.online_endpoints.get("titanic-prod").compute.endswith("/computes/aks-prod")

    def kubernetes(deployment):
        return KubernetesOnlineDeployment(
            name=deployment, endpoint_name="titanic-prod", model="azureml:titanic:3",
            code_configuration=CodeConfiguration(code=code_id, scoring_script="score.py"), environment=ENV,
            resources=ResourceRequirementsSettings(requests=ResourceSettings(cpu="0.5", memory="1Gi"),
                                                   limits=ResourceSettings(cpu="1", memory="2Gi")),
            instance_count=1, scale_settings=TargetUtilizationScaleSettings(
                min_instances=1, max_instances=3, target_utilization_percentage=50),
            request_settings=OnlineRequestSettings(request_timeout_ms=60000, max_concurrent_requests_per_instance=2))

    ml.online_deployments.begin_create_or_update(kubernetes("blue"))
    ml.online_deployments.begin_create_or_update(kubernetes("green"))
    ml.online_deployments.begin_create_or_update(ManagedOnlineDeployment(
        name="stage", endpoint_name="titanic-staging", model="azureml:titanic:3", environment=ENV,
        code_configuration=CodeConfiguration(code=code_id, scoring_script="score.py"),
        instance_type="Standard_DS3_v2", instance_count=1))
    assert ml.online_deployments.get("blue", "titanic-prod").provisioning_state == "Creating"
    assert provisioned(ml, "blue", "titanic-prod") == "Succeeded"
    assert provisioned(ml, "green", "titanic-prod") == "Succeeded"
    assert provisioned(ml, "stage", "titanic-staging") == "Succeeded"
    blue = ml.online_deployments.get("blue", "titanic-prod")
    assert (blue.resources.requests.cpu, blue.resources.limits.memory) == ("0.5", "2Gi")
    assert (blue.scale_settings.max_instances, blue.request_settings.request_timeout_ms, blue.instance_count) == (
        3, 60000, 1)
    assert blue.model.endswith("/models/titanic/versions/3")
    assert ml.online_deployments.get("stage", "titanic-staging").instance_type == "Standard_DS3_v2"
    assert sorted(d.name for d in ml.online_deployments.list("titanic-prod")) == ["blue", "green"]
    assert "init has completed successfully" in ml.online_deployments.get_logs("blue", "titanic-prod", lines=50)

    # --- traffic 90/10, keys, scoring through the endpoint URI ----------------------------------------------------
    endpoint = ml.online_endpoints.get("titanic-prod")
    endpoint.traffic = {"blue": 90, "green": 10}
    ml.online_endpoints.begin_create_or_update(endpoint)
    wait_for(lambda: ml.online_endpoints.get("titanic-prod").traffic == {"blue": 90, "green": 10}, 10, "traffic")
    endpoint = ml.online_endpoints.get("titanic-prod")
    key = ml.online_endpoints.get_keys("titanic-prod").primary_key
    assert endpoint.scoring_uri == f"http://127.0.0.1:{fake_aml.scoring_port}/titanic-prod/score"
    auth = {"Authorization": f"Bearer {key}"}
    served = []
    for _ in range(60):
        response = requests.post(endpoint.scoring_uri, json=PASSENGER, headers=auth, timeout=30)
        assert response.status_code == 200 and response.json()["prediction"] == 1, response.text
        served.append(response.headers["azureml-model-deployment"])
    assert served.count("blue") > 3 * served.count("green") > 0, served
    pinned = requests.post(endpoint.scoring_uri, json=PASSENGER, headers={**auth, "azureml-model-deployment": "green"})
    assert pinned.headers["azureml-model-deployment"] == "green"
    assert requests.post(endpoint.scoring_uri, json={"Pclass": 9}, headers=auth).status_code == 400
    assert requests.post(endpoint.scoring_uri, json=PASSENGER).status_code == 401
    assert requests.post(endpoint.scoring_uri, json=PASSENGER, headers={"Authorization": "Bearer nope"}).status_code \
        == 401
    invoked = ml.online_endpoints.invoke("titanic-prod", deployment_name="blue",
                                         request_file=str(_write(tmp_path / "req.json", PASSENGER)))
    assert json.loads(invoked)["prediction"] == 1
    assert {"titanic-prod", "titanic-staging"} <= {e.name for e in ml.online_endpoints.list()}

    # --- someone changes the traffic in the Studio -----------------------------------------------------------------
    fake_aml.set_traffic_outside("titanic-prod", {"blue": 0, "green": 100})
    assert ml.online_endpoints.get("titanic-prod").traffic == {"blue": 0, "green": 100}
    assert {requests.post(endpoint.scoring_uri, json=PASSENGER, headers=auth).headers["azureml-model-deployment"]
            for _ in range(5)} == {"green"}

    # --- delete: a deployment with traffic is refused, as in the service ------------------------------------------
    with pytest.raises(HttpResponseError, match="traffic"):
        ml.online_deployments.begin_delete("green", "titanic-prod")
    endpoint.traffic = {"blue": 100, "green": 0}
    ml.online_endpoints.begin_create_or_update(endpoint)
    wait_for(lambda: ml.online_endpoints.get("titanic-prod").traffic.get("green") == 0, 10, "green drained")
    green_pid = fake_aml.workspace.servers[("titanic-prod", "green")].pid()
    ml.online_deployments.begin_delete("green", "titanic-prod")
    wait_for(lambda: [d.name for d in ml.online_deployments.list("titanic-prod")] == ["blue"], 10, "green deleted")
    wait_for(lambda: not _alive(green_pid), 10, "green's server to stop")
    ml.online_endpoints.begin_delete("titanic-prod")
    wait_for(lambda: "titanic-prod" not in {e.name for e in ml.online_endpoints.list()}, 10, "endpoint deleted")
    with pytest.raises(ResourceNotFoundError):
        ml.online_endpoints.get("titanic-prod")
    assert requests.post(endpoint.scoring_uri, json=PASSENGER, headers=auth).status_code == 404

    # --- what the SDK sent ----------------------------------------------------------------------------------------
    sent = {(r.method, short(r.path), r.api_version) for r in fake_aml.requests if r.host == "management.azure.com"}
    assert ("PUT", "/onlineEndpoints/titanic-prod/deployments/blue", "2023-04-01-preview") in sent
    assert ("PUT", "/onlineEndpoints/titanic-prod", "2022-02-01-preview") in sent
    assert ("PUT", "/models/titanic/versions/3", "2023-08-01-preview") in sent
    refused = [(r.method, short(r.path)) for r in fake_aml.requests  # and no InvalidApiVersionParameter
               if r.status == 400 and r.host == "management.azure.com"]
    assert refused == [("DELETE", "/onlineEndpoints/titanic-prod/deployments/green")]


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def _alive(pid) -> bool:
    return pid is not None and alive(pid)


def test_job_cancel_and_failure(fake_aml, tmp_path):
    ml = client()
    code = small_code(tmp_path, "src", {"job.py": (
        "import os, sys, time\n"
        "print('working', os.environ.get('MODE'), os.environ.get('DJANGO_SETTINGS_MODULE'), flush=True)\n"
        "time.sleep(float(sys.argv[1]))\nsys.exit(int(sys.argv[2]))\n")})
    for name, args in (("sleeper", "60 0"), ("crasher", "0 3")):
        ml.jobs.create_or_update(command(name=name, code=str(code), command=f"python job.py {args}", environment=ENV,
                                         compute="cpu-cluster", environment_variables={"MODE": "fast"}))
    assert len(fake_aml.find("PUT", r"/codes/[^/]+/versions/1$")) == 1  # the same snapshot is reused by its hash
    assert job_status(ml, "crasher")[-1] == "Failed"
    assert "error" not in ml.jobs.get("crasher").properties  # as in the REST CommandJob: the reason is elsewhere
    error = ml.jobs._runs_operations.get_run_details("crasher").error.error.message  # run history, as jobs.stream
    assert "exited with status code 3" in error
    assert "working fast None" in error  # the job's own variables, not the submitter's environment
    wait_for(lambda: ml.jobs.get("sleeper").status == "Running", 10, "sleeper running")
    pid = fake_aml.workspace.runs["sleeper"].process.pid
    ml.jobs.begin_cancel("sleeper")
    assert fake_aml.find("POST", r"/jobs/sleeper/cancel$")[0].api_version == "2023-04-01-preview"
    assert job_status(ml, "sleeper")[-1] == "Canceled"
    assert not _alive(pid)
    with pytest.raises(HttpResponseError, match="Compute 'gpu-cluster' was not found"):
        ml.jobs.create_or_update(command(name="nowhere", code=str(code), command="python job.py 0 0", environment=ENV,
                                         compute="gpu-cluster"))


BROKEN_SCORE = "def init():\n    raise RuntimeError('model file is corrupt')\n\ndef run(raw):\n    return raw\n"
ECHO_SCORE = ("import json, os\n\ndef init():\n    pass\n\n"
              "def run(raw):\n    return {'echo': json.loads(raw), 'greeting': os.environ.get('GREETING')}\n")


def test_deployment_fails_or_is_held(fake_aml, tmp_path):
    ml = client()
    model_dir = small_code(tmp_path, "model", {"weights.txt": "0.5"})
    model = ml.models.create_or_update(Model(name="tiny", path=str(model_dir), type="custom_model"))
    assert model.version == "1" and "/paths/LocalUpload/" in model.path  # uploaded through the datastore's account
    assert fake_aml.find("PUT", r"^/azureml-blobstore-fake/LocalUpload/.*/weights\.txt$")
    ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="tiny-ep", auth_mode="key"))
    endpoint_ready(ml, "tiny-ep")

    def deployment(name, folder, score):
        return ManagedOnlineDeployment(
            name=name, endpoint_name="tiny-ep", model=f"azureml:tiny:{model.version}", environment=ENV,
            code_configuration=CodeConfiguration(code=str(small_code(tmp_path, folder, {"score.py": score})),
                                                 scoring_script="score.py"),
            instance_type="Standard_DS3_v2", instance_count=1, environment_variables={"GREETING": "hello"})

    fake_aml.hold_deployments = True
    broken = ml.online_deployments.begin_create_or_update(deployment("broken", "broken", BROKEN_SCORE))
    held = ml.online_deployments.begin_create_or_update(deployment("held", "held", ECHO_SCORE))
    wait_for(lambda: fake_aml.workspace.servers[("tiny-ep", "held")].healthy(), 30, "held server answering")
    time.sleep(0.5)
    assert ml.online_deployments.get("held", "tiny-ep").provisioning_state == "Creating"
    assert not held.done()
    fake_aml.hold_deployments = False
    assert held.result(timeout=30).provisioning_state == "Succeeded"
    endpoint = ml.online_endpoints.get("tiny-ep")
    endpoint.traffic = {"held": 100}
    ml.online_endpoints.begin_create_or_update(endpoint).result(timeout=10)
    answer = requests.post(endpoint.scoring_uri, json={"x": 1}, timeout=30, headers={
        "Authorization": f"Bearer {ml.online_endpoints.get_keys('tiny-ep').secondary_key}"})
    assert answer.json() == {"echo": {"x": 1}, "greeting": "hello"}
    with pytest.raises(HttpResponseError, match="User container has crashed"):
        broken.result(timeout=30)
    assert ml.online_deployments.get("broken", "tiny-ep").provisioning_state == "Failed"
    assert "model file is corrupt" in ml.online_deployments.get_logs("broken", "tiny-ep", lines=200)
    assert "storage initializer" in ml.online_deployments.get_logs("broken", "tiny-ep", lines=5,
                                                                   container_type="storage-initializer")

    pids = fake_aml.processes()
    assert pids
    fake_aml.stop()
    assert not [pid for pid in pids if _alive(pid)]


def test_injected_failures(fake_aml, tmp_path):
    ml = client()
    fake_aml.inject("GET", r"/computes/cpu-cluster$", 404)
    with pytest.raises(ResourceNotFoundError):
        ml.compute.get("cpu-cluster")
    assert ml.compute.get("cpu-cluster").name == "cpu-cluster"

    fake_aml.inject("GET", r"/computes/aks-prod$", 429, headers={"Retry-After": "1"})
    started = time.monotonic()
    assert ml.compute.get("aks-prod").name == "aks-prod"  # azure-core retries after the Retry-After
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in fake_aml.find("GET", r"/computes/aks-prod$")] == [429, 200]

    fake_aml.inject("GET", r"/workspaces/ws-test$", 503)
    assert ml.workspaces.get(WS).name == WS  # retried once
    fake_aml.inject("*", r"/models/tiny/versions/1$", 409,
                    body={"error": {"code": "Conflict", "message": "Model version tiny:1 is being modified."}})
    with pytest.raises(ResourceExistsError, match="being modified"):
        ml.models.create_or_update(Model(name="tiny", version="1", path="azureml://datastores/workspaceblobstore/"
                                                                         "paths/somewhere/", type="custom_model"))

    fake_aml.fail_operation(r"/onlineEndpoints/doomed$", "Quota exceeded for Standard_DS3_v2 in westeurope.",
                            code="QuotaExceeded")
    poller = ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="doomed", auth_mode="key"))
    with pytest.raises(HttpResponseError, match="Quota exceeded") as raised:
        poller.result(timeout=10)
    assert raised.value.error.code == "QuotaExceeded"
    assert ml.online_endpoints.get("doomed").provisioning_state == "Failed"

    fake_aml.inject("POST", r"/onlineEndpoints/doomed/listKeys$", 500)
    assert ml.online_endpoints.get_keys("doomed").primary_key  # azure-core retries a POST on 500/503/504 too
    impatient = MLClient(FakeCredential(), SUB, RG, WS, retry_total=2, retry_backoff_factor=0.05)
    fake_aml.inject("POST", r"/onlineEndpoints/doomed/listKeys$", 500, times=3)
    with pytest.raises(HttpResponseError) as raised:
        impatient.online_endpoints.get_keys("doomed")
    assert raised.value.status_code == 500 and "Injected 500" in str(raised.value)


def test_blob_put_403_raises_instead_of_hanging(fake_aml, tmp_path):
    ml = client()  # show_progress=True: the SDK reads the upload futures and raises (G3)
    code = small_code(tmp_path, "src", {f"part{i}.py": f"print({i})\n" for i in range(3)})
    fake_aml.inject("PUT", r"/part\d\.py$", 403, host_regex=r"^fakestore\.blob\.core\.windows\.net$")
    outcome = {}

    def submit():
        try:
            ml.jobs.create_or_update(command(name="upload-fails", code=str(code), command="python part0.py",
                                             environment=ENV, compute="cpu-cluster"))
            outcome["result"] = "submitted"
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome["result"] = exc

    thread = threading.Thread(target=submit, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the upload hung (G3)"
    assert isinstance(outcome["result"], HttpResponseError) and outcome["result"].status_code == 403
    assert not fake_aml.find("PUT", r"/jobs/upload-fails$")


def test_serving_restores_process_state(tmp_path):
    before = {k: os.environ.get(k) for k in ("REQUESTS_CA_BUNDLE", dns.ENV_PORT, CLOUD_ENV)}
    getaddrinfo = socket.getaddrinfo
    with pytest.MonkeyPatch.context() as monkeypatch, serving(monkeypatch) as fake:
        assert socket.getaddrinfo("management.azure.com", 443)[0][4] == ("127.0.0.1", fake.port)
        assert socket.getaddrinfo("fakestore.blob.core.windows.net", 443)[0][4] == ("127.0.0.1", fake.port)
        assert socket.getaddrinfo("localhost", 8000)[0][4][1] == 8000  # anything else resolves as before
        ml = client()
        assert os.environ[CLOUD_ENV] == "AzureCloud"  # MLClient sets it process-wide (G1)
        code = small_code(tmp_path, "src", {"sleep.py": "import time\ntime.sleep(60)\n"})
        ml.jobs.create_or_update(command(name="forever", code=str(code), command="python sleep.py", environment=ENV,
                                         compute="cpu-cluster"))
        wait_for(lambda: ml.jobs.get("forever").status == "Running", 10, "job running")
        pid = fake.workspace.runs["forever"].process.pid
        port, root = fake.port, fake.root
    assert {k: os.environ.get(k) for k in before} == before
    assert socket.getaddrinfo is getaddrinfo and dns.installed_port() is None
    assert not _alive(pid) and not root.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_worker_subprocess_reaches_the_fake(fake_aml):
    """What a Celery worker started by a test does: install_from_env() from the environment fake.env() gives."""
    script = ("from tests.fakeaml import dns, FakeCredential, SUB, RG, WS\n"
              "assert dns.install_from_env()\n"
              "from azure.ai.ml import MLClient\n"
              "print(MLClient(FakeCredential(), SUB, RG, WS).compute.get('aks-prod').type)\n")
    env = {**os.environ, **fake_aml.env()}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("kubernetes")
    assert fake_aml.find("GET", r"/computes/aks-prod$")
