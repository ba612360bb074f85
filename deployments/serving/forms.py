"""Forms of the serving pages."""
from django import forms

from ..models import DEPLOYMENT_NAME_VALIDATOR, Endpoint

SEED_PASSENGER = '{"Pclass": 1, "Sex": 0, "Age": 38, "SibSp": 1, "Parch": 0, "Fare": 71.2833, "Embarked": 2}'


class DeployToStagingForm(forms.Form):
    endpoint = forms.ModelChoiceField(queryset=Endpoint.objects.filter(stage=Endpoint.Stage.STAGING),
                                      help_text="Production is reached only through a promotion.")
    name = forms.CharField(max_length=32, validators=[DEPLOYMENT_NAME_VALIDATOR], initial="blue",
                           help_text="The deployment's name on the endpoint, e.g. blue or green.")


class TryItForm(forms.Form):
    payload = forms.CharField(widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false"}), initial=SEED_PASSENGER,
                              max_length=1_000_000)
    deployment = forms.ChoiceField(required=False, help_text="Leave empty to route by traffic weight.")

    def __init__(self, *args, endpoint: Endpoint, **kwargs):
        super().__init__(*args, **kwargs)
        names = endpoint.deployments.filter(status__in=["healthy", "unhealthy"]).values_list("name", flat=True)
        self.fields["deployment"].choices = [("", "(by traffic)")] + [(n, n) for n in names]


class TrafficForm(forms.Form):
    """One percentage field per live deployment, posted as traffic-<name>: a deployment's name can never collide with
    another field of the request (a deployment named csrfmiddlewaretoken broke the form for everyone)."""

    def __init__(self, *args, deployments, **kwargs):
        kwargs.setdefault("prefix", "traffic")
        super().__init__(*args, **kwargs)
        for deployment in deployments:
            self.fields[deployment.name] = forms.IntegerField(min_value=0, max_value=100, initial=deployment.traffic,
                                                              label=deployment.name)

    def traffic(self) -> dict[str, int]:
        return dict(self.cleaned_data)


class ProfileImportForm(forms.Form):
    name = forms.CharField(max_length=63, help_text="The new profile's name.")
    file = forms.FileField(required=False, help_text="aksDeploymentConfig.yml, aciDeploymentConfig.yml or a v2 "
                                                     "online deployment YAML.")
    text = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false"}),
                           label="or paste the YAML", max_length=100_000, strip=False)

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("file")
        if upload is not None:
            if upload.size > 100_000:
                raise forms.ValidationError("The file is larger than 100 kB; a deployment config is far smaller.")
            try:
                cleaned["yaml"] = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                raise forms.ValidationError("The file is not UTF-8 text.") from None
        elif cleaned.get("text", "").strip():
            cleaned["yaml"] = cleaned["text"]
        else:
            raise forms.ValidationError("Upload a YAML file or paste its text.")
        return cleaned


class AsOfForm(forms.Form):
    """A moment to look at, in the user's time zone: from the picker (to the minute) or a link (to the microsecond)."""
    at = forms.DateTimeField(
        label="As of", input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "0.001"}, format="%Y-%m-%dT%H:%M:%S"))
