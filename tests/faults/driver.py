"""Run by tests/faults/test_faults.py in the environment of the portal it started (its settings, database, data
folder and queue), as an operator's script would: prepare versions, start and approve promotions, and say where things
stand. Prints JSON.

    python -m tests.faults.driver prepare | promote VERSION_ID STRESS_ID | approve PROMOTION_ID | state PROMOTION_ID
    python -m tests.faults.driver subscribe URL | emit | deliveries
"""
import json
import os
import sys


def main(argv: list[str]) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlopsportal.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from deployments.models import (
        Deployment,
        Endpoint,
        FunctionalTestCase,
        Promotion,
        PromotionStep,
        StressProfile,
    )
    from deployments.promotions import services as promotions
    from models_registry.models import ModelVersion
    from tests.deployments.conftest import make_version, titanic_trained_once
    from tests.deployments.test_promotion import SIX
    from webhooks import services as webhooks
    from webhooks.models import Delivery, Event, Subscription

    users = get_user_model().objects
    command, args = argv[0], argv[1:]
    if command == "prepare":  # two versions of the demo's titanic model, and a short stress profile in 2 shards
        engineer = users.get(username="engineer")
        outputs = titanic_trained_once()
        v1 = make_version(engineer, outputs, job_suffix="-a")
        v2 = make_version(engineer, outputs, job_suffix="-b")
        Endpoint.objects.filter(name="titanic-prod").update(traffic_steps="50,100")
        stress = StressProfile.objects.create(model=v1.model, name="faults", concurrency=2, duration_seconds=3,
                                              payloads=SIX, p95_ms_max=5000, error_rate_max=0.0, min_rps=1, shards=2)
        # Enough functional cases that the step lasts seconds, so that a kill lands inside it.
        seed = FunctionalTestCase.objects.filter(model=v1.model).first()
        FunctionalTestCase.objects.bulk_create([FunctionalTestCase(
            model=v1.model, name=f"{seed.name} (again, {n})", payload=seed.payload, expect_field=seed.expect_field,
            expected_value=seed.expected_value) for n in range(400)])
        return {"v1": v1.pk, "v2": v2.pk, "stress": stress.pk}
    if command == "promote":
        version = ModelVersion.objects.get(pk=args[0])
        promotion = promotions.promotion_start(
            version=version, production_endpoint=Endpoint.objects.get(name="titanic-prod"),
            staging_endpoint=Endpoint.objects.get(name="titanic-staging"),
            stress_profile=StressProfile.objects.get(pk=args[1]), reason="fault suite", actor=users.get(username="engineer"))
        return {"promotion": promotion.pk}
    if command == "set-password":  # as a user does on the password page
        user = users.get(username=args[0])
        user.set_password(args[1])
        user.save()
        return {"changed": user.username}
    if command == "approve":
        promotion = Promotion.objects.get(pk=args[0])
        promotions.promotion_decide(promotion=promotion, actor=users.get(username="manager"), approve=True,
                                    comment="fault suite: evidence read")
        return {"approved": promotion.pk}
    if command == "state":
        promotion = Promotion.objects.get(pk=args[0]) if args else None
        step = promotion.steps.filter(status__in=PromotionStep.OPEN).order_by("position").first() \
            if promotion else None
        prod = Endpoint.objects.get(name="titanic-prod")
        live = Deployment.objects.exclude(status__in=[Deployment.Status.DELETED, Deployment.Status.FAILED])
        owned = [d for ref, plan in live.values_list("backend_ref", "backend_plan") for d in
                 {(ref or {}).get("dir"), (plan or {}).get("dir")} if d]
        return {
            "state": promotion.state if promotion else None,
            "failure_reason": promotion.failure_reason if promotion else "",
            "step": f"{step.kind} #{step.position}" if step else None,
            "prod": {d.name: {"version": d.model_version.version, "traffic": d.traffic, "status": d.status,
                              "dir": d.backend_ref.get("dir", "")}
                     for d in prod.deployments.filter(status__in=Deployment.LIVE).select_related("model_version")},
            "prod_key": prod.key,
            "owned": owned,
            "production_creates": {name: prod.deployments.filter(name=name).count() for name in ("blue", "green")},
        }
    if command == "subscribe":  # a webhook to URL for configuration changes; its signing secret
        subscription = Subscription.objects.create(name="faults", url=args[0], events=[Event.CONFIG_CHANGED])
        return {"secret": subscription.secret}
    if command == "emit":  # a configuration change event, queued after its commit as the portal queues it
        return {"queued": webhooks.emit(Event.CONFIG_CHANGED, {"kind": "profile", "name": "faults"})}
    if command == "deliveries":
        return {"deliveries": [{"status": d.status, "attempts": [a.status_code for a in d.attempt_log.all()]}
                               for d in Delivery.objects.order_by("pk")]}
    raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
