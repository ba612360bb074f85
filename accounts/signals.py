"""Any change to who holds which permission retires the cached permissions (see backends.py)."""
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from .backends import bump_generation
from .middleware import remember_time_zone

User = get_user_model()


def _bump(**kwargs) -> None:
    bump_generation()
    # Also after commit: a request that read the old rows before this transaction ended must not cache them.
    transaction.on_commit(bump_generation)


for through in (User.groups.through, User.user_permissions.through, Group.permissions.through):
    m2m_changed.connect(_bump, sender=through, dispatch_uid=f"accounts.bump.{through.__name__}")
for model in (User, Group, Permission):
    post_save.connect(_bump, sender=model, dispatch_uid=f"accounts.bump.save.{model.__name__}")
    post_delete.connect(_bump, sender=model, dispatch_uid=f"accounts.bump.delete.{model.__name__}")


def _time_zone_at_sign_in(sender, request, user, **kwargs) -> None:
    remember_time_zone(request, user)


user_logged_in.connect(_time_zone_at_sign_in, dispatch_uid="accounts.time_zone_at_sign_in")
