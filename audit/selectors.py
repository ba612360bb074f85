"""Reads for the audit page: the whole log, filtered, newest first, in pages by a cursor (no count of a million
rows), and the same as CSV rows."""
from collections.abc import Iterator
from datetime import UTC, datetime

from django.contrib.contenttypes.models import ContentType
from django.db.models import Q, QuerySet

from .models import AuditEvent

PAGE = 50


def audit_log(*, who: str = "", action: str = "", content_type: ContentType | None = None, text: str = "",
              since: datetime | None = None, until: datetime | None = None) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.select_related("target_type")
    if who:
        events = events.filter(actor_name=who)
    if action:
        events = events.filter(action=action)
    if content_type is not None:
        events = events.filter(target_type=content_type)
    if text:
        events = events.filter(target_repr__icontains=text)
    if since is not None:
        events = events.filter(at__gte=since)
    if until is not None:
        events = events.filter(at__lt=until)
    return events.order_by("-at", "-id")


def audit_page(events: QuerySet[AuditEvent], *, before: int | None = None) -> tuple[list[AuditEvent], int | None]:
    """A page of `events` older than event `before`; and the id the next page starts before, or None."""
    if before is not None:
        cursor = AuditEvent.objects.filter(pk=before).values_list("at", flat=True).first()
        if cursor is not None:
            events = events.filter(Q(at__lt=cursor) | Q(at=cursor, pk__lt=before))
    page = list(events[:PAGE + 1])
    return page[:PAGE], page[PAGE - 1].pk if len(page) > PAGE else None


def audit_rows(events: QuerySet[AuditEvent]) -> Iterator[list[str]]:
    yield ["at (UTC)", "who", "via", "credential", "action", "object type", "object", "summary", "field", "old", "new"]
    for event in events.iterator(chunk_size=2000):
        head = [event.at.astimezone(UTC).isoformat(), event.actor_name, event.via, event.credential,
                event.get_action_display(),
                event.target_type.model, event.target_repr, event.summary]
        changes = event.field_changes_in_words
        if not changes:
            yield [*head, "", "", ""]
        for field, old, new in changes:  # one row per field changed: a spreadsheet filters on them
            yield [*head, field, old, new]
