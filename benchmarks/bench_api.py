"""Server time and SQL query count of the API's list and get routes, with 100,000 versions of one model.

    .venv/bin/python benchmarks/bench_api.py                    # PostgreSQL on 127.0.0.1 if it answers, else SQLite
    .venv/bin/python benchmarks/bench_api.py --versions 100000 --requests 300

Builds a fresh test database, registers --versions versions of one model (and as many training runs and audit
events), makes an engineer's and a manager's token, and calls each route through Django's whole stack in process
(bearer token checked, rate limit counted, JSON rendered). Each route is timed at 1,000 versions and again at the
full size: the query count must not grow with the rows (cursor pagination: no COUNT, no OFFSET). Prints p50/p95/max
ms and queries per request. The target is p50 <= 15 ms at 100,000 versions.
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_pages import configure_env, measure  # noqa: E402


def fill(versions: int, start: int = 1):
    from django.contrib.auth import get_user_model
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection

    from audit.models import AuditEvent
    from models_registry.models import ModelVersion, RegisteredModel, TrainingRun

    model = RegisteredModel.objects.get_or_create(name="titanic")[0]
    engineer = get_user_model().objects.get(username="eve")
    runs = TrainingRun.objects.bulk_create([TrainingRun(
        experiment_name="titanic-experiment", example="titanic", params={"n_estimators": 200}, compute_target="local",
        backend="local", timeout_seconds=600, status="succeeded", metrics={"cv_accuracy": 0.8}, launched_by=engineer)
        for _ in range(start, versions + 1)], batch_size=5000)
    ModelVersion.objects.bulk_create([ModelVersion(
        model=model, version=number, metrics={"cv_accuracy": 0.8 + number % 100 / 1000}, params={"max_depth": 7},
        artifact_uri=f"local:registry/titanic/{number}", artifact_sha256="0" * 64, artifact_size=1000,
        artifact_files=[{"path": "model.joblib", "size": 1000, "sha256": "0" * 64}], training_run=run,
        created_by=engineer) for number, run in zip(range(start, versions + 1), runs, strict=True)], batch_size=5000)
    last = ModelVersion.objects.get(model=model, version=versions)
    RegisteredModel.objects.filter(pk=model.pk).update(latest_version=last, versions_reserved=versions)
    kind = ContentType.objects.get_for_model(ModelVersion)
    AuditEvent.objects.bulk_create([AuditEvent(
        actor=engineer, actor_name="eve", action="register", target_type=kind, target_id=str(number),
        target_repr=f"titanic v{number}", summary=f"registered titanic v{number}", via="api")
        for number in range(start, versions + 1)], batch_size=5000)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return model, last.training_run_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    configure_env()
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client
    from django.test.utils import setup_databases, teardown_databases

    settings.ALLOWED_HOSTS = ["testserver"]
    settings.MLOPS_API_RATE = "1000000/min"
    old = setup_databases(verbosity=0, interactive=False)
    try:
        from accounts import roles
        from api.tokens import token_create

        roles.ensure_role_groups()
        users = {}
        for name, role in (("eve", roles.ENGINEER), ("max", roles.MANAGER)):
            users[name] = get_user_model().objects.create_user(name, password="x")
            users[name].groups.add(Group.objects.get(name=role))
        tokens = {name: token_create(user=user, name="bench", days=1, read_only=False)[1]
                  for name, user in users.items()}
        clients = {name: Client(headers={"Authorization": f"Bearer {text}"}) for name, text in tokens.items()}
        first = min(1000, args.versions)
        sizes = [first, args.versions] if args.versions > first else [first]
        filled = 0
        print(f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}  "
              f"timed requests per route: {args.requests}")
        for size in sizes:
            started = time.perf_counter()
            model, run_id = fill(size, start=filled + 1)
            filled = size
            print(f"\n{size:,} versions, runs and audit events (filled in {time.perf_counter() - started:.1f} s)")
            routes = [
                ("eve", "versions list (newest 50)", "/api/v1/models/titanic/versions/"),
                ("eve", "versions list, 200 a page", "/api/v1/models/titanic/versions/?page_size=200"),
                ("eve", "version get", f"/api/v1/models/titanic/versions/{size // 2}/"),
                ("eve", "model get", "/api/v1/models/titanic/"),
                ("eve", "models list", "/api/v1/models/"),
                ("eve", "runs list (newest 50)", "/api/v1/runs/"),
                ("eve", "runs list, by status", "/api/v1/runs/?status=succeeded"),
                ("eve", "run get (log tail)", f"/api/v1/runs/{run_id}/"),
                ("max", "audit list (newest 50)", "/api/v1/audit/"),
                ("max", "audit list, by who", "/api/v1/audit/?who=eve&action=register"),
                ("eve", "me", "/api/v1/me/"),
            ]
            print(f"{'route':<30}{'p50 ms':>8}{'p95 ms':>8}{'max ms':>8}{'queries':>9}")
            for who, label, url in routes:
                p50, p95, most, queries, _ = measure(clients[who], url, args.requests)
                print(f"{label:<30}{p50:>8.1f}{p95:>8.1f}{most:>8.1f}{queries:>9}")
            next_page = clients["eve"].get("/api/v1/models/titanic/versions/").json()["next"]
            p50, p95, most, queries, _ = measure(clients["eve"], next_page.replace("http://testserver", ""),
                                                 args.requests)
            print(f"{'versions list, next page':<30}{p50:>8.1f}{p95:>8.1f}{most:>8.1f}{queries:>9}")
    finally:
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
