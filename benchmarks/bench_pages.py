"""Server time and SQL query count of the registry's busiest pages and of the managers' ledger pages, at two sizes.

    .venv/bin/python benchmarks/bench_pages.py                  # PostgreSQL on 127.0.0.1 if it answers, else SQLite
    DATABASE_URL=postgres://... .venv/bin/python benchmarks/bench_pages.py --models 200 --versions 50 --scale 10

For each size it builds a fresh database (the test database of DATABASE_URL, named test_<name>), fills it with
models and versions, release-ledger events and audit events (--events each at the larger size, a --scale-th of
that at the smaller; on PostgreSQL with INSERT ... SELECT generate_series), and requests each page through
Django's full stack (middleware, view, template) in process. It prints p50/p95/max in milliseconds and the number
of SQL queries per request. Numbers, not pass/fail.
"""
import argparse
import os
import random
import socket
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _pg_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def configure_env() -> None:
    """PostgreSQL on 127.0.0.1 when it answers (else SQLite), a scratch data folder, quiet logs."""
    if "DATABASE_URL" not in os.environ and _pg_available():
        os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/mlops_bench"
    os.environ.setdefault("MLOPS_DATA_DIR", "/tmp/mlops-bench")
    os.environ["DJANGO_SETTINGS_MODULE"] = "mlopsportal.settings"
    os.environ.setdefault("LOG_LEVEL", "WARNING")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--versions", type=int, default=50, help="versions per model")
    parser.add_argument("--scale", type=int, default=10, help="the second size is this many times more models")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page")
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="release-ledger events, and as many audit events, at the larger size")
    parser.add_argument("--profile", metavar="URL", help="only profile one page (as the manager) at the first size and "
                        "print the top; ENDPOINT and MODEL in it stand for a production endpoint and its model")
    args = parser.parse_args()

    configure_env()
    import django

    django.setup()
    from django.conf import settings
    from django.test.utils import setup_databases, teardown_databases

    settings.STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    print(f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}  "
          f"python {sys.version.split()[0]}  timed requests per page: {args.requests}")
    print(f"{'size':<26}{'page':<28}{'p50 ms':>8}{'p95 ms':>8}{'max ms':>8}{'queries':>9}{'bytes':>9}")
    for models, events in ((args.models, args.events // args.scale), (args.models * args.scale, args.events)):
        old = setup_databases(verbosity=0, interactive=False)
        try:
            run_size(models, args.versions, args.requests, events, profile=args.profile)
            if args.profile:
                return
        finally:
            teardown_databases(old, verbosity=0)


def fill(models: int, versions: int):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db.models import OuterRef, Subquery

    from accounts import roles
    from models_registry.models import ModelVersion, RegisteredModel

    rng = random.Random(7)
    User = get_user_model()
    users = [User.objects.create_user(username=f"user{i}", password="bench-password") for i in range(20)]
    for user in users:
        user.groups.add(Group.objects.get(name=roles.ENGINEER))
    RegisteredModel.objects.bulk_create(
        [RegisteredModel(name=f"model-{i:05d}", description=f"Benchmark model {i} predicting something useful.",
                         key_metric="cv_accuracy", created_by=users[i % 20]) for i in range(models)],
        batch_size=2000)
    batch = []
    for model_id in RegisteredModel.objects.values_list("pk", flat=True):
        for number in range(1, versions + 1):
            batch.append(ModelVersion(
                model_id=model_id, version=number, description="", created_by=users[number % 20],
                metrics={"cv_accuracy": round(0.7 + rng.random() * 0.15, 4), "holdout_auc": round(rng.random(), 4),
                         "holdout_accuracy": round(rng.random(), 4), "train_rows": 712},
                params={"n_estimators": 100 + number, "max_depth": 7}, tags={"experiment": "bench"},
                artifact_uri=f"local:registry/m/{number}", artifact_sha256="0" * 64, artifact_size=1000,
                artifact_files=[{"path": "model.pkl", "size": 1000, "sha256": "0" * 64}],
                dataset_sha256="1" * 64, code_version="2" * 64))
            if len(batch) >= 5000:
                ModelVersion.objects.bulk_create(batch)
                batch = []
    ModelVersion.objects.bulk_create(batch)
    latest = ModelVersion.objects.filter(model=OuterRef("pk")).order_by("-version").values("pk")[:1]
    RegisteredModel.objects.update(latest_version=Subquery(latest))
    return users[0]


def measure(client, url: str, requests: int):
    from django.db import connection

    for _ in range(10):  # warm caches, connections and template loading
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    queries = []
    with connection.execute_wrapper(lambda execute, sql, params, many, context: (queries.append(sql),
                                                                                execute(sql, params, many, context))[1]):
        response = client.get(url)
    timings = []
    for _ in range(requests):
        start = time.perf_counter()
        client.get(url)
        timings.append((time.perf_counter() - start) * 1000)
    timings.sort()
    p95 = timings[int(len(timings) * 0.95) - 1]
    return statistics.median(timings), p95, timings[-1], len(queries), len(response.content)


ENDPOINTS = 40  # half production, half staging; each serves one model


def fill_ledger(events: int):
    """ENDPOINTS endpoints, each serving two versions of its own model, `events` release events spread over them
    (one every 30 s, back from now), and `events` audit events; returns (a production endpoint's name, its model's
    name, a moment in the middle of the ledger)."""
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection
    from django.utils import timezone

    from deployments.models import DeploymentProfile, Endpoint, ReleaseEvent
    from models_registry.models import ModelVersion, RegisteredModel

    profile = DeploymentProfile.objects.create(name="bench")
    picked = list(RegisteredModel.objects.order_by("pk")[:ENDPOINTS])
    endpoints = Endpoint.objects.bulk_create([
        Endpoint(name=f"bench-{'prod' if i % 2 else 'stag'}-{i:03d}", stage="production" if i % 2 else "staging",
                 profile=profile) for i in range(ENDPOINTS)])
    per_endpoint = events // ENDPOINTS
    Endpoint.objects.update(created_at=timezone.now() - timedelta(seconds=(per_endpoint + 1) * 30 * ENDPOINTS))
    postgres = connection.vendor == "postgresql"
    for i, (endpoint, model) in enumerate(zip(endpoints, picked, strict=True)):
        v1, v2 = ModelVersion.objects.filter(model=model).order_by("version")[:2]
        if postgres:
            with connection.cursor() as cursor:
                cursor.execute(
                    """INSERT INTO deployments_releaseevent
                       (endpoint_id, at, kind, serving, model_id, actor_name, via, summary)
                       SELECT %s, now() - (g * %s + %s) * interval '1 second',
                              CASE WHEN g %% 50 = 0 THEN 'deployed' ELSE 'traffic' END,
                              jsonb_build_array(
                                jsonb_build_object('deployment', 'blue', 'deployment_id', 0, 'version_id', %s,
                                                   'version', %s, 'traffic', 100 - g %% 2 * 100, 'since', NULL),
                                jsonb_build_object('deployment', 'green', 'deployment_id', 0, 'version_id', %s,
                                                   'version', %s, 'traffic', g %% 2 * 100, 'since', NULL)),
                              %s, 'system', 'system', 'traffic moved by the benchmark'
                       FROM generate_series(1, %s) AS g""",
                    [endpoint.pk, 30 * ENDPOINTS, i, v1.pk, str(v1), v2.pk, str(v2), model.pk, per_endpoint])
        else:
            now = timezone.now()
            ReleaseEvent.objects.bulk_create([ReleaseEvent(
                endpoint=endpoint, at=now - timedelta(seconds=g * 30 * ENDPOINTS + i), kind="traffic",
                model=model, actor_name="system", via="system", summary="traffic moved by the benchmark",
                serving=[{"deployment": "blue", "deployment_id": 0, "version_id": v1.pk, "version": str(v1),
                          "traffic": 100 - g % 2 * 100, "since": None},
                         {"deployment": "green", "deployment_id": 0, "version_id": v2.pk, "version": str(v2),
                          "traffic": g % 2 * 100, "since": None}]) for g in range(1, per_endpoint + 1)],
                batch_size=5000)
    target = ContentType.objects.get_for_model(RegisteredModel).pk
    if postgres:
        with connection.cursor() as cursor:
            cursor.execute(
                """INSERT INTO audit_auditevent
                   (at, actor_name, action, target_type_id, target_id, target_repr, summary, changes, via)
                   SELECT now() - g * interval '1 second', 'user' || (g %% 20), 'update', %s, (g %% 1000)::text,
                          'model-' || (g %% 1000), 'edited the model',
                          '{"diff": [{"field": "description", "old": "before", "new": "after"}]}'::jsonb, 'portal'
                   FROM generate_series(1, %s) AS g""", [target, events])
            cursor.execute("ANALYZE")
    else:
        from audit.models import AuditEvent

        now = timezone.now()
        AuditEvent.objects.bulk_create([AuditEvent(
            at=now - timedelta(seconds=g), actor_name=f"user{g % 20}", action="update",
            target_type_id=target, target_id=str(g % 1000), target_repr=f"model-{g % 1000}",
            summary="edited the model", changes={"diff": [{"field": "description", "old": "a", "new": "b"}]},
            via="portal") for g in range(1, events + 1)], batch_size=5000)
    middle = timezone.now() - timedelta(seconds=per_endpoint * 30 * ENDPOINTS // 2)
    production = next(e for e in endpoints if e.stage == "production")
    return production.name, picked[endpoints.index(production)].name, middle


def profile_page(client, url: str, requests: int) -> None:
    import cProfile
    import pstats

    for _ in range(5):
        client.get(url)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        client.get(url)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(60)


def run_size(models: int, versions: int, requests: int, events: int, profile: str | None = None) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client
    from django.utils import timezone

    from accounts import roles

    started = time.perf_counter()
    user = fill(models, versions)
    label = f"{models} models x {versions} v"
    print(f"{'':<26}(filled {models * versions} versions in {time.perf_counter() - started:.1f} s)")
    client = Client()
    client.force_login(user)
    middle = f"model-{models // 2:05d}"
    pages = [
        ("models list", "/models/"),
        ("models list, page 5", "/models/?page=5"),
        ("models list, search", "/models/?q=model-001"),
        ("model detail", f"/models/{middle}/"),
        ("version detail", f"/models/{middle}/versions/{versions}/"),
    ]
    for name, url in pages:
        p50, p95, worst, queries, size = measure(client, url, requests)
        print(f"{label:<26}{name:<28}{p50:>8.2f}{p95:>8.2f}{worst:>8.2f}{queries:>9}{size:>9}")

    started = time.perf_counter()
    endpoint, model, moment = fill_ledger(events)
    label = f"+{events:,} ledger/audit"
    print(f"{'':<26}(filled {events:,} release events and {events:,} audit events in "
          f"{time.perf_counter() - started:.1f} s)")
    manager = get_user_model().objects.create_user(username="bench-manager", password="bench-password")
    manager.groups.add(Group.objects.get(name=roles.MANAGER))
    client = Client()
    client.force_login(manager)
    if profile:
        profile_page(client, profile.replace("ENDPOINT", endpoint).replace("MODEL", model), requests)
        return
    at = timezone.localtime(moment).strftime("%Y-%m-%dT%H:%M:%S")
    for name, url in [
        ("models list, in production", "/models/"),
        ("what served when (as of)", f"/releases/?at={at}"),
        ("endpoint release history", f"/endpoints/{endpoint}/releases/"),
        ("model timeline, first page", f"/models/{model}/timeline/"),
        ("audit page", "/audit/"),
        ("audit page, by who", "/audit/?who=user7"),
    ]:
        p50, p95, worst, queries, size = measure(client, url, requests)
        print(f"{label:<26}{name:<28}{p50:>8.2f}{p95:>8.2f}{worst:>8.2f}{queries:>9}{size:>9}")


if __name__ == "__main__":
    main()
