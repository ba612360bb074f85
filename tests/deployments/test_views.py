"""Serving pages: who sees what, the key stays hidden, bad input changes nothing."""
import pytest
from django.urls import reverse

from audit.models import AuditEvent
from deployments.models import Deployment, DeploymentProfile, Endpoint
from deployments.serving import services
from tests.models_registry.factories import make_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoints(engineer):
    profile = DeploymentProfile.objects.create(name="p1")
    staging = services.endpoint_create(name="titanic-staging", stage="staging", profile=profile, actor=engineer)
    prod = services.endpoint_create(name="titanic-prod", stage="production", profile=profile, actor=engineer)
    model = make_model(engineer, name="titanic", versions=1)
    Deployment.objects.create(endpoint=prod, name="blue", model_version=model.latest_version, status="healthy",
                              traffic=100, scoring_url="http://127.0.0.1:1/score", backend_ref={"dir": "x", "port": 1})
    services.endpoint_traffic_observed(endpoint=prod, traffic={"blue": 100})  # and the platform routes by it
    return staging, prod


PAGES = [("deployments:endpoint_list", []), ("deployments:endpoint_detail", ["titanic-prod"])]


@pytest.mark.parametrize("name, args", PAGES)
def test_pages_need_login_and_a_role(client, outsider_client, endpoints, name, args):
    url = reverse(name, args=args)
    assert client.get(url).status_code == 302
    assert outsider_client.get(url).status_code == 403


@pytest.mark.parametrize("name, args", PAGES)
@pytest.mark.parametrize("who", ["engineer_client", "manager_client", "admin_client_"])
def test_every_role_reads_the_pages_and_never_sees_the_key(request, endpoints, name, args, who):
    response = request.getfixturevalue(who).get(reverse(name, args=args))
    body = response.content.decode()
    assert response.status_code == 200
    for endpoint in endpoints:
        assert endpoint.key not in body
    if name == "deployments:endpoint_detail":
        assert "http://testserver" not in body and "/endpoints/titanic-prod/score" in body
        assert "titanic v1" in body and "100%" in body


def test_engineer_reveals_key_and_it_is_recorded(engineer_client, engineer, endpoints):
    prod = endpoints[1]
    response = engineer_client.post(reverse("deployments:endpoint_key", args=[prod.name]))
    assert response.status_code == 200 and prod.key in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    assert AuditEvent.objects.filter(action="reveal", target_id=str(prod.pk), actor=engineer).exists()


def test_manager_cannot_reveal_key_or_try(manager_client, endpoints):
    prod = endpoints[1]
    assert manager_client.post(reverse("deployments:endpoint_key", args=[prod.name])).status_code == 403
    assert manager_client.post(reverse("deployments:endpoint_try", args=[prod.name]), {"payload": "{}"}).status_code == 403
    body = manager_client.get(reverse("deployments:endpoint_detail", args=[prod.name])).content.decode()
    assert "Reveal" not in body and "Send" not in body
    assert not AuditEvent.objects.filter(action="reveal").exists()


def test_key_is_not_in_admin_either(admin_client_, endpoints):
    prod = endpoints[1]
    body = admin_client_.get(reverse("admin:deployments_endpoint_change", args=[prod.pk])).content.decode()
    assert prod.key not in body


@pytest.mark.parametrize("payload, message", [
    ("{not json", "The payload is not valid JSON"),
    ("[" * 5000, "nested too deeply"),
    ("", "This field is required."),
])
def test_try_it_refuses_malformed_json_without_sending(engineer_client, endpoints, payload, message):
    url = reverse("deployments:endpoint_try", args=["titanic-prod"])
    response = engineer_client.post(url, {"payload": payload}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400 and message in response.content.decode()
    assert "<html" not in response.content.decode()


def test_try_it_when_router_is_down_says_so(engineer_client, endpoints, settings):
    settings.MLOPS_ROUTER_URL = "http://127.0.0.1:1"
    response = engineer_client.post(reverse("deployments:endpoint_try", args=["titanic-prod"]),
                                    {"payload": '{"Pclass": 1}'})
    assert response.status_code == 400 and "Is the router running" in response.content.decode()


def test_production_traffic_cannot_be_set_from_the_page(engineer_client, endpoints):
    response = engineer_client.post(reverse("deployments:endpoint_traffic", args=["titanic-prod"]), {"traffic-blue": 0},
                                    follow=True)
    assert "only through a promotion or a rollback" in response.content.decode()
    assert Deployment.objects.get(name="blue").traffic == 100


def test_staging_traffic_form_rejects_bad_sum(engineer_client, engineer, endpoints):
    staging = endpoints[0]
    version = make_model(engineer, name="other", versions=1).latest_version
    Deployment.objects.create(endpoint=staging, name="blue", model_version=version, status="healthy")
    url = reverse("deployments:endpoint_traffic", args=[staging.name])
    response = engineer_client.post(url, {"traffic-blue": 40})
    assert response.status_code == 400 and "add up to 100%" in response.content.decode()
    response = engineer_client.post(url, {"traffic-blue": "lots"})
    assert response.status_code == 400 and "Enter a whole number" in response.content.decode()
    assert Deployment.objects.get(endpoint=staging).traffic == 0


def test_deploy_form_refuses_production_and_managers(engineer_client, manager_client, engineer, endpoints):
    staging, prod = endpoints
    model = make_model(engineer, name="fraud", versions=1)
    url = reverse("deployments:version_deploy", args=["fraud", 1])
    assert manager_client.post(url, {"endpoint": staging.pk, "name": "blue"}).status_code == 403
    response = engineer_client.post(url, {"endpoint": prod.pk, "name": "blue"}, follow=True)
    assert "Select a valid choice" in response.content.decode()
    response = engineer_client.post(url, {"endpoint": staging.pk, "name": "blue"}, follow=True)
    assert "has no training run" in response.content.decode()  # nothing to serve: refused before queueing
    assert not Deployment.objects.filter(model_version=model.latest_version).exists()


def test_delete_with_traffic_is_refused(engineer_client, endpoints):
    staging, prod = endpoints
    serving = Deployment.objects.create(endpoint=staging, name="blue", model_version=prod.deployments.get().model_version,
                                        status="healthy", traffic=100, scoring_url="http://127.0.0.1:1/score",
                                        backend_ref={"dir": "y", "port": 1})
    response = engineer_client.post(reverse("deployments:deployment_delete", args=[staging.name, serving.pk]),
                                    follow=True)
    assert "still takes 100% of the traffic" in response.content.decode()
    assert Deployment.objects.get(pk=serving.pk).status == "healthy"


def test_delete_on_production_is_refused(engineer_client, endpoints):
    deployment = Deployment.objects.get(endpoint__name="titanic-prod", name="blue")
    response = engineer_client.post(reverse("deployments:deployment_delete", args=["titanic-prod", deployment.pk]),
                                    follow=True)
    assert "production changes only through a promotion or a rollback" in response.content.decode()
    assert Deployment.objects.get(pk=deployment.pk).status == "healthy"


def test_profile_validation_across_fields(admin_client_):
    url = reverse("admin:deployments_deploymentprofile_add")
    data = {"name": "bad", "description": "", "instance_count": 2, "autoscale_enabled": "on", "min_instances": 5,
            "max_instances": 3, "target_utilization": 50, "cpu_request": "0.5", "memory_request_gb": "1",
            "request_timeout_ms": 60000, "max_concurrent_requests_per_instance": 1, "auth_enabled": "on",
            "max_queue_wait_ms": 500, "polling_interval_seconds": 1, "kubernetes_instance_type": ""}
    response = admin_client_.post(url, data)
    assert "The minimum cannot be above the maximum." in response.content.decode()
    for field, value, message in [("request_timeout_ms", 50, "greater than or equal to 100"),
                                  ("cpu_request", "0", "greater than or equal to 0.01"),
                                  ("target_utilization", 150, "less than or equal to 100")]:
        response = admin_client_.post(url, {**data, "min_instances": 1, "max_instances": 3, field: value})
        assert message in response.content.decode()
    assert not DeploymentProfile.objects.filter(name="bad").exists()
    response = admin_client_.post(url, {**data, "min_instances": 1, "max_instances": 3})
    assert response.status_code == 302 and DeploymentProfile.objects.filter(name="bad").exists()


def test_endpoint_name_follows_azure_rules(engineer):
    from django.core.exceptions import ValidationError

    profile = DeploymentProfile.objects.create(name="p2")
    for name in ["ab", "Bad-Name", "x" * 33, "-abc", "abc-"]:
        with pytest.raises(ValidationError):
            services.endpoint_create(name=name, stage="staging", profile=profile, actor=engineer)
    assert not Endpoint.objects.exists()


def test_deployments_table_polls_while_one_is_busy_and_stops_when_settled(engineer_client, endpoints):
    staging, prod = endpoints
    green = Deployment.objects.create(endpoint=prod, name="green", model_version=prod.deployments.get().model_version,
                                      status="creating")
    page = engineer_client.get(prod.get_absolute_url()).content.decode()
    assert 'id="deployments-table" hx-get=' in page and 'hx-trigger="every 2s"' in page
    live = engineer_client.get(prod.get_absolute_url(), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="deployments-table")
    body = live.content.decode()
    assert live.status_code == 200 and body.lstrip().startswith('<div id="deployments-table"') and "<html" not in body
    assert 'data-testid="deployment-status-green">Creating' in body
    Deployment.objects.filter(pk=green.pk).update(status="healthy")
    done = engineer_client.get(prod.get_absolute_url(), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="deployments-table")
    assert done.status_code == 286 and done["HX-Refresh"] == "true"  # htmx stops polling; the page shows once more
    assert 'hx-trigger="every 2s"' not in engineer_client.get(prod.get_absolute_url()).content.decode()


def test_a_deployment_named_like_a_form_field_leaves_the_traffic_form_working(engineer_client, engineer, endpoints):
    staging = endpoints[0]
    version = make_model(engineer, name="other", versions=1).latest_version
    for name in ("csrfmiddlewaretoken", "blue"):
        Deployment.objects.create(endpoint=staging, name=name, model_version=version, status="healthy")
    url = reverse("deployments:endpoint_traffic", args=[staging.name])
    engineer_client.handler.enforce_csrf_checks = True
    page = engineer_client.get(reverse("deployments:endpoint_detail", args=[staging.name]))
    token = page.context["csrf_token"]
    response = engineer_client.post(url, {"csrfmiddlewaretoken": token, "traffic-csrfmiddlewaretoken": 30,
                                          "traffic-blue": 70})
    assert response.status_code in (200, 302), response.content.decode()[:500]
    assert dict(staging.deployments.values_list("name", "traffic")) == {"csrfmiddlewaretoken": 30, "blue": 70}
