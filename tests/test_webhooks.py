"""Webhooks: signed deliveries to a receiver that checks the signature, retries to one that is down (and the log
that shows them), redeliver, and the refusal of URLs into the portal's own network."""
import json
import re
import time

import pytest
from django.test import Client
from django.urls import reverse

from deployments.models import DeploymentProfile
from tests.api.conftest import ApiClient, make_token
from tests.conftest import wait_for
from tests.receivers import WebhookReceiver
from webhooks import services
from webhooks.models import Attempt, Delivery, Event, Subscription
from webhooks.signing import REPLAY_WINDOW_SECONDS, sign, verify


@pytest.fixture
def receiver():
    r = WebhookReceiver()
    yield r
    r.close()


def _subscribe(admin_client, url, events):
    response = admin_client.post(reverse("webhooks:subscription_list"),
                                 {"name": f"hook-{len(Subscription.objects.all())}", "url": url, "events": events,
                                  "active": "on"})
    assert response.status_code == 302, response.content[:500]
    return Subscription.objects.latest("id")


def test_signature_and_replay_window():
    body = b'{"event":"rollback"}'
    now = int(time.time())
    good = sign("whsec_x", now, body)
    assert verify("whsec_x", str(now), body, good)
    assert not verify("whsec_y", str(now), body, good)
    assert not verify("whsec_x", str(now), body + b" ", good)
    assert not verify("whsec_x", str(now - REPLAY_WINDOW_SECONDS - 1), body, sign("whsec_x", now - 301, body))
    assert not verify("whsec_x", "soon", body, good)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_change_reaches_a_receiver_signed(worker, receiver, admin_client_, admin_user):
    subscription = _subscribe(admin_client_, receiver.url, [Event.CONFIG_CHANGED])
    receiver.secret = subscription.secret
    profile = DeploymentProfile.objects.create(name="small")
    api = ApiClient(make_token(admin_user))
    url = reverse("api:config-detail", args=["profiles", profile.pk])
    base = api.get(url).json()["revision"]
    assert api.call("PATCH", url, {"base_revision": base, "values": {"instance_count": 2},
                                   "note": "two instances"}).status_code == 200
    wait_for(lambda: receiver.received, timeout=30, message="the delivery")
    got = receiver.received[0]
    assert got["ok"] and got["event"] == "config.changed"
    assert got["body"]["data"]["fields"] == ["instance_count"] and got["body"]["data"]["by"] == "ada-admin"
    assert subscription.secret not in json.dumps(got["body"])
    delivery = wait_for(lambda: Delivery.objects.filter(status=Delivery.Status.SENT).first(), timeout=10,
                        message="the delivery marked sent")
    assert [a.status_code for a in delivery.attempt_log.all()] == [200]
    page = admin_client_.get(reverse("webhooks:subscription_detail", args=[subscription.pk]))
    assert b"HTTP 200" in page.content


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_receiver_that_is_down_gets_retries_then_a_redelivery(start_celery, admin_client_, admin_user):
    start_celery("worker", MLOPS_WEBHOOK_RETRIES="2", MLOPS_WEBHOOK_BACKOFF_SECONDS="0.3")
    down = WebhookReceiver(status=503)
    subscription = _subscribe(admin_client_, down.url, [Event.CONFIG_CHANGED])
    down.secret = subscription.secret
    profile = DeploymentProfile.objects.create(name="small")
    api = ApiClient(make_token(admin_user))
    url = reverse("api:config-detail", args=["profiles", profile.pk])
    api.call("PATCH", url, {"base_revision": api.get(url).json()["revision"], "values": {"instance_count": 3},
                            "note": "three"})
    delivery = wait_for(lambda: Delivery.objects.filter(status=Delivery.Status.FAILED).first(), timeout=60,
                        message="the delivery to give up")
    assert delivery.attempts == 3 and [a.status_code for a in delivery.attempt_log.all()] == [503, 503, 503]
    assert all(r["ok"] for r in down.received) and len(down.received) == 3
    times = [a.at for a in delivery.attempt_log.all()]
    assert (times[2] - times[1]) > (times[1] - times[0])  # backing off
    page = admin_client_.get(reverse("webhooks:subscription_detail", args=[subscription.pk])).content.decode()
    assert page.count("HTTP 503") == 3 and "Failed" in page
    down.status = 200
    admin_client_.post(reverse("webhooks:delivery_redeliver", args=[delivery.pk]))
    wait_for(lambda: Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.SENT, timeout=30,
             message="the redelivery")
    assert [a.status_code for a in Attempt.objects.filter(delivery=delivery)] == [503, 503, 503, 200]
    down.close()


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["http://127.0.0.1/hook", "http://localhost:8000/", "http://169.254.169.254/latest",
                                 "http://10.1.2.3/x", "http://[::1]/x", "http://192.168.0.10/", "ftp://example.org/",
                                 "file:///etc/passwd", "http://user:pw@203.0.113.9/x"])
def test_urls_into_the_portals_network_are_refused(settings, admin_client_, url):
    settings.MLOPS_WEBHOOK_ALLOW_PRIVATE = False
    response = admin_client_.post(reverse("webhooks:subscription_list"),
                                  {"name": "bad", "url": url, "events": ["rollback"], "active": "on"})
    assert response.status_code == 400 and b"errorlist" in response.content
    if url == "http://localhost:8000/":
        assert re.search(rb"localhost is (127\.0\.0\.1|::1), which is a loopback", response.content)
    assert not Subscription.objects.exists()


@pytest.mark.django_db
def test_a_name_that_now_points_inside_is_refused_at_send_time(settings, monkeypatch):
    subscription = Subscription.objects.create(name="was-fine", url="http://127.0.0.1:9/hook", events=["rollback"])
    monkeypatch.setattr("mlopsportal.lib.queue.send_now", lambda *args, **kwargs: None)
    assert services.emit(Event.ROLLBACK, {"endpoint": "titanic-prod"}) == 1
    settings.MLOPS_WEBHOOK_ALLOW_PRIVATE = False
    delivery = Delivery.objects.get(subscription=subscription)
    assert services.delivery_send(delivery_id=delivery.pk) == "failed"  # no retry would make it allowed
    attempt = Attempt.objects.get(delivery=delivery)
    assert attempt.status_code is None and "loopback" in attempt.error


@pytest.mark.django_db
def test_only_admins_see_webhooks_and_their_secrets(engineer_client, manager_client, admin_client_):
    subscription = Subscription.objects.create(name="x", url="http://127.0.0.1:9/", events=["rollback"])
    for client in (engineer_client, manager_client):
        assert client.get(reverse("webhooks:subscription_detail", args=[subscription.pk])).status_code == 403
        assert b"Webhooks" not in client.get(reverse("models_registry:model_list")).content
    assert subscription.secret.encode() in admin_client_.get(
        reverse("webhooks:subscription_detail", args=[subscription.pk])).content
    assert Client().get(reverse("webhooks:subscription_list")).status_code == 302
