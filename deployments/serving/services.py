"""Writes for serving: endpoints, deployments, traffic, rollback, and keeping deployments alive.

A deployment is a row whose status the workers advance (creating -> healthy | failed; deleting -> deleted) by
conditional updates; the pages read only the rows. These services are the only writers of a deployment's status:
manual deploys, the promotion pipeline and the platform sync all come through them, so every transition is
validated and audited in one place. They also tell the backend what the portal's router needs (endpoints'
settings, the deployments that answer, traffic); routing_publish gives it all of that again, so the router's table
is right even when one of those calls did not get through.

Production changes only through a promotion (which passes itself as `promotion=`) or a rollback: a direct deploy,
delete or traffic change on a production endpoint is refused here, whoever asks and whatever the page shows.
"""
from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record, field_diff, status_change
from mlopsportal.backends import BackendError, get_backend
from mlopsportal.backends.base import DeploymentState, EndpointRouting, ServingProblem, ServingSpec
from mlopsportal.lib import supervision
from mlopsportal.lib.queue import enqueue
from mlopsportal.lib.refusals import in_words
from models_registry.models import ModelVersion
from notifications.models import Event
from notifications.services import link_to, notify, users_who_may
from webhooks import services as webhooks
from webhooks.models import Event as Hook

from ..models import Deployment, DeploymentProfile, Endpoint, Promotion, ReleaseEvent
from .profile_import import ProfileImportError, profile_from_yaml

log = logging.getLogger(__name__)
Status = Deployment.Status
Release = ReleaseEvent.Kind
SCORING_SCRIPT = "score.py"

PRODUCTION_ONLY_THROUGH = "production changes only through a promotion or a rollback"


def _production_guard(endpoint: Endpoint, *, promotion: Promotion | None, doing: str) -> None:
    """Refuse a change to a production endpoint unless the promotion that targets it makes it.

    The pages call these services without a promotion, so an engineer's (or an admin's) direct request to deploy,
    delete or move traffic on production is refused here, whatever buttons the page shows; the pipeline passes the
    promotion doing the work, and rollback goes through _traffic_write below."""
    if endpoint.stage != Endpoint.Stage.PRODUCTION:
        return
    if promotion is not None and promotion.production_endpoint_id == endpoint.pk:
        return
    raise ValidationError(f"{endpoint.name} is a production endpoint: {doing} is refused, {PRODUCTION_ONLY_THROUGH}.")


def _promotion_holding(deployment: Deployment) -> Promotion | None:
    """The promotion in progress that deployed `deployment` (to staging or production), if any."""
    return (Promotion.objects.filter(state__in=Promotion.ACTIVE)
            .filter(models.Q(staging_deployment=deployment) | models.Q(production_deployment=deployment)).first())


def release_record(*, endpoint: Endpoint, kind: str, actor, summary: str, deployment: Deployment | None = None,
                   promotion: Promotion | None = None, via: str = "") -> ReleaseEvent:
    """Add to the release ledger what the endpoint serves now, right after a change (inside the transaction that
    made it, so the ledger and the rows never disagree). Each deployment that takes traffic keeps since when it has
    without a break. With no actor it was the system's own doing."""
    now = timezone.now()
    previous = (ReleaseEvent.objects.filter(endpoint_id=endpoint.pk).order_by("-at", "-id")
                .values_list("serving", flat=True).first()) or []
    since = {row["deployment_id"]: row.get("since") for row in previous if row.get("traffic")}
    live = list(Deployment.objects.filter(endpoint_id=endpoint.pk, status__in=Deployment.LIVE)
                .select_related("model_version__model").order_by("created_at", "pk"))
    serving = [{"deployment": d.name, "deployment_id": d.pk, "version_id": d.model_version_id,
                "version": str(d.model_version), "traffic": d.traffic,
                "since": (since.get(d.pk) or now.isoformat()) if d.traffic else None} for d in live]
    # The model the change is about: the one added or removed, else the one taking the most traffic after it.
    about = deployment or max(live, key=lambda d: d.traffic, default=None)
    person = actor if actor is not None and actor.is_authenticated else None
    return ReleaseEvent.objects.create(
        endpoint_id=endpoint.pk, at=now, kind=kind, serving=serving, deployment=deployment, promotion=promotion,
        model_id=about.model_version.model_id if about is not None else None,
        actor=person, actor_name=person.get_username() if person else "system",
        via=via or ("portal" if person else "system"), summary=summary[:500])


def _status_write(deployment_id: int, *, was, to: str, summary: str, actor=None, **fields) -> bool:
    """Set a deployment's status to `to` (and `fields`) if it is one of `was`; a change of status is audited in the
    same transaction, with the old and the new status. Every status change of a deployment comes through here (or,
    for the two that have an event of their own, creating and marking deleting, next to that event). Returns
    whether the row was written."""
    was = (was,) if isinstance(was, str) else tuple(was)
    with transaction.atomic():
        current = (Deployment.objects.select_for_update(of=("self",)).select_related("endpoint")
                   .filter(pk=deployment_id, status__in=was).first())
        if current is None or not Deployment.objects.filter(pk=deployment_id, status=current.status).update(
                status=to, **fields):
            return False
        if current.status != to:
            audit_record(actor=actor, action=AuditEvent.Action.UPDATE, target=current,
                         summary=f"{current} {summary}"[:500], changes=status_change("status", current.status, to))
        if (current.status in Deployment.LIVE) != (to in Deployment.LIVE):  # it joins or leaves what is served
            release_record(endpoint=current.endpoint, kind=Release.DEPLOYED if to in Deployment.LIVE else Release.REMOVED,
                           actor=actor, summary=f"{current} {summary}", deployment=current,
                           promotion=_promotion_holding(current))
    return True


def _failed_in_words(error: str, *, state: str = "failed") -> str:
    """For an event's summary: the state and the first line of the error (a log may follow it)."""
    first = error.strip().splitlines()[0] if error.strip() else "the ML platform says so"
    return f"{state}: {first}"[:300]


def endpoint_create(*, name: str, stage: str, profile: DeploymentProfile, actor, description: str = "") -> Endpoint:
    endpoint = Endpoint(name=name, stage=stage, profile=profile, auth_enabled=profile.auth_enabled,
                        description=description, created_by=actor)
    endpoint.full_clean()
    with _name_taken({"name": f"There is already an endpoint named {name}."}), transaction.atomic():
        endpoint.save()
        audit_record(actor=actor, action=AuditEvent.Action.CREATE, target=endpoint,
                     summary=f"created {endpoint.get_stage_display().lower()} endpoint {name}")
        # Made on the platform now, not at its first deployment: a name it refuses shows on the endpoint's page.
        enqueue("deployments.tasks.endpoint_prepare", endpoint.pk,
                unavailable=lambda message: log.warning("endpoint %s not prepared: %s", name, message))
    try:
        get_backend().endpoint_configure(endpoint.name, auth_enabled=endpoint.auth_enabled, key=endpoint.key,
                                         timeout_ms=endpoint.profile.request_timeout_ms)
    except BackendError as exc:  # the endpoint exists; the next routing_publish (beat's reconcile) tells the router
        log.warning("could not tell the ML platform about endpoint %s: %s", endpoint, exc)
    return endpoint


def endpoint_prepare(*, endpoint_id: int) -> None:
    """Have the platform make the endpoint; record its refusal on the row (and in the audit log), or clear an old
    one. Raises BackendError when the platform may take it later (the task retries)."""
    endpoint = Endpoint.objects.filter(pk=endpoint_id).first()
    if endpoint is None:
        log.warning("endpoint %s to prepare is gone", endpoint_id)
        return
    try:
        get_backend().endpoint_prepare(endpoint.name, endpoint.stage)
    except BackendError as exc:
        if not exc.permanent:
            raise
        error = f"The ML platform refused to create {endpoint.name}: {exc}"[:1000]
        with transaction.atomic():
            Endpoint.objects.filter(pk=endpoint_id).update(platform_error=error)
            audit_record(actor=None, action=AuditEvent.Action.UPDATE, target=endpoint, summary=error[:500])
        return
    Endpoint.objects.filter(pk=endpoint_id).exclude(platform_error="").update(platform_error="")


def endpoint_scoring_url(endpoint: Endpoint) -> str:
    """The platform's URL once it serves the endpoint (azureml), else the portal's router (local)."""
    if endpoint.platform_scoring_url:
        return endpoint.platform_scoring_url
    return f"{settings.MLOPS_ROUTER_URL.rstrip('/')}/endpoints/{endpoint.name}/score"


def scoring_headers(endpoint: Endpoint, deployment_name: str = "") -> dict[str, str]:
    """What a client sends to the endpoint's scoring URL: JSON, the key when auth is on, and the deployment to reach."""
    headers = {"Content-Type": "application/json"}
    if endpoint.auth_enabled or endpoint.platform_scoring_url:
        headers["Authorization"] = f"Bearer {endpoint.key}"
    if deployment_name:
        headers["azureml-model-deployment"] = deployment_name
    return headers


def _spec(deployment: Deployment) -> ServingSpec:
    version = deployment.model_version
    run = version.training_run
    if run is None or not run.backend_job_id:
        raise ValidationError(f"{version} has no training run whose code holds {SCORING_SCRIPT}.")
    return ServingSpec(endpoint_name=deployment.endpoint.name, deployment_name=deployment.name,
                       artifact_uri=version.artifact_uri, code_job_id=run.backend_job_id,
                       scoring_script=SCORING_SCRIPT, settings=deployment.serving_settings,
                       stage=deployment.endpoint.stage)


def endpoint_settings_problems(endpoint: Endpoint, settings: dict | None = None) -> list[ServingProblem]:
    """What the platform would refuse in these serving settings (the endpoint's profile's by default) on this
    endpoint, setting by setting: instance type limits, managed and Kubernetes maximums. Nothing is sent to it."""
    settings = settings if settings is not None else endpoint.profile.serving_settings()
    return get_backend().serving_problems(settings, endpoint.stage)


def endpoint_profile_problems(endpoint: Endpoint, settings: dict | None = None) -> list[str]:
    """The same, in one sentence per endpoint, for refusals that are not on a form."""
    problems = endpoint_settings_problems(endpoint, settings)
    return ([f"Profile {endpoint.profile} does not fit {endpoint}: " + " ".join(p.message for p in problems)]
            if problems else [])


def _profile_revision(profile: DeploymentProfile) -> int | None:
    """The history id of the profile's latest revision: what a deployment made now takes its settings from."""
    return profile.history.order_by("-history_id").values_list("history_id", flat=True).first()


def deployment_create(*, endpoint: Endpoint, version: ModelVersion, name: str, actor, start: bool = True,
                      why: str = "", promotion: Promotion | None = None, settings: dict | None = None,
                      profile_revision: int | None = None) -> Deployment:
    """A new deployment of `version` on `endpoint`, with no traffic. Raises ValidationError on bad input, and on a
    production endpoint unless `promotion` (running, and targeting it) is the one deploying.

    With `start`, a task hands it to the platform and polls it; without, the caller drives deployment_start and
    deployment_poll itself (the promotion pipeline does, under its own lease)."""
    _production_guard(endpoint, promotion=promotion, doing=f"deploying {version} there")
    if endpoint.stage == Endpoint.Stage.PRODUCTION and promotion.state != Promotion.State.RUNNING:
        raise ValidationError(f"{promotion} is {promotion.get_state_display().lower()}: it deploys nothing more.")
    # A config rollout pins the settings (of one profile revision) it deploys, on staging and production alike.
    deployment = Deployment(endpoint=endpoint, name=name, model_version=version,
                            serving_settings=settings if settings is not None else endpoint.profile.serving_settings(),
                            profile_revision=profile_revision if settings is not None
                            else _profile_revision(endpoint.profile), created_by=actor)
    # The name check is ours (the constraint's own message names the constraint), and the database's constraint
    # catches the race of two requests with one name.
    deployment.full_clean(exclude=["backend_ref", "scoring_url"], validate_constraints=False)
    taken = {"name": f"{endpoint.name} already has a deployment named {name}."}
    if endpoint.deployments.filter(name=name).exclude(status=Status.DELETED).exists():
        raise ValidationError(taken)
    _spec(deployment)  # refuse now what the worker could not start
    problems = endpoint_profile_problems(endpoint, deployment.serving_settings)
    if problems:
        raise ValidationError(problems)
    with _name_taken(taken), transaction.atomic():
        deployment.save()
        audit_record(actor=actor, action=AuditEvent.Action.CREATE, target=deployment,
                     summary=f"deploying {version} as {deployment}" + (f" ({why})" if why else ""),
                     changes=status_change("status", None, deployment.status))
        release_record(endpoint=endpoint, kind=Release.DEPLOYED, actor=actor, deployment=deployment,
                       promotion=promotion, summary=f"deploying {version} as {deployment}" + (f" ({why})" if why else ""))
        if start:
            enqueue("deployments.tasks.deployment_start", deployment.pk,
                    unavailable=lambda message: _not_started(deployment.pk, message))
    return deployment


@contextmanager
def _name_taken(message: dict):
    """A unique name taken meanwhile by a concurrent request: the same refusal as when it was taken before."""
    try:
        yield
    except IntegrityError:
        raise ValidationError(message) from None


def _not_started(deployment_id: int, message: str) -> None:
    if Deployment.objects.filter(pk=deployment_id, backend_ref={}).exists():
        _status_write(deployment_id, was=Status.CREATING, to=Status.FAILED, error=f"Not started: {message}",
                      summary=_failed_in_words(f"not started: {message}"))


def deployment_start(*, deployment_id: int) -> bool:
    """Hand a creating deployment to the backend. Returns True when it should be polled."""
    deployment = Deployment.objects.select_related("endpoint", "model_version__training_run").get(pk=deployment_id)
    if deployment.status != Status.CREATING or deployment.backend_ref:
        return deployment.status == Status.CREATING
    backend = get_backend()
    try:
        spec = _spec(deployment)
        plan = deployment.backend_plan or _plan_record(deployment, backend.deployment_plan(spec))
        created = backend.deployment_create(spec, plan)
    except (BackendError, ValidationError) as exc:
        if isinstance(exc, BackendError) and not exc.permanent:
            raise
        error = f"Could not create the deployment: {in_words(exc)}"
        _status_write(deployment_id, was=Status.CREATING, to=Status.FAILED, error=error,
                      summary=_failed_in_words(error))
        return False
    Deployment.objects.filter(pk=deployment_id, status=Status.CREATING).update(
        backend_ref=created.ref, scoring_url=created.scoring_url, last_checked_at=timezone.now())
    return True


def _plan_record(deployment: Deployment, plan: dict) -> dict:
    """Write where the deployment will be started before starting it (committed at once: this runs outside any
    transaction), so that whatever a worker dying next leaves behind has a row that owns it. Returns the plan the row
    holds: another worker's, if one got there first."""
    if plan:
        Deployment.objects.filter(pk=deployment.pk, backend_plan={}).update(backend_plan=plan)
        deployment.backend_plan = Deployment.objects.values_list("backend_plan", flat=True).get(pk=deployment.pk)
    return deployment.backend_plan


def _owned_by_rows() -> list[dict]:
    """The refs and plans of every deployment that may own something on the platform."""
    owned = []
    for ref, plan in Deployment.objects.exclude(status__in=[Status.DELETED, Status.FAILED]).values_list(
            "backend_ref", "backend_plan"):
        owned += [x for x in (ref, plan) if x]
    return owned


def deployment_poll(*, deployment_id: int) -> bool:
    """Check a creating deployment. Returns True while it is still starting."""
    deployment = Deployment.objects.select_related("endpoint").get(pk=deployment_id)
    if deployment.status != Status.CREATING or not deployment.backend_ref:
        return False
    backend = get_backend()
    try:
        state = backend.deployment_advance(deployment.backend_ref)
    except BackendError as exc:
        if not exc.permanent:
            raise  # the task retries with backoff
        state = DeploymentState("failed", error=f"The ML platform refused the deployment: {exc}")
    if state.ref and state.ref != deployment.backend_ref:  # what the backend learned, kept for later polls
        Deployment.objects.filter(pk=deployment_id).update(backend_ref=state.ref)
        deployment.backend_ref = state.ref
    now = timezone.now()
    if state.state == "healthy":
        access = backend.endpoint_access(deployment.endpoint.name)
        with transaction.atomic():
            if access is not None:  # the platform serves: its URL and key are the endpoint's
                drift = deployment.endpoint.changed_outside
                Endpoint.objects.filter(pk=deployment.endpoint_id).update(
                    platform_scoring_url=access.scoring_url, key=access.key or deployment.endpoint.key, platform_error="",
                    changed_outside="" if drift.startswith("deleted") else drift)  # it is there again
            scoring_url = access.scoring_url if access is not None else deployment.scoring_url
            made_healthy = _status_write(deployment_id, was=Status.CREATING, to=Status.HEALTHY, healthy_at=now,
                                         last_checked_at=now, error="", scoring_url=scoring_url, summary="is healthy")
        if made_healthy:
            _route_set(backend, deployment, scoring_url)
        return False
    if state.state == "failed":
        note = _delete_failed(backend, deployment)
        error = (state.error or "The deployment failed.") + note
        _status_write(deployment_id, was=Status.CREATING, to=Status.FAILED, error=error, last_checked_at=now,
                      summary=_failed_in_words(error))
        return False
    if now - deployment.created_at > timedelta(seconds=settings.MLOPS_DEPLOY_TIMEOUT_SECONDS):
        logs = backend.deployment_logs(deployment.backend_ref, 40)
        note = _delete_failed(backend, deployment)
        _status_write(deployment_id, was=Status.CREATING, to=Status.FAILED, last_checked_at=now,
                      error=f"Not healthy after {settings.MLOPS_DEPLOY_TIMEOUT_SECONDS} s.{note}\n{logs}",
                      summary=f"failed: not healthy after {settings.MLOPS_DEPLOY_TIMEOUT_SECONDS} s")
        return False
    Deployment.objects.filter(pk=deployment_id).update(last_checked_at=now)
    return True


def _route_set(backend, deployment: Deployment, scoring_url: str) -> None:
    """Tell the backend where the deployment answers; if that fails, the next routing_publish does."""
    try:
        backend.deployment_route_set(endpoint_name=deployment.endpoint.name, deployment_name=deployment.name,
                                     scoring_url=scoring_url)
    except BackendError as exc:
        log.warning("could not route to deployment %s: %s", deployment, exc)


def _delete_failed(backend, deployment: Deployment) -> str:
    """Remove what a failed deployment left on the platform; a note for its error if that did not work."""
    try:
        backend.deployment_delete(deployment.backend_ref)
    except BackendError as exc:
        log.warning("could not remove failed deployment %s: %s", deployment, exc)
        return f" (Removing it from the platform failed too: {exc})"
    return ""


def _split_in_words(traffic: dict[str, int]) -> str:
    return ", ".join(f"{name} {percent}%" for name, percent in sorted(traffic.items()))


def _traffic_rows_write(endpoint: Endpoint, live: dict[str, Deployment], after: dict[str, int], *,
                        changed_outside: str, actor, summary: str, kind: str = Release.TRAFFIC,
                        promotion: Promotion | None = None) -> None:
    """The rows say the endpoint routes by `after` (inside the caller's transaction, the endpoint locked), and the
    release ledger says so too."""
    for name, deployment in live.items():
        Deployment.objects.filter(pk=deployment.pk).update(traffic=after[name])
    Endpoint.objects.filter(pk=endpoint.pk).update(traffic_updated_at=timezone.now(), changed_outside=changed_outside)
    release_record(endpoint=endpoint, kind=kind, actor=actor, summary=summary, promotion=promotion)


def endpoint_traffic_set(*, endpoint: Endpoint, traffic: dict[str, int], actor, reason: str = "",
                         promotion: Promotion | None = None) -> dict[str, int]:
    """Route the endpoint's requests by these percentages (deployment name -> percent). Names left out get 0.
    On a production endpoint only `promotion` (the one targeting it) may; a rollback goes through _traffic_write."""
    _production_guard(endpoint, promotion=promotion, doing="changing its traffic")
    return _traffic_write(endpoint=endpoint, traffic=traffic, actor=actor, reason=reason, promotion=promotion)


def _traffic_write(*, endpoint: Endpoint, traffic: dict[str, int], actor, reason: str,
                   promotion: Promotion | None = None, kind: str = Release.TRAFFIC) -> dict[str, int]:
    """endpoint_traffic_set without the production guard: for it and for endpoint_rollback."""
    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        live = {d.name: d for d in endpoint.deployments.filter(status__in=Deployment.LIVE)}
        errors = []
        unknown = sorted(set(traffic) - set(live))
        if unknown:
            errors.append(f"{endpoint.name} has no live deployment named {', '.join(unknown)}.")
        for name, percent in traffic.items():
            if not isinstance(percent, int) or isinstance(percent, bool) or not 0 <= percent <= 100:
                errors.append(f"Traffic for {name} must be a whole number from 0 to 100.")
            elif percent and name in live and live[name].status != Status.HEALTHY:
                errors.append(f"{name} is {live[name].get_status_display().lower()}; only a healthy deployment "
                              "can take traffic.")
        total = sum(p for p in traffic.values() if isinstance(p, int))
        if not errors and total not in (0, 100):
            errors.append(f"Traffic must add up to 100% (it adds up to {total}%).")
        if errors:
            raise ValidationError(errors)
        before = {name: d.traffic for name, d in live.items()}
        after = {name: traffic.get(name, 0) for name in live}
        if before == after:
            return after
        # The portal sets the traffic now: the sync's mark about traffic changed outside no longer holds.
        summary = f"{reason or 'changed traffic'}: {_split_in_words(after)}"
        _traffic_rows_write(endpoint, live, after,
                            changed_outside="" if endpoint.changed_outside.startswith("traffic")
                            else endpoint.changed_outside, actor=actor, summary=summary, kind=kind,
                            promotion=promotion)
        audit_record(actor=actor, action=AuditEvent.Action.UPDATE, target=endpoint, summary=summary,
                     changes={"traffic": [before, after]})
    # The platform is called after the row lock is released: a slow platform must not hold other writers.
    try:
        if get_backend().endpoint_traffic_apply(endpoint_name=endpoint.name, traffic=after):
            endpoint_traffic_observed(endpoint=endpoint, traffic=after)
    except BackendError as exc:
        with transaction.atomic():  # the platform did not take it: the rows say what it routes, as before
            for name, deployment in live.items():
                Deployment.objects.filter(pk=deployment.pk, traffic=after[name]).update(traffic=before[name])
            summary = f"the ML platform refused the traffic change, so it was put back: {exc}"[:500]
            audit_record(actor=actor, action=AuditEvent.Action.UPDATE, target=endpoint,
                         changes={"traffic": [after, before]}, summary=summary)
            release_record(endpoint=endpoint, kind=Release.TRAFFIC, actor=None, summary=summary,
                           promotion=promotion)
        raise
    return after


def deployment_delete(*, deployment: Deployment, actor, why: str = "", promotion: Promotion | None = None) -> None:
    """Mark the deployment deleting and queue its removal from the platform. Refused while it takes traffic, on a
    production endpoint unless `promotion` (the one targeting it) retires it, and while a promotion in progress
    needs it (unless that promotion is the one retiring it)."""
    with transaction.atomic():
        deployment = Deployment.objects.select_for_update().select_related("endpoint").get(pk=deployment.pk)
        if deployment.status in (Status.DELETING, Status.DELETED):
            return
        _production_guard(deployment.endpoint, promotion=promotion, doing=f"deleting {deployment.name}")
        holder = _promotion_holding(deployment)
        if holder is not None and (promotion is None or holder.pk != promotion.pk):
            raise ValidationError(f"{deployment} belongs to {holder}, which is in progress; it is removed when that "
                                  "promotion ends.")
        if deployment.traffic:
            raise ValidationError(f"{deployment} still takes {deployment.traffic}% of the traffic; move it first.")
        was = deployment.status
        Deployment.objects.filter(pk=deployment.pk).update(status=Status.DELETING)
        summary = f"deleted {deployment}" + (f" ({why})" if why else "")
        audit_record(actor=actor, action=AuditEvent.Action.DELETE, target=deployment, summary=summary,
                     changes=status_change("status", was, Status.DELETING))
        if was in Deployment.LIVE:
            release_record(endpoint=deployment.endpoint, kind=Release.REMOVED, actor=actor, summary=summary,
                           deployment=deployment, promotion=promotion)

        def not_removed(message: str) -> None:
            _status_write(deployment.pk, was=Status.DELETING, to=was, error=f"Not deleted: {message}",
                          summary=f"was not deleted: {message}")

        enqueue("deployments.tasks.deployment_remove", deployment.pk, unavailable=not_removed)


def deployment_remove(*, deployment_id: int) -> None:
    """Delete a deployment marked deleting. Raises BackendError while the platform still routes to it (traffic
    moved away in the portal is applied there a little later) or cannot delete it yet; the task retries."""
    deployment = Deployment.objects.select_related("endpoint").get(pk=deployment_id)
    if deployment.status != Status.DELETING:
        return
    backend = get_backend()
    # Routed no more before it stops; raises (and the task retries) when the backend cannot take that yet.
    backend.deployment_route_remove(endpoint_name=deployment.endpoint.name, deployment_name=deployment.name)
    if deployment.backend_ref:
        traffic = {d.name: d.traffic for d in deployment.endpoint.deployments.filter(status__in=Deployment.LIVE)}
        if not backend.endpoint_traffic_applied(endpoint_name=deployment.endpoint.name, traffic=traffic):
            raise BackendError(f"{deployment.endpoint.name} is still moving traffic; {deployment} is deleted once "
                               "that is done.", permanent=False, retry_after=5)
        backend.deployment_delete(deployment.backend_ref)
    _status_write(deployment_id, was=Status.DELETING, to=Status.DELETED, deleted_at=timezone.now(),
                  summary="is deleted: removed from the ML platform")


def deployments_reconcile() -> list[int]:
    """Restart deployments whose server died; mark the ones that cannot come back; stop servers that no deployment
    owns (a worker killed while starting one, a row deleted by hand); then publish the routing table. Returns the ids
    restarted."""
    backend = get_backend()
    restarted = []
    for deployment in Deployment.objects.filter(status__in=[Status.HEALTHY, Status.UNHEALTHY]).select_related(
            "endpoint", "model_version__training_run"):
        now = timezone.now()
        state = backend.deployment_state(deployment.backend_ref)
        if state.state == "healthy":
            if deployment.status != Status.HEALTHY:
                _status_write(deployment.pk, was=Status.UNHEALTHY, to=Status.HEALTHY, error="", last_checked_at=now,
                              summary="is healthy again")
            else:
                Deployment.objects.filter(pk=deployment.pk).update(last_checked_at=now)
            continue
        if state.state == "starting":  # restarted earlier and still booting, or being updated by the platform
            if backend.heals_itself:
                Deployment.objects.filter(pk=deployment.pk).update(last_checked_at=now)
            else:
                _status_write(deployment.pk, was=[Status.HEALTHY, Status.UNHEALTHY], to=Status.UNHEALTHY,
                              last_checked_at=now, summary="is unhealthy: its server is starting again")
            continue
        try:
            revived = backend.deployment_revive(deployment.backend_ref, _spec(deployment))
        except (BackendError, ValidationError) as exc:
            _status_write(deployment.pk, was=[Status.HEALTHY, Status.UNHEALTHY], to=Status.UNHEALTHY,
                          last_checked_at=now, error=f"Restart failed: {in_words(exc)}",
                          summary=f"is unhealthy: its server stopped and the restart failed: {in_words(exc)}")
            continue
        if revived is None:  # the platform heals its own deployments; show how it stands
            if deployment.status != Status.UNHEALTHY or deployment.error != state.error[:2000]:
                _status_write(deployment.pk, was=[Status.HEALTHY, Status.UNHEALTHY], to=Status.UNHEALTHY,
                              last_checked_at=now, error=state.error[:2000],
                              summary=_failed_in_words(state.error, state="is unhealthy"))
            continue
        with transaction.atomic():
            Deployment.objects.filter(pk=deployment.pk).update(
                status=Status.UNHEALTHY, backend_ref=revived.ref, scoring_url=revived.scoring_url,
                restarts=deployment.restarts + 1, last_checked_at=now, error=state.error[:2000])
            audit_record(actor=None, action=AuditEvent.Action.UPDATE, target=deployment, via="system",
                         summary=f"restarted {deployment}: its server had stopped",
                         changes={"diff": field_diff(
                             {"status": deployment.status, "restarts": deployment.restarts},
                             {"status": Status.UNHEALTHY, "restarts": deployment.restarts + 1})})
        _route_set(backend, deployment, revived.scoring_url)
        log.warning("restarted deployment %s", deployment)
        restarted.append(deployment.pk)
    if backend.routed_by_portal:
        router_check()
    try:
        for what in backend.deployment_sweep(_owned_by_rows):
            log.warning("stopped %s", what)
    except BackendError as exc:
        log.warning("could not look for servers that no deployment owns: %s", exc)
    try:
        routing_publish()
    except BackendError as exc:
        log.warning("could not publish the routing table: %s", exc)
    return restarted


ROUTER_START_SECONDS = 15  # a router up for less than this is left to finish starting


def router_answers(timeout: float = 3) -> bool:
    try:
        return requests.get(settings.MLOPS_ROUTER_URL.rstrip("/") + "/", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def router_check() -> bool:
    """Whether the endpoints' router answers. One that is alive but does not (hung) is killed through supervisord,
    which starts it again at once; one that died was already restarted by supervisord. Returns whether it answered."""
    if router_answers():
        return True
    try:
        # A router that supervisord (re)started moments ago is still loading: give it ROUTER_START_SECONDS.
        killed = supervision.program_kill("router", up_for=ROUTER_START_SECONDS)
    except supervision.NotSupervised as exc:
        log.warning("the endpoint router at %s does not answer, and cannot be restarted from here: %s",
                    settings.MLOPS_ROUTER_URL, exc)
        return False
    if killed:
        log.error("the endpoint router at %s did not answer; had supervisord restart it", settings.MLOPS_ROUTER_URL)
    else:
        log.warning("the endpoint router at %s does not answer yet; it is starting", settings.MLOPS_ROUTER_URL)
    return False


def routing_publish() -> None:
    """Give the backend the router's whole table from the database: every endpoint's auth, key and timeout, its
    deployments that answer (healthy or unhealthy, as before) and their traffic. Run when the router starts and by
    beat's reconcile, so a table that is missing (an installation upgraded from before it existed) or stale (a
    profile edited in Django admin, a change the backend could not take) does not stay so."""
    def read() -> list[EndpointRouting]:
        endpoints = {endpoint.pk: EndpointRouting(name=endpoint.name, auth_enabled=endpoint.auth_enabled,
                                                  key=endpoint.key, timeout_ms=endpoint.profile.request_timeout_ms)
                     for endpoint in Endpoint.objects.select_related("profile")}
        serving = Deployment.objects.filter(status__in=[Status.HEALTHY, Status.UNHEALTHY]).exclude(scoring_url="")
        for deployment in serving:
            endpoints[deployment.endpoint_id].deployments[deployment.name] = deployment.scoring_url
            if deployment.traffic:
                endpoints[deployment.endpoint_id].traffic[deployment.name] = deployment.traffic
        return list(endpoints.values())

    get_backend().routing_replace(read)


def payload_parse(text: str) -> object:
    """The try-it form's JSON, or a ValidationError saying where it is broken."""
    if not text.strip():
        raise ValidationError("Enter a JSON payload.")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValidationError(f"The payload is not valid JSON: {exc}.") from None
    except RecursionError:
        raise ValidationError("The payload is nested too deeply to be a request body.") from None


def endpoint_key_reveal(*, endpoint: Endpoint, actor) -> str:
    audit_record(actor=actor, action=AuditEvent.Action.REVEAL, target=endpoint,
                 summary=f"viewed the key of {endpoint.name}")
    return endpoint.key


def endpoint_invoke(*, endpoint: Endpoint, payload_text: str, deployment_name: str = "") -> dict:
    """Send a JSON payload to the endpoint's scoring URL, as a client would. Bad JSON is refused before sending."""
    payload_parse(payload_text)
    headers = scoring_headers(endpoint, deployment_name)
    started = time.perf_counter()
    try:
        response = requests.post(endpoint_scoring_url(endpoint), data=payload_text.encode(), headers=headers,
                                 timeout=endpoint.profile.request_timeout_ms / 1000 + 5)
    except requests.RequestException as exc:
        where = ("" if endpoint.platform_scoring_url else
                 " Is the router running (manage.py run_router)?")
        raise ValidationError(f"The endpoint did not answer: {exc.__class__.__name__}.{where}") from None
    try:
        body = json.dumps(response.json(), indent=2)
    except ValueError:
        body = response.text
    return {"status": response.status_code, "body": body[:100_000],
            "deployment": response.headers.get("azureml-model-deployment", ""),
            "ms": round((time.perf_counter() - started) * 1000, 1)}


def profile_import(*, name: str, text: str, actor):
    """Create a deployment profile from v1 or v2 YAML. Returns (profile, what was not imported).
    Raises ValidationError (with the line at fault for bad YAML) and saves nothing when refused."""
    try:
        result = profile_from_yaml(text)
    except ProfileImportError as exc:
        raise ValidationError(str(exc)) from None
    # A float as written (0.1, not 0.1000000000000000055…): the decimal fields check the places the file gave.
    fields = {key: Decimal(repr(value)) if isinstance(value, float) else value for key, value in result.fields.items()}
    profile = DeploymentProfile(name=name, description=f"Imported from {result.source}.", **fields)
    profile.full_clean()
    with _name_taken({"name": f"There is already a deployment profile named {name}."}), transaction.atomic():
        profile.save()
        audit_record(actor=actor, action=AuditEvent.Action.CREATE, target=profile,
                     summary=f"imported profile {name} from {result.source}",
                     changes={"fields": result.fields, "defaults": result.defaults,
                              "not_imported": result.not_imported})
    return profile, result


# --- what the platform changed outside the portal (the sync) --------------------------------------------------------
def deployment_adopt(*, endpoint: Endpoint, name: str, version: ModelVersion, healthy: bool, ref: dict,
                     scoring_url: str, summary: str) -> Deployment:
    """A row for a deployment found on the platform that the portal did not make; audited as the system's."""
    now = timezone.now()
    with transaction.atomic():
        deployment = Deployment.objects.create(
            endpoint=endpoint, name=name, model_version=version, serving_settings=endpoint.profile.serving_settings(),
            profile_revision=_profile_revision(endpoint.profile), status=Status.HEALTHY if healthy else Status.UNHEALTHY, backend_ref=ref, scoring_url=scoring_url,
            changed_outside=summary[:300], healthy_at=now)
        audit_record(actor=None, action=AuditEvent.Action.CREATE, target=deployment, via="system",
                     summary=f"deployment {deployment} was {summary}",
                     changes=status_change("status", None, deployment.status))
        release_record(endpoint=endpoint, kind=Release.DEPLOYED, actor=None, deployment=deployment,
                       summary=f"deployment {deployment} was {summary}")
    return deployment


def deployment_gone(*, deployment: Deployment, summary: str) -> bool:
    """Mark a deployment the platform no longer has as deleted (it serves nothing); audited as the system's."""
    return _status_write(deployment.pk, was=[Status.HEALTHY, Status.UNHEALTHY], to=Status.DELETED, traffic=0,
                         deleted_at=timezone.now(), changed_outside=summary[:300], summary=f"was {summary}")


def endpoint_traffic_observed(*, endpoint: Endpoint, traffic: dict[str, int]) -> None:
    """The platform was seen routing by `traffic` now (what it routes, kept apart from the portal's split)."""
    Endpoint.objects.filter(pk=endpoint.pk).update(
        platform_traffic={name: int(p) for name, p in traffic.items() if int(p)}, platform_traffic_at=timezone.now())


def endpoint_traffic_record(*, endpoint: Endpoint, traffic: dict[str, int], summary: str) -> str:
    """The sync read the split the platform routes by. While the portal's own split is still on its way (not seen
    applied since it was set), that is kept, and endpoints_traffic_confirm sends it again; otherwise a split that
    differs was set outside the portal and is taken over: the rows say what clients reach. Returns the split in
    words when it was taken over, else ""."""
    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        pending = endpoint.traffic_pending()
        live = {d.name: d for d in endpoint.deployments.filter(status__in=Deployment.LIVE)}
        before = {name: d.traffic for name, d in live.items()}
        after = {name: int(traffic.get(name, 0)) for name in live}
        if pending or before == after or sum(after.values()) not in (0, 100):
            endpoint_traffic_observed(endpoint=endpoint, traffic=traffic)
            return ""
        text = _split_in_words(after)
        said = f"traffic of {endpoint.name} was set to {text} {summary}"
        _traffic_rows_write(endpoint, live, after, changed_outside=f"traffic set to {text} {summary}"[:300],
                            actor=None, summary=said)
        endpoint_traffic_observed(endpoint=endpoint, traffic=traffic)
        audit_record(actor=None, action=AuditEvent.Action.UPDATE, target=endpoint, via="system", summary=said,
                     changes={"traffic": [before, after]})
    return text


def endpoints_traffic_confirm() -> list[str]:
    """For each endpoint whose split the platform has not been seen routing by since it was set (outside a running
    promotion, whose traffic step waits for its own): ask the platform, which sends a lost or failed update again;
    note it once applied. After settings.MLOPS_TRAFFIC_TIMEOUT_SECONDS the split is put back to what the platform
    was last seen routing by, with the platform's reason, audited. Returns what was put back, in words."""
    backend = get_backend()
    promoting = Promotion.objects.filter(state=Promotion.State.RUNNING).values("production_endpoint_id")
    put_back = []
    for endpoint in Endpoint.objects.exclude(pk__in=promoting).prefetch_related("deployments"):
        if not endpoint.traffic_pending():
            continue
        split = {d.name: d.traffic for d in endpoint.deployments.all() if d.is_live}
        try:
            if backend.endpoint_traffic_applied(endpoint_name=endpoint.name, traffic=split):
                endpoint_traffic_observed(endpoint=endpoint, traffic=split)
                continue
            reason = backend.endpoint_traffic_status(endpoint.name)
        except BackendError as exc:
            reason = in_words(exc)
        waited = (timezone.now() - endpoint.traffic_updated_at).total_seconds()
        if waited >= settings.MLOPS_TRAFFIC_TIMEOUT_SECONDS:
            text = _traffic_put_back(endpoint, reason)
            if text:
                put_back.append(text)
    return put_back


def _traffic_put_back(endpoint: Endpoint, reason: str) -> str:
    """The platform did not apply the portal's split in time: the rows take what it was last seen routing by."""
    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        if not endpoint.traffic_pending():
            return ""
        live = {d.name: d for d in endpoint.deployments.filter(status__in=Deployment.LIVE)}
        seen = endpoint.platform_traffic or {}
        after = {name: int(seen.get(name, 0)) for name in live}
        before = {name: d.traffic for name, d in live.items()}
        if sum(after.values()) != sum(int(p) for p in seen.values()) or sum(after.values()) not in (0, 100):
            return ""  # it routes to a deployment the portal no longer has: the sync says what it finds
        wanted = _split_in_words({n: p for n, p in before.items() if p}) or "no traffic"
        text = (f"the ML platform did not apply {wanted} on {endpoint.name} within "
                f"{settings.MLOPS_TRAFFIC_TIMEOUT_SECONDS} s, so the split is put back to what it routes, "
                f"{_split_in_words({n: p for n, p in after.items() if p}) or 'no traffic'}"
                + (f": {reason}" if reason else ""))
        _traffic_rows_write(endpoint, live, after, changed_outside=endpoint.changed_outside, actor=None,
                            summary=text)
        endpoint_traffic_observed(endpoint=endpoint, traffic=seen)  # what it routes, seen again now
        audit_record(actor=None, action=AuditEvent.Action.UPDATE, target=endpoint, via="system",
                     summary=text[:500], changes={"traffic": [before, after]})
    return text


def endpoint_gone(*, endpoint: Endpoint, summary: str) -> None:
    """The platform no longer has the endpoint: its live deployments are deleted with it; audited."""
    with transaction.atomic():
        for deployment_id in endpoint.deployments.filter(status__in=Deployment.LIVE).values_list("pk", flat=True):
            _status_write(deployment_id, was=Deployment.LIVE, to=Status.DELETED, traffic=0, deleted_at=timezone.now(),
                          changed_outside=summary[:300], summary=f"was {summary}, with its endpoint")
        Endpoint.objects.filter(pk=endpoint.pk).update(platform_scoring_url="", changed_outside=summary[:300])
        audit_record(actor=None, action=AuditEvent.Action.UPDATE, target=endpoint, via="system",
                     summary=f"endpoint {endpoint.name} was {summary}")


# --- rollback -----------------------------------------------------------------------------------------------------
def rollback_target(live: list[Deployment]) -> tuple[Deployment, Deployment] | None:
    """(the deployment serving most traffic now, the one a rollback sends all traffic to: the newest healthy one that
    serves an older version), or None when there is nothing older to go back to. Never forward: once rolled back, the
    newer version serves again only through a promotion. `live`: an endpoint's live deployments. Of one version, the
    deployment made earlier is the older (a config rollout deploys the serving version again with new settings)."""
    current = max(live, key=lambda d: d.traffic, default=None)
    if current is None or not current.traffic:
        return None

    def age(deployment: Deployment):
        return deployment.model_version.created_at, deployment.model_version_id, deployment.created_at, deployment.pk

    older = [d for d in live if d is not current and d.status == Status.HEALTHY and age(d) < age(current)]
    if not older:
        return None
    return current, max(older, key=age)


def endpoint_rollback(*, endpoint: Endpoint, actor, reason: str) -> Deployment:
    """Put all traffic back on the deployment of the version that served before the current one, for `reason`."""
    if endpoint.stage != Endpoint.Stage.PRODUCTION:
        raise ValidationError("Rollback is for production endpoints.")
    reason = " ".join(reason.split())
    if not reason:
        raise ValidationError("Say why you roll back: the reason is kept with the change.")
    if Promotion.objects.filter(production_endpoint=endpoint, state__in=Promotion.ACTIVE).exists():
        raise ValidationError("A promotion is in progress on this endpoint; wait for it to finish.")
    live = list(endpoint.deployments.filter(status__in=Deployment.LIVE).select_related("model_version__model"))
    pair = rollback_target(live)
    if pair is None:
        raise ValidationError("There is no previous deployment to roll back to: nothing healthy serves an older "
                              "version. A newer version comes back only through a promotion.")
    current, target = pair
    # A rollback is one of the two ways production changes (a promotion is the other): past the production guard.
    _traffic_write(endpoint=endpoint, traffic={target.name: 100}, actor=actor, kind=Release.ROLLBACK,
                   reason=f"rolled back from {current.model_version} to {target.model_version}: {reason[:300]}")
    people = list(users_who_may("deployments.approve_promotion"))
    promoted = Promotion.objects.filter(production_deployment=current).select_related("requested_by").first()
    if promoted is not None and promoted.requested_by is not None:
        people.append(promoted.requested_by)  # whoever asked for the version rolled back from
    webhooks.emit(Hook.ROLLBACK, {"endpoint": endpoint.name, "by": actor.get_username(), "reason": reason[:300],
                                  "from_version": f"{current.model_version.model.name}:{current.model_version.version}",
                                  "to_version": f"{target.model_version.model.name}:{target.model_version.version}",
                                  "url": link_to(endpoint.get_absolute_url())})
    notify(Event.ROLLBACK, users=[p for p in people if p.pk != actor.pk], path=endpoint.get_absolute_url(),
           subject=f"{endpoint.name} was rolled back to {target.model_version}",
           body=f"{actor.get_username()} rolled {endpoint.name} back from {current.model_version} to "
                f"{target.model_version}: all traffic now goes to {target.name}.\nReason: {reason[:300]}")
    return target
