"""Forms of the capacity pages: starting a capacity test, asking it for a profile proposal."""
from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator

from ..models import Deployment, DeploymentProfile, Endpoint, FunctionalTestCase, StressProfile


class CapacityTestForm(forms.Form):
    deployment = forms.ModelChoiceField(
        queryset=Deployment.objects.none(), help_text="A healthy staging deployment: the test loads it hard.")
    payloads_from = forms.ModelChoiceField(
        queryset=StressProfile.objects.select_related("model"), required=False, label="Request bodies from",
        help_text="A stress profile of the model; blank: the model's enabled functional cases.")
    p95_slo_ms = forms.FloatField(label="p95 SLO (ms)", initial=100, min_value=1, max_value=300_000,
                                  help_text="A step meets the SLO when 95% of its requests answer within this.")
    error_rate_max = forms.FloatField(label="Errors allowed (share, 0–0.5)", initial=0.01,
                                      validators=[MinValueValidator(0), MaxValueValidator(0.5)])
    step_seconds = forms.IntegerField(label="Seconds per step", initial=10, min_value=2, max_value=600,
                                      help_text="Longer steps are steadier; about 14 steps are taken.")
    start_rps = forms.FloatField(label="First rate (req/s)", initial=5, min_value=0.1, max_value=10_000)
    max_rps = forms.FloatField(label="Highest rate (req/s)", initial=2_000, min_value=1, max_value=100_000)
    max_in_flight = forms.IntegerField(label="Requests in flight at most", initial=64, min_value=1, max_value=512,
                                       help_text="Past the knee, requests queue up to this many; then they wait.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["deployment"].queryset = (
            Deployment.objects.filter(endpoint__stage=Endpoint.Stage.STAGING, status=Deployment.Status.HEALTHY)
            .select_related("endpoint", "model_version__model").order_by("endpoint__name", "name"))
        self.fields["deployment"].label_from_instance = lambda d: f"{d.endpoint.name}/{d.name}: {d.model_version}"

    def clean(self):
        data = super().clean()
        start, top = data.get("start_rps"), data.get("max_rps")
        if start is not None and top is not None and start > top:
            self.add_error("start_rps", "Start at or below the highest rate.")
        deployment, source = data.get("deployment"), data.get("payloads_from")
        if deployment is None:
            return data
        model = deployment.model_version.model
        if source is not None:
            if source.model_id != model.pk:
                self.add_error("payloads_from", f"Stress profile {source.name} belongs to {source.model.name}, not "
                                                f"{model.name}.")
            else:
                data["payloads"] = source.payloads
        else:
            payloads = [case.payload for case in FunctionalTestCase.objects.filter(model=model, enabled=True)]
            if not payloads:
                self.add_error("payloads_from", f"{model.name} has no enabled functional cases: choose a stress "
                                                "profile for the request bodies.")
            data["payloads"] = payloads
        return data


class CapacityProposalForm(forms.Form):
    profile = forms.ModelChoiceField(queryset=DeploymentProfile.objects.all(),
                                     help_text="The profile to size: the one production serves with.")
    target_rps = forms.FloatField(label="Target load (req/s)", min_value=0.01, max_value=1_000_000,
                                  help_text="The load production must carry.")
    p95_slo_ms = forms.FloatField(label="p95 SLO (ms)", min_value=1, max_value=300_000)
