from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and roles"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (retires cached permissions when roles change)
        from .roles import ensure_role_groups

        # Runs after every migrate (test databases included), so the groups always carry the current permissions.
        post_migrate.connect(ensure_role_groups, dispatch_uid="accounts.ensure_role_groups")
