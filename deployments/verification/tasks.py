"""Celery tasks of verification: one shard of a stress run."""
from celery import shared_task

from . import services


@shared_task(name="deployments.tasks.stress_shard", bind=True, acks_late=True, soft_time_limit=3700,
             time_limit=3720)
def stress_shard(self, run_id: int, shard: int, url: str) -> None:
    services.stress_shard_run(run_id=run_id, shard=shard, url=url, worker=self.request.hostname or "")
