"""Tokens for each kind of caller of the API, and a client that sends one."""
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from api.models import ApiToken
from api.tokens import token_create


class ApiClient:
    """Django's test client with `Authorization: Bearer <token>` and JSON bodies."""

    def __init__(self, token: str | None = None, **headers):
        self.client = Client()
        self.headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **headers}

    def call(self, method: str, url: str, body=None, **headers):
        send = getattr(self.client, method.lower())
        kwargs = {"headers": {**self.headers, **headers}}
        if body is not None:
            kwargs.update(data=body, content_type="application/json")
        return send(url, **kwargs)

    def get(self, url, **headers):
        return self.call("GET", url, **headers)

    def post(self, url, body=None, **headers):
        return self.call("POST", url, body if body is not None else {}, **headers)


def make_token(user, *, name="ci", read_only=False, days=30) -> str:
    _, text = token_create(user=user, name=name, days=days, read_only=read_only)
    return text


@pytest.fixture
def callers(engineer, manager, admin_user):
    """Each caller of the access matrix, as an ApiClient."""
    expired = make_token(engineer, name="old")
    ApiToken.objects.filter(user=engineer, name="old").update(expires_at=timezone.now() - timedelta(minutes=1))
    return {
        "anonymous": ApiClient(),
        "bad token": ApiClient("mlp_0123456789ab_" + "x" * 43),
        "expired token": ApiClient(expired),
        "read-only token": ApiClient(make_token(admin_user, name="reader", read_only=True)),
        "engineer": ApiClient(make_token(engineer)),
        "manager": ApiClient(make_token(manager)),
        "admin": ApiClient(make_token(admin_user)),
    }
