"""Writes of configurations: each save and each revert is one new revision (with its author and note) and one audit
event with every field's old and new value, in one transaction. An edit is validated by its form (the model's rules
and the platform's limits, each on its field); a revert, which has no form, by the model's rules and the same
platform check, in one message."""
from django.core.exceptions import ValidationError
from django.db import transaction

from audit.models import AuditEvent
from audit.services import audit_record, field_diff, model_snapshot

from ..models import DeploymentProfile, Endpoint
from ..serving import services as serving
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
