"""A model's timeline: its training runs, registrations, promotions (requested, decided, finished), traffic changes
and rollbacks, merged newest first.

Each kind of entry comes from its own table, read newest first from an index; a page takes PAGE + 1 of each and
merges them, so it costs the same few queries whatever the history holds. The next page starts before the oldest
entry shown. The CSV export merges the same sources whole, streamed.
"""
from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache

from django.db.models import Prefetch, QuerySet
from django.urls import reverse

from deployments.models import Promotion, PromotionStep, ReleaseEvent

from .models import ModelVersion, RegisteredModel, TrainingRun

PAGE = 30
KINDS = {"runs": "Training runs", "versions": "Registrations", "promotions": "Promotions",
         "traffic": "Deployments and traffic", "rollbacks": "Rollbacks"}


@dataclass
class Entry:
    at: datetime
    kind: str  # a key of KINDS
    label: str  # what happened, in a few words
    title: str
    url: str
    actor: str = ""
    detail: str = ""
    status: str = ""  # succeeded, failed, running, canceled (the dot's colour)
    evidence: list[PromotionStep] = field(default_factory=list)


@dataclass
class Source:
    kind: str
    at_field: str
    rows: Callable[[], QuerySet]
    entry: Callable[[object], Entry]


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text and text.strip() else ""


def _metric(model: RegisteredModel, metrics: dict) -> str:
    value = metrics.get(model.key_metric) if isinstance(metrics, dict) else None
    if value is None:
        return ""
    return f"{model.key_metric} {value:.4f}" if isinstance(value, float) else f"{model.key_metric} {value}"


def _sources(model: RegisteredModel) -> list[Source]:
    runs = TrainingRun.objects.filter(register_as=model).select_related("launched_by").defer("log")
    evidence = Prefetch("steps", queryset=PromotionStep.objects.filter(kind__in=("functional", "stress"))
                        .order_by("position"), to_attr="evidence_steps")
    promotions = (Promotion.objects.filter(version__model=model)
                  .select_related("version__model", "production_endpoint", "requested_by", "decided_by"))
    versions = (ModelVersion.objects.filter(model=model).select_related("created_by")
                .only("version", "metrics", "training_run_id", "created_at", "created_by__username"))

    @cache  # a page links the same few endpoints and promotions many times
    def url(name: str, *args) -> str:
        return reverse(name, args=args)

    def launched(run: TrainingRun) -> Entry:
        return Entry(at=run.created_at, kind="runs", label="Training run launched", title=str(run),
                     url=url("models_registry:run_detail", run.pk),
                     actor=run.launched_by.get_username() if run.launched_by else "",
                     detail=f"{run.example} on {run.compute_target}", status="running" if run.is_active else "")

    def finished(run: TrainingRun) -> Entry:
        said = _first_line(run.error) if run.status != TrainingRun.Status.SUCCEEDED else _metric(model, run.metrics)
        return Entry(at=run.finished_at, kind="runs", label=f"Training run {run.get_status_display().lower()}",
                     title=str(run), url=url("models_registry:run_detail", run.pk), detail=said, status=run.status)

    def registered(version: ModelVersion) -> Entry:
        origin = f"from run #{version.training_run_id}" if version.training_run_id else ""
        return Entry(at=version.created_at, kind="versions", label=f"Registered v{version.version}",
                     title=f"{model.name} v{version.version}",
                     url=url("models_registry:version_detail", model.name, version.version),
                     actor=version.created_by.get_username() if version.created_by else "",
                     detail=", ".join(x for x in (_metric(model, version.metrics), origin) if x))

    def requested(promotion: Promotion) -> Entry:
        return Entry(at=promotion.created_at, kind="promotions", label="Promotion requested",
                     title=f"#{promotion.pk}: v{promotion.version.version} to {promotion.production_endpoint.name}",
                     url=url("deployments:promotion_detail", promotion.pk), detail=promotion.reason[:300],
                     actor=promotion.requested_by.get_username() if promotion.requested_by else "")

    def decided(promotion: Promotion) -> Entry:
        verb = "Rejected" if promotion.decision == "rejected" else "Approved"
        return Entry(at=promotion.decided_at, kind="promotions", label=verb,
                     title=f"#{promotion.pk}: v{promotion.version.version} to {promotion.production_endpoint.name}",
                     url=url("deployments:promotion_detail", promotion.pk), detail=promotion.decision_comment[:300],
                     actor=promotion.decided_by.get_username() if promotion.decided_by else "",
                     status="failed" if verb == "Rejected" else "succeeded", evidence=promotion.evidence_steps)

    def ended(promotion: Promotion) -> Entry:
        return Entry(at=promotion.finished_at, kind="promotions",
                     label=f"Promotion {promotion.get_state_display().lower()}",
                     title=f"#{promotion.pk}: v{promotion.version.version} to {promotion.production_endpoint.name}",
                     url=url("deployments:promotion_detail", promotion.pk), detail=_first_line(promotion.failure_reason),
                     status={"succeeded": "succeeded", "failed": "failed"}.get(promotion.state, "canceled"),
                     evidence=promotion.evidence_steps)

    def released(event: ReleaseEvent) -> Entry:
        split = ", ".join(f"{row['deployment']} {row['version']} {row['traffic']}%"
                          for row in event.serving if row.get("traffic")) or "no traffic"
        return Entry(at=event.at, kind="rollbacks" if event.kind == ReleaseEvent.Kind.ROLLBACK else "traffic",
                     label=f"{event.get_kind_display()} on {event.endpoint.name}", title=event.summary,
                     url=url("deployments:endpoint_releases", event.endpoint.name),
                     actor=event.actor_name, detail=f"serving after it: {split}",
                     status="failed" if event.kind == ReleaseEvent.Kind.ROLLBACK else "")

    return [
        Source("runs", "created_at", lambda: runs, launched),
        Source("runs", "finished_at", lambda: runs.filter(finished_at__isnull=False), finished),
        Source("versions", "created_at", lambda: versions, registered),
        Source("promotions", "created_at", lambda: promotions, requested),
        Source("promotions", "decided_at",
               lambda: promotions.filter(decided_at__isnull=False).prefetch_related(evidence), decided),
        Source("promotions", "finished_at",
               lambda: promotions.filter(finished_at__isnull=False).exclude(state=Promotion.State.REJECTED)
               .prefetch_related(evidence), ended),
        Source("traffic", "at", lambda: ReleaseEvent.objects.filter(model=model).select_related("endpoint")
               .only("at", "kind", "serving", "summary", "actor_name", "endpoint__name"), released),
    ]


def _window(source: Source, *, since: datetime | None, until: datetime | None) -> QuerySet:
    rows = source.rows()
    if since is not None:
        rows = rows.filter(**{f"{source.at_field}__gte": since})
    if until is not None:
        rows = rows.filter(**{f"{source.at_field}__lt": until})
    return rows.order_by(f"-{source.at_field}", "-pk")


def _chosen(model: RegisteredModel, kinds: Iterable[str]) -> list[Source]:
    kinds = set(kinds) or set(KINDS)
    chosen = []
    for source in _sources(model):
        if source.kind in kinds or (source.kind == "traffic" and "rollbacks" in kinds):
            chosen.append(source)
    return chosen


def _wanted(entry: Entry, kinds: set[str]) -> bool:
    return not kinds or entry.kind in kinds


def model_timeline(model: RegisteredModel, *, kinds: Iterable[str] = (), since: datetime | None = None,
                   until: datetime | None = None) -> tuple[list[Entry], datetime | None]:
    """A page of the model's timeline, newest first, from before `until`; and where the next page starts (None
    when this one is the last)."""
    kinds = set(kinds)
    entries: list[Entry] = []
    for source in _chosen(model, kinds):
        rows = _window(source, since=since, until=until)
        if source.kind == "traffic" and kinds and not {"traffic", "rollbacks"} <= kinds:
            rows = (rows.filter(kind=ReleaseEvent.Kind.ROLLBACK) if "rollbacks" in kinds
                    else rows.exclude(kind=ReleaseEvent.Kind.ROLLBACK))
        entries += [e for e in map(source.entry, rows[:PAGE + 1]) if _wanted(e, kinds)]
    entries.sort(key=lambda e: e.at, reverse=True)
    more = entries[PAGE - 1].at if len(entries) > PAGE else None
    return entries[:PAGE], more


def model_timeline_all(model: RegisteredModel, *, kinds: Iterable[str] = (), since: datetime | None = None,
                       until: datetime | None = None) -> Iterator[Entry]:
    """The whole timeline in the window, newest first, streamed from each source in chunks."""
    kinds = set(kinds)
    streams = [(e for e in map(source.entry, _window(source, since=since, until=until).iterator(chunk_size=2000))
                if _wanted(e, kinds)) for source in _chosen(model, kinds)]
    return heapq.merge(*streams, key=lambda e: e.at, reverse=True)


def model_timeline_rows(entries: Iterable[Entry]) -> Iterator[list[str]]:
    yield ["at (UTC)", "kind", "what", "subject", "who", "detail", "evidence", "link"]
    for entry in entries:
        yield [entry.at.astimezone(UTC).isoformat(), KINDS[entry.kind], entry.label, entry.title, entry.actor,
               entry.detail, "; ".join(f"{step.label}: {step.get_status_display().lower()} {step.detail}".strip()
                                       for step in entry.evidence), entry.url]
