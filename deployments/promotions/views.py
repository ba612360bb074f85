"""Promotion pages: asking for one, the list, a promotion's live progress and evidence, deciding on it."""
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mlopsportal.lib.forms import form_errors_text
from mlopsportal.lib.pdf import PdfUnavailable, html_to_pdf
from mlopsportal.lib.polling import polled_fragment
from mlopsportal.lib.queue import QueueUnavailable
from mlopsportal.lib.refusals import in_words
from models_registry.models import ModelVersion

from ..models import Endpoint, Promotion
from ..serving import drift
from ..serving import selectors as serving_selectors
from . import selectors, services
from .forms import ConfigRolloutForm, DecisionForm, PromoteForm


@require_POST
@permission_required("deployments.add_promotion", raise_exception=True)
def version_promote(request, name, version):
    version = get_object_or_404(ModelVersion.objects.select_related("model"), model__name=name, version=version)
    form = PromoteForm(request.POST, model=version.model)
    if not form.is_valid():
        messages.error(request, form_errors_text(form))
        return redirect(version)
    data = form.cleaned_data
    try:
        promotion = services.promotion_start(
            version=version, production_endpoint=data["production_endpoint"],
            staging_endpoint=data["staging_endpoint"], stress_profile=data["stress_profile"],
            reason=data["reason"], actor=request.user)
    except (ValidationError, QueueUnavailable) as exc:
        messages.error(request, in_words(exc))
        return redirect(version)
    messages.success(request, f"Started {promotion}.")
    return redirect(promotion)


@require_http_methods(["GET", "POST"])
@permission_required(["deployments.add_promotion", "deployments.change_deploymentprofile"], raise_exception=True)
def endpoint_config_rollout(request, name):
    """Roll the production endpoint's profile, as it is now, out to production: the serving version deployed again
    with it, through every gate of a promotion."""
    endpoint = get_object_or_404(Endpoint.objects.select_related("profile"), name=name,
                                 stage=Endpoint.Stage.PRODUCTION)
    serving_now = serving_selectors.serving_deployment(endpoint)
    model = serving_now.model_version.model if serving_now else None
    form = ConfigRolloutForm(request.POST or None, model=model)
    if request.method == "POST" and serving_now is not None and form.is_valid():
        data = form.cleaned_data
        try:
            promotion = services.config_rollout_start(
                production_endpoint=endpoint, staging_endpoint=data["staging_endpoint"],
                stress_profile=data["stress_profile"], reason=data["reason"], actor=request.user)
        except (ValidationError, QueueUnavailable) as exc:
            messages.error(request, in_words(exc))
        else:
            messages.success(request, f"Started {promotion}.")
            return redirect(promotion)
    drifts = [d for d in drift.endpoint_drift(endpoint, ask_platform=False) if d.deployment == serving_now]
    return render(request, "deployments/config_rollout.html", {
        "endpoint": endpoint, "serving": serving_now, "form": form, "drift": drifts[0] if drifts else None},
        status=400 if request.method == "POST" else 200)


@require_GET
@permission_required("deployments.view_promotion", raise_exception=True)
def promotion_list(request):
    page = Paginator(selectors.promotion_list(), 30).get_page(request.GET.get("page"))
    return render(request, "deployments/promotion_list.html", {"page": page})


@require_GET
@permission_required("deployments.approve_promotion", raise_exception=True)
def promotion_inbox(request):
    """Waiting for you: the promotions this approver may decide, each with its reason and evidence, decided here."""
    return render(request, "deployments/promotion_inbox.html", {
        "waiting": list(selectors.promotions_waiting_for(request.user))})


@require_GET
@permission_required("deployments.view_promotion", raise_exception=True)
def promotion_detail(request, pk):
    promotion = get_object_or_404(selectors.promotion_list(), pk=pk)
    live = request.htmx and request.htmx.target == "promotion-live"
    context = (selectors.promotion_progress if live else selectors.promotion_evidence)(promotion=promotion)
    context["decision_form"] = DecisionForm()
    context["may_cancel"] = promotion.is_active and request.user.has_perm("deployments.add_promotion")
    context["may_decide"] = (promotion.state == Promotion.State.AWAITING_APPROVAL
                             and request.user.has_perm("deployments.approve_promotion")
                             and request.user.pk != promotion.requested_by_id)
    if live:
        # Done, or waiting for a person: settled.
        return polled_fragment(request, "deployments/promotion_detail.html#promotion-live", context,
                               settled=promotion.state != Promotion.State.RUNNING)
    return render(request, "deployments/promotion_detail.html", context)


@require_GET
@permission_required("deployments.view_promotion", raise_exception=True)
def promotion_report(request, pk):
    """The evidence report, printable: request, approval, steps, functional and stress results with charts, what
    production served, the audit trail. ?format=pdf renders the same page with WeasyPrint."""
    promotion = get_object_or_404(selectors.promotion_list(), pk=pk)
    context = {**selectors.promotion_report(promotion=promotion), "now": timezone.now(),
               "pdf_url": reverse("deployments:promotion_report", args=[pk]) + "?format=pdf"}
    if request.GET.get("format") != "pdf":
        return render(request, "deployments/promotion_report.html", context)
    html = render_to_string("deployments/promotion_report.html", {**context, "pdf_url": ""}, request=request)
    try:
        pdf = html_to_pdf(html, base_url=request.build_absolute_uri("/"))
    except PdfUnavailable as exc:
        return render(request, "deployments/promotion_report.html", {**context, "pdf_error": str(exc)}, status=503)
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="promotion-{pk}-evidence.pdf"'
    return response


@require_POST
@permission_required("deployments.approve_promotion", raise_exception=True)
def promotion_decide(request, pk):
    promotion = get_object_or_404(Promotion, pk=pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose approve or reject, and say why in a comment.")
        return redirect(promotion)
    try:
        services.promotion_decide(promotion=promotion, actor=request.user,
                                    approve=form.cleaned_data["decision"] == "approve",
                                    comment=form.cleaned_data["comment"])
    except (ValidationError, QueueUnavailable) as exc:
        messages.error(request, in_words(exc))
        return redirect(promotion)
    messages.success(request, f"{'Approved' if form.cleaned_data['decision'] == 'approve' else 'Rejected'} {promotion}.")
    return redirect("deployments:promotion_inbox" if request.POST.get("from") == "inbox" else promotion)


@require_POST
@permission_required("deployments.add_promotion", raise_exception=True)
def promotion_cancel(request, pk):
    promotion = get_object_or_404(Promotion, pk=pk)
    try:
        services.promotion_cancel(promotion=promotion, actor=request.user, reason=request.POST.get("reason", ""))
    except ValidationError as exc:
        messages.error(request, in_words(exc))
    else:
        messages.success(request, f"Canceled {promotion}: production traffic is back as it was before it.")
    return redirect(promotion)
