"""Notifications: who hears about what, by email and to chat (a real webhook receiver over HTTP), sent by a real
Celery worker after the change commits; a receiver or mail server that is down delays nothing, and the delivery is
retried and finally recorded as failed with the reason. No key or webhook URL ever reaches a message or a log."""
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from accounts import roles
from deployments.models import DeploymentProfile, Endpoint, Promotion, PromotionStep
from deployments.promotions import services as promotions
from models_registry import services as registry
from notifications.models import Delivery, Event, NotificationSettings
from tests.conftest import wait_for
from tests.deployments.test_releases import prod_history  # noqa: F401 (a fixture)
from tests.models_registry.factories import make_model, make_run


class Receiver:
    """An incoming-webhook receiver: records each JSON body posted to it."""

    def __init__(self):
        self.bodies = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                outer.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def _awaiting(engineer):
    profile = DeploymentProfile.objects.create(name="small")
    staging = Endpoint.objects.create(name="t-staging", stage="staging", profile=profile)
    prod = Endpoint.objects.create(name="t-prod", stage="production", profile=profile)
    version = make_model(engineer, name="titanic", versions=1, key_metric="cv_accuracy").versions.get()
    promotion = Promotion.objects.create(version=version, staging_endpoint=staging, production_endpoint=prod,
                                         requested_by=engineer, approval_required=True, reason="better recall",
                                         state=Promotion.State.RUNNING)
    PromotionStep.objects.create(promotion=promotion, position=0, kind="functional", label="Functional tests",
                                 status="succeeded", detail="1 of 1 cases passed.")
    PromotionStep.objects.create(promotion=promotion, position=1, kind="approval", label="Approval")
    return promotion


@pytest.mark.django_db
def test_who_hears_about_what(engineer, manager, admin_user, django_user_model):
    for user, address in ((engineer, "eve@example.com"), (manager, "max@example.com"), (admin_user, "")):
        user.email = address
        user.save()
    quiet = django_user_model.objects.create_user("quiet-manager", email="q@example.com")
    quiet.groups.add(Group.objects.get(name=roles.MANAGER))
    NotificationSettings.objects.create(user=quiet, events=[Event.ROLLBACK])  # only rollbacks
    promotion = _awaiting(engineer)

    assert promotions.promotion_advance(promotion_id=promotion.pk) is None  # the approval step: awaits
    awaiting = Delivery.objects.filter(event=Event.PROMOTION_AWAITING)
    # Approvers with an address, not the requester, not who opted out; the admin has no address.
    assert sorted(d.user.username for d in awaiting) == ["max-manager"]
    (mail,) = awaiting
    assert mail.channel == "email" and "titanic v1 to t-prod awaits your approval" == mail.subject
    assert "Reason: better recall" in mail.body and "Functional tests: succeeded. 1 of 1 cases passed." in mail.body
    assert mail.link.endswith(promotion.get_absolute_url()) and mail.status == "pending"

    promotions.promotion_decide(promotion=promotion, actor=manager, approve=False, comment="p95 too high")
    (decided,) = Delivery.objects.filter(event=Event.PROMOTION_DECIDED)
    assert decided.user == engineer and decided.subject == "max-manager rejected titanic v1 to t-prod"
    assert "Comment: p95 too high" in decided.body

    run = make_run(engineer, status="running", register_as=None)
    registry._finish(run.pk, "failed", error="the job ran out of memory\ntraceback...")
    (ended,) = Delivery.objects.filter(event=Event.RUN_ENDED)
    assert ended.user == engineer and "failed" in ended.subject and "Why: the job ran out of memory" in ended.body


@pytest.mark.django_db
def test_rollback_tells_the_approvers_and_carries_no_key(prod_history, admin_user, manager, engineer):  # noqa: F811
    prod, v1, v2, promotion = prod_history
    manager.email = "max@example.com"
    manager.save()
    NotificationSettings.objects.create(user=manager, email=True, chat_url="json://127.0.0.1:9/hook")
    Delivery.objects.all().delete()
    from deployments.serving import services

    services.endpoint_rollback(endpoint=prod, actor=admin_user, reason="error rate up")
    rollbacks = Delivery.objects.filter(event=Event.ROLLBACK)
    assert {(d.user.username, d.channel) for d in rollbacks} == {("max-manager", "email"), ("max-manager", "chat")}
    prod.refresh_from_db()
    for delivery in Delivery.objects.all():
        assert prod.key not in delivery.body + delivery.subject + delivery.link
        assert "json://" not in delivery.body + delivery.subject + delivery.error


@pytest.mark.django_db
def test_settings_page_saves_choices_and_refuses_local_urls(engineer_client, engineer, manager_client):
    url = reverse("notifications:settings")
    response = engineer_client.post(url, {"chat_url": "file:///etc/passwd", "events": ["rollback"]})
    assert response.status_code == 200 and "Enter a webhook URL" in response.content.decode()
    assert not NotificationSettings.objects.filter(user=engineer).exists()
    response = engineer_client.post(url, {"chat_url": "not a url at all", "email": "on"})
    assert "Enter a webhook URL" in response.content.decode()
    response = engineer_client.post(url, {"chat_url": "nosuchservice://somewhere/x", "email": "on"})
    assert "not a webhook or apprise URL" in response.content.decode()
    engineer_client.post(url, {"chat_url": "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX",
                               "events": ["run_ended", "promotion_decided"]})
    saved = NotificationSettings.objects.get(user=engineer)
    assert saved.email is False and saved.events == ["run_ended", "promotion_decided"]
    # The webhook is the user's own secret: another user's page never shows it.
    assert "XXXXXXXXXXXXXXXX" not in manager_client.get(url).content.decode()
    assert "XXXXXXXXXXXXXXXX" in engineer_client.get(url).content.decode()


def test_a_receiver_or_mail_server_that_is_down_delays_nothing_and_ends_recorded_as_failed(
        start_worker, engineer, manager, receiver):
    """A real worker; the manager's chat goes to a live receiver, the engineer's to a closed port, and email to an
    SMTP server that is not there."""
    dead = _closed_port()
    start_worker(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1",
                 EMAIL_PORT=str(dead), EMAIL_TIMEOUT="2", MLOPS_NOTIFY_RETRIES="2",
                 MLOPS_NOTIFY_BACKOFF_SECONDS="0.2")
    engineer.email, manager.email = "eve@example.com", "max@example.com"
    engineer.save()
    manager.save()
    down_url = f"json://127.0.0.1:{dead}/hook-with-a-long-secret-token"
    NotificationSettings.objects.create(user=engineer, chat_url=down_url)
    NotificationSettings.objects.create(user=manager, email=False, chat_url=f"json://127.0.0.1:{receiver.port}/hook")
    promotion = _awaiting(engineer)

    # The pipeline's own process never sends: it records deliveries and goes on; the worker sends them.
    with mock.patch("notifications.services.delivery_send", side_effect=AssertionError("sent by the pipeline")):
        assert promotions.promotion_advance(promotion_id=promotion.pk) is None
        promotions.promotion_decide(promotion=promotion, actor=manager, approve=False, comment="p95 too high")
    assert Promotion.objects.get(pk=promotion.pk).state == "rejected"

    wait_for(lambda: not Delivery.objects.filter(status="pending").exists(), timeout=60, message="deliveries done")
    sent = Delivery.objects.get(user=manager, event=Event.PROMOTION_AWAITING, channel="chat")
    assert sent.status == "sent" and sent.attempts == 1
    (posted,) = receiver.bodies
    assert posted["title"] == "titanic v1 to t-prod awaits your approval" and "better recall" in posted["message"]
    chat = Delivery.objects.get(user=engineer, event=Event.PROMOTION_DECIDED, channel="chat")
    mail = Delivery.objects.get(user=engineer, event=Event.PROMOTION_DECIDED, channel="email")
    for failed in (chat, mail):
        assert failed.status == "failed" and failed.attempts == 3 and "gave up after 3 attempts" in failed.error
    assert "mail server did not take it: ConnectionRefusedError" in mail.error
    assert "chat service did not take it" in chat.error and "long-secret-token" not in chat.error
