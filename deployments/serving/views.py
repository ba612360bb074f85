"""Serving pages: endpoints, their deployments and traffic, the key, "try it", logs, deploying to staging."""
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.services import audit_events_for
from mlopsportal.backends import BackendError, get_backend
from mlopsportal.lib.exports import csv_response
from mlopsportal.lib.forms import form_errors_text
from mlopsportal.lib.polling import polled_fragment
from mlopsportal.lib.queue import QueueUnavailable
from mlopsportal.lib.refusals import in_words
from models_registry.models import ModelVersion

from ..models import Deployment, Endpoint
from . import drift, releases, selectors, services
from .forms import AsOfForm, DeployToStagingForm, ProfileImportForm, TrafficForm, TryItForm


@require_GET
@permission_required("deployments.view_endpoint", raise_exception=True)
def endpoint_list(request):
    endpoints = list(selectors.endpoint_list())
    for endpoint in endpoints:
        endpoint.scoring_url = services.endpoint_scoring_url(endpoint)
    return render(request, "deployments/endpoint_list.html", {"endpoints": endpoints})


def _endpoint_context(request, endpoint, **extra):
    deployments = list(selectors.endpoint_deployments(endpoint=endpoint))
    live = [d for d in deployments if d.is_live]
    return {
        "endpoint": endpoint,
        "deployments": deployments,
        "busy": selectors.endpoint_deployments_busy(deployments),
        "traffic_pending": endpoint.traffic_pending(),
        "scoring_url": services.endpoint_scoring_url(endpoint),
        "traffic_form": extra.pop("traffic_form", None) or TrafficForm(deployments=live),
        "try_form": extra.pop("try_form", None) or TryItForm(endpoint=endpoint),
        "notes": get_backend().serving_notes(endpoint.profile.serving_settings()),
        "profile_now": endpoint.profile.serving_settings(),
        "events": audit_events_for(endpoint, *deployments),
        "can_edit_traffic": endpoint.stage == Endpoint.Stage.STAGING
        and request.user.has_perm("deployments.change_deployment"),
        "rollback": services.rollback_target(live) if endpoint.stage == Endpoint.Stage.PRODUCTION else None,
        **extra,
    }


@require_GET
@permission_required("deployments.view_endpoint", raise_exception=True)
def endpoint_detail(request, name):
    endpoint = get_object_or_404(Endpoint.objects.select_related("profile"), name=name)
    if request.htmx and request.htmx.target == "deployments-table":
        deployments = list(selectors.endpoint_deployments(endpoint=endpoint))
        busy = selectors.endpoint_deployments_busy(deployments)
        pending = endpoint.traffic_pending()
        # Settled once nothing is starting or stopping and traffic is applied (then the traffic form and rollback).
        return polled_fragment(request, "deployments/endpoint_detail.html#deployments-table",
                               {"endpoint": endpoint, "deployments": deployments, "busy": busy,
                                "traffic_pending": pending, "profile_now": endpoint.profile.serving_settings()},
                               settled=not busy and not pending)
    return render(request, "deployments/endpoint_detail.html", _endpoint_context(request, endpoint))


@require_GET
@permission_required("deployments.view_endpoint", raise_exception=True)
def endpoint_releases(request, name):
    """The endpoint's release history: a chart of each version's share over time, then the ledger page by page;
    ?format=csv downloads all of it."""
    endpoint = get_object_or_404(Endpoint, name=name)
    if request.GET.get("format") == "csv":
        return csv_response(releases.endpoint_release_rows(endpoint), f"{endpoint.name}-releases.csv")
    before = request.GET.get("before", "")
    page, older = releases.endpoint_release_page(endpoint, before=int(before) if before.isdigit() else None)
    base = reverse("deployments:releases_as_of")
    for event in page:
        event.as_of_url = releases.as_of_link(event.at, endpoint.name, base=base)
    return render(request, "deployments/endpoint_releases.html", {
        "endpoint": endpoint, "events": page, "older": older, "paged": before.isdigit(),
        "chart": releases.endpoint_release_chart(endpoint)})


@require_GET
@permission_required("deployments.view_endpoint", raise_exception=True)
def releases_as_of(request):
    """What served each endpoint at a moment: its deployments, versions and shares, who approved, on what evidence."""
    form = AsOfForm(request.GET if "at" in request.GET else {"at": releases.as_of_text(timezone.now())})
    at = form.cleaned_data["at"] if form.is_valid() else None
    return render(request, "deployments/releases_as_of.html", {
        "form": form, "at": at, "rows": releases.releases_as_of(at) if at is not None else [],
        "now_url": releases.as_of_link(timezone.now())})


@require_POST
@permission_required("deployments.reveal_endpoint_key", raise_exception=True)
def endpoint_key(request, name):
    endpoint = get_object_or_404(Endpoint, name=name)
    key = services.endpoint_key_reveal(endpoint=endpoint, actor=request.user)
    response = render(request, "deployments/_key.html", {"key": key})
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@permission_required("deployments.reveal_endpoint_key", raise_exception=True)
def endpoint_try(request, name):
    endpoint = get_object_or_404(Endpoint.objects.select_related("profile"), name=name)
    form = TryItForm(request.POST, endpoint=endpoint)
    result, error = None, ""
    if form.is_valid():
        try:
            result = services.endpoint_invoke(endpoint=endpoint, payload_text=form.cleaned_data["payload"],
                                              deployment_name=form.cleaned_data["deployment"])
        except ValidationError as exc:
            error = in_words(exc)
    else:
        error = form_errors_text(form)
    context = {"try_form": form, "result": result, "try_error": error}
    status = 400 if error else 200
    if request.htmx:
        return render(request, "deployments/endpoint_detail.html#try-it", {"endpoint": endpoint, **context},
                      status=status)
    return render(request, "deployments/endpoint_detail.html", _endpoint_context(request, endpoint, **context),
                  status=status)


@require_POST
@permission_required("deployments.change_deployment", raise_exception=True)
def endpoint_traffic(request, name):
    endpoint = get_object_or_404(Endpoint.objects.select_related("profile"), name=name)
    if endpoint.stage != Endpoint.Stage.STAGING:
        messages.error(request, "Production traffic changes only through a promotion or a rollback.")
        return redirect(endpoint)
    live = list(endpoint.deployments.filter(status__in=Deployment.LIVE))
    form = TrafficForm(request.POST, deployments=live)
    if form.is_valid():
        try:
            services.endpoint_traffic_set(endpoint=endpoint, traffic=form.traffic(), actor=request.user)
        except ValidationError as exc:
            form.add_error(None, in_words(exc))
        except BackendError as exc:
            form.add_error(None, f"The ML platform did not take the change, so nothing changed: {exc}")
        else:
            applied = True
            try:
                applied = get_backend().endpoint_traffic_applied(endpoint_name=endpoint.name, traffic=form.traffic())
            except BackendError:
                applied = False
            messages.success(request, "Traffic updated." if applied else
                             "Traffic updated; the ML platform is still applying it (on Azure ML this can take a "
                             "few minutes).")
            return redirect(endpoint)
    return render(request, "deployments/endpoint_detail.html",
                  _endpoint_context(request, endpoint, traffic_form=form), status=400)


@require_GET
@permission_required("deployments.view_deployment", raise_exception=True)
def deployment_logs(request, name, pk):
    deployment = get_object_or_404(Deployment, endpoint__name=name, pk=pk)
    try:
        text = get_backend().deployment_logs(deployment.backend_ref, 200) if deployment.backend_ref else ""
    except BackendError as exc:
        text = f"Could not read the logs: {exc}"
    return HttpResponse(text or "(no log lines)", content_type="text/plain; charset=utf-8")


@require_POST
@permission_required("deployments.delete_deployment", raise_exception=True)
def deployment_delete(request, name, pk):
    deployment = get_object_or_404(Deployment.objects.select_related("endpoint"), endpoint__name=name, pk=pk)
    try:
        services.deployment_delete(deployment=deployment, actor=request.user)
    except (ValidationError, QueueUnavailable) as exc:
        messages.error(request, in_words(exc))
    else:
        messages.success(request, f"Deleting {deployment}.")
    return redirect(deployment.endpoint)


@require_POST
@permission_required("deployments.add_deployment", raise_exception=True)
def version_deploy(request, name, version):
    version = get_object_or_404(ModelVersion.objects.select_related("model", "training_run"),
                                model__name=name, version=version)
    form = DeployToStagingForm(request.POST)
    if not form.is_valid():
        messages.error(request, form_errors_text(form))
        return redirect(version)
    try:
        deployment = services.deployment_create(endpoint=form.cleaned_data["endpoint"], version=version,
                                                name=form.cleaned_data["name"], actor=request.user)
    except (ValidationError, QueueUnavailable) as exc:
        messages.error(request, in_words(exc))
        return redirect(version)
    messages.success(request, f"Deploying {version} as {deployment}.")
    return redirect(deployment.endpoint)


@require_POST
@permission_required("deployments.change_deployment", raise_exception=True)
def endpoint_rollback(request, name):
    endpoint = get_object_or_404(Endpoint, name=name)
    try:
        target = services.endpoint_rollback(endpoint=endpoint, actor=request.user,
                                            reason=request.POST.get("reason", ""))
    except ValidationError as exc:
        messages.error(request, in_words(exc))
    except BackendError as exc:
        messages.error(request, f"The ML platform did not take the rollback, so nothing changed: {exc}")
    else:
        messages.success(request, f"Rolled back: {target.model_version} ({target.name}) serves all traffic.")
    return redirect(endpoint)


@require_http_methods(["GET", "POST"])
@permission_required("deployments.add_deploymentprofile", raise_exception=True)
def profile_import(request):
    form = ProfileImportForm(request.POST or None, request.FILES or None)
    context = {"form": form}
    if request.method == "POST" and form.is_valid():
        try:
            profile, result = services.profile_import(name=form.cleaned_data["name"], text=form.cleaned_data["yaml"],
                                                      actor=request.user)
        except ValidationError as exc:
            form.add_error(None, in_words(exc))
        else:
            context.update(profile=profile, result=result)
            return render(request, "deployments/profile_import.html", context)
    return render(request, "deployments/profile_import.html", context, status=400 if request.method == "POST" else 200)


@require_GET
@permission_required("deployments.view_endpoint", raise_exception=True)
def endpoint_drift(request, name):
    """Each live deployment's settings: as the platform reports them, as deployed, the profile revision they came
    from, and the profile now."""
    endpoint = get_object_or_404(Endpoint.objects.select_related("profile"), name=name)
    return render(request, "deployments/endpoint_drift.html", {
        "endpoint": endpoint, "drifts": drift.endpoint_drift(endpoint),
        "profile_url": reverse("deployments:config_detail", args=["profiles", endpoint.profile_id])})
