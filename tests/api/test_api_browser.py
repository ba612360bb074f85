"""Tokens, the API docs and webhooks in a real browser (headless Chromium via Playwright) against the live server:
an engineer makes a token, sees it once, uses it, revokes it and tries a call from the docs page; an admin
subscribes a receiver (a private address refused first), sees the signed delivery in the log and redelivers it,
and reads everyone's tokens. Each page is looked at, and fits, at 1366 px and at 390 px."""
import pytest
import requests
from django.urls import reverse

from deployments.models import DeploymentProfile
from tests.api.conftest import ApiClient, make_token
from tests.conftest import look, sign_in, wait_for
from tests.receivers import WebhookReceiver
from webhooks.models import Delivery, Subscription

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _me(base: str, token: str) -> requests.Response:
    return requests.get(f"{base}/api/v1/me/", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_engineer_makes_uses_and_revokes_a_token_and_tries_the_docs(live_server, browser_page, engineer):
    page, base = browser_page, live_server.url
    sign_in(page, base, engineer)
    page.click("[data-testid=account-link]")
    page.click("[data-testid=tokens-link]")
    page.wait_for_selector("h1:has-text('API tokens')")
    page.fill("#id_name", "   ")  # passes the browser's `required`, not the portal's
    page.click("button:has-text('Make token')")
    page.wait_for_selector(".errorlist")
    assert not page.is_visible("[data-testid=token-made]") and "You have no tokens." in page.inner_text("main")

    page.fill("#id_name", "azure-devops")
    page.fill("#id_days", "30")
    page.click("button:has-text('Make token')")
    text = page.inner_text("[data-testid=token-text]").strip()
    assert text.startswith("mlp_")
    look(page, "token-made")
    me = _me(base, text)
    assert me.status_code == 200 and me.json()["username"] == engineer.username

    page.goto(f"{base}{reverse('api_pages:token_list')}")  # the text is shown once; the row says it was used
    assert not page.is_visible("[data-testid=token-made]") and text not in page.content()
    row = page.inner_text("[data-testid=token-row]")
    assert "azure-devops" in row and "active" in row and "never" not in row
    look(page, "tokens")
    page.click("[data-testid=token-row] button:has-text('Revoke')")
    page.wait_for_selector("[data-testid=token-row]:has-text('revoked')")
    refused = _me(base, text)
    assert refused.status_code == 401 and refused.json()["detail"] == "The token was revoked."

    asked = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto(f"{base}{reverse('api:docs')}")
    page.wait_for_selector(".swagger-ui .opblock-tag", timeout=30_000)
    assert asked and all(url.startswith(base) for url in asked), [u for u in asked if not u.startswith(base)]
    operation = page.locator(".opblock-get:has(.opblock-summary-path[data-path='/api/v1/me/'])")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    answer = operation.locator(".live-responses-table tbody tr.response")
    answer.wait_for()
    assert answer.locator(".response-col_status").inner_text().strip() == "200"
    assert f'"username": "{engineer.username}"' in answer.locator(".highlight-code").inner_text()  # as the session
    look(page, "api-docs")


@pytest.mark.worker
def test_admin_subscribes_a_receiver_and_reads_the_delivery_log(live_server, browser_page, worker, admin_user,
                                                                 engineer, manager, settings):
    page, base = browser_page, live_server.url
    receiver = WebhookReceiver()
    try:
        make_token(engineer, name="release-pipeline")
        sign_in(page, base, admin_user)
        page.click("nav a:has-text('Webhooks')")
        page.wait_for_selector("h1:has-text('Webhooks')")
        assert "No webhooks yet." in page.inner_text("main")

        settings.MLOPS_WEBHOOK_ALLOW_PRIVATE = False  # as in production: the portal's own network is refused
        page.fill("#id_name", "chatops")
        page.fill("#id_url", receiver.url)
        page.check("input[name=events][value='config.changed']")
        page.click("button:has-text('Subscribe')")
        page.wait_for_selector("[data-testid=webhook-form] .errorlist")
        assert "127.0.0.1 is a loopback" in page.inner_text("[data-testid=webhook-form] .errorlist")
        assert not Subscription.objects.exists()
        look(page, "webhook-refused")

        settings.MLOPS_WEBHOOK_ALLOW_PRIVATE = True  # this receiver is on loopback
        page.check("input[name=events][value='config.changed']")
        page.click("button:has-text('Subscribe')")
        page.wait_for_selector("text=Its signing secret is on its page.")  # on the page it goes to
        receiver.secret = page.inner_text("[data-testid=webhook-secret]").strip()
        assert receiver.secret == Subscription.objects.get().secret

        profile = DeploymentProfile.objects.create(name="titanic-aks")
        api = ApiClient(make_token(admin_user))
        url = reverse("api:config-detail", args=["profiles", profile.pk])
        assert api.call("PATCH", url, {"base_revision": api.get(url).json()["revision"],
                                       "values": {"instance_count": 2}, "note": "two replicas"}).status_code == 200
        wait_for(lambda: Delivery.objects.filter(status=Delivery.Status.SENT).exists(), timeout=30,
                 message="the delivery marked sent")
        assert [r["ok"] for r in receiver.received] == [True]  # signed with the secret the page showed
        page.click("a:has-text('← Webhooks')")
        assert "config.changed" in page.inner_text("[data-testid=webhook-table]")
        look(page, "webhooks")
        page.click("[data-testid=webhook-table] a:has-text('chatops')")
        assert "HTTP 200" in page.inner_text("[data-testid=delivery-table]")
        look(page, "webhook-detail")
        detail = page.url
        with page.expect_navigation():  # a form POST, then the redirect back: reloading before it lands fails
            page.click("[data-testid=delivery-row] button:has-text('Redeliver')")
        wait_for(lambda: len(receiver.received) == 2, timeout=30, message="the redelivery")
        wait_for(lambda: page.goto(detail) and page.inner_text("[data-testid=delivery-table]").count("HTTP 200") == 2,
                 timeout=30, message="the redelivery in the log")

        page.goto(f"{base}{reverse('api_pages:token_list_all')}")
        assert "release-pipeline" in page.inner_text("main") and engineer.username in page.inner_text("main")
        look(page, "tokens-all")

        sign_in(page, base, manager)  # webhooks are the admins': no link, and the page is refused
        assert not page.locator("nav a:has-text('Webhooks')").count()
        assert page.goto(f"{base}{reverse('webhooks:subscription_list')}").status == 403
    finally:
        receiver.close()
