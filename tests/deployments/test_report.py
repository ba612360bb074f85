"""The evidence report of a promotion: printable HTML, and the same page as a PDF (WeasyPrint) whose text holds the
approver, the functional results and the stress p95; where WeasyPrint cannot load, the page says how to fix it."""
import io
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from deployments.models import (
    Deployment,
    DeploymentProfile,
    Endpoint,
    FunctionalTestRun,
    Promotion,
    PromotionStep,
    StressRun,
)
from tests.models_registry.factories import make_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def promotion(engineer, manager):
    profile = DeploymentProfile.objects.create(name="small")
    staging = Endpoint.objects.create(name="t-staging", stage="staging", profile=profile)
    prod = Endpoint.objects.create(name="t-prod", stage="production", profile=profile)
    version = make_model(engineer, name="titanic", versions=1, key_metric="cv_accuracy").versions.get()
    promotion = Promotion.objects.create(
        version=version, staging_endpoint=staging, production_endpoint=prod, requested_by=engineer,
        approval_required=True, reason="better recall on third class", state="succeeded", decided_by=manager,
        decision="approved", decision_comment="p95 well under the SLO", decided_at=timezone.now(),
        traffic_steps=[10, 50, 100])
    deployment = Deployment.objects.create(endpoint=staging, name="blue", model_version=version, status="deleted")
    FunctionalTestRun.objects.create(deployment=deployment, promotion=promotion, status="passed", results=[
        {"case": "seed passenger survives", "passed": True, "reason": "", "status": 200, "body": '{"prediction": 1}',
         "ms": 4.2}])
    StressRun.objects.create(
        deployment=deployment, promotion=promotion, status="passed",
        plan={"concurrency": 4, "duration_seconds": 10, "shards": 1, "p95_ms_max": 100},
        series=[{"t": t, "ok": 40, "failed": 0, "p50": 10.0, "p95": 23.4, "p99": 30.0} for t in range(10)],
        latency_buckets=[{"upto_ms": 10.0, "count": 200}, {"upto_ms": 25.0, "count": 200}],
        summary={"requests": 400, "failures": 0, "error_rate": 0.0, "throughput_rps": 40.0, "p50_ms": 10.0,
                 "p95_ms": 23.4, "p99_ms": 30.0, "max_ms": 41.0, "by_status": {"200": 400}, "by_exception": {}})
    for position, (kind, label, percent) in enumerate([("functional", "Functional tests", None),
                                                       ("approval", "Approval", None), ("traffic", "10% of traffic", 10)]):
        PromotionStep.objects.create(promotion=promotion, position=position, kind=kind, label=label, percent=percent,
                                     status="succeeded", detail=f"{label} done")
    return promotion


def test_the_report_prints_as_html_and_downloads_as_pdf(promotion, manager_client):
    url = reverse("deployments:promotion_report", args=[promotion.pk])
    html = manager_client.get(url).content.decode()
    for text in ("max-manager", "p95 well under the SLO", "seed passenger survives", "23.4 ms",
                 "better recall on third class", "10% of traffic", "Latency percentiles over time"):
        assert text in html, text

    response = manager_client.get(url, {"format": "pdf"})
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert f'promotion-{promotion.pk}-evidence.pdf' in response["Content-Disposition"]
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    text = " ".join(text.split())
    for expected in ("max-manager", "p95 well under the SLO", "seed passenger survives", "23.4 ms", "passed"):
        assert expected in text, expected
    assert promotion.production_endpoint.key not in text


def test_without_weasyprint_the_page_says_how_to_get_it(promotion, manager_client):
    url = reverse("deployments:promotion_report", args=[promotion.pk])
    with mock.patch.dict("sys.modules", {"weasyprint": None}):  # as on a machine without Pango: the import fails
        response = manager_client.get(url, {"format": "pdf"})
    assert response.status_code == 503
    page = response.content.decode()
    assert "apt-get install libpango-1.0-0" in page and "max-manager" in page  # the HTML report still works


def test_the_report_needs_a_login(client, promotion):
    response = client.get(reverse("deployments:promotion_report", args=[promotion.pk]))
    assert response.status_code == 302 and "/login/" in response["Location"]
