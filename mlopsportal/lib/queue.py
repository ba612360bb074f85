"""The one way work is queued: by task name, once the current transaction has committed.

Services call `enqueue("deployments.tasks.deployment_start", deployment.pk, unavailable=...)`; tasks call services.
Naming the task (instead of importing it) keeps services free of imports of the task modules, which import the
services: no cycles. The name is looked up in the Celery app's registry when the message is sent, so a name that is
not a task fails at once, in the tests too.

Publishing after commit means a worker never takes a task for a row it cannot see yet (on PostgreSQL it could,
when the message was sent inside the transaction). The price: when the broker cannot take the message, the row is
already committed. `unavailable` then records on the row that nothing was started, and QueueUnavailable reaches the
caller, so the page says so too; nothing is left looking as if it were under way.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from celery import current_app
from django.db import transaction
from kombu.exceptions import OperationalError

log = logging.getLogger(__name__)


class QueueUnavailable(Exception):
    """The task queue (broker) could not be reached; nothing was queued."""


def unavailable_message(exc: Exception) -> str:
    return ("The task queue is unreachable, so nothing was started. Check that the broker (Redis) is running, "
            f"then try again. ({exc.__class__.__name__}: {exc})")


def _task(name: str):
    if name not in current_app.tasks:
        # A web process has not imported the task modules (a worker does at start): autodiscovery does it now.
        current_app.loader.import_default_modules()
    return current_app.tasks[name]  # NotRegistered for a name that is not a task


def send_now(name: str, *args, countdown: float | None = None) -> None:
    """Publish the task `name` at once. Raises QueueUnavailable when the broker cannot take it."""
    task = _task(name)
    try:
        task.apply_async(args=args, countdown=countdown or None, retry=False)
    except (OperationalError, OSError) as exc:
        log.warning("could not publish %s: %s", name, exc)
        raise QueueUnavailable(unavailable_message(exc)) from exc


def enqueue(name: str, *args, countdown: float | None = None,
            unavailable: Callable[[str], None] | None = None) -> None:
    """Queue the task `name` with `args` when the current transaction commits (at once outside one).

    If the broker refuses, `unavailable(message)` runs (in a transaction of its own) to record on the row that nothing
    was started, then QueueUnavailable is raised to whoever committed."""
    def send() -> None:
        try:
            send_now(name, *args, countdown=countdown)
        except QueueUnavailable as exc:
            if unavailable is not None:
                with transaction.atomic():
                    unavailable(str(exc))
            raise

    transaction.on_commit(send)
