"""Capacity tests run for real: a real worker steps the load on the Titanic model served by Azure ML's inference
server behind the router, finds the knee and checks it; a worker killed in the middle of a step costs that step
only (its lease runs out, the resume queues the test again, a new worker measures the step anew)."""
import pytest
from django.urls import reverse

from deployments.models import CapacityTest
from deployments.serving import services
from deployments.verification import capacity
from deployments.verification import services as verification
from tests.conftest import wait_for

from .conftest import make_version, wait_healthy
from .test_promotion import SIX

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def stage(engineer, staging, titanic_outputs):
    """Titanic served on staging (a worker must be running to start it)."""
    version = make_version(engineer, titanic_outputs)
    return wait_healthy(services.deployment_create(endpoint=staging, version=version, name="cap", actor=engineer))


@pytest.fixture
def staged(worker, router, engineer, staging, titanic_outputs):
    return stage(engineer, staging, titanic_outputs)


def finished(test, timeout=150):
    def done():
        test.refresh_from_db()
        return test.status != CapacityTest.Status.RUNNING
    wait_for(done, timeout=timeout, message=f"{test} to finish")
    return test


def test_a_capacity_test_finds_the_knee_of_titanic(worker, staged, engineer, client):
    test = verification.capacity_test_start(deployment=staged, payloads=SIX, p95_slo_ms=150, step_seconds=2,
                                            start_rps=10, max_rps=2000, max_in_flight=32, actor=engineer)
    test = finished(test)
    assert test.status == CapacityTest.Status.DONE, test.detail
    roles = [s["role"] for s in test.steps]
    assert roles[0] == capacity.CLIMB and len(roles) >= 4, test.steps
    assert test.knee_rps and test.knee_rps >= 10, test.steps
    assert any(not s["met"] for s in test.steps), "the load never reached the knee"
    assert test.per_instance_rps == round(round(test.knee_rps * capacity.SUSTAIN_MARGIN, 2) / test.instances, 2)
    assert roles[-1] == capacity.CONFIRM and test.confirmed is not None
    assert all(s["requests"] > 0 for s in test.steps)
    client.force_login(engineer)
    page = client.get(test.get_absolute_url()).content.decode()
    assert f"knee {test.knee_rps:g} req/s" in page and page.count("<svg") >= 2
    listing = client.get(reverse("deployments:capacity_list")).content.decode()
    assert f"#{test.pk}" in listing


def test_a_worker_killed_in_a_step_costs_that_step_only(start_worker, router, engineer, staging, titanic_outputs):
    first = start_worker(MLOPS_CAPACITY_LEASE_GRACE_SECONDS="2")
    staged = stage(engineer, staging, titanic_outputs)
    test = verification.capacity_test_start(deployment=staged, payloads=SIX, p95_slo_ms=150, step_seconds=3,
                                            start_rps=10, max_rps=40, max_in_flight=16, actor=engineer)

    def in_second_step():
        test.refresh_from_db()
        return len(test.steps) == 1 and test.leased_until is not None
    wait_for(in_second_step, timeout=60, interval=0.1, message="the second step to start")
    first.kill()
    test.refresh_from_db()
    assert test.status == CapacityTest.Status.RUNNING and test.leased_until is not None
    assert verification.capacity_tests_resume() == []  # the dead worker's lease has not run out yet
    start_worker(MLOPS_CAPACITY_LEASE_GRACE_SECONDS="2")
    wait_for(lambda: verification.capacity_tests_resume() == [test.pk], timeout=30, interval=0.5,
             message="the resume to see the lapsed lease")
    test = finished(test, timeout=120)
    assert test.status == CapacityTest.Status.DONE, test.detail
    rates = [s["rate_rps"] for s in test.steps]
    assert rates[:3] == [10, 16, 25.6], rates  # the step the worker died in was measured once, by the new worker
    assert len(rates) == len(set(rates)), rates


def test_a_removed_deployment_stops_the_test(worker, staged, engineer):
    test = verification.capacity_test_start(deployment=staged, payloads=SIX, p95_slo_ms=150, step_seconds=2,
                                            start_rps=10, max_rps=2000, max_in_flight=16, actor=engineer)
    wait_for(lambda: CapacityTest.objects.get(pk=test.pk).steps, timeout=60, message="a first step")
    services.deployment_delete(deployment=staged, actor=engineer, why="done with it")
    test = finished(test)
    assert test.status == CapacityTest.Status.STOPPED, test.detail
    assert "deployment cap was" in test.detail and "nothing left to load" in test.detail
