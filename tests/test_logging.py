"""The log: a refused request is one line, a server error keeps its traceback."""
import logging

import pytest
from django.urls import reverse

from mlopsportal.lib.logfilters import ClientErrorsInOneLine

FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")  # as settings.LOGGING's "plain"


@pytest.mark.django_db
def test_a_403_is_one_line_in_the_log(manager_client, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = manager_client.post(reverse("models_registry:run_launch"))
    assert response.status_code == 403
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    line = FORMAT.format(record)
    assert "Forbidden (Permission denied): /runs/new/" in line
    assert "\n" not in line and "Traceback" not in line


def test_a_server_error_keeps_its_traceback():
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        record = logging.makeLogRecord({"name": "django.request", "levelno": logging.ERROR, "levelname": "ERROR",
                                        "msg": "Internal Server Error: /x", "status_code": 500,
                                        "exc_info": (type(exc), exc, exc.__traceback__)})
    assert ClientErrorsInOneLine().filter(record)
    assert "Traceback" in FORMAT.format(record) and "RuntimeError: boom" in FORMAT.format(record)
