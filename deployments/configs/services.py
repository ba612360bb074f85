"""Writes of configurations: each save and each revert is one new revision (with its author and note) and one audit
event with every field's old and new value, in one transaction. An edit is validated by its form (the model's rules
and the platform's limits, each on its field); a revert, which has no form, by the model's rules and the same
platform check, in one message."""
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record, field_diff, model_snapshot
from mlopsportal.backends import get_backend
from mlopsportal.backends.base import ServingLimits
from webhooks import services as webhooks
from webhooks.models import Event as Hook

from ..models import CapacityProposal, CapacityTest, DeploymentProfile, Endpoint
from ..serving import services as serving
from ..verification import capacity
from ..verification import services as verification
from . import revisions
from .kinds import ConfigKind


def _snapshot(kind: ConfigKind, obj) -> dict:
    values = model_snapshot(obj)
    return {name: values.get(name) for name in kind.fields}


def _write(kind: ConfigKind, obj, *, actor, note: str, summary: str, before: dict, via: str, created: bool):
    obj._change_reason = note
    obj._history_user = actor
    if created:
        obj.save()
    else:
        # Only the kind's fields: the rest of the row (an endpoint's platform traffic, which workers write all the
        # time) may have moved since the form was read, and a whole-row save would put the old values back.
        fields = [kind.model._meta.get_field(name).attname for name in kind.fields]
        fields += [f.name for f in kind.model._meta.concrete_fields if getattr(f, "auto_now", False)]
        obj.save(update_fields=fields)
    diff = field_diff(before, _snapshot(kind, obj))
    audit_record(actor=actor, action=AuditEvent.Action.CREATE if created else AuditEvent.Action.UPDATE, target=obj,
                 summary=f"{summary}. Note: {note}", changes={"diff": diff} if diff else {}, via=via)
    webhooks.emit(Hook.CONFIG_CHANGED, {"kind": kind.slug, "id": obj.pk, "name": str(obj), "note": note,
                                        "by": actor.get_username() if actor else "system",
                                        "fields": [row["field"] for row in diff]})  # which, not the values
    return obj


def config_save(*, kind: ConfigKind, form, actor, via: str = "portal"):
    """Save a valid config form as a new revision. A save that changes nothing writes nothing."""
    created = form.instance.pk is None
    with transaction.atomic():
        before = {} if created else _snapshot(kind, kind.model.objects.select_for_update().get(pk=form.instance.pk))
        obj = form.save(commit=False)
        if not created and _snapshot(kind, obj) == before:
            return obj
        verb = "created" if created else "edited"
        return _write(kind, obj, actor=actor, note=form.cleaned_data["note"], before=before, via=via,
                      created=created, summary=f"{verb} {kind.label.lower()} {obj}")


def config_revert(*, kind: ConfigKind, obj, revision, actor, note: str, via: str = "portal"):
    """Bring back the kind's fields as they were in `revision`, as a new revision; refused (ValidationError) when
    those values break a rule today (a related row gone, an endpoint that could not run them)."""
    with transaction.atomic():
        current = kind.model.objects.select_for_update().get(pk=obj.pk)
        before = _snapshot(kind, current)
        old = revision.instance
        for name in kind.fields:
            field = kind.model._meta.get_field(name)
            setattr(current, field.attname, getattr(old, field.attname))
        try:
            current.full_clean(validate_unique=True)
        except ValidationError as exc:
            raise ValidationError(f"Revision {revision.number} cannot be brought back: "
                                  + " ".join(exc.messages)) from None
        _refuse_what_endpoints_cannot_run(current)
        if _snapshot(kind, current) == before:
            raise ValidationError(f"Revision {revision.number} has the values the {kind.label.lower()} has now.")
        return _write(kind, current, actor=actor, note=note, before=before, via=via, created=False,
                      summary=f"reverted {kind.label.lower()} {current} to revision {revision.number}")


def _refuse_what_endpoints_cannot_run(obj) -> None:
    if isinstance(obj, DeploymentProfile):
        problems = [p for endpoint in obj.endpoints.all()
                    for p in serving.endpoint_profile_problems(endpoint, obj.serving_settings())]
    elif isinstance(obj, Endpoint):
        problems = serving.endpoint_profile_problems(obj, obj.profile.serving_settings())
    else:
        problems = []
    if problems:
        raise ValidationError(" ".join(problems))


# --- capacity proposals -------------------------------------------------------------------------------------------
def _limits_for(profile: DeploymentProfile) -> ServingLimits:
    """The tightest of the platform's maximums over the endpoints the profile serves (production's when none)."""
    backend = get_backend()
    stages = set(profile.endpoints.values_list("stage", flat=True)) or {Endpoint.Stage.PRODUCTION}
    limits = [backend.serving_limits(stage) for stage in sorted(stages)]
    return ServingLimits(max_instances=min(limit.max_instances for limit in limits),
                         max_request_timeout_ms=min(limit.max_request_timeout_ms for limit in limits))


def capacity_proposal_make(*, test: CapacityTest, profile: DeploymentProfile, target_rps: float, p95_slo_ms: float,
                           actor) -> CapacityProposal:
    """Work out the profile values for a target load from a finished, confirmed capacity test, and keep them with
    the reasoning and whatever the platform would refuse in them."""
    if test.status != CapacityTest.Status.DONE or test.knee_rps is None:
        raise ValidationError("Only a finished capacity test that found a knee can propose a profile.")
    if not test.confirmed:
        raise ValidationError("The test's check at the sustained rate did not confirm the knee: test again before "
                              "sizing a profile on it.")
    limits = _limits_for(profile)
    proposal = capacity.propose(
        verification.capacity_search(test), target_rps=target_rps, p95_slo_ms=p95_slo_ms,
        max_instances=limits.max_instances, timeout_max_ms=limits.max_request_timeout_ms,
        tested_concurrency=test.serving_settings.get("max_concurrent_requests_per_instance"))
    if proposal is None:
        raise ValidationError({"p95_slo_ms": f"No step of the test met a p95 of {p95_slo_ms:g} ms: the deployment "
                                             "cannot keep that SLO at any rate tried."})
    settings = {**profile.serving_settings(), **proposal.values}
    problems = [message for endpoint in profile.endpoints.all()
                for message in serving.endpoint_profile_problems(endpoint, settings)]
    row = CapacityProposal(test=test, profile=profile, target_rps=target_rps, p95_slo_ms=p95_slo_ms,
                           values=proposal.values, reasons=proposal.reasons, problems=problems, created_by=actor,
                           based_on_revision=revisions.revision_count(profile))
    row.full_clean()
    row.save()
    return row


def capacity_proposal_apply(*, proposal: CapacityProposal, kind: ConfigKind, form, actor) -> int:
    """Save `form` (the profile's form bound with the proposal's values, so every rule of an edit applies) as a
    new revision, and mark the proposal applied; refused when the profile changed since the proposal was made.
    Returns the revision number."""
    with transaction.atomic():
        locked = CapacityProposal.objects.select_for_update().get(pk=proposal.pk)
        if locked.applied_revision is not None:
            raise ValidationError(f"This proposal was applied already, as revision {locked.applied_revision}.")
        profile = DeploymentProfile.objects.select_for_update().get(pk=proposal.profile_id)
        now = revisions.revision_count(profile)
        if now != proposal.based_on_revision:
            raise ValidationError(f"Profile {profile} changed since this proposal was made (revision "
                                  f"{proposal.based_on_revision}, now {now}): make the proposal again.")
        config_save(kind=kind, form=form, actor=actor)
        number = revisions.revision_count(profile)
        if number == now:
            raise ValidationError(f"Profile {profile} already has these values: nothing to apply.")
        CapacityProposal.objects.filter(pk=proposal.pk).update(applied_revision=number, applied_at=timezone.now())
    return number
