"""Publishing Celery tasks so that a broker outage is a clear error for the user, not a hang or a lost task."""
import logging

from kombu.exceptions import OperationalError

log = logging.getLogger(__name__)


class QueueUnavailable(Exception):
    """The task queue (broker) could not be reached; nothing was queued."""


def publish(task, *args, countdown: float | None = None) -> None:
    try:
        task.apply_async(args=args, countdown=countdown, retry=False)
    except (OperationalError, OSError) as exc:
        log.warning("could not publish %s: %s", task.name, exc)
        raise QueueUnavailable(
            "The task queue is unreachable, so nothing was started. Check that the broker (Redis) is running, "
            f"then try again. ({exc.__class__.__name__}: {exc})"
        ) from exc
