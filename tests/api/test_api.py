"""The API's own behaviour: tokens, problem details, idempotency, pagination, the audit trail, the docs."""
import hashlib
import json

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.test import Client
from django.urls import reverse, set_script_prefix

from api import serializers as s
from api.models import ApiToken, IdempotencyKey
from audit.models import AuditEvent
from deployments.configs import revisions
from deployments.models import Promotion
from mlopsportal.lib.problem_types import PROBLEM_KINDS, problem_type
from models_registry.models import ModelVersion, TrainingRun
from tests.api.conftest import ApiClient, make_token
from tests.models_registry.factories import make_model
from tests.test_access_matrix import world  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


# --- tokens -------------------------------------------------------------------------------------------------------
def test_a_token_is_shown_once_and_kept_hashed(engineer_client, engineer):
    response = engineer_client.post(reverse("api_pages:token_list"), {"name": "azure-devops", "days": 30})
    assert response.status_code == 200
    text = response.context["made"]
    assert text.startswith("mlp_") and text.encode() in response.content
    token = ApiToken.objects.get(user=engineer, name="azure-devops")
    secret = text[len("mlp_") + 12 + 1:]
    assert token.secret_hash == hashlib.sha256(secret.encode()).hexdigest() and secret not in repr(
        ApiToken.objects.filter(pk=token.pk).values().first())
    again = engineer_client.get(reverse("api_pages:token_list"))
    assert text.encode() not in again.content and token.prefix.encode() in again.content
    me = ApiClient(text).get(reverse("api:me"))
    assert me.status_code == 200 and me.json()["username"] == engineer.username
    assert me.json()["token"]["prefix"] == token.prefix and "secret" not in json.dumps(me.json())
    token.refresh_from_db()
    assert token.last_used_at is not None
    event = AuditEvent.objects.get(target_id=str(token.pk), action=AuditEvent.Action.CREATE)
    assert secret not in json.dumps([event.summary, event.changes])


def test_token_form_refuses_bad_input_and_changes_nothing(engineer_client):
    for data in ({"name": "", "days": 30}, {"name": "x", "days": 0}, {"name": "x", "days": 10_000},
                 {"name": "x" * 61, "days": 3}):
        response = engineer_client.post(reverse("api_pages:token_list"), data)
        assert response.status_code == 400 and b"errorlist" in response.content
    assert not ApiToken.objects.exists()
    engineer_client.post(reverse("api_pages:token_list"), {"name": "ci", "days": 3})
    twice = engineer_client.post(reverse("api_pages:token_list"), {"name": "ci", "days": 3})
    assert twice.status_code == 400 and b"already have an active token" in twice.content
    assert ApiToken.objects.count() == 1


def test_revoked_and_expired_tokens_are_refused_with_the_reason(engineer, engineer_client):
    text = make_token(engineer)
    token = ApiToken.objects.get(user=engineer)
    response = engineer_client.post(reverse("api_pages:token_revoke", args=[token.key_id]))
    assert response.status_code == 302
    refused = ApiClient(text).get(reverse("api:me"))
    assert refused.status_code == 401 and refused.json()["detail"] == "The token was revoked."
    wrong_secret = text[:-3] + ("aaa" if not text.endswith("aaa") else "bbb")
    assert ApiClient(wrong_secret).get(reverse("api:me")).json()["detail"] == "The token is not valid."
    assert ApiClient("nonsense").get(reverse("api:me")).status_code == 401


def test_admins_see_and_revoke_everyones_tokens_others_do_not(engineer, manager_client, admin_client_):
    text = make_token(engineer, name="eve-ci")
    token = ApiToken.objects.get(name="eve-ci")
    assert manager_client.get(reverse("api_pages:token_list_all")).status_code == 403
    assert manager_client.post(reverse("api_pages:token_revoke", args=[token.key_id])).status_code == 403
    page = admin_client_.get(reverse("api_pages:token_list_all"))
    assert page.status_code == 200 and b"eve-ci" in page.content and text.encode() not in page.content
    admin_client_.post(reverse("api_pages:token_revoke", args=[token.key_id]), {"from": "all"})
    token.refresh_from_db()
    assert token.state == "revoked" and token.revoked_by.username == "ada-admin"
    assert ApiClient(text).get(reverse("api:me")).status_code == 401


def test_a_read_only_token_says_why_it_may_not_write(world, admin_user):  # noqa: F811
    client = ApiClient(make_token(admin_user, read_only=True))
    response = client.post(reverse("api:endpoint-rollback", args=[world.prod.name]), {"reason": "bad"})
    assert response.status_code == 403 and "read-only" in response.json()["detail"]


def test_rate_limit_per_token(settings, engineer):
    settings.MLOPS_API_RATE = "3/min"
    cache.clear()
    one, other = ApiClient(make_token(engineer, name="a")), ApiClient(make_token(engineer, name="b"))
    assert [one.get(reverse("api:me")).status_code for _ in range(3)] == [200, 200, 200]
    limited = one.get(reverse("api:me"))
    assert limited.status_code == 429 and int(limited["Retry-After"]) >= 1
    assert limited["Content-Type"] == "application/problem+json"
    assert other.get(reverse("api:me")).status_code == 200  # per token, not per user


# --- problem details ----------------------------------------------------------------------------------------------
@pytest.fixture
def engineer_api(engineer):
    return ApiClient(make_token(engineer))


@pytest.fixture
def admin_api(admin_user):
    return ApiClient(make_token(admin_user))


@pytest.mark.parametrize("body, field", [
    ({"example": "scripted", "timeout_minutes": 0}, "timeout_minutes"),
    ({"example": "scripted", "experiment_name": "bad name!"}, "experiment_name"),
    ({"example": "no-such-example"}, "example"),
    ({"example": "scripted", "params": {"sleep": -5}}, "sleep"),
    ({"example": "scripted", "params": []}, "params"),
    ({}, "example"),
])
def test_bad_input_names_the_field_and_starts_nothing(engineer_api, body, field):
    response = engineer_api.post(reverse("api:run-list"), body)
    assert response.status_code == 400, response.content
    problem = response.json()
    assert response["Content-Type"] == "application/problem+json"
    assert {"type", "title", "status", "detail", "errors"} <= set(problem) and problem["status"] == 400
    assert any(field in row["field"] for row in problem["errors"]), problem
    assert not TrainingRun.objects.exists()


def test_bodies_that_are_not_json_are_refused(engineer_api):
    url = reverse("api:run-list")
    for text in ('{"example": ', '{"example": "scripted", "timeout_minutes": NaN}', "[" * 5000 + "]" * 5000,
                 '{"example": "scrip\\u0000ted"}'):
        response = engineer_api.client.post(url, data=text, content_type="application/json",
                                            headers=engineer_api.headers)
        assert response.status_code == 400, (text[:40], response.content)
        assert response.json()["status"] == 400
    form = engineer_api.client.post(url, data={"example": "scripted"}, headers=engineer_api.headers)
    assert form.status_code == 400  # a form body is read as no body at all
    plain = engineer_api.client.post(url, data="example=scripted", content_type="text/plain",
                                     headers=engineer_api.headers)
    assert plain.status_code == 415 and plain.json()["status"] == 415
    assert not TrainingRun.objects.exists()


def test_unknown_routes_and_rows_are_problem_404s(engineer_api):
    for url in ("/api/v1/nothing/", reverse("api:run-detail", args=[999_999]),
                reverse("api:model-detail", args=["missing"])):
        response = engineer_api.get(url)
        assert response.status_code == 404 and response["Content-Type"] == "application/problem+json"
        assert response.json()["type"] == "tag:mlops-portal,2026:problem:not-found"


def test_a_problem_type_is_one_of_the_kinds_the_schema_lists(engineer_api):
    with pytest.raises(ValueError):
        problem_type("oops")
    schema = engineer_api.get("/api/v1/schema/?format=json").json()
    listed = schema["components"]["schemas"]["Problem"]["properties"]["type"]["enum"]
    assert listed == [problem_type(kind) for kind in PROBLEM_KINDS]


def test_bad_query_parameters_are_400s(engineer_api, world):  # noqa: F811
    for url in (reverse("api:run-list") + "?status=bogus", reverse("api:run-detail", args=[world.running_run.pk])
                + "?log_lines=-1", reverse("api:releases") + "?at=yesterday",
                reverse("api:promotion-list") + "?state=nope", reverse("api:run-list") + "?cursor=garbage"):
        response = engineer_api.get(url)
        assert response.status_code in (400, 404), (url, response.content)
        assert response["Content-Type"] == "application/problem+json"


# --- rules, as on the pages ----------------------------------------------------------------------------------------
def test_no_key_in_any_endpoint_answer(world, admin_api, engineer, manager):  # noqa: F811
    for url in (reverse("api:endpoint-list"), reverse("api:endpoint-detail", args=[world.prod.name]),
                reverse("api:releases")):
        assert world.prod.key not in admin_api.get(url).content.decode()
    manager_api = ApiClient(make_token(manager))
    assert manager_api.get(reverse("api:endpoint-key", args=[world.prod.name])).status_code == 403
    revealed = ApiClient(make_token(engineer)).get(reverse("api:endpoint-key", args=[world.prod.name]))
    assert revealed.json()["key"] == world.prod.key and revealed["Cache-Control"] == "no-store"
    event = AuditEvent.objects.get(action=AuditEvent.Action.REVEAL)
    assert event.via == "api" and event.credential.startswith("token mlp_")


def test_the_requester_cannot_decide_and_actions_are_audited_as_api(world, admin_user):  # noqa: F811
    # The admin asks for a promotion, then may not approve it: approving one's own request is refused.
    api = ApiClient(make_token(admin_user, name="release-pipeline"))
    world.awaiting.requested_by = admin_user
    world.awaiting.save(update_fields=["requested_by"])
    response = api.post(reverse("api:promotion-decision", args=[world.awaiting.pk]),
                        {"decision": "approve", "comment": "mine"})
    assert response.status_code == 409 and response.json()["detail"]
    assert Promotion.objects.get(pk=world.awaiting.pk).state == Promotion.State.AWAITING_APPROVAL
    api.post(reverse("api:promotion-cancel", args=[world.awaiting.pk]), {"reason": "wrong version"})
    event = AuditEvent.objects.filter(target_id=str(world.awaiting.pk), actor=admin_user).latest("id")
    token = ApiToken.objects.get(name="release-pipeline")
    assert event.via == "api" and event.credential == f"token {token}"
    # The pages still record via=portal: the API's context does not leak out of its requests.
    client = Client()
    client.force_login(admin_user)
    last = AuditEvent.objects.latest("id").pk
    client.post(reverse("models_registry:model_edit", args=[world.model.name]),
                {"description": "from a page", "key_metric": "cv_accuracy", "key_metric_goal": "max"})
    assert [e.via for e in AuditEvent.objects.filter(pk__gt=last)] == ["portal"]


def test_config_changes_need_the_revision_read(world, admin_api):  # noqa: F811
    profile = world.prod.profile
    url = reverse("api:config-detail", args=["profiles", profile.pk])
    read = admin_api.get(url).json()
    base = read["revision"]
    stale = admin_api.call("PATCH", url, {"base_revision": base - 1, "values": {"instance_count": 2},
                                          "note": "more"})
    assert stale.status_code == 409
    bad = admin_api.call("PATCH", url, {"base_revision": base, "values": {"instance_count": 0}, "note": "none"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "values.instance_count"
    unknown = admin_api.call("PATCH", url, {"base_revision": base, "values": {"key": "x"}, "note": "x"})
    assert unknown.status_code == 400
    assert revisions.revision_count(profile) == base
    saved = admin_api.call("PATCH", url, {"base_revision": base, "values": {"instance_count": 2},
                                          "note": "two instances"})
    assert saved.status_code == 200 and saved.json()["revision"] == base + 1
    assert saved.json()["values"]["instance_count"] == 2


# --- idempotency --------------------------------------------------------------------------------------------------
def _promote_body(w):
    return {"version": f"{w.model.name}:{w.version.version}", "production_endpoint": w.prod.name,
            "staging_endpoint": w.staging.name, "stress_profile": w.stress_profile.name, "reason": "faster"}


def test_a_retried_promote_with_the_same_key_starts_one(world, engineer_api):  # noqa: F811
    url = reverse("api:promotion-list")
    first = engineer_api.post(url, _promote_body(world), **{"Idempotency-Key": "release-42"})
    again = engineer_api.post(url, _promote_body(world), **{"Idempotency-Key": "release-42"})
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true" and again.json()["id"] == first.json()["id"]
    assert Promotion.objects.filter(production_endpoint=world.prod).count() == 1
    other = engineer_api.post(url, {**_promote_body(world), "reason": "other"}, **{"Idempotency-Key": "release-42"})
    assert other.status_code == 422
    assert Promotion.objects.filter(production_endpoint=world.prod).count() == 1


def test_a_refused_start_keeps_no_key(world, engineer_api):  # noqa: F811
    url = reverse("api:promotion-list")
    refused = engineer_api.post(url, {**_promote_body(world), "stress_profile": "none"},
                                **{"Idempotency-Key": "k1"})
    assert refused.status_code == 400 and not IdempotencyKey.objects.exists()
    started = engineer_api.post(url, _promote_body(world), **{"Idempotency-Key": "k1"})
    assert started.status_code == 201


def test_keys_are_per_user_and_checked(world, engineer_api, admin_api):  # noqa: F811
    body = {"example": "scripted", "experiment_name": "exp-idem", "timeout_minutes": 5,
            "params": {"sleep": 0, "exit_code": 0, "outputs": "full", "score": 0.5}}
    url = reverse("api:run-list")
    assert engineer_api.post(url, body, **{"Idempotency-Key": "same"}).status_code == 201
    assert admin_api.post(url, body, **{"Idempotency-Key": "same"}).status_code == 201
    assert engineer_api.post(url, body, **{"Idempotency-Key": "same"}).status_code == 201
    assert TrainingRun.objects.filter(experiment_name="exp-idem").count() == 2
    assert engineer_api.post(url, body, **{"Idempotency-Key": "has space"}).status_code == 400


# --- lists --------------------------------------------------------------------------------------------------------
def test_lists_are_cursor_paginated(world, engineer_api):  # noqa: F811
    page = engineer_api.get(reverse("api:version-list", args=[world.model.name]) + "?page_size=1").json()
    assert [v["version"] for v in page["results"]] == [2] and page["next"] and page["previous"] is None
    second = engineer_api.get(page["next"]).json()
    assert [v["version"] for v in second["results"]] == [1] and second["next"] is None
    assert "count" not in page  # no COUNT over every row


@pytest.mark.parametrize("route, args, model, serializer", [
    ("api:version-list", ["titanic"], ModelVersion, s.VersionSerializer),
    ("api:run-list", [], TrainingRun, s.RunSerializer),
    ("api:audit", [], AuditEvent, s.AuditEventSerializer),
])
def test_list_items_are_what_the_schema_says(world, manager, route, args, model, serializer):  # noqa: F811
    """The long lists are read as values() rows (RowsMixin); each item must equal the schema's serializer on the
    same row, so the two ways of reading cannot drift apart."""
    other = make_model(manager, name="aaa-other", versions=1)  # a run that registered versions of two models
    other.versions.update(training_run=world.version.training_run)
    AuditEvent.objects.create(actor_name="old", action=AuditEvent.Action.UPDATE, target_repr="x", summary="old",
                              target_type=ContentType.objects.get_for_model(ModelVersion), target_id="1",
                              changes={"threshold": [1, 2], "api_key": ["a", "b"]})  # an older event's shape
    api = ApiClient(make_token(manager))
    items = api.get(reverse(route, args=args) + "?page_size=200").json()["results"]
    key = "version" if model is ModelVersion else "id"
    rows = {getattr(row, key): row for row in model.objects.filter(**{f"{key}__in": [i[key] for i in items]})}
    assert len(items) >= 2 and len(rows) == len(items)
    assert items == [json.loads(json.dumps(serializer(rows[i[key]]).data, cls=DjangoJSONEncoder)) for i in items]


def test_paths_are_reversed_once_and_agree_with_reverse():
    set_script_prefix("/portal/")
    try:
        assert s.path_for("api:version-detail", "titanic.v2-x", 12) == reverse("api:version-detail",
                                                                              args=["titanic.v2-x", 12])
        assert s.path_for("api:run-detail", 7) == reverse("api:run-detail", args=[7]) == "/portal/api/v1/runs/7/"
    finally:
        set_script_prefix("/")
    assert s.path_for("api:run-detail", 7) == "/api/v1/runs/7/"


def test_audit_is_filtered(world, manager):  # noqa: F811
    api = ApiClient(make_token(manager))
    everything = api.get(reverse("api:audit")).json()["results"]
    assert everything
    only = api.get(reverse("api:audit") + "?who=eve-engineer&action=create").json()["results"]
    assert only and all(e["actor_name"] == "eve-engineer" and e["action"] == "created" for e in only)
    assert api.get(reverse("api:audit") + "?action=bogus").status_code == 400


# --- schema and docs ----------------------------------------------------------------------------------------------
def test_docs_page_is_a_signed_in_page_served_without_a_cdn(engineer_client):
    assert Client().get(reverse("api:docs")).status_code == 302
    page = engineer_client.get(reverse("api:docs"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "swagger-ui" in text and "cdn" not in text.lower() and "https://" not in text.split("<body")[0]
    schema = engineer_client.get(reverse("api:schema") + "?format=json")
    assert schema.status_code == 200 and "/api/v1/promotions/" in schema.json()["paths"]
