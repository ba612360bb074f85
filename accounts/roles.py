"""The three roles of the portal, as Django groups, and the permissions each one carries."""
from django.apps import apps
from django.contrib.auth.models import Group, Permission

from .backends import cached_user_facts

ENGINEER = "ML engineer"
MANAGER = "Manager"
ADMIN = "Admin"
ROLES = (ENGINEER, MANAGER, ADMIN)

# Apps whose objects every role may read.
READABLE_APPS = ("models_registry", "deployments", "audit", "workspaces")

# What engineers may change, as "app_label.codename".
ENGINEER_CHANGES = (
    "models_registry.add_trainingrun",
    "models_registry.change_trainingrun",  # cancel a run
    "models_registry.add_modelversion",
    "models_registry.change_modelversion",
    "models_registry.add_registeredmodel",
    "models_registry.change_registeredmodel",
    "deployments.add_deployment",
    "deployments.change_deployment",  # traffic on staging endpoints
    "deployments.delete_deployment",
    "deployments.reveal_endpoint_key",  # see the key, and use it through "try it"
    "deployments.add_promotion",  # press Promote
    "deployments.add_capacitytest",  # load a staging deployment to find its knee (and stop the test)
)

# Managers change nothing, except that they decide on promotions to production; they read the whole audit log.
MANAGER_CHANGES = ("deployments.approve_promotion", "audit.read_audit_log")

# Nobody edits the audit trail, not even admins.
NEVER_GRANTED = ("audit.add_auditevent", "audit.change_auditevent", "audit.delete_auditevent")


def _perms(codes):
    for code in codes:
        app_label, codename = code.split(".")
        perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
        if perm is not None:
            yield perm


def ensure_role_groups(app_config=None, **kwargs) -> None:
    """After a migrate (or a test's flush), Django sends post_migrate once per app, and each app's permissions are
    made by its own. The groups are set once, at the last app's: every permission exists by then."""
    if app_config is not None and app_config is not _last_app_with_models():
        return
    view_perms = list(
        Permission.objects.filter(content_type__app_label__in=READABLE_APPS, codename__startswith="view_")
    )
    manager, _ = Group.objects.get_or_create(name=MANAGER)
    manager.permissions.set([*view_perms, *_perms(MANAGER_CHANGES)])

    engineer, _ = Group.objects.get_or_create(name=ENGINEER)
    engineer.permissions.set([*view_perms, *_perms(ENGINEER_CHANGES)])

    admin, _ = Group.objects.get_or_create(name=ADMIN)
    never = {code.split(".")[1] for code in NEVER_GRANTED}
    admin.permissions.set(Permission.objects.exclude(content_type__app_label="audit", codename__in=never))


def _last_app_with_models():
    return [config for config in apps.get_app_configs() if config.models_module is not None][-1]


def user_roles(user) -> set[str]:
    if not user.is_authenticated:
        return set()
    roles = {name for name in cached_user_facts(user)["groups"] if name in ROLES}
    if user.is_superuser:
        roles.add(ADMIN)
    return roles
