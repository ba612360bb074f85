"""The audit page: managers and admins read the whole log, filtered, page by page, with old → new values, and
download it as CSV; engineers may not."""
import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.context import Acting, acting_as
from audit.models import AuditEvent
from audit.services import audit_record, field_diff
from deployments.models import DeploymentProfile

pytestmark = pytest.mark.django_db
URL = reverse("audit:audit_log")


@pytest.fixture
def log(admin_user, engineer):
    small = DeploymentProfile.objects.create(name="small")
    large = DeploymentProfile.objects.create(name="large")
    audit_record(actor=admin_user, action=AuditEvent.Action.UPDATE, target=small, summary="edited small",
                 changes={"diff": field_diff({"instance_count": 1, "api_key": "s3cret"},
                                             {"instance_count": 3, "api_key": "n3w"})})
    audit_record(actor=engineer, action=AuditEvent.Action.CREATE, target=large, summary="=cmd|' /C calc'!A0")
    audit_record(actor=None, action=AuditEvent.Action.DELETE, target=large, summary="removed by the system")
    return small, large


def test_engineers_may_not_read_the_whole_log(engineer_client, manager_client, admin_client_, log):
    assert engineer_client.get(URL).status_code == 403
    assert manager_client.get(URL).status_code == 200 and admin_client_.get(URL).status_code == 200
    assert "Audit</a>" in manager_client.get(URL).content.decode()
    assert "/audit/" not in engineer_client.get(reverse("models_registry:model_list")).content.decode()


def test_filters_old_and_new_values_and_refusals(manager_client, log):
    page = manager_client.get(URL).content.decode()
    assert "instance count:</span> 1 → 3" in page and "s3cret" not in page and "n3w" not in page

    def shown(**params):
        return [e.summary for e in manager_client.get(URL, params).context["events"]]

    assert shown(who="ada-admin") == ["edited small"]
    assert shown(who="system") == ["removed by the system"]
    assert shown(action="create") == ["=cmd|' /C calc'!A0"]
    assert shown(kind="deployments.deploymentprofile", object="larg") == ["removed by the system",
                                                                         "=cmd|' /C calc'!A0"]
    assert shown(kind="deployments.endpoint") == []
    today = timezone.localdate()
    assert len(shown(since=today.isoformat(), until=today.isoformat())) == 3
    assert shown(since=(today + timedelta(days=1)).isoformat()) == []
    response = manager_client.get(URL, {"since": today.isoformat(), "until": (today - timedelta(days=1)).isoformat()})
    assert "must be on or before" in response.content.decode() and response.context["events"] == []
    response = manager_client.get(URL, {"action": "drop table", "since": "31/31/31"})
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()


def test_csv_is_one_row_per_field_change_and_spreadsheet_safe(manager_client, log, engineer):
    with acting_as(Acting(via="api", credential="token mlp_0a1b2c3d4e5f (release)")):
        audit_record(actor=engineer, action=AuditEvent.Action.UPDATE, target=log[1], summary="renamed by a pipeline")
    response = manager_client.get(URL, {"format": "csv"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[0][:2] == ["at (UTC)", "who"]
    edits = [row for row in rows if row[7] == "edited small"]
    assert [(row[8], row[9], row[10]) for row in edits] == [("instance count", "1", "3"), ("api key", "••••", "••••")]
    assert any(row[7] == "'=cmd|' /C calc'!A0" for row in rows)
    (piped,) = [row for row in rows if row[7] == "renamed by a pipeline"]
    assert piped[2:4] == ["api", "token mlp_0a1b2c3d4e5f (release)"]
    filtered = manager_client.get(URL, {"format": "csv", "who": "system"})
    assert len(list(csv.reader(io.StringIO(b"".join(filtered.streaming_content).decode("utf-8-sig"))))) == 2


def test_pages_by_cursor_with_a_fixed_number_of_queries(manager_client, log, admin_user):
    small, _ = log
    manager_client.get(URL)

    def count():
        with CaptureQueriesContext(connection) as captured:
            response = manager_client.get(URL)
        return len(captured), response

    before, _ = count()
    for index in range(70):
        audit_record(actor=admin_user, action=AuditEvent.Action.UPDATE, target=small, summary=f"edit {index}",
                     changes={"diff": field_diff({"instance_count": index}, {"instance_count": index + 1})})
    after, first = count()
    assert after == before
    second = manager_client.get(URL + first.context["older_url"])
    ids = [e.pk for e in first.context["events"] + second.context["events"]]
    assert ids == list(AuditEvent.objects.order_by("-at", "-id").values_list("pk", flat=True))
