from django import forms

from mlopsportal.backends import get_backend
from mlopsportal.lib.forms import SuggestionsInput, instance_type_options

from .models import AzureMLWorkspace


class WorkspaceForm(forms.ModelForm):
    class Meta:
        model = AzureMLWorkspace
        fields = ["subscription_id", "resource_group", "workspace_name", "aks_compute", "training_cluster",
                  "staging_on", "managed_instance_type", "default_instance_type", "training_environment",
                  "inference_environment"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The AKS compute's instance types, as the last "Test connection" read them, offered as suggestions.
        options = instance_type_options(get_backend("azureml").instance_types())
        self.fields["default_instance_type"].widget = SuggestionsInput(options)
