"""The release ledger: the serving services write it with each change; "as of" and an endpoint's release history
read it back, with a constant number of queries; the CSV export is safe to open in a spreadsheet."""
import csv
import io
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from deployments.models import Deployment, DeploymentProfile, Endpoint, Promotion, ReleaseEvent
from deployments.serving import releases, services
from models_registry import timeline
from tests.models_registry.factories import make_model, make_run

pytestmark = pytest.mark.django_db


def _adopt(endpoint, name, version):
    return services.deployment_adopt(endpoint=endpoint, name=name, version=version, healthy=True,
                                     ref={"dir": f"{endpoint.name}-{name}", "port": 1},
                                     scoring_url="http://127.0.0.1:1/score", summary="found on the platform")


@pytest.fixture
def prod_history(engineer, manager):
    """titanic-prod: v1 deployed (blue, 100%), then promotion #p of v2 (green) approved by the manager rolls out
    10% -> 100%, then a rollback to v1. Returns (endpoint, v1, v2, promotion)."""
    profile = DeploymentProfile.objects.create(name="small")
    staging = services.endpoint_create(name="t-staging", stage="staging", profile=profile, actor=engineer)
    prod = services.endpoint_create(name="t-prod", stage="production", profile=profile, actor=engineer)
    model = make_model(engineer, name="titanic", versions=2, key_metric="cv_accuracy")
    v1, v2 = model.versions.order_by("version")
    for version in (v1, v2):
        version.training_run = make_run(engineer, backend_job_id=f"job-{version.version}")
        version.save(update_fields=["training_run"])
    blue = _adopt(prod, "blue", v1)
    promotion = Promotion.objects.create(version=v2, staging_endpoint=staging, production_endpoint=prod,
                                         requested_by=engineer, approval_required=True, reason="better recall",
                                         state=Promotion.State.RUNNING, decided_by=manager, decision="approved",
                                         decision_comment="stress p95 fine", decided_at=timezone.now())
    # The first split the sync took over (blue 100%), then the promotion's deployment and steps.
    services.endpoint_traffic_record(endpoint=prod, traffic={"blue": 100}, summary="in the ML platform")
    green = services.deployment_create(endpoint=prod, version=v2, name="green", actor=engineer, start=False,
                                       why="promotion", promotion=promotion)
    Deployment.objects.filter(pk=green.pk).update(status="healthy")
    Promotion.objects.filter(pk=promotion.pk).update(production_deployment=green)
    services.endpoint_traffic_set(endpoint=prod, traffic={"blue": 90, "green": 10}, actor=None,
                                  reason=f"{promotion}: step to 10%", promotion=promotion)
    services.endpoint_traffic_set(endpoint=prod, traffic={"blue": 0, "green": 100}, actor=None,
                                  reason=f"{promotion}: step to 100%", promotion=promotion)
    Promotion.objects.filter(pk=promotion.pk).update(state=Promotion.State.SUCCEEDED)
    assert blue.pk
    return prod, v1, v2, promotion


def test_each_change_to_what_an_endpoint_serves_is_in_the_ledger(prod_history, engineer, admin_user):
    prod, v1, v2, promotion = prod_history
    services.endpoint_rollback(endpoint=prod, actor=admin_user, reason="error rate up")
    events = list(prod.release_events.order_by("at", "id"))
    assert [e.kind for e in events] == ["deployed", "traffic", "deployed", "traffic", "traffic", "rollback"]
    assert [e.split for e in events] == [{}, {"blue": 100}, {"blue": 100}, {"blue": 90, "green": 10},
                                         {"green": 100}, {"blue": 100}]
    assert {e.model_id for e in events} == {v1.model_id}
    deployed_green, ten, hundred, rollback = events[2:]
    assert deployed_green.promotion == promotion and ten.promotion == promotion and hundred.promotion == promotion
    assert {row["version"] for row in hundred.serving} == {"titanic v1", "titanic v2"}
    assert rollback.actor == admin_user and rollback.actor_name == "ada-admin" and rollback.via == "portal"
    assert "rolled back from titanic v2 to titanic v1: error rate up" in rollback.summary
    assert events[1].actor_name == "system" and events[1].via == "system"

    # Refused changes write nothing; the ledger is append-only.
    with pytest.raises(ValidationError):
        services.endpoint_traffic_set(endpoint=prod, traffic={"blue": 50, "green": 50}, actor=engineer)
    assert prod.release_events.count() == 6
    with pytest.raises(ValueError):
        rollback.save()

    # Removing the idle deployment is a change too (the deployment leaves what the endpoint serves).
    green = prod.deployments.get(name="green")
    services.deployment_gone(deployment=green, summary="deleted in the ML platform")
    removed = prod.release_events.order_by("-at", "-id").first()
    assert removed.kind == "removed" and removed.deployment == green and removed.split == {"blue": 100}
    assert [row["deployment"] for row in removed.serving] == ["blue"]


def test_as_of_a_moment_between_two_changes_shows_what_served_then(prod_history, manager_client):
    prod, v1, v2, promotion = prod_history
    ten, hundred = prod.release_events.filter(kind="traffic").order_by("at", "id")[1:3]
    between = ten.at + (hundred.at - ten.at) / 2
    (row,) = [r for r in releases.releases_as_of(between) if r.endpoint == prod]
    assert [(s.deployment, s.version, s.traffic) for s in row.served] == [("blue", v1, 90), ("green", v2, 10)]
    green = row.served[1]
    assert green.promotion == promotion and green.promotion.decided_by.username == "max-manager"
    assert row.served[0].promotion is None  # blue was found on the platform, not promoted

    # Before the endpoint's first change: nothing served; before it existed: it is not listed.
    first = prod.release_events.order_by("at", "id").first()
    (row,) = [r for r in releases.releases_as_of(first.at - timedelta(microseconds=1)) if r.endpoint == prod]
    assert row.served == [] and row.event is None
    assert prod not in [r.endpoint for r in releases.releases_as_of(prod.created_at - timedelta(seconds=1))]

    # The page, from the link the history gives for that moment.
    response = manager_client.get(releases.as_of_link(ten.at))
    assert response.status_code == 200
    (shown,) = [r for r in response.context["rows"] if r.endpoint == prod]
    assert shown.event == ten and {s.deployment: s.traffic for s in shown.served} == {"blue": 90, "green": 10}
    page = response.content.decode()
    assert 'data-testid="as-of-t-prod-green"' in page and "max-manager" in page and "stress p95 fine" in page
    assert "10%" in page and "cv_accuracy" in page

    # A moment that is not one: a message, no error.
    response = manager_client.get(reverse("deployments:releases_as_of"), {"at": "yesterday-ish"})
    assert response.status_code == 200 and "Enter a valid date/time" in response.content.decode()
    response = manager_client.get(reverse("deployments:releases_as_of"), {"at": "2026-02-30T10:00"})
    assert response.status_code == 200 and 'role="alert"' in response.content.decode()


def test_release_history_page_chart_and_paging(prod_history, manager_client):
    prod, v1, v2, promotion = prod_history
    url = reverse("deployments:endpoint_releases", args=[prod.name])
    response = manager_client.get(url)
    page = response.content.decode()
    assert response.status_code == 200
    assert page.count('data-testid="release-') >= 5  # rows (and the chart, the CSV link)
    assert "Traffic share by version on t-prod" in page and "chart-band" in page
    assert "titanic v2: 10 from" in page  # a step's hover value
    assert f'href="{promotion.get_absolute_url()}"' in page and "approved by max-manager" in page

    # Pages of 50, older ones by a cursor that holds while new events arrive.
    for index in range(60):
        services.endpoint_traffic_record(endpoint=prod, traffic={"blue": index % 2 * 100, "green": 100 - index % 2 * 100},
                                         summary="in the ML platform")
    first = manager_client.get(url)
    older = first.context["older"]
    assert len(first.context["events"]) == 50 and older
    second = manager_client.get(url, {"before": older})
    ids = [e.pk for e in first.context["events"]] + [e.pk for e in second.context["events"]]
    assert ids == list(prod.release_events.order_by("-at", "-id").values_list("pk", flat=True))
    assert second.context["older"] is None


def test_release_pages_make_a_fixed_number_of_queries(prod_history, manager_client):
    prod, *_ = prod_history
    url = reverse("deployments:endpoint_releases", args=[prod.name])
    as_of = releases.as_of_link(timezone.now())

    def count(path):
        with CaptureQueriesContext(connection) as queries:
            assert manager_client.get(path).status_code == 200
        return len(queries)

    count(url)  # the first request of a session reads what the next ones keep
    before = count(url), count(as_of)
    for index in range(30):
        services.endpoint_traffic_record(endpoint=prod, traffic={"blue": index % 2 * 100, "green": 100 - index % 2 * 100},
                                         summary="in the ML platform")
    staging = Endpoint.objects.get(name="t-staging")
    _adopt(staging, "blue", prod.deployments.get(name="blue").model_version)
    assert (count(url), count(as_of)) == before


def test_csv_export_of_the_ledger_is_whole_and_spreadsheet_safe(prod_history, admin_user, manager_client):
    prod, _, _, promotion = prod_history
    services.endpoint_rollback(endpoint=prod, actor=admin_user, reason="=HYPERLINK(\"http://evil\")")
    response = manager_client.get(reverse("deployments:endpoint_releases", args=[prod.name]), {"format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="t-prod-releases.csv"' in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["at (UTC)", "kind", "summary"]
    assert len(rows) == 1 + prod.release_events.count()
    assert rows[-1][1] == "Rolled back" and rows[-1][-1] == "blue: titanic v1 100%; green: titanic v2 0%"
    assert all(not cell.startswith(("=", "+", "@")) for row in rows for cell in row)
    promoted = [row for row in rows[1:] if row[5]]
    assert promoted and all(row[5] == f"#{promotion.pk}" and row[6] == "max-manager" for row in promoted)


def test_release_pages_need_a_login(client, prod_history):
    prod, *_ = prod_history
    for url in (reverse("deployments:endpoint_releases", args=[prod.name]), reverse("deployments:releases_as_of")):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]
    assert ReleaseEvent.objects.count() == 5


def test_models_list_and_model_page_say_which_version_serves_production_since_when(prod_history, admin_user,
                                                                                   manager_client):
    prod, v1, v2, promotion = prod_history
    took_all = prod.release_events.filter(kind="traffic").order_by("at", "id")[2]  # green 100%
    ten = prod.release_events.filter(kind="traffic").order_by("at", "id")[1]  # green 10%: since then
    (serving,) = releases.in_production()[v2.model_id]
    assert (serving.endpoint, serving.version, serving.traffic, serving.since) == (prod, v2, 100, ten.at)
    assert took_all.serving[1]["since"] == ten.at.isoformat()

    page = manager_client.get(reverse("models_registry:model_list")).content.decode()
    assert "v2</a> on <a" in page and f"since {timezone.localtime(ten.at):%Y-%m-%d %H:%M}" in page
    detail = manager_client.get(reverse("models_registry:model_detail", args=["titanic"])).content.decode()
    assert "takes 100% of" in detail and "in production</span>" in detail

    # After a rollback, v1 serves again: since the rollback, not since it first served.
    services.endpoint_rollback(endpoint=prod, actor=admin_user, reason="errors")
    rollback = prod.release_events.order_by("-at", "-id").first()
    (serving,) = releases.in_production()[v1.model_id]
    assert (serving.version, serving.since) == (v1, rollback.at)


def test_a_models_timeline_merges_runs_versions_promotions_traffic_and_rollbacks(prod_history, engineer,
                                                                                  admin_user, manager_client):
    prod, v1, v2, promotion = prod_history
    model = v1.model
    run = make_run(engineer, register_as=model, experiment_name="titanic-forest")
    Promotion.objects.filter(pk=promotion.pk).update(finished_at=timezone.now())
    services.endpoint_rollback(endpoint=prod, actor=admin_user, reason="error rate up")
    url = reverse("models_registry:model_timeline", args=[model.name])

    entries = manager_client.get(url).context["entries"]
    labels = [e.label for e in entries]
    assert labels[0] == "Rolled back on t-prod" and entries[0].actor == "ada-admin"
    assert [e.at for e in entries] == sorted((e.at for e in entries), reverse=True)
    for label in ("Promotion succeeded", "Approved", "Promotion requested", "Registered v2", "Registered v1",
                  "Training run launched", "Training run succeeded", "Traffic changed on t-prod",
                  "Deployment added on t-prod"):
        assert label in labels, label
    approved = entries[labels.index("Approved")]
    assert approved.actor == "max-manager" and approved.detail == "stress p95 fine"
    assert entries[labels.index("Training run launched")].title == str(run)
    page = manager_client.get(url).content.decode()
    assert "stress p95 fine" in page and "by max-manager" in page

    # Filters: by kind, by day; a window the wrong way round is refused in words.
    only = manager_client.get(url, {"kind": ["promotions"]}).context["entries"]
    assert {e.kind for e in only} == {"promotions"} and len(only) == 3
    only = manager_client.get(url, {"kind": ["rollbacks"]}).context["entries"]
    assert [e.label for e in only] == ["Rolled back on t-prod"]
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    assert manager_client.get(url, {"since": tomorrow}).context["entries"] == []
    today = timezone.localdate().isoformat()
    assert len(manager_client.get(url, {"since": today, "until": today}).context["entries"]) == len(entries)
    response = manager_client.get(url, {"since": tomorrow, "until": today})
    assert "must be on or before" in response.content.decode()

    # CSV: all of it, the same order.
    response = manager_client.get(url, {"format": "csv"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert [row[2] for row in rows[1:]] == labels


def test_timeline_pages_hold_together_and_cost_a_fixed_number_of_queries(prod_history, manager_client):
    prod, v1, *_ = prod_history
    url = reverse("models_registry:model_timeline", args=[v1.model.name])

    def queries(path, **params):
        with CaptureQueriesContext(connection) as captured:
            response = manager_client.get(path, params)
        return len(captured), response

    queries(url)
    before, _ = queries(url)
    for index in range(60):
        services.endpoint_traffic_record(endpoint=prod, traffic={"blue": index % 2 * 100, "green": 100 - index % 2 * 100},
                                         summary="in the ML platform")
    after, first = queries(url)
    assert after == before
    shown = list(first.context["entries"])
    assert len(shown) == timeline.PAGE and first.context["next_url"]
    response = first
    while response.context["next_url"]:  # page after page, each older than the last
        response = manager_client.get(url + response.context["next_url"])
        shown += response.context["entries"]
    everything = list(manager_client.get(url, {"format": "csv"}).streaming_content)
    assert len(shown) == len(everything) - 2 > 2 * timeline.PAGE  # the BOM and the header
    assert [e.at for e in shown] == sorted((e.at for e in shown), reverse=True)
    assert len({(e.at, e.label, e.title) for e in shown}) == len(shown)
