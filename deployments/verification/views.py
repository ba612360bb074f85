"""Capacity pages: capacity tests, each with its steps charted, its knee, what one instance sustains, and the
profile proposals made from it (made and applied by admins, on the configuration pages' side)."""
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mlopsportal.lib.display import shown
from mlopsportal.lib.polling import polled_fragment
from mlopsportal.lib.queue import QueueUnavailable
from mlopsportal.lib.refusals import in_words

from ..models import CapacityTest, Deployment, DeploymentProfile, Endpoint
from . import selectors, services
from .forms import CapacityProposalForm, CapacityTestForm


def _tests():
    return CapacityTest.objects.select_related("deployment__endpoint", "model_version__model", "requested_by")


@require_GET
@permission_required("deployments.view_capacitytest", raise_exception=True)
def capacity_list(request):
    page = Paginator(_tests().defer("steps", "payloads", "serving_settings"), 30).get_page(request.GET.get("page"))
    return render(request, "deployments/capacity_list.html", {
        "page": page, "may_start": request.user.has_perm("deployments.add_capacitytest")})


@require_http_methods(["GET", "POST"])
@permission_required("deployments.add_capacitytest", raise_exception=True)
def capacity_new(request):
    form = CapacityTestForm(request.POST or None, initial={"deployment": request.GET.get("deployment")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            test = services.capacity_test_start(
                deployment=data["deployment"], payloads=data["payloads"], p95_slo_ms=data["p95_slo_ms"],
                error_rate_max=data["error_rate_max"], step_seconds=data["step_seconds"],
                start_rps=data["start_rps"], max_rps=data["max_rps"], max_in_flight=data["max_in_flight"],
                actor=request.user)
        except ValidationError as exc:
            form.add_error(None, in_words(exc))
        except QueueUnavailable as exc:
            messages.error(request, str(exc))
            return redirect("deployments:capacity_list")
        else:
            return redirect(test)
    return render(request, "deployments/capacity_new.html", {"form": form}, status=400 if form.errors else 200)


_ORDER = [f.name for f in DeploymentProfile._meta.fields]  # a proposal's settings, in the profile's order (jsonb
# keeps keys in an order of its own)


def proposal_initial(test: CapacityTest) -> dict:
    """The proposal form starts with the test's SLO and the profile of the production endpoint that serves the
    model (before its first promotion: of the only production endpoint, when there is one)."""
    production = Endpoint.objects.filter(stage=Endpoint.Stage.PRODUCTION)
    serving = (production.filter(deployments__model_version__model_id=test.model_version.model_id)
               .order_by("-deployments__created_at").values_list("profile_id", flat=True).first())
    if serving is None:
        profiles = set(production.values_list("profile_id", flat=True)[:2])
        serving = profiles.pop() if len(profiles) == 1 else None
    return {"p95_slo_ms": test.p95_slo_ms, "profile": serving}


def capacity_context(request, test: CapacityTest, *, proposal_form=None) -> dict:
    """What the capacity test page shows; the proposal views render it again with their form's errors."""
    may_propose = request.user.has_perm("deployments.change_deploymentprofile")
    proposals = list(test.proposals.select_related("profile", "created_by"))
    for proposal in proposals:
        proposal.rows = [(DeploymentProfile._meta.get_field(name).verbose_name.capitalize(),
                          shown(getattr(proposal.profile, name)), shown(value))
                         for name, value in sorted(proposal.values.items(), key=lambda kv: _ORDER.index(kv[0])
                                                   if kv[0] in _ORDER else len(_ORDER))]
        proposal.profile_revision_now = proposal.profile.history.count()
        proposal.stale = proposal.applied_revision is None and \
            proposal.profile_revision_now != proposal.based_on_revision
    return {
        "test": test, "charts": selectors.capacity_charts(test) if test.steps else [],
        "steps": sorted(test.steps, key=lambda s: s["rate_rps"]),
        "proposals": proposals, "last_step": test.steps[-1] if test.steps else None,
        "may_stop": test.status == CapacityTest.Status.RUNNING and request.user.has_perm(
            "deployments.add_capacitytest"),
        "may_propose": may_propose and test.status == CapacityTest.Status.DONE and test.confirmed,
        "proposal_form": proposal_form or CapacityProposalForm(initial=proposal_initial(test)),
        "change": selectors.capacity_change(test.model_version),
        "deployment_live": Deployment.objects.filter(pk=test.deployment_id, status__in=Deployment.LIVE).exists(),
    }


@require_GET
@permission_required("deployments.view_capacitytest", raise_exception=True)
def capacity_detail(request, pk):
    test = get_object_or_404(_tests(), pk=pk)
    context = capacity_context(request, test)
    if request.htmx and request.htmx.target == "capacity-live":
        return polled_fragment(request, "deployments/capacity_detail.html#capacity-live", context,
                               settled=test.status != CapacityTest.Status.RUNNING)
    return render(request, "deployments/capacity_detail.html", context)


@require_POST
@permission_required("deployments.add_capacitytest", raise_exception=True)
def capacity_stop(request, pk):
    test = get_object_or_404(CapacityTest, pk=pk)
    if services.capacity_test_stop(test=test, actor=request.user):
        messages.success(request, f"Capacity test #{test.pk} stopped.")
    else:
        messages.info(request, f"Capacity test #{test.pk} had already ended.")
    return redirect(test)
