"""Forms of the promotion pages: asking for a promotion, deciding on one."""
from django import forms

from ..models import Endpoint, StressProfile


def _preselect_only_choices(form: forms.Form) -> None:
    """A choice of rows that has only one row starts chosen."""
    for field in form.fields.values():
        if isinstance(field, forms.ModelChoiceField) and field.queryset.count() == 1:
            field.initial = field.queryset.first().pk


class PromoteForm(forms.Form):
    production_endpoint = forms.ModelChoiceField(queryset=Endpoint.objects.filter(stage=Endpoint.Stage.PRODUCTION))
    staging_endpoint = forms.ModelChoiceField(queryset=Endpoint.objects.filter(stage=Endpoint.Stage.STAGING),
                                              help_text="Where it is tested first.")
    stress_profile = forms.ModelChoiceField(queryset=StressProfile.objects.none())
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000,
                             help_text="Why this version should serve production; approvers read it.")

    def __init__(self, *args, model, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["stress_profile"].queryset = StressProfile.objects.filter(model=model)
        _preselect_only_choices(self)


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)


class ConfigRolloutForm(forms.Form):
    staging_endpoint = forms.ModelChoiceField(queryset=Endpoint.objects.filter(stage=Endpoint.Stage.STAGING),
                                              help_text="Where the new settings are tested first.")
    stress_profile = forms.ModelChoiceField(queryset=StressProfile.objects.none(),
                                            help_text="The load the new settings must carry, and its thresholds.")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000,
                             help_text="Why production should run with these settings; approvers read it.")

    def __init__(self, *args, model, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["stress_profile"].queryset = StressProfile.objects.filter(model=model)
        _preselect_only_choices(self)
