"""Server time and SQL query count of the configuration pages with many revisions of one profile.

    .venv/bin/python benchmarks/bench_configs.py                 # PostgreSQL on 127.0.0.1 if it answers, else SQLite
    .venv/bin/python benchmarks/bench_configs.py --revisions 10000 --requests 200

Builds a fresh test database, gives one deployment profile --revisions revisions (django-simple-history rows, each
changing a few fields), puts it on a production endpoint with two live deployments (one made from the first revision,
one from the one before last), and requests each page as an admin through Django's full stack, in process. The drift
page asks the backend (local) how each deployment runs. Prints p50/p95/max ms and queries per request.
"""
import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_pages import configure_env, measure  # noqa: E402


def fill(revisions: int):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.utils import timezone

    from accounts import roles
    from deployments.models import Deployment, DeploymentProfile, Endpoint
    from tests.models_registry.factories import make_model

    roles.ensure_role_groups()
    admin = get_user_model().objects.create_user("admin", password="x")
    admin.groups.add(Group.objects.get(name=roles.ADMIN))
    profile = DeploymentProfile.objects.create(name="busy")
    History = DeploymentProfile.history.model
    first = History.objects.get()
    fields = [f.attname for f in History._meta.concrete_fields if not f.name.startswith("history_")]
    start = timezone.now() - timedelta(days=revisions)
    rows = []
    for number in range(2, revisions + 1):
        values = {name: getattr(first, name) for name in fields}
        values.update(instance_count=1 + number % 7, request_timeout_ms=1000 + number % 50 * 100,
                      max_concurrent_requests_per_instance=1 + number % 4)
        rows.append(History(**values, history_date=start + timedelta(hours=number), history_type="~",
                            history_user=admin, history_change_reason=f"change {number}"))
    History.objects.bulk_create(rows, batch_size=2000)
    last = History.objects.order_by("-history_id").first()
    DeploymentProfile.objects.filter(pk=profile.pk).update(instance_count=last.instance_count,
                                                           request_timeout_ms=last.request_timeout_ms,
                                                           max_concurrent_requests_per_instance=last.max_concurrent_requests_per_instance)
    prod = Endpoint.objects.create(name="busy-prod", stage="production", profile=profile)
    model = make_model(admin, name="titanic", versions=2)
    made_from = [first, History.objects.order_by("-history_id")[1]]
    for name, version, revision in zip(("blue", "green"), model.versions.order_by("version"), made_from, strict=True):
        Deployment.objects.create(endpoint=prod, name=name, model_version=version, status="healthy",
                                  serving_settings=revision.instance.serving_settings(),
                                  profile_revision=revision.history_id, backend_ref={"dir": f"bench/{name}"},
                                  scoring_url="http://127.0.0.1:1/score")
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return admin, profile, prod


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--revisions", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    configure_env()
    os.environ["MLOPS_BACKEND"] = "local"
    import django

    django.setup()
    from django.conf import settings
    from django.test import Client
    from django.test.utils import setup_databases, teardown_databases

    settings.STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"
    settings.ALLOWED_HOSTS = ["testserver"]
    old = setup_databases(verbosity=0, interactive=False)
    try:
        started = time.perf_counter()
        admin, profile, prod = fill(args.revisions)
        print(f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}  "
              f"{profile.history.count()} revisions of one profile (filled in {time.perf_counter() - started:.1f} s)"
              f"  timed requests per page: {args.requests}")
        client = Client()
        client.force_login(admin)
        n = profile.history.count()
        pages = [
            ("revision diff, last two", f"/configs/profiles/{profile.pk}/diff/"),
            ("revision diff, first vs last", f"/configs/profiles/{profile.pk}/diff/?a=1&b={n}"),
            ("revision diff, middle", f"/configs/profiles/{profile.pk}/diff/?a={n // 2}&b={n // 2 + 1}"),
            ("profile page (revisions)", f"/configs/profiles/{profile.pk}/"),
            ("profile page, oldest page", f"/configs/profiles/{profile.pk}/?before=60"),
            ("drift view", f"/endpoints/{prod.name}/drift/"),
            ("edit form", f"/configs/profiles/{profile.pk}/edit/"),
        ]
        print(f"{'page':<32}{'p50 ms':>8}{'p95 ms':>8}{'max ms':>8}{'queries':>9}{'bytes':>9}")
        for label, url in pages:
            p50, p95, most, queries, size = measure(client, url, args.requests)
            print(f"{label:<32}{p50:>8.1f}{p95:>8.1f}{most:>8.1f}{queries:>9}{size:>9}")
    finally:
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
