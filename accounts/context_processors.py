"""Puts the signed-in user's roles into every template, for showing or hiding buttons (views still check)."""
from .roles import user_roles


def roles(request):
    user = getattr(request, "user", None)
    if user is None:
        return {}
    return {"user_roles": sorted(user_roles(user))}
