"""The REST API, /api/v1/. Each view asks for the same permission as its page and calls the same service; what the
services refuse comes back as problem details (api.problems). Lists are cursor-paginated: no COUNT over 100k rows."""
from __future__ import annotations

import json
from datetime import UTC, datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, pagination, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.roles import user_roles
from audit.context import Acting, acting_as
from audit.forms import AuditFilterForm
from audit.selectors import audit_log
from deployments.configs import revisions
from deployments.configs import services as config_services
from deployments.configs.forms import bound_from
from deployments.configs.kinds import KINDS
from deployments.models import Deployment, Endpoint, Promotion, StressProfile
from deployments.promotions import selectors as promotion_selectors
from deployments.promotions import services as promotion_services
from deployments.serving import releases
from deployments.serving import services as serving_services
from mlopsportal.backends import get_backend
from mlopsportal.lib.problem_types import problem_json
from models_registry import services as registry_services
from models_registry.downloads import artifact_file_response
from models_registry.models import ModelVersion, RegisteredModel, TrainingRun

from . import serializers as s
from .idempotency import HEADER as IDEMPOTENCY_HEADER
from .idempotency import idempotent
from .models import ApiToken

IDEMPOTENCY = OpenApiParameter(IDEMPOTENCY_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
                               description="The same key again (from the same user) returns the first answer and "
                                           "starts nothing.")


class Cursor(pagination.CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-id"

    def get_page_size(self, request):
        return _int_param(request, self.page_size_query_param, self.page_size, 1, self.max_page_size)


class PortalAPIView(APIView):
    # Every API view: audit events recorded while it runs say via=api and name the token. (A comment, not a
    # docstring: drf-spectacular would show a view's docstring to API users as the operation's description.)
    perms: dict[str, list[str]] = {}

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        for name, values in request.query_params.lists():
            if len(values) > 1:
                raise serializers.ValidationError({name: ["Give this parameter once."]})
            if values[0] == "" and name != "format":
                raise serializers.ValidationError({name: ["Give a value, or leave the parameter out."]})
        credential = str(request.auth) if isinstance(request.auth, ApiToken) else "session"
        self._acting = acting_as(Acting(via="api", credential=f"token {credential}"
                                        if isinstance(request.auth, ApiToken) else credential))
        self._acting.__enter__()

    def finalize_response(self, request, response, *args, **kwargs):
        if getattr(self, "_acting", None) is not None:
            self._acting.__exit__(None, None, None)
            self._acting = None
        return super().finalize_response(request, response, *args, **kwargs)


class PortalListView(PortalAPIView, generics.ListAPIView):
    # A page of rows. With `rows_class` (a RowsMixin of serializer_class) the page is read as values() rows;
    # serializer_class stays what the schema shows (drf-spectacular sets swagger_fake_view while it reads it).
    pagination_class = Cursor
    rows_class: type[s.RowsMixin] | None = None

    def get_serializer_class(self):
        if self.rows_class is None or getattr(self, "swagger_fake_view", False):
            return super().get_serializer_class()
        return self.rows_class

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        return queryset if self.get_serializer_class() is not self.rows_class else self.rows_class.rows(queryset)


def _int_param(request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise serializers.ValidationError({name: ["A whole number is required."]}) from None
    if not low <= value <= high:
        raise serializers.ValidationError({name: [f"Between {low} and {high}."]})
    return value


def _time_param(request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        at = parse_datetime(raw)
        at = (timezone.make_aware(at) if timezone.is_naive(at) else at).astimezone(UTC) if at else None
    except (ValueError, OverflowError):  # 2026-02-30, an offset past ±24 h, a year past 9999 in UTC
        at = None
    if at is None or at.year < 1900:
        raise serializers.ValidationError({name: ["An ISO 8601 date and time is required, e.g. 2026-12-01T09:30:00Z."]})
    return at


# --- who am I -----------------------------------------------------------------------------------------------------
class MeView(PortalAPIView):
    perms = {"GET": []}

    @extend_schema(summary="Who the token acts as", responses=inline_serializer("Me", {
        "username": serializers.CharField(), "roles": serializers.ListField(child=serializers.CharField()),
        "token": s.TokenSerializer(allow_null=True)}))
    def get(self, request):
        token = request.auth if isinstance(request.auth, ApiToken) else None
        return Response({"username": request.user.get_username(), "roles": sorted(user_roles(request.user)),
                         "token": s.TokenSerializer(token).data if token else None})


# --- models and versions ------------------------------------------------------------------------------------------
class ModelList(PortalListView):
    perms = {"GET": ["models_registry.view_registeredmodel"]}
    serializer_class = s.ModelSerializer
    pagination_class = type("ByName", (Cursor,), {"ordering": "name"})

    @extend_schema(summary="Registered models", parameters=[
        OpenApiParameter("q", OpenApiTypes.STR, description="Part of the name.")])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        models = RegisteredModel.objects.select_related("latest_version")
        if q := self.request.query_params.get("q", "").strip()[:100]:
            models = models.filter(name__icontains=q)
        return models


class ModelDetail(PortalAPIView, generics.RetrieveAPIView):
    perms = {"GET": ["models_registry.view_registeredmodel"]}
    serializer_class = s.ModelSerializer
    queryset = RegisteredModel.objects.select_related("latest_version")
    lookup_field = "name"


class VersionList(PortalListView):
    perms = {"GET": ["models_registry.view_modelversion"]}
    serializer_class = s.VersionSerializer
    rows_class = s.VersionRows
    pagination_class = type("ByVersion", (Cursor,), {"ordering": "-version"})

    @extend_schema(summary="A model's versions, newest first", parameters=[
        OpenApiParameter("created_after", OpenApiTypes.DATETIME), OpenApiParameter("created_before",
                                                                                     OpenApiTypes.DATETIME)])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        model = get_object_or_404(RegisteredModel, name=self.kwargs["name"])
        versions = ModelVersion.objects.filter(model=model)
        if after := _time_param(self.request, "created_after"):
            versions = versions.filter(created_at__gte=after)
        if before := _time_param(self.request, "created_before"):
            versions = versions.filter(created_at__lt=before)
        return versions


def _version(name: str, number: int) -> ModelVersion:
    return get_object_or_404(ModelVersion.objects.select_related("model", "created_by"), model__name=name,
                             version=number)


class VersionDetail(PortalAPIView):
    perms = {"GET": ["models_registry.view_modelversion"]}

    @extend_schema(summary="A version, with its files", responses=s.VersionDetailSerializer)
    def get(self, request, name, version):
        return Response(s.VersionDetailSerializer(_version(name, version)).data)


class VersionFile(PortalAPIView):
    perms = {"GET": ["models_registry.view_modelversion"]}

    @extend_schema(summary="Download one file of a version's artifact", responses={
        (200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request, name, version, path):
        version = _version(name, version)
        return artifact_file_response(version, path)


# --- training runs ------------------------------------------------------------------------------------------------
def _run_queryset():
    return TrainingRun.objects.select_related("launched_by", "register_as").prefetch_related("versions__model")


class RunList(PortalListView):
    perms = {"GET": ["models_registry.view_trainingrun"], "POST": ["models_registry.add_trainingrun"]}
    serializer_class = s.RunSerializer
    rows_class = s.RunRows

    @extend_schema(summary="Training runs, newest first", parameters=[
        OpenApiParameter("status", OpenApiTypes.STR, enum=TrainingRun.Status.values),
        OpenApiParameter("experiment_name", OpenApiTypes.STR), OpenApiParameter("example", OpenApiTypes.STR)])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        runs = TrainingRun.objects.all()  # read as rows (RunRows): no instances to join or prefetch for
        params = self.request.query_params
        if status := params.get("status"):
            if status not in TrainingRun.Status.values:
                raise serializers.ValidationError({"status": [f"One of {', '.join(TrainingRun.Status.values)}."]})
            runs = runs.filter(status=status)
        for field in ("experiment_name", "example"):
            if value := params.get(field, "")[:63]:
                runs = runs.filter(**{field: value})
        return runs

    @extend_schema(summary="Launch a training run", request=s.RunLaunchSerializer,
                   responses={201: s.RunDetailSerializer}, parameters=[IDEMPOTENCY])
    def post(self, request):
        data = _valid(s.RunLaunchSerializer, request)

        def start() -> Response:
            register_as = None
            if data.get("register_as"):
                register_as, _ = registry_services.registered_model_ensure(name=data["register_as"],
                                                                           actor=request.user)
            targets = [t.name for t in get_backend().compute_targets()]
            run = registry_services.training_run_launch(
                example_name=data["example"], params=data["params"],
                compute_target=data.get("compute_target") or (targets[0] if targets else ""),
                experiment_name=data.get("experiment_name") or f"{data['example']}-experiment",
                timeout_seconds=data["timeout_minutes"] * 60, register_as=register_as, actor=request.user)
            return Response(s.RunDetailSerializer(run).data, status=201)

        return idempotent(request, lambda: _atomic(start))


def _atomic(start):
    with transaction.atomic():  # a model made for register_as is kept only if the run is
        return start()


def _valid(serializer_class, request):
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class RunDetail(PortalAPIView):
    perms = {"GET": ["models_registry.view_trainingrun"]}

    @extend_schema(summary="A training run: status, metrics and the tail of its log", responses=s.RunDetailSerializer,
                   parameters=[OpenApiParameter("log_lines", OpenApiTypes.INT, description="0 to 1000; default 50.")])
    def get(self, request, pk):
        run = get_object_or_404(_run_queryset(), pk=pk)
        lines = _int_param(request, "log_lines", s.RUN_LOG_TAIL_LINES, 0, 1000)
        return Response(s.RunDetailSerializer(run, context={"log_lines": lines}).data)


class RunCancel(PortalAPIView):
    perms = {"POST": ["models_registry.change_trainingrun"]}

    @extend_schema(summary="Cancel a training run", request=None, responses=s.RunDetailSerializer)
    def post(self, request, pk):
        run = get_object_or_404(_run_queryset(), pk=pk)
        if not registry_services.training_run_cancel(run=run, actor=request.user):
            raise ValidationError(f"{run} has already finished.")
        return Response(s.RunDetailSerializer(get_object_or_404(_run_queryset(), pk=pk)).data)


class RunRegister(PortalAPIView):
    perms = {"POST": ["models_registry.add_modelversion"]}

    @extend_schema(summary="Register a run's output as the model's next version", request=s.RegisterSerializer,
                   responses={201: s.VersionDetailSerializer})
    def post(self, request, pk):
        run = get_object_or_404(TrainingRun, pk=pk)
        data = _valid(s.RegisterSerializer, request)
        with transaction.atomic():  # a new model is kept only if its first version registers
            model, _ = registry_services.registered_model_ensure(name=data["model"], actor=request.user)
            version = registry_services.model_version_register_from_run(
                run=run, model=model, actor=request.user, description=data["description"])
        return Response(s.VersionDetailSerializer(_version(model.name, version.version)).data, status=201)


# --- endpoints ----------------------------------------------------------------------------------------------------
def _endpoints():
    return Endpoint.objects.select_related("profile").prefetch_related("deployments__model_version__model")


class EndpointList(PortalListView):
    perms = {"GET": ["deployments.view_endpoint"]}
    serializer_class = s.EndpointSerializer
    pagination_class = type("ByName", (Cursor,), {"ordering": "name"})

    def get_queryset(self):
        return _endpoints()


class EndpointDetail(PortalAPIView, generics.RetrieveAPIView):
    perms = {"GET": ["deployments.view_endpoint"]}
    serializer_class = s.EndpointSerializer
    lookup_field = "name"

    def get_queryset(self):
        return _endpoints()


class EndpointKey(PortalAPIView):
    perms = {"GET": ["deployments.reveal_endpoint_key"]}

    @extend_schema(summary="The endpoint's scoring key and URL (recorded in the audit log)",
                   responses=inline_serializer("EndpointKey", {"scoring_url": serializers.CharField(),
                                                               "key": serializers.CharField()}))
    def get(self, request, name):
        endpoint = get_object_or_404(Endpoint, name=name)
        return Response({"scoring_url": serving_services.endpoint_scoring_url(endpoint),
                         "key": serving_services.endpoint_key_reveal(endpoint=endpoint, actor=request.user)},
                        headers={"Cache-Control": "no-store"})


class EndpointTraffic(PortalAPIView):
    perms = {"PUT": ["deployments.change_deployment"]}

    @extend_schema(summary="Set a staging endpoint's traffic split", request=s.TrafficSerializer,
                   responses=s.EndpointSerializer)
    def put(self, request, name):
        endpoint = get_object_or_404(Endpoint.objects.select_related("profile"), name=name)
        data = _valid(s.TrafficSerializer, request)
        if endpoint.stage != Endpoint.Stage.STAGING:
            raise ValidationError("Production traffic changes only through a promotion or a rollback.")
        live = set(endpoint.deployments.filter(status__in=Deployment.LIVE).values_list("name", flat=True))
        unknown = sorted(set(data["traffic"]) - live)
        if unknown:
            raise ValidationError({"traffic": [f"No live deployment named {', '.join(unknown)} on {endpoint.name}."]})
        traffic = {name: data["traffic"].get(name, 0) for name in sorted(live)}
        serving_services.endpoint_traffic_set(endpoint=endpoint, traffic=traffic, actor=request.user)
        return Response(s.EndpointSerializer(get_object_or_404(_endpoints(), pk=endpoint.pk)).data)


class EndpointRollback(PortalAPIView):
    perms = {"POST": ["deployments.change_deployment"]}

    @extend_schema(summary="Roll production back to the version that served before", request=s.ReasonSerializer,
                   responses=s.EndpointSerializer, parameters=[IDEMPOTENCY])
    def post(self, request, name):
        endpoint = get_object_or_404(Endpoint, name=name)
        data = _valid(s.ReasonSerializer, request)

        def start() -> Response:
            serving_services.endpoint_rollback(endpoint=endpoint, actor=request.user, reason=data["reason"])
            return Response(s.EndpointSerializer(get_object_or_404(_endpoints(), pk=endpoint.pk)).data)

        return idempotent(request, start)


class ReleasesAsOf(PortalAPIView):
    perms = {"GET": ["deployments.view_endpoint"]}

    @extend_schema(summary="What each endpoint served at a moment (the release ledger)", parameters=[
        OpenApiParameter("at", OpenApiTypes.DATETIME, description="Default: now."),
        OpenApiParameter("endpoint", OpenApiTypes.STR)], responses=inline_serializer("ReleasesAsOf", {
            "at": serializers.DateTimeField(), "endpoints": serializers.ListField(child=serializers.DictField())}))
    def get(self, request):
        at = _time_param(request, "at") or timezone.now()
        wanted = request.query_params.get("endpoint", "")
        rows = [row for row in releases.releases_as_of(at) if not wanted or row.endpoint.name == wanted]
        return Response({"at": at, "endpoints": [{
            "endpoint": row.endpoint.name, "stage": row.endpoint.stage,
            "changed_at": row.event.at if row.event else None,
            "change": row.event.get_kind_display() if row.event else None,
            "served": [{"deployment": d.deployment, "traffic": d.traffic, "version": d.version_label,
                        "promotion": d.promotion.pk if d.promotion else None, "since": d.since} for d in row.served],
        } for row in rows]})


# --- promotions ---------------------------------------------------------------------------------------------------
def _promotion_detail(pk: int) -> dict:
    promotion = get_object_or_404(promotion_selectors.promotion_list().prefetch_related(
        "steps", "functional_runs", "stress_runs"), pk=pk)
    return s.PromotionDetailSerializer(promotion).data


def _only(queryset, what: str, field: str):
    rows = list(queryset[:2])
    if len(rows) != 1:
        raise ValidationError({field: [f"Name the {what}: there is {'none' if not rows else 'more than one'}."]})
    return rows[0]


class PromotionList(PortalListView):
    perms = {"GET": ["deployments.view_promotion"], "POST": ["deployments.add_promotion"]}
    serializer_class = s.PromotionSerializer

    @extend_schema(summary="Promotions, newest first", parameters=[
        OpenApiParameter("state", OpenApiTypes.STR, enum=Promotion.State.values),
        OpenApiParameter("model", OpenApiTypes.STR), OpenApiParameter("production_endpoint", OpenApiTypes.STR)])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        promotions = promotion_selectors.promotion_list()
        params = self.request.query_params
        if state := params.get("state"):
            if state not in Promotion.State.values:
                raise serializers.ValidationError({"state": [f"One of {', '.join(Promotion.State.values)}."]})
            promotions = promotions.filter(state=state)
        if model := params.get("model", "")[:63]:
            promotions = promotions.filter(version__model__name=model)
        if endpoint := params.get("production_endpoint", "")[:32]:
            promotions = promotions.filter(production_endpoint__name=endpoint)
        return promotions

    @extend_schema(summary="Promote a version: staging, tests, approval, blue/green", request=s.PromoteSerializer,
                   responses={201: s.PromotionDetailSerializer}, parameters=[IDEMPOTENCY])
    def post(self, request):
        data = _valid(s.PromoteSerializer, request)
        name, number = data["version"].rsplit(":", 1)
        version = ModelVersion.objects.select_related("model").filter(model__name=name, version=int(number)).first()
        if version is None:
            raise ValidationError({"version": [f"There is no version {data['version']}."]})
        production = Endpoint.objects.filter(name=data["production_endpoint"]).first()
        if production is None:
            raise ValidationError({"production_endpoint": [f"There is no endpoint {data['production_endpoint']}."]})
        stagings = Endpoint.objects.filter(stage=Endpoint.Stage.STAGING)
        staging = (stagings.filter(name=data["staging_endpoint"]).first() if "staging_endpoint" in data
                   else _only(stagings, "staging endpoint", "staging_endpoint"))
        if staging is None:
            raise ValidationError({"staging_endpoint": [f"There is no staging endpoint {data['staging_endpoint']}."]})
        profiles = StressProfile.objects.filter(model=version.model)
        profile = (profiles.filter(name=data["stress_profile"]).first() if "stress_profile" in data
                   else _only(profiles, f"stress profile of {name}", "stress_profile"))
        if profile is None:
            raise ValidationError({"stress_profile": [f"{name} has no stress profile {data['stress_profile']}."]})

        def start() -> Response:
            promotion = promotion_services.promotion_start(
                version=version, production_endpoint=production, staging_endpoint=staging, stress_profile=profile,
                reason=data["reason"], actor=request.user)
            return Response(_promotion_detail(promotion.pk), status=201)

        return idempotent(request, start)


class PromotionDetail(PortalAPIView):
    perms = {"GET": ["deployments.view_promotion"]}

    @extend_schema(summary="A promotion, with every step and its evidence", responses=s.PromotionDetailSerializer)
    def get(self, request, pk):
        return Response(_promotion_detail(pk))


class PromotionDecision(PortalAPIView):
    perms = {"POST": ["deployments.approve_promotion"]}

    @extend_schema(summary="Approve or reject a promotion awaiting approval", request=s.DecisionSerializer,
                   responses=s.PromotionDetailSerializer)
    def post(self, request, pk):
        promotion = get_object_or_404(Promotion, pk=pk)
        data = _valid(s.DecisionSerializer, request)
        promotion_services.promotion_decide(promotion=promotion, actor=request.user,
                                            approve=data["decision"] == "approve", comment=data["comment"])
        return Response(_promotion_detail(pk))


class PromotionCancel(PortalAPIView):
    perms = {"POST": ["deployments.add_promotion"]}

    @extend_schema(summary="Cancel a promotion: production traffic goes back as it was", request=s.ReasonSerializer,
                   responses=s.PromotionDetailSerializer)
    def post(self, request, pk):
        promotion = get_object_or_404(Promotion, pk=pk)
        data = _valid(s.ReasonSerializer, request)
        promotion_services.promotion_cancel(promotion=promotion, actor=request.user, reason=data["reason"])
        return Response(_promotion_detail(pk))


# --- configurations -----------------------------------------------------------------------------------------------
def _kind(slug: str):
    kind = KINDS.get(slug)
    if kind is None:
        raise Http404("No such kind of configuration.")
    return kind


def _config_body(kind, obj) -> dict:
    values = {name: _plain(value) for name, value in revisions.values_of(kind, obj).items()}
    return {"kind": kind.slug, "id": obj.pk, "name": str(obj), "revision": revisions.revision_count(obj),
            "values": values}


def _plain(value):
    if isinstance(value, (str, int, float, bool, type(None), list, dict)):
        return value
    return str(value)


def _config_write(request, kind, obj, *, status: int) -> Response:
    """Make or change `obj` from the body's values and note, through the same form and service as the pages."""
    values = request.data.get("values") if isinstance(request.data, dict) else None
    if not isinstance(values, dict):
        raise serializers.ValidationError({"values": ["An object of field values is required."]})
    unknown = sorted(set(values) - set(kind.fields))
    if unknown:
        raise serializers.ValidationError({"values": [f"Unknown field(s): {', '.join(unknown)}. "
                                                      f"The fields are {', '.join(kind.fields)}."]})
    note = request.data.get("note", "")
    if not isinstance(note, str) or len(note) > 500:
        raise serializers.ValidationError({"note": ["Text of at most 500 characters."]})
    form = bound_from(kind, obj, {name: json.dumps(value) if isinstance(value, (list, dict)) else value
                                  for name, value in values.items()}, note)
    if not form.is_valid():
        raise serializers.ValidationError({f"values.{field}" if field in kind.fields else field: errors
                                           for field, errors in form.errors.items()})
    saved = config_services.config_save(kind=kind, form=form, actor=request.user, via="api")
    return Response(_config_body(kind, saved), status=status)


class ConfigKindView(PortalAPIView):
    def perms_for(self, request):
        kind = _kind(self.kwargs["slug"])
        return [kind.perm("view" if request.method in ("GET", "HEAD", "OPTIONS") else "add")]

    @extend_schema(summary="Every configuration of a kind, with its current revision number", operation_id="configs_list",
                   responses=inline_serializer("ConfigList", {"results": serializers.ListField(
                       child=serializers.DictField())}))
    def get(self, request, slug):
        kind = _kind(slug)
        return Response({"results": [_config_body(kind, obj) for obj in kind.queryset().order_by("pk")[:500]]})

    @extend_schema(summary="Make a configuration (admins)", request=inline_serializer("ConfigValues", {
        "values": serializers.DictField(), "note": serializers.CharField(required=False)}),
        responses={201: inline_serializer("Config", {"id": serializers.IntegerField()})})
    def post(self, request, slug):
        kind = _kind(slug)
        if not kind.creatable:
            raise ValidationError("Endpoints are made where they are served from, not here.")
        return _config_write(request, kind, kind.model(), status=201)


class ConfigDetailView(PortalAPIView):
    def perms_for(self, request):
        kind = _kind(self.kwargs["slug"])
        return [kind.perm("view" if request.method in ("GET", "HEAD", "OPTIONS") else "change")]

    @extend_schema(summary="One configuration's current values and revision number", operation_id="config_retrieve",
                   responses=inline_serializer("ConfigDetail", {"id": serializers.IntegerField(),
                                                                "revision": serializers.IntegerField(),
                                                                "values": serializers.DictField()}))
    def get(self, request, slug, pk):
        kind = _kind(slug)
        return Response(_config_body(kind, get_object_or_404(kind.queryset(), pk=pk)))

    @extend_schema(summary="Change a configuration (admins); base_revision must be the revision you read",
                   request=inline_serializer("ConfigChange", {
                       "base_revision": serializers.IntegerField(), "values": serializers.DictField(),
                       "note": serializers.CharField(required=False)}),
                   responses=inline_serializer("ConfigSaved", {"id": serializers.IntegerField(),
                                                               "revision": serializers.IntegerField(),
                                                               "values": serializers.DictField()}))
    def patch(self, request, slug, pk):
        kind = _kind(slug)
        obj = get_object_or_404(kind.queryset(), pk=pk)
        base = request.data.get("base_revision") if isinstance(request.data, dict) else None
        if not isinstance(base, int) or isinstance(base, bool):
            raise serializers.ValidationError({"base_revision": ["The revision number you read is required."]})
        count = revisions.revision_count(obj)
        if base != count:
            raise ValidationError(f"Revision {count} was saved since revision {base}: read it again and make your "
                                  f"change on it.")
        return _config_write(request, kind, obj, status=200)


# --- audit --------------------------------------------------------------------------------------------------------
class AuditList(PortalListView):
    perms = {"GET": ["audit.read_audit_log"]}
    serializer_class = s.AuditEventSerializer
    rows_class = s.AuditRows

    @extend_schema(summary="The audit log, newest first", parameters=[
        OpenApiParameter(name, OpenApiTypes.STR) for name in ("who", "action", "kind", "object")] + [
        OpenApiParameter("since", OpenApiTypes.DATE), OpenApiParameter("until", OpenApiTypes.DATE)])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        form = AuditFilterForm(self.request.query_params)
        if not form.is_valid():
            raise serializers.ValidationError(form.errors)
        data = form.cleaned_data
        since, until = form.window()
        return audit_log(who=data["who"], action=data["action"], content_type=form.content_type(),
                         text=data["object"], since=since, until=until)


def not_found(request, *args, **kwargs):
    return problem_json(404, "not-found", "Not found", "There is no such API route.")
