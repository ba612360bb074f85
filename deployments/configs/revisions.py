"""Reading a configuration's revisions (django-simple-history rows): a page of them, one by number, and the
field-level difference between any two."""
from dataclasses import dataclass
from decimal import Decimal

from django.db import models

from mlopsportal.lib.display import shown

from .kinds import ConfigKind

PAGE = 50


@dataclass(frozen=True)
class FieldChange:
    field: str
    label: str
    old: str
    new: str


def revision_page(obj: models.Model, *, before: int | None = None, size: int = PAGE) -> tuple[list, int | None]:
    """Up to `size` revisions, newest first, from before the revision `before` (a history id); each with its
    `number` (1 is the first). Returns (revisions, the cursor of the next page or None)."""
    history = obj.history.all()
    if before is not None:
        history = history.filter(history_id__lt=before)
    rows = list(history.select_related("history_user").order_by("-history_id")[:size + 1])
    more = len(rows) > size
    rows = rows[:size]
    if rows:
        first = obj.history.filter(history_id__lte=rows[0].history_id).count()
        for offset, row in enumerate(rows):
            row.number = first - offset
    return rows, (rows[-1].history_id if more else None)


def revision_count(obj: models.Model) -> int:
    return obj.history.count()


def revision_by_number(obj: models.Model, number: int, count: int | None = None):
    """The `number`-th revision (1 is the first), or None. Given the count, a recent one is read from the newest
    end (an offset from there is short)."""
    if number < 1 or (count is not None and number > count):
        return None
    history = obj.history.select_related("history_user")
    if count is not None and number > count // 2:
        row = history.order_by("-history_id")[count - number:count - number + 1].first()
    else:
        row = history.order_by("history_id")[number - 1:number].first()
    if row is not None:
        row.number = number
    return row


def revision_diff(kind: ConfigKind, old, new) -> list[FieldChange]:
    """What differs between two revisions of one configuration, field by field, in the kind's order."""
    delta = new.diff_against(old, included_fields=kind.fields, foreign_keys_are_objs=True)
    by_field = {change.field: change for change in delta.changes}
    return [FieldChange(name, kind.field_label(name), shown(by_field[name].old), shown(by_field[name].new))
            for name in kind.fields if name in by_field]


def values_diff(kind: ConfigKind, before: dict, after: dict) -> list[FieldChange]:
    """The same for two sets of values (the saved row and the posted form)."""
    return [FieldChange(name, kind.field_label(name), shown(before.get(name)), shown(after.get(name)))
            for name in kind.fields if _normal(before.get(name)) != _normal(after.get(name))]


def _normal(value):
    if isinstance(value, Decimal):
        return float(value)
    return value


def values_of(kind: ConfigKind, obj: models.Model) -> dict:
    """The kind's fields of a row (or of a revision's instance), a related row as itself."""
    return {name: getattr(obj, name) for name in kind.fields}
