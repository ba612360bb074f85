"""What the in-memory fake backend offers beyond the contract: its knobs, failure injection, the platform's rules
it enforces, and one store for every instance and thread."""
import threading

import pytest

from mlopsportal import examples
from mlopsportal.backends import get_backend
from mlopsportal.backends.base import BUSY, BackendError, ConnectionCheck, ServingSpec
from mlopsportal.backends.fake import FakeBackend, reset


@pytest.fixture(autouse=True)
def fresh():
    reset()
    yield
    reset()


def submit(backend, job_name="job-1"):
    return backend.training_submit(job_name=job_name, example=examples.get_example("scripted"), params={},
                                   compute_target="fake", experiment_name="e", timeout_seconds=60)


def spec(name="blue", endpoint="ep", uri="fake:m/1", job="job-1"):
    return ServingSpec(endpoint_name=endpoint, deployment_name=name, artifact_uri=uri, code_job_id=job,
                       scoring_script="score.py", settings={})


def trained(backend, job_name="job-1", version=1):
    submit(backend, job_name)
    while not backend.training_status(job_name).finished:
        pass
    return backend.model_register(job_id=job_name, model_name="m", version=version)


def healthy(backend, deployment_spec):
    ref = backend.deployment_create(deployment_spec).ref
    while backend.deployment_advance(ref).state == "starting":
        pass
    return ref


def test_it_is_registered_and_every_instance_shares_one_store():
    assert isinstance(get_backend("fake"), FakeBackend)
    submit(FakeBackend())
    assert get_backend("fake").training_status("job-1").state == "running"
    reset()
    with pytest.raises(BackendError, match="no job job-1"):
        FakeBackend().training_status("job-1")


def test_jobs_finish_after_the_configured_number_of_polls():
    FakeBackend.configure(training_polls=3, metrics={"auc": 0.9})
    backend = FakeBackend()
    submit(backend)
    assert [backend.training_status("job-1").state for _ in range(4)] == ["running"] * 3 + ["succeeded"]
    assert backend.training_status("job-1").metrics == {"auc": 0.9}
    assert submit(backend).job_id == "job-1"  # a retried submit finds its job


def test_a_method_fails_once_when_told_and_a_job_or_deployment_ends_failed():
    backend = FakeBackend()
    FakeBackend.fail_next("training_submit", BackendError("throttled", permanent=False, retry_after=7))
    with pytest.raises(BackendError) as refused:
        submit(backend)
    assert not refused.value.permanent and refused.value.retry_after == 7
    FakeBackend.fail_next("training", "out of memory")
    submit(backend)
    backend.training_status("job-1")
    assert (backend.training_status("job-1").state, backend.training_status("job-1").error) == ("failed",
                                                                                                 "out of memory")
    trained(backend, "job-2")
    FakeBackend.fail_next("deployment", "crash loop")
    ref = backend.deployment_create(spec(job="job-2")).ref
    assert backend.deployment_advance(ref).state == "starting"
    assert backend.deployment_advance(ref) == backend.deployment_state(ref)
    assert (backend.deployment_state(ref).state, backend.deployment_state(ref).error) == ("failed", "crash loop")
    with pytest.raises(ValueError):
        FakeBackend.fail_next("no_such_call", "x")
    with pytest.raises(TypeError):
        FakeBackend.configure(no_such_knob=1)


def test_traffic_follows_the_platforms_rules_and_may_take_a_while():
    FakeBackend.configure(traffic_polls=2)
    backend = FakeBackend()
    trained(backend)
    ref = healthy(backend, spec())
    with pytest.raises(BackendError, match="do not exist: green"):
        backend.endpoint_traffic_apply(endpoint_name="ep", traffic={"blue": 50, "green": 50})
    with pytest.raises(BackendError, match="add up to 0 or 100"):
        backend.endpoint_traffic_apply(endpoint_name="ep", traffic={"blue": 50})
    backend.endpoint_traffic_apply(endpoint_name="ep", traffic={"blue": 100})
    assert backend.inventory().endpoints[0].state == BUSY
    assert [backend.endpoint_traffic_applied(endpoint_name="ep", traffic={"blue": 100}) for _ in range(3)] == [
        False, False, True]
    assert backend.inventory().endpoints[0].traffic == {"blue": 100}
    with pytest.raises(BackendError, match="still receives 100%"):
        backend.deployment_delete(ref)


def test_a_crashed_deployment_is_revived():
    backend = FakeBackend()
    trained(backend)
    ref = healthy(backend, spec())
    FakeBackend.crash_deployment(ref)
    assert backend.deployment_state(ref).state == "failed"
    assert backend.inventory().endpoints[0].deployments[0].state == "failed"
    revived = backend.deployment_revive(ref, spec())
    assert revived.ref == ref and backend.deployment_state(ref).state == "starting"
    assert backend.deployment_state(ref).state == "healthy"
    assert "restarting" in backend.deployment_logs(ref)


def test_endpoint_access_and_checks_are_configurable():
    backend = FakeBackend()
    trained(backend)
    healthy(backend, spec())
    assert backend.endpoint_access("ep") is None
    FakeBackend.configure(platform_serves=True, checks=[ConnectionCheck("Quota", False, "No cores left.")])
    access = backend.endpoint_access("ep")
    assert access.scoring_url.endswith("/ep/score") and access.key
    assert backend.connection_check() == [ConnectionCheck("Quota", False, "No cores left.")]


def test_threads_share_the_store_without_losing_updates():
    backend = FakeBackend()
    FakeBackend.configure(training_polls=0)
    threads = [threading.Thread(target=trained, args=(backend, f"job-{i}", i)) for i in range(1, 21)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [model] = backend.inventory().models
    assert [v.number for v in model.versions] == list(range(1, 21))
    assert all(v.artifact_uri == f"fake:m/{v.number}" for v in model.versions)
