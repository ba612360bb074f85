"""Making, checking and revoking API tokens. A token reads `mlp_<key_id>_<secret>`: the key id finds the row, the
secret is compared with its SHA-256 in constant time. The secret is never stored, logged or shown twice."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record

from .models import ApiToken

TOKEN_RE = re.compile(r"^mlp_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
LAST_USED_EVERY = timedelta(seconds=60)  # last_used_at is written at most once a minute per token


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_create(*, user, name: str, days: int, read_only: bool) -> tuple[ApiToken, str]:
    """A new token for `user`, and its full text (to show once)."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the token a name: what uses it."})
    if not 1 <= days <= settings.MLOPS_API_TOKEN_MAX_DAYS:
        raise ValidationError({"days": f"A token lasts from 1 to {settings.MLOPS_API_TOKEN_MAX_DAYS} days."})
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            token = ApiToken.objects.create(user=user, name=name, key_id=key_id, secret_hash=_hash(secret),
                                            read_only=read_only, expires_at=timezone.now() + timedelta(days=days))
            audit_record(actor=user, action=AuditEvent.Action.CREATE, target=token,
                         summary=f"Made API token {token}{' (read-only)' if read_only else ''}, "
                                 f"expiring {token.expires_at:%Y-%m-%d}.")
    except IntegrityError:
        raise ValidationError({"name": f"You already have an active token named {name!r}."}) from None
    return token, f"mlp_{key_id}_{secret}"


def token_revoke(*, token: ApiToken, actor) -> bool:
    """Revoke `token` (its owner, or an admin). False when it was already revoked."""
    with transaction.atomic():
        done = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now(), revoked_by=actor)
        if done:
            token.refresh_from_db()
            whose = "" if actor.pk == token.user_id else f" of {token.user.get_username()}"
            audit_record(actor=actor, action=AuditEvent.Action.DELETE, target=token,
                         summary=f"Revoked API token {token}{whose}.")
    return bool(done)


class TokenRefused(Exception):
    """The token given is not one that may be used; the message says why, without echoing it."""


def token_check(text: str) -> ApiToken:
    """The usable token `text` is, or TokenRefused."""
    match = TOKEN_RE.match(text)
    if match is None:
        raise TokenRefused("The token is not one this portal makes (mlp_…).")
    key_id, secret = match.groups()
    token = ApiToken.objects.select_related("user").filter(key_id=key_id).first()
    # Compare a hash either way, so an unknown key id takes as long as a wrong secret.
    expected = token.secret_hash if token is not None else _hash("")
    if not hmac.compare_digest(expected, _hash(secret)) or token is None:
        raise TokenRefused("The token is not valid.")
    if token.revoked_at is not None:
        raise TokenRefused("The token was revoked.")
    if token.is_expired:
        raise TokenRefused(f"The token expired on {token.expires_at:%Y-%m-%d %H:%M} UTC.")
    if not token.user.is_active:
        raise TokenRefused("The token's user is inactive.")
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
