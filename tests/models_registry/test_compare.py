"""Comparing versions: what differs is marked, stress figures are judged against run-to-run noise, bad picks are
refused in words, and the page's queries do not grow with the versions compared."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from deployments.models import Deployment, DeploymentProfile, Endpoint, FunctionalTestRun, StressRun
from deployments.verification.selectors import figure_change
from tests.models_registry.factories import make_model

pytestmark = pytest.mark.django_db
PLAN = {"concurrency": 4, "duration_seconds": 10, "request_count": None}


@pytest.fixture
def titanic(engineer):
    model = make_model(engineer, name="titanic", versions=4, key_metric="cv_accuracy")
    endpoint = Endpoint.objects.create(name="t-staging", stage="staging",
                                       profile=DeploymentProfile.objects.create(name="small"))
    return model, endpoint


def _stress(endpoint, version, p95, per_second, name=None, status="passed", rps=50.0):
    deployment = Deployment.objects.create(endpoint=endpoint, name=name or f"d{version.version}",
                                           model_version=version, status="deleted")
    series = [{"t": t, "ok": 50, "failed": 0, "p50": 10.0, "p95": value, "p99": value * 1.2}
              for t, value in enumerate(per_second)]
    return StressRun.objects.create(
        deployment=deployment, status=status, plan=PLAN, series=series,
        latency_buckets=[{"upto_ms": 10.0, "count": 60}, {"upto_ms": p95, "count": 40}],
        summary={"requests": 500, "failures": 0, "error_rate": 0.0, "throughput_rps": rps, "p50_ms": 10.0,
                 "p95_ms": p95, "p99_ms": p95 * 1.2})


def test_a_difference_within_run_to_run_noise_is_not_called_worse(titanic):
    model, endpoint = titanic
    v1, v2, v3, v4 = model.versions.order_by("version")
    steady = _stress(endpoint, v1, 30.0, [29.5, 30.5] * 10)
    assert figure_change("p95_ms", _stress(endpoint, v2, 32.0, [31.5, 32.5] * 10), steady,
                         higher_is_better=False) == ("+7%", "within noise")  # under the 10% tolerance
    assert figure_change("p95_ms", _stress(endpoint, v3, 45.0, [44.5, 45.5] * 10), steady,
                         higher_is_better=False) == ("+50%", "worse")
    # +50% too, but over three seconds that swing from 5 to 85 ms: the run's own spread covers it.
    assert figure_change("p95_ms", _stress(endpoint, v4, 45.0, [5.0, 85.0, 45.0]), steady,
                         higher_is_better=False) == ("+50%", "within noise")
    assert figure_change("throughput_rps", _stress(endpoint, v4, 30.0, [30.0] * 5, name="fast", rps=80.0), steady,
                         higher_is_better=True) == ("+60%", "better")


def test_compare_marks_what_differs(titanic, manager_client):
    model, endpoint = titanic
    v1, v2, *_ = model.versions.order_by("version")
    v2.params = {"p": 2, "max_depth": 8}
    v2.dataset_sha256 = "d" * 64
    v2.save()
    v1.dataset_sha256 = "d" * 64
    v1.save()
    _stress(endpoint, v1, 30.0, [29.5, 30.5] * 10)
    _stress(endpoint, v2, 45.0, [44.5, 45.5] * 10)
    FunctionalTestRun.objects.create(deployment=v1.deployments.get(), status="passed",
                                     results=[{"case": "seed passenger survives", "passed": True, "reason": ""}])
    FunctionalTestRun.objects.create(deployment=v2.deployments.get(), status="failed", results=[
        {"case": "seed passenger survives", "passed": False, "reason": "prediction is 0, expected 1"}])
    response = manager_client.get(reverse("models_registry:version_compare", args=["titanic"]), {"v": ["1", "2"]})
    assert response.status_code == 200
    page = response.content.decode()
    assert '<tr class="differs" data-testid="param-p">' in page  # 1 vs 2
    assert '<tr class="differs" data-testid="param-max_depth">' in page  # absent vs 8
    context = response.context
    assert [r.label for r in context["metrics"]][0] == "cv_accuracy"
    assert context["metrics"][0].changes == ["", "+0.01"] and context["metrics"][0].differs
    other = next(r for r in context["metrics"] if r.label == "other")
    assert not other.differs
    data = next(r for r in context["checks"] if r.label.startswith("Data"))
    assert not data.differs and next(r for r in context["checks"] if r.label == "Training run").values == [None, None]
    p95 = next(r for r in context["figures"] if r.label.startswith("p95"))
    assert p95.values == [30.0, 45.0] and p95.verdicts == ["", "worse"]
    assert "prediction is 0, expected 1" in page and context["functional_rows"][0].differs
    assert "p95 latency over time, by version" in page and "Latency distribution, by version" in page


@pytest.mark.parametrize("asked, message", [
    ([], "Pick at least two versions"), (["1"], "Pick at least two versions"), (["1", "1"], "at least two"),
    (["1", "x"], "is not a version number"), (["1", "9"], "has no version v9"),
    ([str(n) for n in range(1, 8)], "at most 6 versions"), (["1", "9" * 30], "is not a version number"),
])
def test_bad_picks_are_refused_in_words(titanic, manager_client, asked, message):
    response = manager_client.get(reverse("models_registry:version_compare", args=["titanic"]), {"v": asked})
    assert message in response.content.decode() and response.status_code in (200, 400)


def test_queries_do_not_grow_with_the_versions_compared(titanic, manager_client):
    model, endpoint = titanic
    for version in model.versions.all():
        _stress(endpoint, version, 30.0, [30.0] * 5)
    url = reverse("models_registry:version_compare", args=["titanic"])
    manager_client.get(url, {"v": ["1", "2"]})

    def count(asked):
        with CaptureQueriesContext(connection) as captured:
            assert manager_client.get(url, {"v": asked}).status_code == 200
        return len(captured)

    assert count(["1", "2"]) == count(["1", "2", "3", "4"])


def test_the_versions_table_picks_versions_to_compare(titanic, manager_client):
    page = manager_client.get(reverse("models_registry:model_detail", args=["titanic"])).content.decode()
    assert 'action="/models/titanic/compare/"' in page and 'name="v" value="3"' in page


def test_versions_are_compared_oldest_first_whatever_the_order_asked(titanic, manager_client):
    response = manager_client.get(reverse("models_registry:version_compare", args=["titanic"]), {"v": ["3", "1"]})
    assert response.context["labels"] == ["v1", "v3"]
