"""Configuration pages: every role reads them; admins create, edit (review, then save with a note), compare any
two revisions and revert to one."""
import copy
import hashlib
import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mlopsportal.lib.display import shown
from mlopsportal.lib.refusals import in_words

from ..models import CapacityProposal, CapacityTest
from ..serving.profile_import import ProfileImportError, profile_from_yaml
from ..verification.forms import CapacityProposalForm
from ..verification.views import capacity_context
from . import documents, revisions, services
from .forms import NOTE_MAX, RevisionImportForm, bound_from, form_class
from .impact import config_uses
from .kinds import KINDS, ConfigKind


def _kind(request, slug: str, action: str = "view") -> ConfigKind:
    kind = KINDS.get(slug)
    if kind is None:
        raise Http404("No such kind of configuration.")
    if not request.user.has_perm(kind.perm(action)):
        raise PermissionDenied
    return kind


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@require_GET
def config_index(request):
    kinds = [kind for kind in KINDS.values() if request.user.has_perm(kind.perm("view"))]
    if not kinds:
        raise PermissionDenied
    return render(request, "deployments/configs/index.html", {
        "sections": [(kind, list(kind.queryset()), request.user.has_perm(kind.perm("add")) and kind.creatable)
                     for kind in kinds]})


@require_GET
def config_detail(request, slug, pk):
    kind = _kind(request, slug)
    obj = get_object_or_404(kind.queryset(), pk=pk)
    rows, older = revisions.revision_page(obj, before=_int(request.GET.get("before")))
    return render(request, "deployments/configs/detail.html", {
        "kind": kind, "obj": obj, "values": _values(kind, obj), "uses": config_uses(kind, obj),
        "revisions": rows, "older": older, "count": revisions.revision_count(obj),
        "can_edit": request.user.has_perm(kind.perm("change"))})


def _values(kind: ConfigKind, obj) -> list[tuple[str, str]]:
    return [(kind.field_label(name), shown(value))
            for name, value in revisions.values_of(kind, obj).items()]


def review_digest(kind: ConfigKind, form) -> str:
    """What was reviewed: the posted values, so a save after changing them is reviewed again."""
    values = {name: shown(form.cleaned_data.get(name)) for name in kind.fields}  # 0.50 and 0.5 alike
    text = json.dumps(values, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _review(request, kind: ConfigKind, obj, form, *, base: int, status: int = 200, **extra):
    """The edit page for a bound form: its errors, or the review of what saving it would change and reach."""
    saved = copy.copy(obj)
    before = revisions.values_of(kind, obj) if obj.pk is not None else {}
    context = {"kind": kind, "obj": saved, "form": form, "base": base, **extra}
    if not form.is_valid():  # validating puts the posted values on `obj`
        return None, render(request, "deployments/configs/edit.html", context, status=400)
    candidate = form.instance
    changes = revisions.values_diff(kind, before, revisions.values_of(kind, candidate))
    digest = review_digest(kind, form)
    return (saved, changes, digest), render(request, "deployments/configs/edit.html", {
        **context, "review": True, "changes": changes, "digest": digest,
        "uses": config_uses(kind, saved, candidate) if saved.pk is not None else []}, status=status)


@require_http_methods(["GET", "POST"])
def config_edit(request, slug, pk=None):
    kind = _kind(request, slug, "change" if pk is not None else "add")
    obj = get_object_or_404(kind.queryset(), pk=pk) if pk is not None else kind.model()
    if pk is None and not kind.creatable:
        raise Http404("Endpoints are created where they are served from.")
    Form = form_class(kind)
    base = revisions.revision_count(obj) if pk is not None else 0
    if request.method == "GET":
        return render(request, "deployments/configs/edit.html", {
            "kind": kind, "obj": obj, "form": Form(instance=obj), "base": base,
            "uses": config_uses(kind, obj) if pk else []})
    if pk is not None and _int(request.POST.get("base_revision")) != base:
        # Someone saved since this form was opened: saving it would silently undo their change.
        latest = revisions.revision_by_number(obj, base, base)
        who = latest.history_user.get_username() if latest and latest.history_user else "someone"
        messages.error(request, f"{who} saved revision {base} since you opened this form: here are the values now; "
                                f"make your change again.")
        return redirect("deployments:config_edit", slug=kind.slug, pk=obj.pk)
    form = Form(request.POST, instance=obj)
    reviewed, page = _review(request, kind, obj, form, base=base)
    if reviewed is None or request.POST.get("reviewed") != reviewed[2]:
        return page  # errors, or first the review: saved only from there, with the same values
    saved, changes, _ = reviewed
    if pk is not None and not changes:
        messages.info(request, "Nothing changed: no revision was written.")
        return redirect("deployments:config_detail", slug=kind.slug, pk=saved.pk)
    obj = services.config_save(kind=kind, form=form, actor=request.user)
    messages.success(request, f"Saved {kind.label.lower()} {obj} as revision {revisions.revision_count(obj)}.")
    return redirect("deployments:config_detail", slug=kind.slug, pk=obj.pk)


@require_GET
def config_diff(request, slug, pk):
    kind = _kind(request, slug)
    obj = get_object_or_404(kind.queryset(), pk=pk)
    count = revisions.revision_count(obj)
    b = _int(request.GET.get("b")) or count
    a = _int(request.GET.get("a")) or max(b - 1, 1)
    old, new = revisions.revision_by_number(obj, a, count), revisions.revision_by_number(obj, b, count)
    if old is None or new is None:
        raise Http404(f"This {kind.label.lower()} has revisions 1 to {count}.")
    return render(request, "deployments/configs/diff.html", {
        "kind": kind, "obj": obj, "old": old, "new": new, "count": count, "changes": revisions.revision_diff(
            kind, old, new), "can_edit": request.user.has_perm(kind.perm("change")), "note_max": NOTE_MAX})


@require_POST
def config_revert(request, slug, pk, number):
    kind = _kind(request, slug, "change")
    obj = get_object_or_404(kind.queryset(), pk=pk)
    revision = revisions.revision_by_number(obj, number, revisions.revision_count(obj))
    if revision is None:
        raise Http404("No such revision.")
    note = " ".join(request.POST.get("note", "").split())[:NOTE_MAX]
    back = reverse("deployments:config_diff", args=[kind.slug, obj.pk]) + f"?a={number}"
    if not any(ch.isalnum() for ch in note):
        messages.error(request, "Say in words why you revert: the note is kept with the revision.")
        return redirect(back)
    try:
        services.config_revert(kind=kind, obj=obj, revision=revision, actor=request.user, note=note)
    except ValidationError as exc:
        messages.error(request, in_words(exc))
        return redirect(back)
    messages.success(request, f"Reverted {kind.label.lower()} {obj} to revision {number}, as revision "
                              f"{revisions.revision_count(obj)}.")
    return redirect("deployments:config_detail", slug=kind.slug, pk=obj.pk)


@require_GET
def config_yaml(request, slug, pk):
    """A configuration as YAML, to keep in git: a profile as Azure ML v2 online deployment YAML, an endpoint with its
    whole setup."""
    kind = _kind(request, slug)
    obj = get_object_or_404(kind.queryset(), pk=pk)
    response = HttpResponse(documents.config_yaml(kind, obj, revisions.revision_count(obj)),
                            content_type="application/yaml; charset=utf-8")
    filename = obj.name if kind.slug in ("profiles", "endpoints") else f"{kind.slug}-{obj.pk}"
    response["Content-Disposition"] = f'attachment; filename="{filename}.yml"'
    return response


@require_http_methods(["GET", "POST"])
def config_import(request, slug, pk):
    """A YAML as the configuration's next revision (for a profile: v2 online deployment YAML, or a v1 AKS/ACI
    config): its values fill the edit form, which is reviewed and saved as an edit is."""
    kind = _kind(request, slug, "change")
    obj = get_object_or_404(kind.queryset(), pk=pk)
    upload = RevisionImportForm(request.POST or None, request.FILES or None)
    if request.method == "GET" or not upload.is_valid():
        return render(request, "deployments/configs/import.html", {"kind": kind, "obj": obj, "upload": upload},
                      status=400 if request.method == "POST" else 200)
    try:
        text = upload.cleaned_data["yaml"]
        result = profile_from_yaml(text) if kind.slug == "profiles" else documents.config_from_yaml(kind, text)
    except ProfileImportError as exc:
        upload.add_error(None, str(exc))
        return render(request, "deployments/configs/import.html", {"kind": kind, "obj": obj, "upload": upload},
                      status=400)
    form = bound_from(kind, obj, result.fields, note=f"Imported from {result.source}")
    _, page = _review(request, kind, obj, form, base=revisions.revision_count(obj), imported=result)
    return page


# --- capacity proposals: made from a capacity test, applied as a profile revision ------------------------------
@require_POST
def capacity_propose(request, pk):
    _kind(request, "profiles", "change")
    test = get_object_or_404(CapacityTest.objects.select_related("deployment__endpoint", "model_version__model"),
                             pk=pk)
    form = CapacityProposalForm(request.POST)
    if form.is_valid():
        try:
            proposal = services.capacity_proposal_make(test=test, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Proposal #{proposal.pk} for profile {proposal.profile}: review it below, "
                                      f"then apply it as the profile's next revision.")
            return redirect(f"{test.get_absolute_url()}#proposal-{proposal.pk}")
    return render(request, "deployments/capacity_detail.html",
                  capacity_context(request, test, proposal_form=form), status=400)


@require_POST
def capacity_apply(request, pk):
    kind = _kind(request, "profiles", "change")
    proposal = get_object_or_404(CapacityProposal.objects.select_related("test__model_version", "profile"), pk=pk)
    test = proposal.test
    note = (f"Capacity proposal #{proposal.pk} from capacity test #{test.pk} of {test.model_version}: "
            f"{proposal.target_rps:g} req/s within p95 {proposal.p95_slo_ms:g} ms")[:NOTE_MAX]
    form = bound_from(kind, proposal.profile, proposal.values, note=note)
    back = f"{test.get_absolute_url()}#proposal-{proposal.pk}"
    if not form.is_valid():
        messages.error(request, f"Profile {proposal.profile} cannot take these values: " + " ".join(
            f"{kind.field_label(name) if name != '__all__' else ''} {' '.join(errors)}".strip()
            for name, errors in form.errors.items()))
        return redirect(back)
    try:
        number = services.capacity_proposal_apply(proposal=proposal, kind=kind, form=form, actor=request.user)
    except ValidationError as exc:
        messages.error(request, in_words(exc))
        return redirect(back)
    messages.success(request, f"Applied as revision {number} of profile {proposal.profile}. Live deployments keep "
                              f"their settings until a config rollout takes them to production.")
    return redirect("deployments:config_detail", slug=kind.slug, pk=proposal.profile_id)
