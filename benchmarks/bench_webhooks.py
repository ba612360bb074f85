"""Webhook fan-out: 1,000 deliveries to a local receiver with one worker, timed from the events to the last one sent.

    .venv/bin/python benchmarks/bench_webhooks.py                      # needs PostgreSQL and Redis on 127.0.0.1
    .venv/bin/python benchmarks/bench_webhooks.py --events 100 --subscriptions 10

Builds a fresh test database, subscribes --subscriptions URLs of one local receiver (a threaded HTTP server in this
process that checks every signature) to `rollback`, starts one `celery worker` (its default pool: one process per
core), emits --events events in one transaction, and waits until every delivery is sent. Prints the time, the rate
and the receiver's count of good signatures. The target is 1,000 deliveries in under 60 s.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--subscriptions", type=int, default=10)
    args = parser.parse_args()
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mlops_bench")
    os.environ.update(CELERY_BROKER_URL=BROKER, CELERY_QUEUE=f"bench-webhooks-{os.getpid()}",
                      MLOPS_WEBHOOK_ALLOW_PRIVATE="1", DJANGO_SETTINGS_MODULE="mlopsportal.settings",
                      LOG_LEVEL="WARNING", MLOPS_DATA_DIR="/tmp/mlops-bench")
    import django

    django.setup()
    from django.db import connection, transaction
    from django.test.utils import setup_databases, teardown_databases

    from tests.receivers import WebhookReceiver
    from webhooks import services
    from webhooks.models import Delivery, Subscription

    old = setup_databases(verbosity=0, interactive=False)
    receiver = WebhookReceiver(status=204)
    db = connection.settings_dict
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "mlopsportal", "worker", "--without-mingle", "--without-gossip",
         "--queues", os.environ["CELERY_QUEUE"], "--loglevel", "WARNING"], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "DATABASE_URL": f"postgres://postgres@{db['HOST']}:{db['PORT']}/{db['NAME']}"})
    try:
        for n in range(args.subscriptions):
            s = Subscription.objects.create(name=f"r{n}", url=receiver.url_for(f"r{n}"), events=["rollback"])
            receiver.secrets[f"r{n}"] = s.secret
        time.sleep(5)  # the worker is up
        total = args.events * args.subscriptions
        started = time.perf_counter()
        with transaction.atomic():
            for n in range(args.events):
                services.emit("rollback", {"endpoint": "titanic-prod", "n": n})
        queued = time.perf_counter() - started
        while Delivery.objects.filter(status=Delivery.Status.SENT).count() < total:
            if time.perf_counter() - started > 600:
                raise SystemExit("not all sent after 600 s")
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        print(f"{total} deliveries ({args.events} events x {args.subscriptions} subscriptions), one worker: "
              f"all sent in {elapsed:.1f} s ({total / elapsed:.0f}/s; recorded and queued in {queued:.2f} s); "
              f"receiver: {sum(r['ok'] for r in receiver.received)} good signatures, "
              f"{sum(not r['ok'] for r in receiver.received)} bad; failed deliveries: "
              f"{Delivery.objects.filter(status=Delivery.Status.FAILED).count()}")
    finally:
        worker.terminate()
        worker.wait(30)
        receiver.close()
        connection.close()
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
