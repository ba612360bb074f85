"""Reads of the release ledger: what served each endpoint at a moment ("as of"), an endpoint's release history, its
chart of traffic shares over time, and the rows of its CSV export. Each read makes a fixed number of queries,
whatever the ledger holds: the ledger's own index finds an endpoint's latest event at or before a time.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.urls import reverse
from django.utils import timezone

from mlopsportal.lib.charts import Band, Chart
from models_registry.models import ModelVersion

from ..models import Endpoint, Promotion, ReleaseEvent

AS_OF_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"  # as parsed; links carry milliseconds, which the date-time picker shows
HISTORY_PAGE = 50
CHART_EVENTS = 120


@dataclass
class Served:
    """One deployment in what an endpoint served: its share, the version (None if it was deleted since), and the
    promotion that put it there (its approval and evidence)."""
    deployment: str
    traffic: int
    version_label: str
    version: ModelVersion | None
    promotion: Promotion | None
    since: datetime | None = None
    url: str = ""  # the version's page
    metrics: str = ""  # the version's metrics in words
    promotion_url: str = ""


def _metrics_text(version: ModelVersion | None) -> str:
    if version is None or not isinstance(version.metrics, dict):
        return ""
    return ", ".join(f"{name} {value:.4f}" if isinstance(value, float) else f"{name} {value}"
                     for name, value in version.metrics.items())


@dataclass
class InProduction:
    """A version that takes traffic on a production endpoint now, and since when without a break."""
    endpoint: Endpoint
    deployment: str
    version: ModelVersion
    traffic: int
    since: datetime | None


@dataclass
class EndpointAsOf:
    endpoint: Endpoint
    event: ReleaseEvent | None  # the change that made it so; None: nothing was deployed there yet
    served: list[Served]
    history_url: str = ""


def as_of_text(at: datetime) -> str:
    """`at` in the current time zone, to the millisecond, rounded up: a link to "as of" an event includes it."""
    spare = at.microsecond % 1000
    at = at + timedelta(microseconds=1000 - spare) if spare else at
    return timezone.localtime(at).strftime(AS_OF_FORMAT)[:-3]


def as_of_link(at: datetime, endpoint_name: str = "", *, base: str = "") -> str:
    """The "as of" page at `at`; `base` is its path, when the caller made many links and reversed it once."""
    url = (base or reverse("deployments:releases_as_of")) + "?at=" + as_of_text(at)
    return url + (f"#endpoint-{endpoint_name}" if endpoint_name else "")


def _promotions_by_deployment(deployment_ids: set[int]) -> dict[int, Promotion]:
    """The promotion that made each deployment, for who asked and who approved (one query)."""
    found = {}
    for promotion in (Promotion.objects.filter(Q(production_deployment_id__in=deployment_ids)
                                               | Q(staging_deployment_id__in=deployment_ids))
                      .select_related("decided_by", "requested_by").order_by("created_at")):
        for deployment_id in (promotion.production_deployment_id, promotion.staging_deployment_id):
            if deployment_id in deployment_ids:
                found[deployment_id] = promotion
    return found


def _served(events: list[ReleaseEvent]) -> dict[int, list[Served]]:
    """What each event says its endpoint served, with the versions and promotions read in one query each."""
    rows = [row for event in events for row in event.serving]
    versions = (ModelVersion.objects.select_related("model").only("version", "metrics", "model__name")
                .in_bulk({row["version_id"] for row in rows}))
    promotions = _promotions_by_deployment({row["deployment_id"] for row in rows})
    urls = {pk: version.get_absolute_url() for pk, version in versions.items()}  # once per version, not per row
    promotion_urls = {p.pk: p.get_absolute_url() for p in promotions.values()}
    metrics = {pk: _metrics_text(version) for pk, version in versions.items()}
    return {event.pk: sorted(
        (Served(deployment=row["deployment"], traffic=row["traffic"], version_label=row["version"],
                version=versions.get(row["version_id"]), promotion=promotions.get(row["deployment_id"]),
                since=_since(row), url=urls.get(row["version_id"], ""), metrics=metrics.get(row["version_id"], ""),
                promotion_url=promotion_urls.get(getattr(promotions.get(row["deployment_id"]), "pk", None), ""))
         for row in event.serving), key=lambda s: (-s.traffic, s.deployment)) for event in events}


def _since(row: dict) -> datetime | None:
    try:
        return datetime.fromisoformat(row["since"]) if row.get("since") else None
    except (TypeError, ValueError):
        return None


def in_production(*, model_ids: list[int] | None = None) -> dict[int, list[InProduction]]:
    """Model id -> its versions that serve a production endpoint now, with since when (three queries, whatever the
    ledger holds). Read from each production endpoint's latest ledger event, the same transaction's writes as the
    rows."""
    latest = ReleaseEvent.objects.filter(endpoint=OuterRef("pk")).order_by("-at", "-id").values("pk")[:1]
    endpoints = {e.release_id: e for e in Endpoint.objects.filter(stage=Endpoint.Stage.PRODUCTION)
                 .annotate(release_id=Subquery(latest)).order_by("name") if e.release_id}
    events = ReleaseEvent.objects.only("serving").in_bulk(list(endpoints))
    rows = [(endpoints[pk], row) for pk, event in events.items() for row in event.serving if row.get("traffic")]
    versions = ModelVersion.objects.select_related("model").filter(pk__in={row["version_id"] for _, row in rows})
    if model_ids is not None:
        versions = versions.filter(model_id__in=model_ids)
    versions = versions.in_bulk()
    found: dict[int, list[InProduction]] = {}
    for endpoint, row in rows:
        version = versions.get(row["version_id"])
        if version is not None:
            found.setdefault(version.model_id, []).append(InProduction(
                endpoint=endpoint, deployment=row["deployment"], version=version, traffic=row["traffic"],
                since=_since(row)))
    for serving in found.values():
        serving.sort(key=lambda s: (s.endpoint.name, -s.traffic))
    return found


def releases_as_of(at: datetime) -> list[EndpointAsOf]:
    """Every endpoint that existed at `at`, with what it served then (five queries)."""
    latest = (ReleaseEvent.objects.filter(endpoint=OuterRef("pk"), at__lte=at).order_by("-at", "-id")
              .values("pk")[:1])
    endpoints = list(Endpoint.objects.filter(created_at__lte=at).annotate(release_id=Subquery(latest))
                     .order_by("-stage", "name"))
    events = ReleaseEvent.objects.select_related("actor", "promotion__decided_by").in_bulk(
        [e.release_id for e in endpoints if e.release_id])
    served = _served(list(events.values()))
    first = reverse("deployments:endpoint_releases", args=["-"])  # one reverse for every endpoint's link
    return [EndpointAsOf(endpoint=e, event=events.get(e.release_id), served=served.get(e.release_id, []),
                         history_url=first.replace("/-/", f"/{e.name}/")) for e in endpoints]


def endpoint_release_page(endpoint: Endpoint, *, before: int | None = None) -> tuple[list[ReleaseEvent], int | None]:
    """A page of the endpoint's ledger, newest first, older than event `before` when given; and the id to ask
    for the next (older) page, or None at the first event."""
    events = endpoint.release_events.select_related("actor", "promotion__decided_by").order_by("-at", "-id")
    if before is not None:
        cursor = endpoint.release_events.filter(pk=before).values_list("at", flat=True).first()
        if cursor is not None:
            events = events.filter(Q(at__lt=cursor) | Q(at=cursor, pk__lt=before))
    page = list(events[:HISTORY_PAGE + 1])
    more = page[HISTORY_PAGE - 1].pk if len(page) > HISTORY_PAGE else None
    page = page[:HISTORY_PAGE]
    served = _served(page)
    for event in page:
        event.served = served[event.pk]
    return page, more


def endpoint_release_chart(endpoint: Endpoint, *, now: datetime | None = None) -> Chart:
    """Each version's share of the endpoint's traffic over its last CHART_EVENTS changes, as stacked steps; each step
    links to "as of" that moment."""
    now = now or timezone.now()
    events = list(endpoint.release_events.order_by("-at", "-id").values_list("at", "serving")[:CHART_EVENTS])[::-1]
    labels: list[str] = []
    for _, serving in events:
        for row in serving:
            if row.get("traffic") and row["version"] not in labels:
                labels.append(row["version"])
    bands = []
    for label in labels:
        bands.append(Band(name=label, values=[
            float(sum(r["traffic"] for r in serving if r["version"] == label)) for _, serving in events]))
    start = events[0][0] if events else now
    span = (now - start).total_seconds()

    def tick(value: float) -> str:
        moment = timezone.localtime(start + timedelta(seconds=value))
        return moment.strftime("%H:%M:%S" if span < 3600 else "%d %b %H:%M" if span < 3 * 86400 else "%d %b %Y")

    base = reverse("deployments:releases_as_of")
    return Chart(
        title=f"Traffic share by version on {endpoint.name}", x_label=f"time ({timezone.get_current_timezone_name()})",
        y_label="share of traffic (%)", y_format="{:.0f}", bands=bands,
        steps_x=[(at - start).total_seconds() for at, _ in events], x_end=span, x_tick_text=tick,
        step_links=[as_of_link(at, endpoint.name, base=base) for at, _ in events])


def endpoint_release_rows(endpoint: Endpoint) -> Iterator[list[str]]:
    """The endpoint's whole ledger as CSV rows, oldest first, read in chunks."""
    yield ["at (UTC)", "kind", "summary", "who", "via", "promotion", "approved by", "serving"]
    events: QuerySet[ReleaseEvent] = (endpoint.release_events.select_related("promotion__decided_by")
                                      .order_by("at", "id"))
    for event in events.iterator(chunk_size=2000):
        promotion = event.promotion
        yield [event.at.astimezone(UTC).isoformat(),
               event.get_kind_display(), event.summary, event.actor_name, event.via,
               f"#{promotion.pk}" if promotion else "",
               promotion.decided_by.get_username() if promotion and promotion.decided_by else "",
               "; ".join(f"{row['deployment']}: {row['version']} {row['traffic']}%" for row in event.serving)]
