"""Sign-in throttling (django-axes): ten wrong passwords lock the account, from that address, for a while."""
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client
from django.urls import reverse

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def sign_in(client, username, password):
    return client.post(reverse("login"), {"username": username, "password": password})


def test_ten_wrong_passwords_lock_the_account_with_a_clear_message(engineer):
    assert settings.AXES_FAILURE_LIMIT == 10
    client = Client(REMOTE_ADDR="10.0.0.1")
    for _ in range(9):
        response = sign_in(client, engineer.username, "wrong")
        assert response.status_code == 200 and "didn't match" in response.content.decode()
    response = sign_in(client, engineer.username, "wrong")  # the tenth
    body = response.content.decode()
    assert response.status_code == 429
    assert "Too many failed sign-ins" in body and "locked for 15 minutes" in body and 'name="password"' in body
    # Locked: the right password does not get in either, and says why.
    response = sign_in(client, engineer.username, PASSWORD)
    assert response.status_code == 429 and "_auth_user_id" not in client.session
    assert "Too many failed sign-ins" in response.content.decode()

    # The lock is on this account from that address: the same account from another address still signs in.
    elsewhere = Client(REMOTE_ADDR="10.0.0.2")
    response = sign_in(elsewhere, engineer.username, PASSWORD)
    assert response.status_code == 302 and elsewhere.session["_auth_user_id"] == str(engineer.pk)

    # Once the cool-off has passed, the right password works again.
    AccessAttempt.objects.filter(username=engineer.username, ip_address="10.0.0.1").update(
        attempt_time=AccessAttempt.objects.get(username=engineer.username, ip_address="10.0.0.1").attempt_time
        - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    response = sign_in(client, engineer.username, PASSWORD)
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(engineer.pk)


def test_a_successful_sign_in_clears_the_count(engineer):
    client = Client(REMOTE_ADDR="10.0.0.3")
    for _ in range(9):
        sign_in(client, engineer.username, "wrong")
    assert sign_in(client, engineer.username, PASSWORD).status_code == 302
    client.post(reverse("logout"))
    for _ in range(9):
        assert sign_in(client, engineer.username, "wrong").status_code == 200  # counted from zero again
    assert sign_in(client, engineer.username, PASSWORD).status_code == 302


def test_an_unknown_lock_by_is_refused_at_start(tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mlopsportal.settings", "MLOPS_LOGIN_LOCK_BY": "user",
           "MLOPS_DATA_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0 and "MLOPS_LOGIN_LOCK_BY must be one of account+ip, account, ip" in result.stderr
