"""Upgrading keeps every row: a database at the schema before the rooms split, with a promotion in it, migrates."""
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("deployments", "0003_functional_run_purpose")]

pytestmark = pytest.mark.django_db(transaction=True)


def _migrate(targets):
    """Migrate the deployments app to `targets`; the models of every app as the database then has them."""
    executor = MigrationExecutor(connection)
    others = [node for node in executor.loader.graph.leaf_nodes() if node[0] != "deployments"]
    executor.migrate(targets)
    executor = MigrationExecutor(connection)
    return executor.loader.project_state(targets + others).apps


def test_traffic_steps_get_their_percentage_column_and_nothing_is_lost(django_user_model):
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    old = _migrate(BEFORE)
    try:
        user = old.get_model("auth", "User").objects.create(username="old-engineer")
        Model = old.get_model("models_registry", "RegisteredModel")
        Version = old.get_model("models_registry", "ModelVersion")
        model = Model.objects.create(name="titanic")
        version = Version.objects.create(model=model, version=1, artifact_uri="local:registry/titanic/1",
                                         artifact_sha256="0" * 64)
        Profile = old.get_model("deployments", "DeploymentProfile")
        Endpoint = old.get_model("deployments", "Endpoint")
        profile = Profile.objects.create(name="small")
        staging = Endpoint.objects.create(name="t-staging", stage="staging", profile=profile)
        prod = Endpoint.objects.create(name="t-prod", stage="production", profile=profile)
        Promotion = old.get_model("deployments", "Promotion")
        promotion = Promotion.objects.create(version=version, staging_endpoint=staging, production_endpoint=prod,
                                             requested_by_id=user.pk, approval_required=True,
                                             traffic_steps=[10, 50, 100], state="succeeded")
        Step = old.get_model("deployments", "PromotionStep")
        kinds = ["validate", "approval", "traffic_10", "traffic_50", "traffic_100", "finish"]
        for position, kind in enumerate(kinds):
            Step.objects.create(promotion=promotion, position=position, kind=kind, label=kind, status="succeeded",
                                detail=f"detail of {kind}")
    finally:
        new = _migrate(latest)

    Step = new.get_model("deployments", "PromotionStep")
    rows = list(Step.objects.filter(promotion_id=promotion.pk).order_by("position")
                .values_list("kind", "percent", "detail", "retries"))
    assert rows == [("validate", None, "detail of validate", 0), ("approval", None, "detail of approval", 0),
                    ("traffic", 10, "detail of traffic_10", 0), ("traffic", 50, "detail of traffic_50", 0),
                    ("traffic", 100, "detail of traffic_100", 0), ("finish", None, "detail of finish", 0)]
    assert new.get_model("deployments", "Promotion").objects.get(pk=promotion.pk).state == "succeeded"
    # Rows already there get a first revision (never with the key), so their first edit has one to compare with.
    History = new.get_model("deployments", "HistoricalEndpoint")
    assert sorted(History.objects.values_list("name", "stage", "history_type")) == [
        ("t-prod", "production", "+"), ("t-staging", "staging", "+")]
    assert "key" not in {f.name for f in History._meta.get_fields()}
    assert new.get_model("deployments", "HistoricalDeploymentProfile").objects.get().name == "small"


def test_the_migration_reverses(django_user_model):
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    new = _migrate(latest)
    Model = new.get_model("models_registry", "RegisteredModel")
    version = new.get_model("models_registry", "ModelVersion").objects.create(
        model=Model.objects.create(name="m"), version=1, artifact_uri="local:x", artifact_sha256="0" * 64)
    profile = new.get_model("deployments", "DeploymentProfile").objects.create(name="p")
    Endpoint = new.get_model("deployments", "Endpoint")
    promotion = new.get_model("deployments", "Promotion").objects.create(
        version=version, staging_endpoint=Endpoint.objects.create(name="s-one", stage="staging", profile=profile),
        production_endpoint=Endpoint.objects.create(name="p-one", stage="production", profile=profile),
        approval_required=False, state="failed")
    new.get_model("deployments", "PromotionStep").objects.create(promotion=promotion, position=0, kind="traffic",
                                                                 percent=50, label="50%")
    try:
        old = _migrate(BEFORE)
        assert old.get_model("deployments", "PromotionStep").objects.get(promotion_id=promotion.pk).kind == "traffic_50"
    finally:
        _migrate(latest)


LEDGER_BEFORE = [("deployments", "0011_endpoint_platform_traffic")]


def test_the_release_ledger_is_backfilled_from_the_audit_log(django_user_model):
    """A database holding today's data: deployments and traffic changes known only from the audit log, written in
    the shapes today's services write (a deployment name reused after the first one was deleted, a promotion, a
    rollback), and an endpoint whose rows predate its events. The migration replays them into the ledger."""
    from datetime import timedelta

    from django.utils import timezone

    from audit.services import status_change

    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    old = _migrate(LEDGER_BEFORE)
    try:
        user = old.get_model("auth", "User").objects.create(username="old-admin")
        Model = old.get_model("models_registry", "RegisteredModel")
        Version = old.get_model("models_registry", "ModelVersion")
        model = Model.objects.create(name="titanic")
        v1, v2 = (Version.objects.create(model=model, version=n, artifact_uri=f"local:registry/titanic/{n}",
                                         artifact_sha256="0" * 64) for n in (1, 2))
        profile = old.get_model("deployments", "DeploymentProfile").objects.create(name="small")
        Endpoint = old.get_model("deployments", "Endpoint")
        staging = Endpoint.objects.create(name="t-staging", stage="staging", profile=profile)
        prod = Endpoint.objects.create(name="t-prod", stage="production", profile=profile)
        quiet = Endpoint.objects.create(name="t-quiet", stage="staging", profile=profile)
        Deployment = old.get_model("deployments", "Deployment")
        blue = Deployment.objects.create(endpoint=prod, name="blue", model_version=v1, status="healthy", traffic=100)
        green = Deployment.objects.create(endpoint=prod, name="green", model_version=v2, status="healthy")
        red_1 = Deployment.objects.create(endpoint=prod, name="red", model_version=v1, status="deleted")
        red_2 = Deployment.objects.create(endpoint=prod, name="red", model_version=v2, status="creating")
        Deployment.objects.create(endpoint=quiet, name="blue", model_version=v2, status="healthy", traffic=100)
        promotion = old.get_model("deployments", "Promotion").objects.create(
            version=v2, staging_endpoint=staging, production_endpoint=prod, requested_by_id=user.pk,
            approval_required=True, traffic_steps=[10, 100], state="succeeded", production_deployment_id=green.pk)
        ContentType = old.get_model("contenttypes", "ContentType")
        on_deployment = ContentType.objects.get(app_label="deployments", model="deployment")
        on_endpoint = ContentType.objects.get(app_label="deployments", model="endpoint")
        AuditEvent = old.get_model("audit", "AuditEvent")
        start = timezone.now() - timedelta(days=3)
        written = [
            (blue, "create", "deploying titanic v1 as t-prod/blue", status_change("status", None, "creating")),
            (red_1, "create", "deploying titanic v1 as t-prod/red", status_change("status", None, "creating")),
            (blue, "update", "t-prod/blue is healthy", status_change("status", "creating", "healthy")),
            (red_1, "delete", "deleted t-prod/red", status_change("status", "creating", "deleting")),
            (red_1, "update", "t-prod/red is deleted", status_change("status", "deleting", "deleted")),
            (prod, "update", "changed traffic: blue 100%", {"traffic": [{"blue": 0}, {"blue": 100}]}),
            (green, "create", f"deploying titanic v2 as t-prod/green (promotion #{promotion.pk}: titanic v2 to t-prod)",
             status_change("status", None, "creating")),
            (prod, "update", f"promotion #{promotion.pk}: titanic v2 to t-prod: step to 10%: blue 90%, green 10%",
             {"traffic": [{"blue": 100, "green": 0}, {"blue": 90, "green": 10}]}),
            (prod, "update", f"promotion #{promotion.pk}: titanic v2 to t-prod: step to 100%: blue 0%, green 100%",
             {"traffic": [{"blue": 90, "green": 10}, {"blue": 0, "green": 100}]}),
            (prod, "update", "rolled back from titanic v2 to titanic v1: errors: blue 100%, green 0%",
             {"traffic": [{"blue": 0, "green": 100}, {"blue": 100, "green": 0}]}),
            (prod, "update", "edited t-prod", {"diff": [{"field": "traffic_steps", "old": "10,100", "new": "50,100"}]}),
            (red_2, "create", "deploying titanic v2 as t-prod/red", status_change("status", None, "creating")),
        ]
        for minutes, (target, action, summary, changes) in enumerate(written):
            event = AuditEvent.objects.create(
                actor_id=user.pk, actor_name="old-admin", action=action, summary=summary, changes=changes,
                target_type=on_endpoint if target is prod else on_deployment, target_id=str(target.pk),
                target_repr=str(target.pk), via="portal")
            AuditEvent.objects.filter(pk=event.pk).update(at=start + timedelta(minutes=minutes))
    finally:
        new = _migrate(latest)

    ReleaseEvent = new.get_model("deployments", "ReleaseEvent")
    ledger = list(ReleaseEvent.objects.filter(endpoint_id=prod.pk).order_by("at", "id"))
    assert [(e.kind, e.deployment_id) for e in ledger] == [
        ("deployed", blue.pk), ("deployed", red_1.pk), ("removed", red_1.pk), ("traffic", None),
        ("deployed", green.pk), ("traffic", None), ("traffic", None), ("rollback", None), ("deployed", red_2.pk)]
    splits = [{row["deployment"]: row["traffic"] for row in e.serving} for e in ledger]
    assert splits == [{"blue": 0}, {"blue": 0, "red": 0}, {"blue": 0}, {"blue": 100}, {"blue": 100, "green": 0},
                      {"blue": 90, "green": 10}, {"blue": 0, "green": 100}, {"blue": 100, "green": 0},
                      {"blue": 100, "green": 0, "red": 0}]
    assert [row["deployment_id"] for row in ledger[-1].serving] == [blue.pk, green.pk, red_2.pk]
    since = [{row["deployment"]: row["since"] for row in e.serving if row["since"]} for e in ledger]
    assert since[5] == {"blue": ledger[3].at.isoformat(), "green": ledger[5].at.isoformat()}
    assert since[7] == since[8] == {"blue": ledger[7].at.isoformat()}  # since the rollback, not since it first served
    assert ledger[5].serving[1]["version"] == "titanic v2" and ledger[5].serving[1]["version_id"] == v2.pk
    assert [e.promotion_id for e in ledger] == [None] * 4 + [promotion.pk] * 3 + [None] * 2
    assert {e.actor_name for e in ledger} == {"old-admin"} and ledger[0].at == start
    assert {e.model_id for e in ledger} == {model.pk}
    # An endpoint the log says nothing of starts its ledger with what it serves now.
    (found,) = ReleaseEvent.objects.filter(endpoint_id=quiet.pk)
    assert found.actor_name == "system" and [(r["deployment"], r["traffic"]) for r in found.serving] == [("blue", 100)]
    assert not ReleaseEvent.objects.filter(endpoint_id=staging.pk).exists()
