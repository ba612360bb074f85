"""Pages of the model registry: models, versions, training runs, launching and registering."""
from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.services import audit_events_for
from deployments.models import FunctionalTestRun, StressRun
from deployments.promotions.forms import PromoteForm
from deployments.serving import releases
from deployments.serving.forms import DeployToStagingForm
from deployments.verification.selectors import capacity_change
from mlopsportal.backends import BackendError
from mlopsportal.lib.exports import csv_response
from mlopsportal.lib.forms import form_errors_text
from mlopsportal.lib.polling import polled_fragment
from mlopsportal.lib.queue import QueueUnavailable

from . import compare, selectors, services, timeline
from .downloads import artifact_file_response
from .forms import ModelEditForm, RegisterVersionForm, TimelineFilterForm, TrainingLaunchForm
from .models import ModelVersion, RegisteredModel, TrainingRun

MODELS_PER_PAGE = 25
VERSIONS_PER_PAGE = 25
RUNS_PER_PAGE = 30


def _page(request, queryset, per_page):
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))


# --- models -------------------------------------------------------------------------------------------------------
@require_GET
@permission_required("models_registry.view_registeredmodel", raise_exception=True)
def model_list(request):
    search = request.GET.get("q", "").strip()[:100]
    page = _page(request, selectors.registered_model_list(search=search), MODELS_PER_PAGE)
    serving = releases.in_production(model_ids=[model.pk for model in page])
    for model in page:
        model.in_production = serving.get(model.pk, [])
    context = {"page": page, "search": search}
    if request.htmx and request.htmx.target == "model-table":
        return render(request, "models_registry/model_list.html#model-table", context)
    return render(request, "models_registry/model_list.html", context)


@require_GET
@permission_required("models_registry.view_registeredmodel", raise_exception=True)
def model_detail(request, name):
    model = get_object_or_404(RegisteredModel, name=name)
    page = _page(request, selectors.model_version_list(model=model), VERSIONS_PER_PAGE)
    in_production = releases.in_production(model_ids=[model.pk]).get(model.pk, [])
    serving_ids = {serving.version.pk for serving in in_production}
    for version in page:
        version.in_production = version.pk in serving_ids
    context = {"model": model, "page": page, "chart": selectors.model_metric_chart(model=model),
               "events": selectors.model_history(model=model), "in_production": in_production}
    if request.htmx and request.htmx.target == "version-table":
        return render(request, "models_registry/model_detail.html#version-table", context)
    return render(request, "models_registry/model_detail.html", context)


@require_GET
@permission_required("models_registry.view_registeredmodel", raise_exception=True)
def model_timeline(request, name):
    """Everything that happened to a model, newest first, filtered by kind and day; ?format=csv for all of it."""
    model = get_object_or_404(RegisteredModel, name=name)
    form = TimelineFilterForm(request.GET)
    window = {"kinds": (), "since": None, "until": None}
    if form.is_valid():
        since, until = form.window()
        window = {"kinds": form.cleaned_data["kind"], "since": since, "until": until}
    if request.GET.get("format") == "csv":
        entries = timeline.model_timeline_all(model, **window)
        return csv_response(timeline.model_timeline_rows(entries), f"{model.name}-timeline.csv")
    try:
        before = datetime.fromisoformat(request.GET.get("before", ""))
    except ValueError:
        before = None
    if before is not None and timezone.is_aware(before):
        window["until"] = min(before, window["until"]) if window["until"] else before
    entries, more = timeline.model_timeline(model, **window)
    query = request.GET.copy()
    query.pop("before", None)
    query.pop("format", None)
    next_query = query.copy()
    if more is not None:
        next_query["before"] = more.isoformat()
    return render(request, "models_registry/model_timeline.html", {
        "model": model, "form": form, "entries": entries, "kinds": timeline.KINDS, "paged": before is not None,
        "first_url": "?" + query.urlencode(), "next_url": "?" + next_query.urlencode() if more else "",
        "csv_url": "?" + (query.urlencode() + "&" if query else "") + "format=csv"})


@require_GET
@permission_required("models_registry.view_modelversion", raise_exception=True)
def version_compare(request, name):
    """Two or more versions side by side (?v=1&v=2...)."""
    model = get_object_or_404(RegisteredModel, name=name)
    try:
        versions = compare.parse_versions(model, request.GET.getlist("v"))
    except compare.CompareError as exc:
        return render(request, "models_registry/version_compare.html", {"model": model, "error": str(exc)},
                      status=400 if request.GET.getlist("v") else 200)
    return render(request, "models_registry/version_compare.html",
                  {"model": model, **compare.compare_versions(model, versions)})


@require_http_methods(["GET", "POST"])
@permission_required("models_registry.change_registeredmodel", raise_exception=True)
def model_edit(request, name):
    model = get_object_or_404(RegisteredModel, name=name)
    form = ModelEditForm(request.POST or None, instance=RegisteredModel.objects.get(pk=model.pk))
    if request.method == "POST" and form.is_valid():
        services.registered_model_update(model=model, actor=request.user, **{
            f: form.cleaned_data[f] for f in form.Meta.fields})
        messages.success(request, f"Saved {model.name}.")
        return redirect(model)
    return render(request, "models_registry/model_edit.html", {"model": model, "form": form})


@require_GET
@permission_required("models_registry.view_modelversion", raise_exception=True)
def version_detail(request, name, version):
    version = get_object_or_404(ModelVersion.objects.select_related("model", "training_run", "created_by"),
                                model__name=name, version=version)

    deployments = version.deployments.select_related("endpoint").order_by("-created_at")
    return render(request, "models_registry/version_detail.html", {
        "version": version, "model": version.model, "events": audit_events_for(version),
        "deployments": deployments, "deploy_form": DeployToStagingForm(),
        "promote_form": PromoteForm(model=version.model),
        "promotions": version.promotions.select_related("production_endpoint", "requested_by"),
        "test_runs": FunctionalTestRun.objects.filter(deployment__model_version=version).select_related(
            "deployment__endpoint")[:20],
        "stress_runs": StressRun.objects.filter(deployment__model_version=version).select_related(
            "deployment__endpoint").defer("series", "latency_buckets")[:20],
        "capacity_tests": version.capacity_tests.defer("steps", "payloads")[:10],
        "capacity": capacity_change(version),
    })


@require_GET
@permission_required("models_registry.view_modelversion", raise_exception=True)
def version_download(request, name, version, path):
    version = get_object_or_404(ModelVersion.objects.select_related("model"), model__name=name, version=version)
    return artifact_file_response(version, path)


# --- training runs ------------------------------------------------------------------------------------------------
@require_GET
@permission_required("models_registry.view_trainingrun", raise_exception=True)
def run_list(request):
    status = request.GET.get("status", "")
    if status not in TrainingRun.Status.values:
        status = ""
    page = _page(request, selectors.training_run_list(status=status), RUNS_PER_PAGE)
    any_active = any(run.is_active for run in page)
    context = {"page": page, "status": status, "statuses": TrainingRun.Status.choices, "any_active": any_active}
    if request.htmx and request.htmx.target == "run-table":
        # The status filter asks for the table too: that answer must not stop a poll that is not running.
        return polled_fragment(request, "models_registry/run_list.html#run-table", context,
                               settled=not any_active and request.htmx.trigger_name != "status", refresh=False)
    return render(request, "models_registry/run_list.html", context)


@require_GET
@permission_required("models_registry.view_trainingrun", raise_exception=True)
def run_detail(request, pk):
    run = get_object_or_404(TrainingRun.objects.select_related("launched_by", "register_as"), pk=pk)
    context = {"run": run, "versions": run.versions.select_related("model"), "events": audit_events_for(run),
               "register_form": RegisterVersionForm(initial={"model": run.register_as_id})}
    if request.htmx and request.htmx.target == "run-live":
        return polled_fragment(request, "models_registry/run_detail.html#run-live", context,
                               settled=not run.is_active)
    return render(request, "models_registry/run_detail.html", context)


@require_http_methods(["GET", "POST"])
@permission_required("models_registry.add_trainingrun", raise_exception=True)
def run_launch(request):
    form = TrainingLaunchForm(request.POST or None, example_name=request.GET.get("example"))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            run = services.training_run_launch(
                example_name=data["example"], params=form.params(), compute_target=data["compute_target"],
                experiment_name=data["experiment_name"], timeout_seconds=data["timeout_minutes"] * 60,
                register_as=data["register_as"], actor=request.user)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(None if field == "__all__" or field not in form.fields else field, errors)
        except QueueUnavailable as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Launched {run}.")
            return redirect(run)
    if request.htmx and request.htmx.trigger_name == "example":
        return render(request, "models_registry/run_launch.html#launch-form", {"form": form})
    status = 400 if request.method == "POST" else 200
    return render(request, "models_registry/run_launch.html", {"form": form}, status=status)


@require_POST
@permission_required("models_registry.change_trainingrun", raise_exception=True)
def run_cancel(request, pk):
    run = get_object_or_404(TrainingRun, pk=pk)
    if services.training_run_cancel(run=run, actor=request.user):
        messages.success(request, f"Canceled {run}.")
    else:
        messages.error(request, f"{run} has already finished.")
    return redirect(run)


@require_POST
@permission_required("models_registry.add_modelversion", raise_exception=True)
def run_register(request, pk):
    run = get_object_or_404(TrainingRun, pk=pk)
    form = RegisterVersionForm(request.POST)
    if form.is_valid():
        try:
            with transaction.atomic():  # a new model is kept only if its first version registers
                model = form.cleaned_data["model"]
                if model is None:
                    model, _ = services.registered_model_ensure(name=form.cleaned_data["new_model_name"],
                                                                actor=request.user)
                version = services.model_version_register_from_run(
                    run=run, model=model, actor=request.user, description=form.cleaned_data["description"])
        except (ValidationError, BackendError) as exc:
            messages.error(request, " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc))
        else:
            messages.success(request, f"Registered {version}.")
            return redirect(version)
    else:
        messages.error(request, form_errors_text(form))
    return redirect(run)
