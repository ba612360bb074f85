"""Who is calling the API and what they may do: a bearer token (or the portal session, for the docs page), the same
role permissions as the pages, read-only tokens, and a rate limit per token."""
from __future__ import annotations

from django.conf import settings
from rest_framework import authentication, exceptions, permissions, throttling

from .models import ApiToken
from .tokens import TokenRefused, token_check


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer mlp_<id>_<secret>`."""
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the token as 'Authorization: Bearer mlp_…'.")
        try:
            token = token_check(header[1].decode("ascii", errors="replace"))
        except TokenRefused as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        return token.user, token

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'


class SessionAuthentication(authentication.SessionAuthentication):
    """The signed-in portal user (the API docs page tries calls with it); CSRF checked on writes, as DRF does."""


class RolePermission(permissions.BasePermission):
    """The view's `perms` for the request's method: {"GET": ["app.codename", ...], "POST": [...]}, the same
    permissions the pages ask for. A read-only token may use safe methods only."""
    message = "Your role may not do this."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if request.method not in permissions.SAFE_METHODS and isinstance(request.auth, ApiToken) \
                and request.auth.read_only:
            self.message = "This token is read-only: it may not start, change or decide anything."
            return False
        needed = view.perms_for(request) if hasattr(view, "perms_for") else getattr(view, "perms", {}).get(
            "GET" if request.method in ("HEAD", "OPTIONS") else request.method)
        if needed is None:
            self.message = "Your role may not do this."
            return False
        if not request.user.has_perms(needed):
            self.message = f"Your role may not do this (it needs {', '.join(needed)})."
            return False
        return True


class TokenRateThrottle(throttling.SimpleRateThrottle):
    """MLOPS_API_RATE requests per token (per user for the session), counted in the shared cache."""
    scope = "token"

    def get_rate(self):
        return settings.MLOPS_API_RATE

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiToken):
            ident = f"token-{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
