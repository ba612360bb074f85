"""The promotion pipeline: staging deploy, functional tests, stress test, approval, blue/green rollout.

A promotion is a row with a list of steps. `promotion_advance` (run by a Celery task, again and again) takes a short
lease on the promotion, runs the first open step's handler, and records what it says:

* done    – the step succeeded; advance again at once
* wait    – something slow is under way (a server starting, a stress run); advance again in a few seconds
* pause   – waiting for a person (approval); the approve action advances it again
* fail    – stop: put production traffic back as it was, remove what this promotion deployed, say why

Handlers are written to be run again after a crash (they look at what already exists before creating anything), so a
worker that dies mid-step only delays the promotion: beat's resume task finds it once the lease has expired. A step
that breaks (an unexpected error, or a worker that keeps dying on it) is run again at most
settings.MLOPS_PROMOTION_STEP_RETRIES times; then the promotion fails with the reason, production traffic as it was.

The next advance is queued only after the change that asks for it has committed, so a worker never looks for a row
it cannot see yet. Deployments are created and removed through the serving services, like any other.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record, status_change
from mlopsportal.backends import BackendError, get_backend
from mlopsportal.lib.queue import enqueue
from mlopsportal.lib.refusals import in_words
from notifications.models import Event
from notifications.services import link_to, notify, users_who_may
from webhooks import services as webhooks
from webhooks.models import Event as Hook

from ..models import (
    Deployment,
    DeploymentProfile,
    Endpoint,
    FunctionalTestCase,
    FunctionalTestRun,
    Promotion,
    PromotionStep,
    ReleaseEvent,
    StressProfile,
    StressRun,
    TestOutcome,
)
from ..serving import selectors as serving_selectors
from ..serving import services as serving
from ..verification import services as verification

log = logging.getLogger(__name__)
Step = PromotionStep.Status
State = Promotion.State
ADVANCE = "deployments.tasks.promotion_advance"


@dataclass(frozen=True)
class Outcome:
    kind: str  # "done", "skip", "wait", "pause" or "fail"
    detail: str = ""
    seconds: float = 0


def done(detail=""):
    return Outcome("done", detail)


def wait(detail="", seconds=None):
    return Outcome("wait", detail, seconds if seconds is not None else settings.MLOPS_DEPLOY_POLL_SECONDS)


def fail(detail):
    return Outcome("fail", detail)


# --- starting and deciding ----------------------------------------------------------------------------------------
def promotion_start(*, version, production_endpoint: Endpoint, staging_endpoint: Endpoint,
                    stress_profile: StressProfile | None, reason: str, actor, profile_revision: int | None = None,
                    pinned: dict | None = None) -> Promotion:
    """Create the promotion and queue its first step. Raises ValidationError with a clear message when refused,
    QueueUnavailable (with the promotion marked failed, saying so) when the task queue cannot take it.

    With `profile_revision` (and its settings, `pinned`) it is a config rollout: both its deployments run with
    those settings, whatever the endpoints' profiles say by then."""
    kind = Promotion.Kind.CONFIG if profile_revision is not None else Promotion.Kind.VERSION
    errors = []
    if production_endpoint.stage != Endpoint.Stage.PRODUCTION:
        errors.append(f"{production_endpoint.name} is not a production endpoint.")
    if staging_endpoint.stage != Endpoint.Stage.STAGING:
        errors.append(f"{staging_endpoint.name} is not a staging endpoint.")
    if stress_profile is not None and stress_profile.model_id != version.model_id:
        errors.append(f"Stress profile {stress_profile.name} belongs to another model.")
    if not errors:  # what the platform would refuse later, refused now
        errors += serving.endpoint_profile_problems(staging_endpoint, pinned)
        errors += serving.endpoint_profile_problems(production_endpoint, pinned)
    if errors:
        raise ValidationError(errors)
    with_what = " with the new settings" if kind == Promotion.Kind.CONFIG else ""
    steps = [("validate", "Validate"), ("deploy_staging", f"Deploy to {staging_endpoint.name}{with_what}"),
             ("functional", "Functional tests"), ("stress", "Stress test"), ("approval", "Approval"),
             ("deploy_production", f"Deploy to {production_endpoint.name} beside the serving deployment")]
    traffic_steps = production_endpoint.traffic_step_list()
    steps = [(kind, label, None) for kind, label in steps]
    steps += [("traffic", f"Shift {p}% of traffic, check", p) for p in traffic_steps]
    steps += [("finish", "Record what now serves production", None)]
    try:
        with transaction.atomic():
            promotion = Promotion.objects.create(
                version=version, production_endpoint=production_endpoint, staging_endpoint=staging_endpoint,
                stress_profile=stress_profile, reason=reason, requested_by=actor, kind=kind,
                profile_revision=profile_revision,
                approval_required=production_endpoint.approval_required, traffic_steps=traffic_steps)
            PromotionStep.objects.bulk_create([
                PromotionStep(promotion=promotion, position=i, kind=kind, label=label, percent=percent,
                              status=Step.SKIPPED if kind == "approval" and not promotion.approval_required
                              else Step.PENDING)
                for i, (kind, label, percent) in enumerate(steps)])
            audit_record(actor=actor, action=AuditEvent.Action.CREATE, target=promotion,
                         summary=(f"asked to roll out profile {production_endpoint.profile} (revision "
                                  f"{DeploymentProfile.revision_number(profile_revision)}) to {production_endpoint.name}, serving "
                                  f"{version}") if kind == Promotion.Kind.CONFIG
                         else f"asked to promote {version} to {production_endpoint.name}",
                         changes=status_change("state", None, promotion.state))
            enqueue(ADVANCE, promotion.pk, unavailable=lambda message: _not_started(promotion, message))
    except IntegrityError:
        running = Promotion.objects.filter(production_endpoint=production_endpoint,
                                           state__in=Promotion.ACTIVE).first()
        raise ValidationError(f"{running or 'Another promotion'} is still in progress on "
                              f"{production_endpoint.name}; wait for it to finish.") from None
    return promotion


def config_rollout_start(*, production_endpoint: Endpoint, staging_endpoint: Endpoint,
                         stress_profile: StressProfile | None, reason: str, actor) -> Promotion:
    """Bring the production endpoint's profile, as it is now, to production: the version serving it is deployed
    again with the profile's settings, through every gate of a promotion (staging, functional, stress, approval,
    blue/green), and can be rolled back like one. Refused when nothing serves, or it already runs those settings."""
    serving_now = serving_selectors.serving_deployment(production_endpoint)
    if serving_now is None:
        raise ValidationError(f"Nothing serves {production_endpoint.name}: promote a version first; it deploys "
                              f"with the profile as it is.")
    profile = production_endpoint.profile
    revision = profile.history.order_by("-history_id").first()
    pinned = revision.instance.serving_settings()
    if serving_now.serving_settings == pinned:
        raise ValidationError(f"{serving_now} already runs with profile {profile} as it is now (revision "
                              f"{profile.history.count()}): there is nothing to roll out.")
    return promotion_start(version=serving_now.model_version, production_endpoint=production_endpoint,
                           staging_endpoint=staging_endpoint, stress_profile=stress_profile, reason=reason,
                           actor=actor, profile_revision=revision.history_id, pinned=pinned)


def _not_started(promotion: Promotion, message: str) -> None:
    if Promotion.objects.filter(pk=promotion.pk, state=State.RUNNING).update(
            state=State.FAILED, failure_reason=f"Not started: {message}", finished_at=timezone.now()):
        audit_record(actor=None, action=AuditEvent.Action.UPDATE, target=promotion, summary=f"not started: {message}",
                     changes=status_change("state", State.RUNNING, State.FAILED))
    promotion.steps.filter(status__in=PromotionStep.OPEN).update(status=Step.CANCELED)


def _waiting_for_queue(promotion: Promotion, message: str) -> None:
    """Approved, but the first rollout step could not be queued: the approval stands, and beat's resume check
    queues the step once the broker is back. The approval step says so meanwhile."""
    step = promotion.steps.get(kind="approval")
    PromotionStep.objects.filter(pk=step.pk).update(
        detail=f"{step.detail} The rollout waits for the task queue: {message} It goes on by itself once the queue "
               "is back.")


def promotion_decide(*, promotion: Promotion, actor, approve: bool, comment: str) -> Promotion:
    if not comment.strip():
        raise ValidationError("Say why, in a comment.")
    if promotion.requested_by_id == actor.pk:
        raise ValidationError("You asked for this promotion; someone else must approve or reject it.")
    with transaction.atomic():
        promotion = Promotion.objects.select_for_update().get(pk=promotion.pk)
        if promotion.state != State.AWAITING_APPROVAL:
            raise ValidationError(f"This promotion is not waiting for approval (it is "
                                  f"{promotion.get_state_display().lower()}).")
        now = timezone.now()
        Promotion.objects.filter(pk=promotion.pk).update(
            decided_by=actor, decision="approved" if approve else "rejected", decision_comment=comment,
            decided_at=now, state=State.RUNNING if approve else State.REJECTED, finished_at=None if approve else now)
        step = promotion.steps.get(kind="approval")
        PromotionStep.objects.filter(pk=step.pk).update(
            status=Step.SUCCEEDED if approve else Step.FAILED, finished_at=now,
            detail=f"{'Approved' if approve else 'Rejected'} by {actor.get_username()}: {comment}")
        audit_record(actor=actor, action=AuditEvent.Action.UPDATE, target=promotion,
                     summary=f"{'approved' if approve else 'rejected'} {promotion}: {comment}",
                     changes=status_change("state", promotion.state, State.RUNNING if approve else State.REJECTED))
        _notify_decided(promotion, actor=actor, approve=approve, comment=comment)
        if not approve:
            webhooks.emit(Hook.PROMOTION_FAILED, {**_promotion_facts(promotion), "state": "rejected",
                                                  "decided_by": actor.get_username(), "comment": comment})
        if approve:
            enqueue(ADVANCE, promotion.pk, unavailable=lambda message: _waiting_for_queue(promotion, message))
        else:
            promotion.steps.filter(status__in=PromotionStep.OPEN).update(status=Step.CANCELED)
            runs_stop(promotion_ids=[promotion.pk])
    if not approve:
        _clean_up_now_or_later(Promotion.objects.get(pk=promotion.pk))
    promotion.refresh_from_db()
    return promotion


# --- advancing ----------------------------------------------------------------------------------------------------
def promotion_advance(*, promotion_id: int) -> float | None:
    """Run the current step. Returns seconds until the next advance, or None when nothing is to be scheduled."""
    now = timezone.now()
    leased = Promotion.objects.filter(pk=promotion_id, state=State.RUNNING).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now)).update(
        lease_until=now + timedelta(seconds=settings.MLOPS_PROMOTION_LEASE_SECONDS), updated_at=now)
    if not leased:
        if not Promotion.objects.filter(pk=promotion_id).exists():
            log.warning("promotion %s to advance does not exist (deleted?); nothing to do", promotion_id)
        return None  # finished, waiting for a person, or another worker holds it: that one goes on
    promotion = Promotion.objects.select_related("version__model", "version__training_run", "staging_endpoint",
                                                 "production_endpoint", "stress_profile").get(pk=promotion_id)
    try:
        step = promotion.steps.filter(status__in=PromotionStep.OPEN).order_by("position").first()
        if step is None:
            return None
        if step.status == Step.PENDING:
            PromotionStep.objects.filter(pk=step.pk).update(status=Step.RUNNING, started_at=timezone.now())
            step.status = Step.RUNNING
        try:
            outcome = HANDLERS[step.kind](promotion, step)
        except (BackendError, ValidationError) as exc:
            if isinstance(exc, BackendError) and not exc.permanent:
                return max(settings.MLOPS_DEPLOY_POLL_SECONDS * 2, exc.retry_after or 0)  # transient: again soon
            outcome = fail(in_words(exc))
        except Exception as exc:  # a bug or an unforeseen failure: run the step again a few times, then stop
            log.exception("step %s of %s broke", step.kind, promotion)
            return _broke(promotion, step, f"{exc.__class__.__name__}: {in_words(exc)}")
        if Promotion.objects.filter(pk=promotion_id, state__in=[State.CANCELED, State.FAILED]).exists():
            # Canceled (or failed by beat's resume check) while the step ran: what the step made meanwhile goes too,
            # and nothing more runs. (The last step ends the promotion itself, as succeeded: nothing to undo then.)
            _clean_up_now_or_later(Promotion.objects.select_related("production_endpoint").get(pk=promotion_id))
            return None
        return _record(promotion, step, outcome)
    finally:
        Promotion.objects.filter(pk=promotion_id).update(lease_until=None)


def _broke(promotion: Promotion, step: PromotionStep, what: str) -> float | None:
    """Count a breakage of the step; fail the promotion once the step has used up its retries."""
    step.refresh_from_db(fields=["retries"])
    if step.retries >= settings.MLOPS_PROMOTION_STEP_RETRIES:
        return _record(promotion, step, fail(
            f"it broke {step.retries + 1} times, so the promotion stops here. Last time: {what}"[:2000]))
    PromotionStep.objects.filter(pk=step.pk).update(
        retries=step.retries + 1, detail=f"Broke ({what}); running it again ({step.retries + 1} of "
                                         f"{settings.MLOPS_PROMOTION_STEP_RETRIES})."[:2000])
    return settings.MLOPS_DEPLOY_POLL_SECONDS * 2 ** (step.retries + 1)


def _record(promotion: Promotion, step: PromotionStep, outcome: Outcome) -> float | None:
    now = timezone.now()
    if outcome.kind in ("done", "skip"):
        PromotionStep.objects.filter(pk=step.pk).update(
            status=Step.SUCCEEDED if outcome.kind == "done" else Step.SKIPPED, finished_at=now, detail=outcome.detail)
        return 0
    if outcome.kind == "wait":
        PromotionStep.objects.filter(pk=step.pk).update(status=Step.RUNNING, detail=outcome.detail)
        return outcome.seconds
    if outcome.kind == "pause":
        PromotionStep.objects.filter(pk=step.pk).update(status=Step.WAITING, detail=outcome.detail)
        with transaction.atomic():
            if Promotion.objects.filter(pk=promotion.pk, state=State.RUNNING).update(state=State.AWAITING_APPROVAL):
                audit_record(actor=None, action=AuditEvent.Action.UPDATE, target=promotion,
                             summary=f"{promotion} awaits approval",
                             changes=status_change("state", State.RUNNING, State.AWAITING_APPROVAL))
                _notify_awaiting(promotion)
        return None
    PromotionStep.objects.filter(pk=step.pk).update(status=Step.FAILED, finished_at=now, detail=outcome.detail)
    promotion_fail(promotion=promotion, reason=f"{step.label}: {outcome.detail}")
    return None


def promotion_fail(*, promotion: Promotion, reason: str) -> None:
    """Stop the promotion: production traffic back as it was, this promotion's deployments removed."""
    _stop(promotion, state=State.FAILED, reason=reason, actor=None)


def promotion_cancel(*, promotion: Promotion, actor, reason: str) -> Promotion:
    """Cancel a promotion in progress, instead of deleting it: the pipeline's own clean-up runs (production traffic
    back as it was before the rollout, the promotion's staging and production deployments removed), and the promotion
    stays with its steps and evidence. Raises ValidationError when it has already finished or no reason is given."""
    reason = " ".join(reason.split())
    if not reason:
        raise ValidationError("Say why you cancel the promotion: the reason is kept with it.")
    if not _stop(promotion, state=State.CANCELED, reason=f"Canceled by {actor.get_username()}: {reason[:500]}",
                 actor=actor):
        promotion.refresh_from_db()
        raise ValidationError(f"{promotion} has already finished ({promotion.get_state_display().lower()}); there "
                              "is nothing to cancel.")
    promotion.refresh_from_db()
    return promotion


def _stop(promotion: Promotion, *, state: str, reason: str, actor) -> bool:
    """Move an active promotion to `state` and clean up after it. Returns whether it was active. A worker advancing it
    at that moment finds it no longer running when its step returns, and cleans up again (idempotent) for whatever
    the step made meanwhile."""
    with transaction.atomic():
        was = Promotion.objects.select_for_update().filter(pk=promotion.pk).values_list("state", flat=True).first()
        updated = Promotion.objects.filter(pk=promotion.pk, state__in=Promotion.ACTIVE).update(
            state=state, failure_reason=reason, finished_at=timezone.now())
        if updated:
            verb = "canceled" if state == State.CANCELED else "stopped"
            audit_record(actor=actor, action=AuditEvent.Action.UPDATE, target=promotion,
                         via="" if actor is not None else "system", summary=f"{verb} {promotion}: {reason}"[:500],
                         changes=status_change("state", was, state))
            if state == State.FAILED:
                _notify_failed(promotion, reason)
    if not updated:
        return False
    promotion.steps.filter(status__in=PromotionStep.OPEN).update(status=Step.CANCELED)
    runs_stop(promotion_ids=[promotion.pk])
    promotion.refresh_from_db()
    _clean_up_now_or_later(promotion)
    return True


def _clean_up_now_or_later(promotion: Promotion) -> None:
    try:
        _clean_up(promotion, production_too=True)
    except BackendError as exc:  # the platform is busy or unreachable: a task retries until it is done
        log.warning("clean-up of %s deferred: %s", promotion, exc)
        enqueue("deployments.tasks.promotion_clean_up", promotion.pk, countdown=exc.retry_countdown(0))


def promotion_clean_up(*, promotion_id: int) -> None:
    _clean_up(Promotion.objects.select_related("production_endpoint").get(pk=promotion_id), production_too=True)


def _clean_up(promotion: Promotion, *, production_too: bool) -> None:
    if production_too and promotion.previous_traffic is not None:
        live = set(promotion.production_endpoint.deployments.filter(status__in=Deployment.LIVE)
                   .values_list("name", flat=True))
        restore = {name: pct for name, pct in promotion.previous_traffic.items() if name in live}
        if sum(restore.values()) in (0, 100):
            serving.endpoint_traffic_set(endpoint=promotion.production_endpoint, traffic=restore, actor=None,
                                         reason=f"{promotion} stopped; traffic restored", promotion=promotion)
    for deployment in (promotion.production_deployment if production_too else None, promotion.staging_deployment):
        if deployment is not None:
            _retire(promotion, deployment, f"{promotion} is done with it")


def _retire(promotion: Promotion, deployment: Deployment, why: str) -> None:
    """Remove a deployment the promotion no longer needs, through the serving service (validated and audited, and
    allowed on production because this promotion does it). One that serves traffic is never pulled."""
    deployment.refresh_from_db()
    if deployment.traffic or deployment.status in (Deployment.Status.DELETING, Deployment.Status.DELETED):
        return
    serving.deployment_delete(deployment=deployment, actor=None, why=why, promotion=promotion)


def runs_stop(*, promotion_ids=None) -> int:
    """Close the functional and stress runs still marked running whose promotion has finished (a worker killed in
    the middle of one left it "Running, 0 of 0 passed" for good). Returns how many were closed."""
    finished = Promotion.objects.exclude(state__in=Promotion.ACTIVE)
    if promotion_ids is not None:
        finished = finished.filter(pk__in=promotion_ids)
    closed = 0
    for model in (FunctionalTestRun, StressRun):
        closed += model.objects.filter(status=TestOutcome.RUNNING, promotion__in=finished).update(
            status=TestOutcome.STOPPED, finished_at=timezone.now())
    return closed


def promotions_resume() -> list[int]:
    """Running promotions that nobody advanced for a while (their worker died, or the queue lost the message) get
    advanced again; a step resumed more than MLOPS_PROMOTION_STEP_RETRIES times fails the promotion instead."""
    cutoff = timezone.now() - timedelta(seconds=settings.MLOPS_PROMOTION_STALE_SECONDS)
    runs_stop()
    stale = list(Promotion.objects.filter(state=State.RUNNING, updated_at__lt=cutoff)
                 .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=timezone.now()))
                 .select_related("version__model", "production_endpoint"))
    resumed = []
    for promotion in stale:
        step = promotion.steps.filter(status__in=PromotionStep.OPEN).order_by("position").first()
        if step is None:
            continue
        if step.retries >= settings.MLOPS_PROMOTION_STEP_RETRIES:
            PromotionStep.objects.filter(pk=step.pk).update(status=Step.FAILED, finished_at=timezone.now(),
                                                            detail=f"Stalled {step.retries + 1} times.")
            promotion_fail(promotion=promotion, reason=(
                f"{step.label}: it stalled {step.retries + 1} times (the worker stopped, or its task was lost), "
                "so the promotion stops here."))
            continue
        PromotionStep.objects.filter(pk=step.pk).update(retries=step.retries + 1)
        Promotion.objects.filter(pk=promotion.pk).update(updated_at=timezone.now())
        enqueue(ADVANCE, promotion.pk)
        resumed.append(promotion.pk)
    return resumed


# --- the steps ----------------------------------------------------------------------------------------------------
def _validate(promotion: Promotion, step: PromotionStep) -> Outcome:
    version = promotion.version
    problems = []
    if version.training_run is None or not version.training_run.backend_job_id:
        problems.append(f"{version} has no training run whose code holds score.py")
    if not FunctionalTestCase.objects.filter(model=version.model, enabled=True).exists():
        problems.append(f"model {version.model.name} has no functional test cases")
    if promotion.stress_profile is None:
        problems.append("no stress profile was chosen")
    if problems:
        return fail("; ".join(problems) + ".")
    return done(f"{version}, {FunctionalTestCase.objects.filter(model=version.model, enabled=True).count()} "
                f"functional cases, stress profile {promotion.stress_profile.name}.")


def _wait_for_deployment(promotion: Promotion, field: str, endpoint: Endpoint, name: str) -> Outcome:
    deployment = getattr(promotion, field)
    if deployment is None:
        existing = endpoint.deployments.filter(name=name).exclude(status=Deployment.Status.DELETED).first()
        if existing is not None and existing.model_version_id == promotion.version_id and \
                existing.created_at >= promotion.created_at and existing.profile_revision == (
                    promotion.profile_revision or existing.profile_revision):
            deployment = existing  # created before a crash
        else:
            pinned = promotion.pinned_settings()
            if promotion.kind == Promotion.Kind.CONFIG and pinned is None:
                return fail("The profile revision this rollout started with is gone.")
            deployment = serving.deployment_create(endpoint=endpoint, version=promotion.version, name=name,
                                                   actor=promotion.requested_by, start=False, why=f"for {promotion}",
                                                   promotion=promotion, settings=pinned,
                                                   profile_revision=promotion.profile_revision)
        Promotion.objects.filter(pk=promotion.pk).update(**{field: deployment})
        setattr(promotion, field, deployment)
    if deployment.status == Deployment.Status.CREATING:
        if not deployment.backend_ref:
            serving.deployment_start(deployment_id=deployment.pk)
        else:
            serving.deployment_poll(deployment_id=deployment.pk)
        deployment.refresh_from_db()
    if deployment.status == Deployment.Status.HEALTHY:
        return done(f"{deployment} is healthy.")
    if deployment.status == Deployment.Status.CREATING:
        return wait(f"Waiting for {deployment} to become healthy.")
    return fail(f"{deployment} is {deployment.get_status_display().lower()}. {deployment.error}".strip())


def _deploy_staging(promotion: Promotion, step: PromotionStep) -> Outcome:
    return _wait_for_deployment(promotion, "staging_deployment", promotion.staging_endpoint, f"promo-{promotion.pk}")


def _functional(promotion: Promotion, step: PromotionStep) -> Outcome:
    deployment = promotion.staging_deployment
    run = verification.functional_run(deployment=deployment, promotion=promotion,
                                through_endpoint_url=serving.endpoint_scoring_url(promotion.staging_endpoint))
    failed = [r for r in run.results if not r["passed"]]
    if failed:
        return fail(f"{len(failed)} of {len(run.results)} cases failed: "
                    + "; ".join(f"{r['case']} ({r['reason']})" for r in failed))
    return done(f"All {len(run.results)} cases passed.")


def _queue_shards(run: StressRun, promotion: Promotion, shards) -> None:
    url = serving.endpoint_scoring_url(promotion.staging_endpoint)
    for shard in shards:
        enqueue("deployments.tasks.stress_shard", run.pk, shard, url)


def _stress(promotion: Promotion, step: PromotionStep) -> Outcome:
    run = promotion.stress_runs.order_by("-started_at").first()
    if run is None:
        run = StressRun.objects.create(deployment=promotion.staging_deployment, promotion=promotion,
                                       plan=promotion.stress_profile.plan())
        _queue_shards(run, promotion, range(run.plan["shards"]))
    if run.status == TestOutcome.RUNNING:
        done_shards = set(run.shard_results.values_list("index", flat=True))
        if len(done_shards) < run.plan["shards"]:
            elapsed = (timezone.now() - run.started_at).total_seconds()
            planned = run.plan["duration_seconds"] or 0
            if run.requeued == 0 and elapsed > planned + settings.MLOPS_STRESS_REQUEUE_SECONDS:
                # A worker died holding a shard: queue the missing ones again, once.
                if StressRun.objects.filter(pk=run.pk, requeued=0).update(requeued=1, requeued_at=timezone.now()):
                    _queue_shards(run, promotion, sorted(set(range(run.plan["shards"])) - done_shards))
                return wait("Some stress shards did not report back; queued them again.", seconds=1)
            # The shards queued again get their own full time from when they were queued: after a long worker
            # outage the run's start is long past, and they must not be given up on before they could run.
            since = (timezone.now() - (run.requeued_at or run.started_at)).total_seconds()
            if run.requeued and since > planned + settings.MLOPS_STRESS_REQUEUE_SECONDS + \
                    settings.MLOPS_STRESS_GRACE_SECONDS:
                StressRun.objects.filter(pk=run.pk).update(status=TestOutcome.FAILED, finished_at=timezone.now(),
                                                           missed=["a shard never reported back"])
                return fail(f"Only {len(done_shards)} of {run.plan['shards']} stress shards reported back in time.")
            return wait(f"Stress test running: {len(done_shards)} of {run.plan['shards']} shards done.", seconds=1)
        run = verification.stress_finish(run)
    s = run.summary
    figures = (f"{s['requests']} requests, {s['throughput_rps']} req/s, p50 {s['p50_ms']} ms, p95 {s['p95_ms']} ms, "
               f"p99 {s['p99_ms']} ms, errors {s['error_rate']:.2%}")
    if run.status == TestOutcome.FAILED:
        return fail(f"Thresholds missed: {'; '.join(run.missed)} ({figures}).")
    return done(figures + ".")


def _approval(promotion: Promotion, step: PromotionStep) -> Outcome:
    if promotion.decision == "approved":
        return done(step.detail)
    return Outcome("pause", "Waiting for a manager or an admin other than the requester.")


def _deploy_production(promotion: Promotion, step: PromotionStep) -> Outcome:
    endpoint = promotion.production_endpoint
    if promotion.previous_traffic is None:
        live = list(endpoint.deployments.filter(status__in=Deployment.LIVE))
        promotion.previous_traffic = {d.name: d.traffic for d in live}
        Promotion.objects.filter(pk=promotion.pk).update(previous_traffic=promotion.previous_traffic)
        # Keep one deployment to roll back to: the one serving now. An older idle one makes room for the new one.
        for idle in live:
            if idle.traffic == 0:
                _retire(promotion, idle, f"{promotion} makes room for the new deployment")
    serving = {name for name, pct in promotion.previous_traffic.items() if pct}
    name = "green" if "blue" in serving else "blue"
    return _wait_for_deployment(promotion, "production_deployment", endpoint, name)


def _traffic(promotion: Promotion, step: PromotionStep) -> Outcome:
    percent = step.percent
    new = promotion.production_deployment
    others = {n: p for n, p in (promotion.previous_traffic or {}).items() if p and n != new.name}
    if not others and percent != 100:
        return Outcome("skip", "Nothing served production before: the new deployment takes all traffic at the "
                               "last step.")
    rest = 100 - percent
    traffic = {new.name: percent}
    total_before = sum(others.values())
    for name, pct in others.items():
        traffic[name] = round(rest * pct / total_before) if total_before else 0
    drift = 100 - sum(traffic.values())
    if drift and others:
        first_other = next(iter(others))
        traffic[first_other] += drift
    serving.endpoint_traffic_set(endpoint=promotion.production_endpoint, traffic=traffic, actor=None,
                                  reason=f"{promotion}: step to {percent}%", promotion=promotion)
    backend = get_backend()
    if not backend.endpoint_traffic_applied(endpoint_name=promotion.production_endpoint.name, traffic=traffic):
        waited = (timezone.now() - step.started_at).total_seconds() if step.started_at else 0
        if waited >= settings.MLOPS_TRAFFIC_TIMEOUT_SECONDS:
            status = backend.endpoint_traffic_status(promotion.production_endpoint.name)
            return fail(f"The platform did not route {percent}% to {new.name} within "
                        f"{settings.MLOPS_TRAFFIC_TIMEOUT_SECONDS} s" + (f": {status}" if status else "."))
        return wait(f"Waiting for the platform to route {percent}% to {new.name}.")
    serving.endpoint_traffic_observed(endpoint=promotion.production_endpoint, traffic=traffic)
    run = verification.functional_run(deployment=new, promotion=promotion,
                                through_endpoint_url=serving.endpoint_scoring_url(promotion.production_endpoint),
                                purpose=f"Smoke check at {percent}% of traffic")
    failed = [r for r in run.results if not r["passed"]]
    if failed:
        return fail(f"smoke check at {percent}% failed: " + "; ".join(f"{r['case']} ({r['reason']})" for r in failed))
    return done(f"{new.name} takes {percent}%; smoke check passed ({len(run.results)} cases).")


def _finish(promotion: Promotion, step: PromotionStep) -> Outcome:
    staging = promotion.staging_deployment
    if staging is not None:
        _retire(promotion, staging, f"{promotion} is done with it")
    with transaction.atomic():
        updated = Promotion.objects.filter(pk=promotion.pk, state=State.RUNNING).update(
            state=State.SUCCEEDED, finished_at=timezone.now())
        if updated:
            audit_record(actor=None, action=AuditEvent.Action.UPDATE, target=promotion,
                         summary=f"{promotion} succeeded",
                         changes=status_change("state", State.RUNNING, State.SUCCEEDED))
            webhooks.emit(Hook.PROMOTION_SUCCEEDED, {**_promotion_facts(promotion), "state": "succeeded"})
            audit_record(actor=promotion.requested_by, action=AuditEvent.Action.UPDATE,
                         target=promotion.production_endpoint,
                         summary=f"{promotion.version} now serves {promotion.production_endpoint.name} "
                                 f"({promotion})")
            if promotion.kind == Promotion.Kind.CONFIG:
                endpoint = promotion.production_endpoint
                serving.release_record(
                    endpoint=endpoint, kind=ReleaseEvent.Kind.CONFIG, actor=promotion.requested_by,
                    deployment=promotion.production_deployment, promotion=promotion,
                    summary=f"profile {endpoint.profile} revision {DeploymentProfile.revision_number(promotion.profile_revision)} "
                            f"applied: {promotion.production_deployment} serves {promotion.version} with it")
    runs_stop(promotion_ids=[promotion.pk])
    served_before = any(promotion.previous_traffic.values()) if promotion.previous_traffic else False
    return done(f"{promotion.version} serves {promotion.production_endpoint.name} as "
                f"{promotion.production_deployment.name}" + (
                    "; the previous deployment stays for rollback." if served_before else
                    "; it is the endpoint's first deployment, so there is nothing to roll back to yet."))


HANDLERS = {
    "validate": _validate, "deploy_staging": _deploy_staging, "functional": _functional, "stress": _stress,
    "approval": _approval, "deploy_production": _deploy_production, "traffic": _traffic, "finish": _finish,
}


# --- notifications --------------------------------------------------------------------------------------------------
def _evidence_in_words(promotion: Promotion) -> str:
    steps = promotion.steps.filter(kind__in=("functional", "stress")).order_by("position")
    return "\n".join(f"- {step.label}: {step.get_status_display().lower()}. {step.detail}".rstrip() for step in steps)


def _promotion_facts(promotion: Promotion) -> dict:
    """What a webhook says of a promotion: names and numbers, never a key."""
    return {"promotion": promotion.pk, "kind": promotion.kind, "version": f"{promotion.version.model.name}:"
            f"{promotion.version.version}", "production_endpoint": promotion.production_endpoint.name,
            "requested_by": promotion.requested_by.get_username() if promotion.requested_by else None,
            "reason": promotion.reason, "url": link_to(promotion.get_absolute_url())}


def _notify_awaiting(promotion: Promotion) -> None:
    promotion = Promotion.objects.select_related("version__model", "production_endpoint", "requested_by").get(
        pk=promotion.pk)
    webhooks.emit(Hook.PROMOTION_AWAITING, {**_promotion_facts(promotion), "state": "awaiting_approval"})
    requester = promotion.requested_by.get_username() if promotion.requested_by else "someone"
    approvers = users_who_may("deployments.approve_promotion").exclude(pk=promotion.requested_by_id)
    notify(Event.PROMOTION_AWAITING, users=approvers, path=promotion.get_absolute_url(),
           subject=f"{promotion.version} to {promotion.production_endpoint.name} awaits your approval",
           body=f"{requester} asks to promote {promotion.version} to {promotion.production_endpoint.name} "
                f"(promotion #{promotion.pk}).\nReason: {promotion.reason or '-'}\n\nEvidence:\n"
                f"{_evidence_in_words(promotion)}")


def _notify_decided(promotion: Promotion, *, actor, approve: bool, comment: str) -> None:
    verb = "approved" if approve else "rejected"
    notify(Event.PROMOTION_DECIDED, users=[promotion.requested_by], path=promotion.get_absolute_url(),
           subject=f"{actor.get_username()} {verb} {promotion.version} to {promotion.production_endpoint.name}",
           body=f"{actor.get_username()} {verb} promotion #{promotion.pk} of {promotion.version} to "
                f"{promotion.production_endpoint.name}.\nComment: {comment}"
                + ("\n\nThe rollout to production goes on." if approve else ""))


def _notify_failed(promotion: Promotion, reason: str) -> None:
    promotion = Promotion.objects.select_related("version__model", "production_endpoint", "requested_by",
                                                 "decided_by").get(pk=promotion.pk)
    webhooks.emit(Hook.PROMOTION_FAILED, {**_promotion_facts(promotion), "state": "failed", "failure_reason": reason})
    notify(Event.PROMOTION_FAILED, users=[promotion.requested_by, promotion.decided_by],
           path=promotion.get_absolute_url(),
           subject=f"Promotion of {promotion.version} to {promotion.production_endpoint.name} failed",
           body=f"Promotion #{promotion.pk} of {promotion.version} to {promotion.production_endpoint.name} failed: "
                f"{reason}\nProduction traffic is back as it was before the rollout.")
