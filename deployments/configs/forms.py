"""The configuration forms: the kind's fields, its model's own rules, the platform's limits for every endpoint the
change reaches (each refusal on the field at fault), and a required note."""
import copy

from django import forms
from django.forms.models import construct_instance, modelform_factory

from mlopsportal.backends import get_backend
from mlopsportal.lib.forms import StrictJSONField, SuggestionsInput, instance_type_options

from ..models import DeploymentProfile, Endpoint
from ..serving import services as serving
from ..serving.forms import ProfileImportForm
from .kinds import ConfigKind

NOTE_MAX = 300
# A serving setting the platform refuses, and the profile field it comes from.
SETTING_FIELDS = {"instance_type": "kubernetes_instance_type"}


class ConfigForm(forms.ModelForm):
    note = forms.CharField(max_length=NOTE_MAX, label="Change note", widget=forms.TextInput(attrs={"size": 60}),
                           help_text="Why this change: kept with the revision and in the audit log.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            if isinstance(field.widget, forms.Textarea):
                field.widget.attrs.update(rows=3, spellcheck="false")

    def clean_note(self):
        note = " ".join(self.cleaned_data["note"].split())
        if not any(ch.isalnum() for ch in note):
            raise forms.ValidationError("Say in words why this change is made.")
        return note

    def candidate(self):
        """The posted values on a copy of the row (nothing saved)."""
        return construct_instance(self, copy.copy(self.instance))

    def _platform_problems(self, endpoints, settings: dict, *, field: str | None = None) -> None:
        for endpoint in endpoints:
            for problem in serving.endpoint_settings_problems(endpoint, settings):
                at = field or SETTING_FIELDS.get(problem.field, problem.field)
                at = at if at in self.fields else None
                self.add_error(at, f"On {endpoint.name} ({endpoint.stage}): {problem.message}")


class ProfileForm(ConfigForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        options = instance_type_options(get_backend().instance_types())
        self.fields["kubernetes_instance_type"].widget = SuggestionsInput(options)

    def clean(self):
        cleaned = super().clean()
        if not self.errors and self.instance.pk is not None:
            self._platform_problems(self.instance.endpoints.all(), self.candidate().serving_settings())
        return cleaned


class EndpointForm(ConfigForm):
    def clean(self):
        cleaned = super().clean()
        profile = cleaned.get("profile")
        if not self.errors and profile is not None:
            self._platform_problems([self.instance], profile.serving_settings(), field="profile")
        return cleaned


def form_class(kind: ConfigKind) -> type[ConfigForm]:
    base = {DeploymentProfile: ProfileForm, Endpoint: EndpointForm}.get(kind.model, ConfigForm)
    json_fields = {f.name: StrictJSONField for f in kind.model._meta.fields
                   if f.name in kind.fields and f.get_internal_type() == "JSONField"}
    return modelform_factory(kind.model, form=base, fields=list(kind.fields), field_classes=json_fields)


class RevisionImportForm(ProfileImportForm):
    """A YAML to become the next revision of an existing profile (its name stays)."""
    name = None


def post_data(kind: ConfigKind, obj, values: dict | None = None) -> dict:
    """What the kind's form posts for `obj` (a JSON field as JSON text, a ticked box as "on", an unticked one left
    out), with `values` in place of the row's own."""
    unbound = form_class(kind)(instance=obj)
    data = {}
    for name in unbound.fields:
        if name == "note":
            continue
        value = values[name] if values and name in values else unbound[name].value()
        if isinstance(value, bool):
            if value:
                data[name] = "on"
            continue
        data[name] = "" if value is None else str(value)
    return data


def bound_from(kind: ConfigKind, obj, values: dict, note: str) -> ConfigForm:
    """The kind's form bound as if `obj` were posted with `values` changed: each rule applies as to an edit."""
    return form_class(kind)({**post_data(kind, obj, values), "note": note}, instance=obj)
