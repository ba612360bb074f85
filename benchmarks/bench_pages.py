"""Server time and SQL query count of the registry's busiest pages, at two data sizes.

    .venv/bin/python benchmarks/bench_pages.py                  # PostgreSQL on 127.0.0.1 if it answers, else SQLite
    DATABASE_URL=postgres://... .venv/bin/python benchmarks/bench_pages.py --models 200 --versions 50 --scale 10

For each size it builds a fresh database (the test database of DATABASE_URL, named test_<name>), fills it with
models and versions, and requests each page through Django's full stack (middleware, view, template) in process.
It prints p50/p95/max in milliseconds and the number of SQL queries per request. Numbers, not pass/fail.
"""
import argparse
import os
import random
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _pg_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--versions", type=int, default=50, help="versions per model")
    parser.add_argument("--scale", type=int, default=10, help="the second size is this many times more models")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page")
    parser.add_argument("--profile", metavar="URL", help="only profile one page at the first size and print the top")
    args = parser.parse_args()

    if "DATABASE_URL" not in os.environ and _pg_available():
        os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/mlops_bench"
    os.environ.setdefault("MLOPS_DATA_DIR", "/tmp/mlops-bench")
    os.environ["DJANGO_SETTINGS_MODULE"] = "mlopsportal.settings"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
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
    for models in (args.models, args.models * args.scale):
        old = setup_databases(verbosity=0, interactive=False)
        try:
            run_size(models, args.versions, args.requests)
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


def run_size(models: int, versions: int, requests: int) -> None:
    from django.test import Client

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


if __name__ == "__main__":
    main()
