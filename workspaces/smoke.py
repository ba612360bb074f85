"""The smoke test of a real Azure ML workspace (`manage.py azureml_smoke`): what a user runs first on a new workspace.

It drives the portal's own azureml backend, with the saved workspace settings, through everything the portal will do
there, and checks what Azure reports back rather than what was sent. Everything it creates is named
`<prefix>-…` and removed at the end (endpoints with their deployments); jobs and the registered model version stay,
as Azure ML keeps jobs and a model version can only be archived. Each check says what it proves.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import requests

from deployments.models import DeploymentProfile
from deployments.verification import stress
from mlopsportal import examples
from mlopsportal.backends import BackendError
from mlopsportal.backends.azureml import AzureMLBackend
from mlopsportal.backends.base import DeploymentState, ServingSpec

SMALL = {"n_estimators": 20, "cv_folds": 2}
MISSING_ENVIRONMENT = "azureml:AzureML-mlops-portal-smoke-missing@latest"
PASSENGER = {"Pclass": 1, "Sex": 0, "Age": 38, "SibSp": 1, "Parch": 0, "Fare": 71.2833, "Embarked": 2}


class CheckFailed(Exception):
    pass


@dataclass
class Check:
    name: str
    proves: str
    ok: bool | None = None  # None: not run (an earlier check it needs failed)
    found: str = ""
    seconds: float = 0.0


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    cleanup: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def lines(self) -> list[str]:
        out = []
        for c in self.checks:
            mark = {True: "PASS", False: "FAIL", None: "SKIP"}[c.ok]
            out.append(f"{mark}  {c.name} ({c.seconds:.1f} s)")
            out.append(f"      proves: {c.proves}")
            if c.found:
                out.extend(f"      {line}" for line in c.found.splitlines()[:12])
        out.extend(f"cleanup: {line}" for line in self.cleanup)
        passed = sum(1 for c in self.checks if c.ok)
        out.append(f"{passed} of {len(self.checks)} checks passed.")
        return out


class Smoke:
    def __init__(self, backend: AzureMLBackend, *, prefix: str, poll_seconds: float = 10, timeout_seconds: float = 1800,
                 stress_seconds: float = 10, say: Callable[[str], None] = lambda line: None):
        self.backend, self.prefix, self.poll, self.timeout = backend, prefix, poll_seconds, timeout_seconds
        self.stress_seconds, self.say = stress_seconds, say
        self.report = Report()
        self.context: dict = {}
        self.endpoints: list[str] = []

    # --- the checks, in order ---------------------------------------------------------------------------------
    def run(self) -> Report:
        steps = [
            ("Test connection", "the settings, the credential, the workspace and both computes are usable, and the "
                                "cluster's instance types are readable", self.connection, ()),
            ("Training job and registration", "a command job runs the example on the training cluster, its outputs "
                                              "are readable, and the model registers from the job's output",
             self.training, ("Test connection",)),
            ("A job that must fail (missing environment)", "a job that fails before its script starts comes back "
                                                           "failed with Azure's reason, not a blank", self.failing_job,
             ("Test connection",)),
            ("Staging deployment, called by deployment header", "a staging deployment becomes healthy and answers "
                                                                "through the endpoint with the key and the "
                                                                "azureml-model-deployment header", self.staging,
             ("Training job and registration",)),
            ("Kubernetes, autoscale off, 3 instances", "Azure runs a fixed profile with Default scale settings and 3 "
                                                       "instances (as it reports them), not autoscaled", self.fixed,
             ("Training job and registration",)),
            ("Kubernetes, autoscale 3 to 6", "Azure reports TargetUtilization 3 to 6 as the profile says",
             self.autoscaled, ("Kubernetes, autoscale off, 3 instances",)),
            ("Kubernetes, over the instance type", "a deployment larger than its instance type is refused by the "
                                                   "portal before sending, and Azure's own reason is shown when sent",
             self.oversized, ("Kubernetes, autoscale off, 3 instances",)),
            ("Traffic 10 → 50 → 100", "traffic updates are applied by Azure in turn and the endpoint answers at each",
             self.traffic, ("Kubernetes, autoscale 3 to 6",)),
            ("Stress at concurrency 2", "the endpoint takes concurrent load through its public URL with no errors",
             self.stress, ("Traffic 10 → 50 → 100",)),
        ]
        try:
            for name, proves, step, needs in steps:
                check = Check(name, proves)
                self.report.checks.append(check)
                if any(not c.ok for c in self.report.checks if c.name in needs):
                    check.found = "not run: " + ", ".join(needs) + " did not pass"
                    self.say(f"SKIP  {name}")
                    continue
                self.say(f"....  {name}")
                started = time.monotonic()
                try:
                    check.found = step() or ""
                    check.ok = True
                except (CheckFailed, BackendError, requests.RequestException) as exc:
                    check.ok, check.found = False, str(exc)
                check.seconds = time.monotonic() - started
                self.say(f"{'PASS' if check.ok else 'FAIL'}  {name} ({check.seconds:.1f} s)")
        finally:
            self.clean_up()
        return self.report

    def connection(self) -> str:
        results = self.backend.connection_check()
        found = "\n".join(f"{'ok' if r.ok else 'FAILED'} {r.check}: {r.message}" for r in results)
        if not results or not all(r.ok for r in results):
            raise CheckFailed(found)
        aks = next(r for r in results if r.check == "AKS compute")
        self.context["instance_types"] = aks.facts.get("instance_types") or {}
        return found

    def training(self) -> str:
        job = f"{self.prefix}-train"
        status = self._train(job, self.backend)
        if status.state != "succeeded":
            raise CheckFailed(f"job {job} {status.state}: {status.error}")
        model = f"{self.prefix}-titanic"
        artifact = self.backend.model_register(job_id=job, model_name=model, version=1)
        self.context.update(job=job, model_uri=artifact.uri)
        return (f"job {job}: {json.dumps(status.metrics)[:200]}\nregistered {artifact.uri} "
                f"({len(artifact.files)} files, {artifact.size} bytes)")

    def failing_job(self) -> str:
        config = replace(self.backend.config(), training_environment=MISSING_ENVIRONMENT)
        broken = AzureMLBackend(self.backend.root.parent, config_provider=lambda: config)
        job = f"{self.prefix}-bad-env"
        try:
            status = self._train(job, broken)
        except BackendError as exc:  # refused at submission: that is Azure's reason too
            return f"refused at submission: {exc}"
        if status.state != "failed":
            raise CheckFailed(f"job {job} {status.state}; it should have failed")
        reason = status.error.split("\n", 1)[0]
        if reason.strip() in ("The Azure ML job ended Failed.", ""):
            raise CheckFailed(f"job {job} failed without a reason: {status.error}")
        return reason

    def staging(self) -> str:
        ref = self._deploy("stg", "staging", "blue", self._settings())
        return self._call(ref["endpoint"], deployment="blue")

    def fixed(self) -> str:
        ref = self._deploy("prod", "production", "blue", self._settings(instance_count=3))
        deployment = self._azure_deployment(ref)
        scale, capacity = deployment.scale_settings, deployment.instance_count
        kind = str(getattr(scale, "type", "")).lower()
        if kind != "default" or capacity != 3:
            raise CheckFailed(f"Azure reports scale settings {kind or 'none'} with {capacity} instances; "
                              "expected default with 3")
        self.context["blue"] = ref
        return f"Azure reports {kind} scale settings, {capacity} instances, instance type {deployment.instance_type}"

    def autoscaled(self) -> str:
        ref = self._deploy("prod", "production", "green", self._settings(
            instance_count=3, autoscale_enabled=True, min_instances=3, max_instances=6, target_utilization=70))
        scale = self._azure_deployment(ref).scale_settings
        found = (str(getattr(scale, "type", "")).lower(), getattr(scale, "min_instances", None),
                 getattr(scale, "max_instances", None))
        if found != ("target_utilization", 3, 6):
            raise CheckFailed(f"Azure reports {found}; expected target_utilization 3 to 6")
        self.context["green"] = ref
        return f"Azure reports {found[0]} from {found[1]} to {found[2]} instances"

    def oversized(self) -> str:
        config = self.backend.config()
        instance_type = config.instance_type_for({})
        limits = (self.context.get("instance_types") or {}).get(instance_type) or {}
        cores = (limits.get("cpu") or 2) * 4
        settings = self._settings(cpu_request=min(cores, 64))
        problems = self.backend.serving_problems(settings, "production")
        if not problems:
            raise CheckFailed(f"the portal did not refuse {cores:g} CPU on instance type {instance_type}")
        ref = self._deploy("prod", "production", "huge", settings, unchecked=True, must_fail=True)
        return f"the portal: {' '.join(p.message for p in problems)}\nAzure: {ref['error']}"

    def traffic(self) -> str:
        endpoint = self.context["blue"]["endpoint"]
        seen = []
        for percent in (10, 50, 100):
            split = {"blue": 100 - percent, "green": percent}
            self.backend.endpoint_traffic_apply(endpoint_name=endpoint, traffic=split)
            self._until(lambda s=split: self.backend.endpoint_traffic_applied(endpoint_name=endpoint, traffic=s),
                        f"Azure to route {percent}% to green", status=lambda: self.backend.endpoint_traffic_status(
                            endpoint))
            seen.append(f"green {percent}%: {self._call(endpoint)}")
        return "\n".join(seen)

    def stress(self) -> str:
        endpoint = self.context["blue"]["endpoint"]
        access = self.backend.endpoint_access(endpoint)
        payloads = json.loads((examples.get_example("titanic").path / "tests" / "stress_payloads.json").read_text())
        plan = stress.Plan(url=access.scoring_url, payloads=[json.dumps(p).encode() for p in payloads], concurrency=2,
                           duration_s=self.stress_seconds, headers={"Authorization": f"Bearer {access.key}"})
        summary = stress.run_blocking(plan).summary()
        figures = (f"{summary['requests']} requests, {summary['throughput_rps']} req/s, p50 {summary['p50_ms']} ms, "
                   f"p95 {summary['p95_ms']} ms, errors {summary['error_rate']:.2%} {summary['by_status']}")
        if not summary["requests"] or summary["failures"]:
            raise CheckFailed(figures)
        return figures

    # --- helpers ----------------------------------------------------------------------------------------------
    def _until(self, done: Callable[[], bool], what: str, status: Callable[[], str] | None = None) -> None:
        deadline = time.monotonic() + self.timeout
        while not done():
            if time.monotonic() > deadline:
                raise CheckFailed(f"timed out after {self.timeout:g} s waiting for {what}"
                                  + (f": {status()}" if status else ""))
            time.sleep(self.poll)

    def _train(self, job: str, backend: AzureMLBackend):
        backend.training_submit(job_name=job, example=examples.get_example("titanic"), params=SMALL,
                                compute_target=backend.config().training_cluster, experiment_name=f"{self.prefix}",
                                timeout_seconds=int(self.timeout))
        statuses = []

        def finished():
            statuses.append(backend.training_status(job))
            return statuses[-1].finished

        self._until(finished, f"job {job}")
        return statuses[-1]

    @staticmethod
    def _settings(**overrides) -> dict:
        """A profile's settings as the portal sends them (the seed's resources, small enough for any cluster)."""
        profile = DeploymentProfile(name="smoke", cpu_request=0.5, memory_request_gb=1, request_timeout_ms=60_000,
                                    max_concurrent_requests_per_instance=2, max_queue_wait_ms=180_000)
        for name, value in overrides.items():
            setattr(profile, name, value)
        return profile.serving_settings()

    def _deploy(self, suffix: str, stage: str, name: str, settings: dict, *, unchecked=False, must_fail=False) -> dict:
        endpoint = f"{self.prefix}-{suffix}"
        if endpoint not in self.endpoints:
            self.endpoints.append(endpoint)
        spec = ServingSpec(endpoint_name=endpoint, deployment_name=name, artifact_uri=self.context["model_uri"],
                           code_job_id=self.context["job"], scoring_script="score.py", settings=settings, stage=stage)
        ref = dict(self.backend.deployment_create(spec).ref)
        if unchecked:
            ref["unchecked"] = True
        states = []

        def settled():
            try:
                state = self.backend.deployment_advance(ref)
            except BackendError as exc:
                if not exc.permanent:
                    return False
                state = DeploymentState("failed", error=str(exc))
            if state.ref:
                ref.update(state.ref)
            states.append(state)
            return state.state != "starting"

        self._until(settled, f"deployment {name} on {endpoint}")
        state = states[-1]
        if must_fail:
            if state.state == "healthy":
                raise CheckFailed(f"deployment {name} on {endpoint} became healthy; Azure should have refused it")
            return {**ref, "error": state.error.split("\n", 1)[0]}
        if state.state != "healthy":
            raise CheckFailed(f"deployment {name} on {endpoint} failed: {state.error}")
        return ref

    def _azure_deployment(self, ref: dict):
        ml = self.backend.client()
        return ml.online_deployments.get(ref["deployment"], ref["endpoint"])

    def _call(self, endpoint: str, deployment: str | None = None) -> str:
        access = self.backend.endpoint_access(endpoint)
        headers = {"Authorization": f"Bearer {access.key}", "Content-Type": "application/json"}
        if deployment:
            headers["azureml-model-deployment"] = deployment
        response = requests.post(access.scoring_url, data=json.dumps(PASSENGER), headers=headers, timeout=60)
        if response.status_code != 200 or "prediction" not in response.text:
            raise CheckFailed(f"{access.scoring_url} answered HTTP {response.status_code}: {response.text[:300]}")
        served = response.headers.get("azureml-model-deployment", "")
        return f"HTTP 200 from {served or 'the endpoint'}: {response.text[:120]}"

    def clean_up(self) -> None:
        if not self.endpoints:
            return
        ml = self.backend.client()
        for endpoint in self.endpoints:
            try:
                ml.online_endpoints.begin_delete(name=endpoint)
                self.report.cleanup.append(f"deleting endpoint {endpoint} and its deployments")
            except Exception as exc:  # noqa: BLE001 - say what is left, whatever went wrong
                self.report.cleanup.append(f"could not delete endpoint {endpoint}: {exc}; delete it in the studio")
        if "model_uri" in self.context:
            self.report.cleanup.append(f"kept {self.context['model_uri']} and the jobs named {self.prefix}-* "
                                       "(Azure ML keeps jobs; archive the model version in the studio if unwanted)")
