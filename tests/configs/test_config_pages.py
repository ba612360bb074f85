"""Configuration pages: an admin's edit is reviewed (what changes, what it reaches) and then saved as a revision
with its note and an audit event; any two revisions compare field by field; a revert is a new revision. Bad input is
refused on the field at fault with nothing saved. Other roles read, and are refused every write."""
import re

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from deployments.configs.forms import post_data
from deployments.configs.kinds import KINDS
from deployments.models import DeploymentProfile, FunctionalTestCase, StressProfile
from deployments.serving import services
from tests.models_registry.factories import make_model

pytestmark = pytest.mark.django_db


def form_data(slug, obj, **changes) -> dict:
    """What the edit form posts for `obj`, with `changes` (True/False for check boxes), opened at its latest
    revision."""
    data = post_data(KINDS[slug], obj, changes)
    data["base_revision"] = obj.history.count() if obj.pk else 0
    return data


def post_edit(client, slug, obj, note="why: a test", **changes):
    """Review, then save with what was reviewed. Returns (review response, save response)."""
    url = reverse("deployments:config_edit", args=[slug, obj.pk])
    data = {**form_data(slug, obj, **changes), "note": note}
    review = client.post(url, data)
    if review.status_code != 200:
        return review, None
    digest = re.search(r'name="reviewed" value="([0-9a-f]+)"', review.content.decode()).group(1)
    return review, client.post(url, {**data, "reviewed": digest})


@pytest.fixture
def profile(engineer):
    p = DeploymentProfile.objects.create(name="small")
    services.endpoint_create(name="t-staging", stage="staging", profile=p, actor=engineer)
    return p


def test_edit_is_reviewed_then_saved_as_a_revision_with_note_and_audit(admin_client_, admin_user, profile):
    before = profile.history.count()
    review, saved = post_edit(admin_client_, "profiles", profile, note="more room for the Sunday peak",
                              instance_count=3, request_timeout_ms=5000)
    page = review.content.decode()
    assert 'data-testid="config-review"' in page and "t-staging" in page  # the endpoint it reaches
    assert 'data-testid="diff-instance_count"' in page and 'data-testid="diff-request_timeout_ms"' in page
    assert saved.status_code == 302
    profile.refresh_from_db()
    assert (profile.instance_count, profile.request_timeout_ms) == (3, 5000)
    revision = profile.history.latest()
    assert profile.history.count() == before + 1
    assert revision.history_change_reason == "more room for the Sunday peak"
    assert revision.history_user == admin_user
    event = AuditEvent.objects.filter(target_id=str(profile.pk), action="update").latest("at")
    assert {"field": "instance_count", "old": 1, "new": 3} in event.changes["diff"]
    assert "Note: more room for the Sunday peak" in event.summary and event.actor == admin_user


def test_a_value_changed_after_the_review_is_reviewed_again(admin_client_, profile):
    url = reverse("deployments:config_edit", args=["profiles", profile.pk])
    data = {**form_data("profiles", profile, instance_count=2), "note": "two"}
    digest = re.search(r'name="reviewed" value="([0-9a-f]+)"',
                       admin_client_.post(url, data).content.decode()).group(1)
    again = admin_client_.post(url, {**data, "instance_count": 4, "reviewed": digest})
    assert again.status_code == 200 and 'data-testid="config-review"' in again.content.decode()
    profile.refresh_from_db()
    assert profile.instance_count == 1


def test_a_save_over_someone_elses_newer_revision_is_refused(admin_client_, profile):
    stale = form_data("profiles", profile, request_timeout_ms=7000)
    post_edit(admin_client_, "profiles", profile, note="three", instance_count=3)
    url = reverse("deployments:config_edit", args=["profiles", profile.pk])
    refused = admin_client_.post(url, {**stale, "note": "timeout"}, follow=True)
    assert "since you opened this form" in refused.content.decode()
    profile.refresh_from_db()
    assert (profile.instance_count, profile.request_timeout_ms) == (3, 60_000)


@pytest.mark.parametrize("note", ["", "   ", "—?!"])
def test_the_change_note_is_required_in_words(admin_client_, profile, note):
    review, _ = post_edit(admin_client_, "profiles", profile, note=note, instance_count=2)
    assert review.status_code == 400 and "note" in review.context["form"].errors
    profile.refresh_from_db()
    assert profile.instance_count == 1


def _refused(client, slug, obj, field, **changes):
    review, _ = post_edit(client, slug, obj, **changes)
    assert review.status_code == 400, review.content.decode()[:500]
    errors = review.context["form"].errors
    assert field in errors, errors
    before = obj.history.count()
    obj.refresh_from_db()
    assert obj.history.count() == before
    return " ".join(errors[field])


def test_profile_out_of_range_is_refused_on_its_field(admin_client_, profile):
    assert "greater than or equal to 1" in _refused(admin_client_, "profiles", profile, "instance_count",
                                                    instance_count=0)
    _refused(admin_client_, "profiles", profile, "request_timeout_ms", request_timeout_ms=50)
    _refused(admin_client_, "profiles", profile, "kubernetes_instance_type", kubernetes_instance_type="Big_One")


def test_profile_inconsistent_autoscale_is_refused_on_its_field(admin_client_, profile):
    assert "cannot be above the maximum" in _refused(admin_client_, "profiles", profile, "min_instances",
                                                     autoscale_enabled=True, min_instances=5, max_instances=2)
    assert "between the minimum" in _refused(admin_client_, "profiles", profile, "instance_count",
                                             autoscale_enabled=True, min_instances=2, max_instances=4,
                                             instance_count=9)


@pytest.fixture
def on_azure(azure, admin_user, engineer):
    """The azureml backend against the fake: staging on managed endpoints, production on the AKS cluster whose
    instance types (defaultinstancetype: 2 CPU, 2 GiB; cpu-large: 4 CPU, 8 GiB) the connection test read."""
    from workspaces.services import workspace_connection_test

    workspace_connection_test(actor=admin_user)
    profile = DeploymentProfile.objects.create(name="shared")
    services.endpoint_create(name="t-staging", stage="staging", profile=profile, actor=engineer)
    services.endpoint_create(name="t-prod", stage="production", profile=profile, actor=engineer)
    return profile


def test_over_the_instance_types_limits_is_refused_on_the_field(admin_client_, on_azure):
    message = _refused(admin_client_, "profiles", on_azure, "cpu_request", cpu_request="3")
    assert "On t-prod (production): 3 CPU is more than instance type defaultinstancetype allows (2)" in message
    assert "2.15 GB = 2 GiB" in _refused(admin_client_, "profiles", on_azure, "memory_request_gb",
                                         memory_request_gb="4")
    assert "has no instance type gpu-huge" in _refused(admin_client_, "profiles", on_azure,
                                                       "kubernetes_instance_type", kubernetes_instance_type="gpu-huge")
    review, saved = post_edit(admin_client_, "profiles", on_azure, cpu_request="3", memory_request_gb="4",
                              kubernetes_instance_type="cpu-large")
    assert saved.status_code == 302  # fits cpu-large


def test_over_managed_limits_is_refused_on_the_field(admin_client_, on_azure):
    message = _refused(admin_client_, "profiles", on_azure, "request_timeout_ms", request_timeout_ms=200_000)
    assert "On t-staging (staging): A request timeout of 200,000 ms is over the 180,000 ms" in message
    assert "over the 50 that a managed online deployment" in _refused(admin_client_, "profiles", on_azure,
                                                                      "instance_count", instance_count=60)
    assert "over the 50" in _refused(admin_client_, "profiles", on_azure, "max_instances", autoscale_enabled=True,
                                     min_instances=1, instance_count=1, max_instances=80)


def test_endpoint_policy_rules(admin_client_, profile):
    endpoint = profile.endpoints.get()
    assert "rise strictly" in _refused(admin_client_, "endpoints", endpoint, "traffic_steps", traffic_steps="50,10")
    _refused(admin_client_, "endpoints", endpoint, "traffic_steps", traffic_steps="10;100")


def test_endpoint_policy_refuses_a_profile_it_could_not_run(admin_client_, on_azure):
    big = DeploymentProfile.objects.create(name="big", cpu_request=3)
    endpoint = on_azure.endpoints.get(name="t-prod")
    assert "3 CPU is more than" in _refused(admin_client_, "endpoints", endpoint, "profile", profile=big.pk)


@pytest.fixture
def stress(engineer):
    model = make_model(engineer, name="titanic")
    return StressProfile.objects.create(model=model, name="default", payloads=[{"a": 1}])


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"request_count": 100}, "duration_seconds", "either a duration or a request count"),
    ({"shards": 4, "concurrency": 2}, "shards", "no more shards"),
    ({"payloads": "[NaN]"}, "payloads", "NaN and Infinity are not JSON"),
    ({"payloads": "[" * 50_000}, "payloads", "nested too deeply"),
    ({"payloads": '{"a": 1}'}, "payloads", "non-empty JSON list"),
    ({"error_rate_max": "1.5"}, "error_rate_max", "less than or equal to 1"),
    ({"concurrency": 0}, "concurrency", "greater than or equal to 1"),
])
def test_stress_profile_rules(admin_client_, stress, changes, field, words):
    assert words in _refused(admin_client_, "stress-profiles", stress, field, **changes)


@pytest.fixture
def case(engineer):
    model = make_model(engineer, name="titanic")
    return FunctionalTestCase.objects.create(model=model, name="survives", payload={"Pclass": 1})


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"expect_field": "prediction", "expected_value": ""}, "expected_value", "what the field must equal"),
    ({"expect_field": "prediction", "expected_value": '"yes"', "tolerance": "0.1"}, "tolerance", "numeric"),
    ({"expected_status": 700}, "expected_status", "less than or equal to 599"),
    ({"payload": '{"Age": Infinity}'}, "payload", "not JSON"),
])
def test_functional_case_rules(admin_client_, case, changes, field, words):
    assert words in _refused(admin_client_, "functional-tests", case, field, **changes)


def test_diff_between_any_two_revisions_and_revert(admin_client_, admin_user, profile):
    post_edit(admin_client_, "profiles", profile, note="three", instance_count=3)
    profile.refresh_from_db()
    post_edit(admin_client_, "profiles", profile, note="timeout", request_timeout_ms=9000)
    count = profile.history.count()
    diff = admin_client_.get(reverse("deployments:config_diff", args=["profiles", profile.pk]) + f"?a=1&b={count}")
    rows = {c.field: (c.old, c.new) for c in diff.context["changes"]}
    assert rows == {"instance_count": ("1", "3"), "request_timeout_ms": ("60000", "9000")}

    revert = reverse("deployments:config_revert", args=["profiles", profile.pk, 1])
    refused = admin_client_.post(revert, {"note": "  "})
    assert refused.status_code == 302 and profile.history.count() == count
    done = admin_client_.post(revert, {"note": "back to the start"}, follow=True)
    assert f"as revision {count + 1}" in done.content.decode()
    profile.refresh_from_db()
    assert (profile.instance_count, profile.request_timeout_ms) == (1, 60_000)
    latest = profile.history.latest()
    assert latest.history_change_reason == "back to the start" and latest.history_user == admin_user
    event = AuditEvent.objects.filter(target_id=str(profile.pk)).latest("at")
    assert "reverted deployment profile small to revision 1" in event.summary
    assert {"field": "request_timeout_ms", "old": 9000, "new": 60000} in event.changes["diff"]
    again = admin_client_.post(revert, {"note": "again"}, follow=True)
    assert "has the values" in again.content.decode() and profile.history.count() == count + 1


def test_a_revert_the_endpoints_could_not_run_is_refused(admin_client_, on_azure):
    DeploymentProfile.objects.filter(pk=on_azure.pk).update(cpu_request=3)  # as if saved before the limits were read
    on_azure._change_reason = "big"
    on_azure.refresh_from_db()
    on_azure.save()  # revision 2: 3 CPU
    DeploymentProfile.objects.filter(pk=on_azure.pk).update(cpu_request=1)
    on_azure.refresh_from_db()
    on_azure.save()  # revision 3: 1 CPU
    count = on_azure.history.count()
    page = admin_client_.post(reverse("deployments:config_revert", args=["profiles", on_azure.pk, count - 1]),
                              {"note": "try"}, follow=True).content.decode()
    assert "cannot be brought back" not in page and "3 CPU is more than instance type" in page
    on_azure.refresh_from_db()
    assert on_azure.cpu_request == 1 and on_azure.history.count() == count


def test_impact_lists_deployments_that_would_run_differently(admin_client_, engineer, profile):
    from tests.deployments.test_releases import _adopt

    model = make_model(engineer, name="titanic", versions=1)
    endpoint = profile.endpoints.get()
    deployment = _adopt(endpoint, "blue", model.versions.get())
    deployment.serving_settings = profile.serving_settings()
    deployment.save(update_fields=["serving_settings"])
    review, _ = post_edit(admin_client_, "profiles", profile, instance_count=2, cpu_request="1")
    uses = {u.name: u for u in review.context["uses"]}
    assert uses["t-staging/blue"].changes == ["instances", "CPU"]
    assert "would run differently in: instances, CPU" in review.content.decode()


def test_create_a_stress_profile(admin_client_, engineer):
    model = make_model(engineer, name="titanic")
    url = reverse("deployments:config_create", args=["stress-profiles"])
    data = {"model": model.pk, "name": "peak", "concurrency": 16, "duration_seconds": 30, "payloads": '[{"a": 1}]',
            "error_rate_max": "0", "shards": 1, "note": "Sunday peak"}
    review = admin_client_.post(url, data)
    digest = re.search(r'name="reviewed" value="([0-9a-f]+)"', review.content.decode()).group(1)
    assert admin_client_.post(url, {**data, "reviewed": digest}).status_code == 302
    created = StressProfile.objects.get(name="peak")
    assert created.history.get().history_change_reason == "Sunday peak"
    assert AuditEvent.objects.filter(target_id=str(created.pk), action="create").exists()


@pytest.mark.parametrize("role_client", ["manager_client", "engineer_client"])
def test_other_roles_read_and_cannot_write(request, role_client, profile, admin_client_):
    post_edit(admin_client_, "profiles", profile, instance_count=2)
    client = request.getfixturevalue(role_client)
    detail = client.get(reverse("deployments:config_detail", args=["profiles", profile.pk]))
    assert detail.status_code == 200 and 'data-testid="read-only"' in detail.content.decode()
    assert 'data-testid="config-edit"' not in detail.content.decode()
    assert client.get(reverse("deployments:config_index")).status_code == 200
    diff = client.get(reverse("deployments:config_diff", args=["profiles", profile.pk]) + "?a=1&b=2")
    assert diff.status_code == 200 and 'data-testid="config-revert"' not in diff.content.decode()
    url = reverse("deployments:config_edit", args=["profiles", profile.pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {**form_data("profiles", profile, instance_count=5), "note": "x"}).status_code == 403
    assert client.post(reverse("deployments:config_revert", args=["profiles", profile.pk, 1]),
                       {"note": "x"}).status_code == 403
    assert client.get(reverse("deployments:config_create", args=["stress-profiles"])).status_code == 403
    profile.refresh_from_db()
    assert profile.instance_count == 2


def test_unknown_kind_and_revision_are_not_found(admin_client_, profile):
    assert admin_client_.get("/configs/nonsense/1/").status_code == 404
    assert admin_client_.get(reverse("deployments:config_diff", args=["profiles", profile.pk]) + "?a=1&b=99"
                             ).status_code == 404
    assert admin_client_.get(reverse("deployments:config_create", args=["endpoints"])).status_code == 404


def _review_digest(page) -> str:
    return re.search(r'name="reviewed" value="([0-9a-f]+)"', page.content.decode()).group(1)


def test_yaml_out_and_back_in_as_a_new_revision(admin_client_, admin_user, profile):
    import yaml

    profile.autoscale_enabled, profile.min_instances, profile.max_instances = True, 1, 4
    profile._change_reason = "autoscale"
    profile.save()
    exported = admin_client_.get(reverse("deployments:config_yaml", args=["profiles", profile.pk]))
    assert exported["Content-Disposition"] == 'attachment; filename="small.yml"'
    document = yaml.safe_load(exported.content)
    assert document["scale_settings"] == {"type": "target_utilization", "min_instances": 1, "max_instances": 4,
                                          "target_utilization_percentage": 70, "polling_interval": 1}
    assert document["resources"] == {"requests": {"cpu": "0.5", "memory": "1G"}}

    # Read back unchanged: nothing differs and every field maps.
    url = reverse("deployments:config_import", args=["profiles", profile.pk])
    same = admin_client_.post(url, {"text": exported.content.decode()})
    assert same.status_code == 200 and same.context["changes"] == []
    assert 'data-testid="not-imported"' not in same.content.decode()

    # Edited in git: a larger timeout and one more instance at most.
    document["request_settings"]["request_timeout_ms"] = 90_000
    document["scale_settings"]["max_instances"] = 5
    review = admin_client_.post(url, {"text": yaml.safe_dump(document)})
    assert {c.field for c in review.context["changes"]} == {"request_timeout_ms", "max_instances"}
    data = {**form_data("profiles", profile, request_timeout_ms=90_000, max_instances=5),
            "note": "Imported from Azure ML v2 online deployment YAML", "reviewed": _review_digest(review)}
    saved = admin_client_.post(reverse("deployments:config_edit", args=["profiles", profile.pk]), data)
    assert saved.status_code == 302
    profile.refresh_from_db()
    assert (profile.request_timeout_ms, profile.max_instances) == (90_000, 5)
    assert profile.history.latest().history_user == admin_user


@pytest.mark.parametrize(("text", "words"), [
    ("instance_count: 2\nrequest_settings:\n  request_timeout_ms: [1, 2\n", "line 4, column 1"),
    ("a: &a [1, 2]\nb: &b [*a, *a]\nc: [*b, *b]\ninstance_count: 1\n", "anchors (&amp;name) are not accepted"),
    ("instance_count: 2\nscale_settings:\n  type: sometimes\n", "scale_settings.type (line 3)"),
    ("hello: world\n", "Not a deployment config"),
])
def test_bad_yaml_is_refused_with_the_line_and_nothing_changes(admin_client_, profile, text, words):
    before = profile.history.count()
    page = admin_client_.post(reverse("deployments:config_import", args=["profiles", profile.pk]), {"text": text})
    assert page.status_code == 400 and words in page.content.decode(), page.content.decode()[-2000:]
    assert profile.history.count() == before


def test_yaml_over_the_limits_is_refused_on_the_field(admin_client_, on_azure):
    text = "instance_count: 1\nresources:\n  requests:\n    cpu: '3'\n    memory: 1G\n"
    page = admin_client_.post(reverse("deployments:config_import", args=["profiles", on_azure.pk]), {"text": text})
    assert page.status_code == 400 and "cpu_request" in page.context["form"].errors


def test_managers_download_yaml_and_cannot_import(manager_client, profile):
    assert manager_client.get(reverse("deployments:config_yaml", args=["profiles", profile.pk])).status_code == 200
    url = reverse("deployments:config_import", args=["profiles", profile.pk])
    assert manager_client.post(url, {"text": "instance_count: 3\n"}).status_code == 403
    profile.refresh_from_db()
    assert profile.instance_count == 1


def test_the_endpoint_page_flags_deployments_made_before_a_profile_edit(admin_client_, engineer, profile):
    from tests.deployments.test_releases import _adopt

    model = make_model(engineer, name="titanic", versions=1)
    endpoint = profile.endpoints.get()
    _adopt(endpoint, "blue", model.versions.get())  # made with the profile as it is
    url = reverse("deployments:endpoint_detail", args=[endpoint.name])
    assert 'data-testid="profile-drift-blue"' not in admin_client_.get(url).content.decode()
    post_edit(admin_client_, "profiles", profile, instance_count=2)
    assert 'data-testid="profile-drift-blue"' in admin_client_.get(url).content.decode()


def _read_into(client, slug, obj, text):
    return client.post(reverse("deployments:config_import", args=[slug, obj.pk]), {"text": text})


def test_stress_profile_yaml_round_trip_and_refusals(admin_client_, stress):
    import yaml

    exported = admin_client_.get(reverse("deployments:config_yaml", args=["stress-profiles", stress.pk]))
    document = yaml.safe_load(exported.content)
    assert document == {"model": "titanic", "name": "default", "concurrency": 8, "duration_seconds": 10,
                        "request_count": None, "payloads": [{"a": 1}], "p95_ms_max": None, "error_rate_max": 0.0,
                        "min_rps": None, "shards": 1}
    same = _read_into(admin_client_, "stress-profiles", stress, exported.content.decode())
    assert same.status_code == 200 and same.context["changes"] == []

    document.update(concurrency=16, p95_ms_max=250, colour="blue")
    review = _read_into(admin_client_, "stress-profiles", stress, yaml.safe_dump(document))
    assert {c.field for c in review.context["changes"]} == {"concurrency", "p95_ms_max"}
    assert "colour (line 1): not a setting of a stress profile" in review.content.decode()

    before = stress.history.count()
    for text, words in [("concurrency: 9000\n", "less than or equal to 512"),
                        ("payloads: [.nan]\n", "NaN and infinities are not JSON"),
                        ("model: nobody\n", "no registered model named"),
                        ("concurrency: [1, 2]\n", "must be a single value"),
                        ("name: x\nshards: 4\nconcurrency: 2\n", "no more shards")]:
        page = _read_into(admin_client_, "stress-profiles", stress, text)
        assert page.status_code == 400 and words in page.content.decode(), (text, page.content.decode()[-1500:])
    assert stress.history.count() == before


def test_a_yaml_of_one_setting_keeps_the_others(admin_client_, stress):
    review = _read_into(admin_client_, "stress-profiles", stress, "concurrency: 16\n")
    assert review.status_code == 200 and [c.field for c in review.context["changes"]] == ["concurrency"]


def test_functional_case_and_endpoint_policy_yaml(admin_client_, case, profile):
    import yaml

    exported = yaml.safe_load(admin_client_.get(reverse("deployments:config_yaml",
                                                        args=["functional-tests", case.pk])).content)
    assert exported["payload"] == {"Pclass": 1} and exported["model"] == "titanic"
    page = _read_into(admin_client_, "functional-tests", case, "enabled: 'no'\n")
    assert page.status_code == 400 and "must be true or false" in page.content.decode()

    endpoint = profile.endpoints.get()
    setup = yaml.safe_load(admin_client_.get(reverse("deployments:config_yaml",
                                                     args=["endpoints", endpoint.pk])).content)
    assert setup["traffic_steps"] == [10, 50, 100] and setup["profile"] == "small"
    assert setup["setup"]["deployment_profile"]["name"] == "small"
    review = _read_into(admin_client_, "endpoints", endpoint, "traffic_steps: [25, 100]\napproval_required: false\n")
    assert {c.field for c in review.context["changes"]} == {"traffic_steps", "approval_required"}
    refused = _read_into(admin_client_, "endpoints", endpoint, "traffic_steps: [50, 25]\n")
    assert refused.status_code == 400 and "rise strictly" in refused.content.decode()


def test_a_policy_save_leaves_what_the_workers_wrote_meanwhile(admin_client_, profile, monkeypatch):
    """A worker records the platform's traffic while the save request runs (after the row was read); saving the
    policy keeps that record."""
    from deployments.configs.forms import EndpointForm
    from deployments.models import Endpoint

    endpoint = profile.endpoints.get()
    url = reverse("deployments:config_edit", args=["endpoints", endpoint.pk])
    data = {**form_data("endpoints", endpoint, approval_required=False), "note": "no approval on staging"}
    review = admin_client_.post(url, data)
    clean = EndpointForm.clean

    def meanwhile(form):
        Endpoint.objects.filter(pk=endpoint.pk).update(platform_traffic={"blue": 100}, changed_outside="seen")
        return clean(form)

    monkeypatch.setattr(EndpointForm, "clean", meanwhile)
    assert admin_client_.post(url, {**data, "reviewed": _review_digest(review)}).status_code == 302
    endpoint.refresh_from_db()
    assert not endpoint.approval_required
    assert endpoint.platform_traffic == {"blue": 100} and endpoint.changed_outside == "seen"
