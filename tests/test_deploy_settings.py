"""The README's production variables pass `manage.py check --deploy`, and each security setting comes from them."""
import json
import os
import re
import secrets
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def readme_production_env() -> dict[str, str]:
    """The `export NAME=value` lines of the README's "Running in production" block (a secret made for `$(...)`)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Running in production", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    env = {}
    for line in block.splitlines():
        match = re.match(r"export (\w+)=(\S+)", line.strip())
        assert match, f"not an export line in the README's production block: {line!r}"
        name, value = match.groups()
        env[name] = secrets.token_urlsafe(50) if value.startswith("$(") else value
    return env


def run(tmp_path, args, extra_env):
    # Only the portal's own variables from the README: nothing DJANGO_* or MLOPS_* inherited from this process.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MLOPS_"))}
    env.update({"DJANGO_SETTINGS_MODULE": "mlopsportal.settings", "MLOPS_DATA_DIR": str(tmp_path), **extra_env})
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_the_readme_production_variables(tmp_path):
    env = readme_production_env()
    assert {"DJANGO_SECURE_SSL_REDIRECT", "DJANGO_SECURE_HSTS_SECONDS", "DJANGO_SECURE_COOKIES",
            "DJANGO_CSRF_TRUSTED_ORIGINS"} <= set(env)
    result = run(tmp_path, ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_warns_without_them(tmp_path):
    result = run(tmp_path, ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], {})
    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in result.stderr, result.stderr


SHOW = ("import django, json; django.setup(); from django.conf import settings as s; print(json.dumps({k: getattr(s, "
        "k, None) for k in ['SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', "
        "'SECURE_HSTS_PRELOAD', 'SECURE_PROXY_SSL_HEADER', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', "
        "'CSRF_TRUSTED_ORIGINS']}))")


def test_each_variable_sets_its_setting(tmp_path):
    shown = json.loads(run(tmp_path, ["-c", SHOW], readme_production_env()).stdout.strip().splitlines()[-1])
    assert shown == {"SECURE_SSL_REDIRECT": True, "SECURE_HSTS_SECONDS": 31536000,
                     "SECURE_HSTS_INCLUDE_SUBDOMAINS": True, "SECURE_HSTS_PRELOAD": True,
                     "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"], "SESSION_COOKIE_SECURE": True,
                     "CSRF_COOKIE_SECURE": True, "CSRF_TRUSTED_ORIGINS": ["https://portal.example.com"]}
    defaults = json.loads(run(tmp_path, ["-c", SHOW], {}).stdout.strip().splitlines()[-1])
    assert defaults == {"SECURE_SSL_REDIRECT": False, "SECURE_HSTS_SECONDS": 0,
                        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False, "SECURE_HSTS_PRELOAD": False,
                        "SECURE_PROXY_SSL_HEADER": None, "SESSION_COOKIE_SECURE": False,
                        "CSRF_COOKIE_SECURE": False, "CSRF_TRUSTED_ORIGINS": []}


def test_a_malformed_number_is_refused_with_its_name(tmp_path):
    result = run(tmp_path, ["manage.py", "check"], {"DJANGO_SECURE_HSTS_SECONDS": "a year"})
    assert result.returncode != 0
    assert "DJANGO_SECURE_HSTS_SECONDS must be a whole number, not 'a year'" in result.stderr


@pytest.mark.django_db
def test_beat_check_tells_a_beat_that_stopped_sending():
    from datetime import timedelta

    from django.core.management import CommandError, call_command
    from django.utils import timezone
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    with pytest.raises(CommandError, match="never"):
        call_command("beat_check")
    every = IntervalSchedule.objects.create(every=30, period=IntervalSchedule.SECONDS)
    task = PeriodicTask.objects.create(name="reconcile-deployments", task="deployments.tasks.deployments_reconcile",
                                       interval=every, last_run_at=timezone.now() - timedelta(minutes=30))
    with pytest.raises(CommandError, match="within 600 s"):
        call_command("beat_check")
    PeriodicTask.objects.filter(pk=task.pk).update(last_run_at=timezone.now())
    call_command("beat_check")


def test_every_compose_service_restarts_and_has_a_healthcheck():
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        assert service.get("restart") == "unless-stopped", name
        check = service.get("healthcheck", {}).get("test")
        assert check and check[0] in ("CMD", "CMD-SHELL"), name
