"""The Azure ML workspace the `azureml` backend works in: where it is, and what the portal last saw of it.

Only the workspace's coordinates live here (the backend receives them through workspaces.services.azureml_config).
Credentials never do: they come from azure-identity's DefaultAzureCredential (environment variables, managed
identity or an Azure CLI login) on the machine that runs the portal's web server and workers.
"""
from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from simple_history.models import HistoricalRecords

from deployments.models import INSTANCE_TYPE_VALIDATOR
from mlopsportal.backends.azureml import AzureMLConfig
from mlopsportal.backends.base import ConnectionCheck

GUID = RegexValidator(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
                      "A subscription ID looks like 00000000-0000-0000-0000-000000000000.")
AZURE_NAME = RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9_.()-]{0,89}$", "Letters, digits, '-', '_', '.' and '()' only.")
COMPUTE_NAME = RegexValidator(r"^[A-Za-z][A-Za-z0-9-]{1,31}$",
                              "2–32 letters, digits or '-', starting with a letter (Azure's rule for computes).")


class AzureMLWorkspace(models.Model):
    """One row (pk=1): the workspace of this portal."""

    class StagingOn(models.TextChoices):
        MANAGED = "managed", "Managed online endpoint"
        KUBERNETES = "kubernetes", "Kubernetes online endpoint (the AKS compute)"

    subscription_id = models.CharField(max_length=36, blank=True, validators=[GUID])
    resource_group = models.CharField(max_length=90, blank=True, validators=[AZURE_NAME])
    workspace_name = models.CharField(max_length=33, blank=True, validators=[AZURE_NAME])
    aks_compute = models.CharField(
        "AKS compute", max_length=32, blank=True, validators=[COMPUTE_NAME],
        help_text="The Kubernetes compute attached to the workspace; production endpoints run on it.")
    training_cluster = models.CharField(max_length=32, blank=True, validators=[COMPUTE_NAME],
                                        help_text="The compute cluster (AmlCompute) training jobs run on.")
    staging_on = models.CharField(max_length=12, choices=StagingOn.choices, default=StagingOn.MANAGED,
                                  help_text="Where staging endpoints are created.")
    managed_instance_type = models.CharField(max_length=64, default="Standard_DS3_v2",
                                             help_text="VM size of managed (staging) deployments.")
    default_instance_type = models.CharField(
        max_length=63, blank=True, validators=[INSTANCE_TYPE_VALIDATOR],
        help_text="The AKS cluster's instance type for Kubernetes deployments whose profile names none (blank: "
                  "the cluster's default, defaultinstancetype, limited to 2 CPU and 2 GiB on a new cluster).")
    training_environment = models.CharField(
        max_length=200, default="azureml:AzureML-sklearn-1.5@latest",
        help_text="Environment of training jobs: azureml:NAME:VERSION or azureml:NAME@latest (curated or your own).")
    inference_environment = models.CharField(
        max_length=200, default="azureml:AzureML-sklearn-1.5@latest",
        help_text="Environment deployments run score.py in; it must include azureml-inference-server-http.")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    # What the portal last saw: the "test connection" action and the periodic sync.
    checked_at = models.DateTimeField(null=True, blank=True)
    check_ok = models.BooleanField(default=False)
    check_results = models.JSONField(default=list, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    sync_ok = models.BooleanField(default=False)
    sync_message = models.TextField(blank=True)
    # Revisions of the settings; not of what the checks and the sync found (a revert must not bring that back).
    history = HistoricalRecords(excluded_fields=["checked_at", "check_ok", "check_results", "synced_at", "sync_ok",
                                                 "sync_message"])

    class Meta:
        verbose_name = "Azure ML workspace"

    def __str__(self) -> str:
        return self.workspace_name or "Azure ML workspace (not set)"

    @classmethod
    def load(cls) -> "AzureMLWorkspace":
        workspace, _ = cls.objects.get_or_create(pk=1)
        return workspace

    @property
    def checks(self) -> list[ConnectionCheck]:
        """The last "Test connection", as the backend reported it."""
        return [ConnectionCheck(**result) for result in self.check_results]

    def config(self) -> AzureMLConfig:
        return AzureMLConfig(
            subscription_id=self.subscription_id, resource_group=self.resource_group,
            workspace_name=self.workspace_name, aks_compute=self.aks_compute, training_cluster=self.training_cluster,
            staging_on=self.staging_on, managed_instance_type=self.managed_instance_type,
            training_environment=self.training_environment, inference_environment=self.inference_environment,
            default_instance_type=self.default_instance_type, **self.cluster_facts())

    def cluster_facts(self) -> dict:
        """The AKS compute's instance types and default, as the last "Test connection" read them."""
        for result in self.check_results or []:
            if result.get("check") == "AKS compute" and result.get("facts"):
                facts = result["facts"]
                return {"instance_types": facts.get("instance_types") or {},
                        "cluster_default_instance_type": facts.get("default_instance_type") or ""}
        return {}
