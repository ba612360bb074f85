"""A manager's day in a real browser (headless Chromium via Playwright), against the live server with a real worker
and router: the inbox counts a waiting promotion and approves it, the chat notification reaches a webhook receiver,
the model's timeline shows the approval, "as of" a moment between two promotions shows the earlier version,
compare v1/v2 marks the parameters that differ, and the evidence report downloads as a PDF holding the approver,
the functional results and the stress p95. Every page is looked at, and fits, at 1366 px and at 390 px."""
import io

import pytest
from django.utils import timezone
from pypdf import PdfReader

from deployments.models import DeploymentProfile, Endpoint, FunctionalTestCase, Promotion, StressProfile, StressRun
from deployments.promotions import services as promotions
from deployments.serving.releases import as_of_link
from deployments.serving.services import endpoint_create
from models_registry.models import ModelVersion
from notifications.models import Delivery, Event, NotificationSettings
from tests.conftest import PASSWORD, wait_for
from tests.conftest import look as look_at
from tests.test_notifications import Receiver

from .conftest import make_version, titanic_trained_once

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]
SEED = {"Pclass": 1, "Sex": 0, "Age": 38, "SibSp": 1, "Parch": 0, "Fare": 71.2833, "Embarked": 2}


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def _settled(promotion, states, timeout=150):
    try:
        wait_for(lambda: Promotion.objects.get(pk=promotion.pk).state in states, timeout=timeout,
                 message=f"{promotion} to reach {states}")
    except AssertionError:
        steps = promotion.steps.order_by("position").values_list("label", "status", "detail")
        raise AssertionError(f"{promotion} stuck: {list(steps)}") from None
    return Promotion.objects.get(pk=promotion.pk)


def test_manager_approves_from_the_inbox_then_reviews_history(live_server, worker, router, engineer, manager,
                                                               browser_page, receiver):
    page, base = browser_page, live_server.url
    outputs = titanic_trained_once()
    v1 = make_version(engineer, outputs)
    v2 = make_version(engineer, outputs, job_suffix="-second")
    ModelVersion.objects.filter(pk=v1.pk).update(params={"n_estimators": 40, "max_depth": 6})
    ModelVersion.objects.filter(pk=v2.pk).update(params={"n_estimators": 80, "max_depth": 6})
    profile = DeploymentProfile.objects.create(name="small", request_timeout_ms=5000)
    staging = endpoint_create(name="titanic-staging", stage="staging", profile=profile, actor=engineer)
    prod = endpoint_create(name="titanic-prod", stage="production", profile=profile, actor=engineer)
    Endpoint.objects.filter(pk=prod.pk).update(traffic_steps="100", approval_required=False)
    prod.refresh_from_db()
    FunctionalTestCase.objects.create(model=v1.model, name="seed passenger survives", payload=SEED,
                                      expect_field="prediction", expected_value=1)
    stress = StressProfile.objects.create(model=v1.model, name="seed", concurrency=2, duration_seconds=2,
                                          payloads=[SEED], p95_ms_max=2000, error_rate_max=0)
    NotificationSettings.objects.create(user=manager, email=False, chat_url=f"json://127.0.0.1:{receiver.port}/hook")

    # v1 reaches production first (no approval on the endpoint yet); then the endpoint asks for one, and v2 waits.
    first = promotions.promotion_start(version=v1, production_endpoint=prod, staging_endpoint=staging,
                                       stress_profile=stress, reason="first model", actor=engineer)
    assert _settled(first, {"succeeded", "failed"}).state == "succeeded"
    between = timezone.now()
    Endpoint.objects.filter(pk=prod.pk).update(approval_required=True)
    prod.refresh_from_db()
    second = promotions.promotion_start(version=v2, production_endpoint=prod, staging_endpoint=staging,
                                        stress_profile=stress, reason="more trees, better recall", actor=engineer)
    assert _settled(second, {"awaiting", "failed"}).state == "awaiting"

    def look(name: str):
        look_at(page, f"manager-{name}")

    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", manager.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_selector("h1:has-text('Models')")
    assert page.inner_text("[data-testid=waiting-count]") == "1"
    look("models")
    page.click("[data-testid=waiting-link]")
    page.wait_for_selector(f"[data-testid=waiting-{second.pk}]")
    assert "more trees, better recall" in page.inner_text(f"[data-testid=waiting-{second.pk}]")
    look("inbox")
    page.fill(f"#comment-{second.pk}", "Functional and stress results are green")
    page.click(f"[data-testid=inbox-decision-{second.pk}] button:has-text('Approve')")
    page.wait_for_selector("[data-testid=inbox-empty]")
    assert _settled(second, {"succeeded", "failed"}).state == "succeeded"

    # The approver heard of it in chat (the worker sent it to the receiver, and recorded the delivery).
    wait_for(lambda: any("awaits your approval" in b.get("title", "") for b in receiver.bodies), timeout=30,
             message="the chat notification")
    assert Delivery.objects.get(user=manager, event=Event.PROMOTION_AWAITING).status == "sent"
    assert prod.key not in str(receiver.bodies)

    page.goto(f"{base}/models/titanic/timeline/")
    timeline = page.inner_text("[data-testid=model-timeline]")
    assert "Approved" in timeline and "max-manager" in timeline and "Functional and stress results are green" in timeline
    look("timeline")

    page.goto(base + as_of_link(between))
    served = page.inner_text("[data-testid=as-of-titanic-prod]")
    assert "titanic v1" in served and "titanic v2" not in served
    look("as-of")
    page.goto(f"{base}/endpoints/titanic-prod/releases/")
    assert page.locator("[data-testid=releases-chart] .chart-band").count() >= 2
    look("release-history")

    page.goto(f"{base}/models/titanic/")
    page.check("[data-testid=compare-v1]")
    page.check("[data-testid=compare-v2]")
    page.click("[data-testid=compare]")
    page.wait_for_selector("[data-testid=compare-params]")
    assert page.locator("tr.differs[data-testid=param-n_estimators]").count() == 1
    assert page.locator("tr.differs[data-testid=param-max_depth]").count() == 0
    look("compare")

    page.goto(f"{base}/promotions/{second.pk}/report/")
    look("report")
    with page.expect_download() as download:
        page.click("[data-testid=report-pdf]")
    pdf = download.value.path().read_bytes()
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())
    p95 = StressRun.objects.filter(promotion=second).get().summary["p95_ms"]
    assert "max-manager" in text and "seed passenger survives" in text and f"{p95} ms" in text

    page.goto(f"{base}/audit/?who=max-manager")
    assert "approved promotion" in page.inner_text("[data-testid=audit-table]")
    look("audit")
