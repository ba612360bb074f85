"""Celery tasks of verification: one shard of a stress run, one step of a capacity test."""
from celery import shared_task

from mlopsportal.lib.queue import enqueue

from . import services


@shared_task(name="deployments.tasks.stress_shard", bind=True, acks_late=True, soft_time_limit=3700,
             time_limit=3720)
def stress_shard(self, run_id: int, shard: int, url: str) -> None:
    services.stress_shard_run(run_id=run_id, shard=shard, url=url, worker=self.request.hostname or "")


@shared_task(name="deployments.tasks.capacity_test_advance", acks_late=True, soft_time_limit=660, time_limit=700)
def capacity_test_advance(test_id: int) -> None:
    """One step of a capacity test; the next one is queued when this one is kept."""
    if services.capacity_test_advance(test_id=test_id):
        enqueue("deployments.tasks.capacity_test_advance", test_id)


@shared_task(name="deployments.tasks.capacity_tests_resume", soft_time_limit=60, time_limit=90)
def capacity_tests_resume() -> list[int]:
    return services.capacity_tests_resume()
