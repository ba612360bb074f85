"""Small helpers for forms."""
import json
from datetime import datetime, time, timedelta

from django import forms
from django.utils import timezone
from django.utils.html import format_html, format_html_join


def form_errors_text(form) -> str:
    """Every error of a bound, invalid form, in one line (for a flash message)."""
    return " ".join(error for errors in form.errors.values() for error in errors)


class DayRangeForm(forms.Form):
    """A filter's "from" and "to" days, in the user's time zone, "to" included."""
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("“From” must be on or before “To”.")
        return data

    def window(self) -> tuple[datetime | None, datetime | None]:
        """(the first moment of "from", the first moment after "to"), each None when not given."""
        def start(day):
            return timezone.make_aware(datetime.combine(day, time.min)) if day else None

        since, until = self.cleaned_data.get("since"), self.cleaned_data.get("until")
        return start(since), start(until + timedelta(days=1)) if until else None


class SuggestionsInput(forms.TextInput):
    """A text input that offers `options` ((value, label) pairs) as the browser's suggestions, in a <datalist>:
    any other value may still be typed, and the form's own validation decides."""

    def __init__(self, options=(), attrs=None):
        super().__init__(attrs)
        self.options = list(options)

    def render(self, name, value, attrs=None, renderer=None):
        if not self.options:
            return super().render(name, value, attrs, renderer)
        list_id = f"{(attrs or {}).get('id') or 'id_' + name}_options"
        html = super().render(name, value, {**(attrs or {}), "list": list_id}, renderer)
        options = format_html_join("", '<option value="{}" label="{}"></option>', self.options)
        return format_html('{}<datalist id="{}">{}</datalist>', html, list_id, options)


def instance_type_options(instance_types) -> list[tuple[str, str]]:
    """(name, "2 CPU · 2.00 GiB · the cluster's default") for each of a backend's instance types."""
    options = []
    for kind in instance_types:
        said = [f"{kind.cpu:g} CPU" if kind.cpu else "",
                f"{kind.memory_bytes / 1024 ** 3:.2f} GiB" if kind.memory_bytes else "",
                "the cluster's default" if kind.default else ""]
        options.append((kind.name, " · ".join(part for part in said if part) or kind.name))
    return options


class _FiniteJSONDecoder(json.JSONDecoder):
    """JSON as the standard says it: NaN and Infinity (which Python's json accepts) are refused."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, parse_constant=self._refuse, **kwargs)

    @staticmethod
    def _refuse(name):
        raise json.JSONDecodeError(f"{name} is not a JSON value", name, 0)


class StrictJSONField(forms.JSONField):
    """A JSON field that refuses NaN and Infinity, text over `max_length` characters, and nesting too deep to
    parse, with a message instead of a server error."""

    default_error_messages = {"invalid": "Enter valid JSON (NaN and Infinity are not JSON).",
                              "too_long": "The JSON is longer than %(limit)s characters."}

    def __init__(self, *args, max_length: int = 1_000_000, **kwargs):
        kwargs["decoder"] = kwargs.get("decoder") or _FiniteJSONDecoder
        super().__init__(*args, **kwargs)
        self.max_length = max_length

    def to_python(self, value):
        if isinstance(value, str) and len(value) > self.max_length:
            raise forms.ValidationError(self.error_messages["too_long"], code="too_long",
                                        params={"limit": f"{self.max_length:,}"})
        try:
            return super().to_python(value)
        except RecursionError:
            raise forms.ValidationError("The JSON is nested too deeply.", code="invalid") from None

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return forms.fields.InvalidJSONInput(data)
