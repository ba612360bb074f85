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
