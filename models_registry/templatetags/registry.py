"""Template helpers for metrics and statuses."""
from django import template

register = template.Library()


@register.filter
def metric(metrics, name):
    """A metric from a version's metrics dict, formatted to 4 decimals; '—' when absent."""
    if not isinstance(metrics, dict) or name not in metrics:
        return "—"
    value = metrics[name]
    if isinstance(value, float):
        return f"{value:.4f}"
    return value


@register.filter
def short_sha(value, length=12):
    return (value or "")[: int(length)]


@register.filter
def duration(delta):
    if delta is None:
        return "—"
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@register.filter
def other_metrics(metrics, exclude):
    """'name value · name value' for every metric but `exclude`, in one call (tables list many versions)."""
    if not isinstance(metrics, dict):
        return ""
    return " · ".join(f"{name} {metric(metrics, name)}" for name in sorted(metrics) if name != exclude)


@register.filter
def index(items, position):
    """items[position], or "" when there is no such item (a table's column by its loop counter)."""
    try:
        return items[int(position)]
    except (IndexError, TypeError, ValueError):
        return ""
