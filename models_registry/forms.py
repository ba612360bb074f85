"""Forms of the registry pages. They check input shape; services check the rules."""
from django import forms
from django.conf import settings

from mlopsportal import examples
from mlopsportal.backends import get_backend
from mlopsportal.lib.forms import DayRangeForm

from .models import NAME_VALIDATOR, RegisteredModel
from .timeline import KINDS

PARAM_PREFIX = "param_"


class TrainingLaunchForm(forms.Form):
    example = forms.ChoiceField(help_text="The training code and data to run.")
    experiment_name = forms.CharField(max_length=63, validators=[NAME_VALIDATOR],
                                      help_text="Groups related runs, e.g. titanic-forest.")
    compute_target = forms.ChoiceField()
    timeout_minutes = forms.IntegerField()  # bounds set from settings in __init__
    register_as = forms.ModelChoiceField(queryset=RegisteredModel.objects.order_by("name"), required=False,
                                         empty_label="(don't register)",
                                         help_text="On success, register the output as the next version of this model.")

    def __init__(self, data=None, *, example_name: str | None = None, **kwargs):
        super().__init__(data, **kwargs)
        catalog = examples.list_examples()
        self.fields["example"].choices = [(e.name, e.title) for e in catalog]
        self.fields["compute_target"].choices = [(t.name, f"{t.name} — {t.description}")
                                                 for t in get_backend().compute_targets()]
        self.fields["timeout_minutes"] = forms.IntegerField(
            min_value=1, max_value=max(1, settings.MLOPS_TRAINING_MAX_TIMEOUT // 60), initial=30,
            help_text="The run is stopped after this long.")
        chosen = (data or {}).get("example") or example_name or (catalog[0].name if catalog else None)
        try:
            self.example = examples.get_example(chosen) if chosen else None
        except examples.ExampleError:
            self.example = None
        if self.example is None:
            return
        self.initial.setdefault("example", self.example.name)
        self.initial.setdefault("experiment_name", f"{self.example.name}-experiment")
        model = RegisteredModel.objects.filter(name=self.example.model_name).first()
        if model is not None:
            self.initial.setdefault("register_as", model.pk)
        for param in self.example.parameters:
            name = PARAM_PREFIX + param.name
            if param.type == "choice":
                field = forms.ChoiceField(choices=[(c, c) for c in param.choices])
            elif param.type == "int":
                field = forms.IntegerField(min_value=param.min, max_value=param.max)
            else:
                field = forms.FloatField(min_value=param.min, max_value=param.max)
            field.label = param.name
            field.help_text = param.help
            field.initial = param.default
            self.fields[name] = field

    def param_fields(self):
        return [self[name] for name in self.fields if name.startswith(PARAM_PREFIX)]

    def base_fields_bound(self):
        return [self[name] for name in self.fields if not name.startswith(PARAM_PREFIX)]

    def clean(self):
        cleaned = super().clean()
        if self.example is None:
            raise forms.ValidationError("Choose a training example.")
        if self.data:
            known = {PARAM_PREFIX + p.name for p in self.example.parameters}
            unknown = sorted(k[len(PARAM_PREFIX):] for k in self.data if k.startswith(PARAM_PREFIX) and k not in known)
            if unknown:
                raise forms.ValidationError(f"Unknown parameter(s) for {self.example.name}: {', '.join(unknown)}.")
        return cleaned

    def params(self) -> dict:
        return {name[len(PARAM_PREFIX):]: value for name, value in self.cleaned_data.items()
                if name.startswith(PARAM_PREFIX)}


class RegisterVersionForm(forms.Form):
    model = forms.ModelChoiceField(queryset=RegisteredModel.objects.order_by("name"), required=False,
                                   empty_label="(new model)")
    new_model_name = forms.CharField(max_length=63, required=False, validators=[NAME_VALIDATOR],
                                     help_text="Only when registering as a new model.")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def clean(self):
        cleaned = super().clean()
        model, new_name = cleaned.get("model"), cleaned.get("new_model_name")
        if model is None and not new_name and "new_model_name" not in self.errors:
            raise forms.ValidationError("Choose a model, or name a new one.")
        if model is not None and new_name:
            raise forms.ValidationError("Choose an existing model or name a new one, not both.")
        if new_name and RegisteredModel.objects.filter(name=new_name).exists():
            self.add_error("new_model_name", f"A model named {new_name} exists already; choose it from the list.")
        return cleaned


class ModelEditForm(forms.ModelForm):
    class Meta:
        model = RegisteredModel
        fields = ["description", "key_metric", "key_metric_goal"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def clean_key_metric(self):
        """A model with versions charts a metric they report: a typo would chart "No data yet" for good."""
        metric = self.cleaned_data["key_metric"]
        reported = set()
        for metrics in self.instance.versions.values_list("metrics", flat=True):
            reported.update(metrics or {})
        if reported and metric not in reported:
            raise forms.ValidationError(f"No version of {self.instance.name} reports {metric!r}; its versions "
                                        f"report {', '.join(sorted(reported))}.")
        return metric


class TimelineFilterForm(DayRangeForm):
    """Which entries of a model's timeline to show: kinds (none ticked: all) and days, in the user's time zone."""
    kind = forms.MultipleChoiceField(choices=list(KINDS.items()), required=False, widget=forms.CheckboxSelectMultiple)
    field_order = ["kind", "since", "until"]
