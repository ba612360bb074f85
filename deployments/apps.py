from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    """Endpoints, deployments, promotions and their tests. Its models arrive with the promotion pipeline."""

    name = "deployments"
    verbose_name = "Deployments"
