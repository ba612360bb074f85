from django import forms

from .models import AzureMLWorkspace


class WorkspaceForm(forms.ModelForm):
    class Meta:
        model = AzureMLWorkspace
        fields = ["subscription_id", "resource_group", "workspace_name", "aks_compute", "training_cluster",
                  "staging_on", "managed_instance_type", "default_instance_type", "training_environment", "inference_environment"]
