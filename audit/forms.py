"""The audit page's filters."""
from django import forms
from django.contrib.contenttypes.models import ContentType

from mlopsportal.lib.forms import DayRangeForm

from .models import AuditEvent

# What the log records actions on, in the words the page uses.
OBJECT_TYPES = [
    ("models_registry.registeredmodel", "Models"), ("models_registry.modelversion", "Model versions"),
    ("models_registry.trainingrun", "Training runs"), ("deployments.endpoint", "Endpoints"),
    ("deployments.deployment", "Deployments"), ("deployments.promotion", "Promotions"),
    ("deployments.deploymentprofile", "Deployment profiles"), ("deployments.stressprofile", "Stress profiles"),
    ("deployments.functionaltestcase", "Functional test cases"), ("workspaces.azuremlworkspace", "Workspace"),
    ("auth.user", "Users"), ("auth.group", "Groups"),
]


class AuditFilterForm(DayRangeForm):
    who = forms.CharField(required=False, max_length=150, label="Who", help_text="A user name, or system.")
    action = forms.ChoiceField(required=False, label="What", choices=[("", "any action"), *AuditEvent.Action.choices])
    kind = forms.ChoiceField(required=False, label="On", choices=[("", "anything"), *OBJECT_TYPES])
    object = forms.CharField(required=False, max_length=100, label="Object",
                             help_text="Part of its name, e.g. titanic-prod.")
    field_order = ["who", "action", "kind", "object", "since", "until"]

    def clean_who(self):
        return " ".join(self.cleaned_data["who"].split())

    def clean_object(self):
        return " ".join(self.cleaned_data["object"].split())

    def content_type(self) -> ContentType | None:
        kind = self.cleaned_data.get("kind")
        if not kind:
            return None
        app_label, model = kind.split(".")
        return ContentType.objects.filter(app_label=app_label, model=model).first()
