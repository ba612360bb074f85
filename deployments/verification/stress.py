"""The stress engine: concurrent POSTs with asyncio, latencies in HDR histograms.

Cheap per request on purpose: on a small machine the client's CPU is taken from the server under test, so each
simulated user reuses pre-encoded payloads and request headers, keeps its own connection alive while the server
allows it, and records one histogram value per request. The client is the one mlopsportal.lib.clients picks for the
target, as for its functional tests: the lean HTTP/1.1 client on httptools for a loopback plain-http target (why not
aiohttp's is measured in mlopsportal.lib.http1), aiohttp's for https, remote and proxied ones.
Results of several engines (one per Celery worker) merge exactly: histograms add, counters add, and the per-second
series line up on wall-clock seconds.
"""
from __future__ import annotations

import asyncio
import base64
import itertools
import math
import time
from collections import Counter
from dataclasses import dataclass, field

import uvloop
from hdrh.histogram import HdrHistogram

from mlopsportal.lib.clients import client_for
from mlopsportal.lib.http1 import HTTPClientError

# Latencies are recorded in microseconds, from 1 µs to 10 minutes, to 2 significant digits.
LOWEST, HIGHEST, DIGITS = 1, 600_000_000, 2
PERCENTILES = (50, 90, 95, 99, 99.9)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST, HIGHEST, DIGITS)


def encode(histogram: HdrHistogram) -> str:
    return base64.b64encode(histogram.encode()).decode() if histogram.get_total_count() else ""


def decode(text: str) -> HdrHistogram:
    return HdrHistogram.decode(base64.b64decode(text)) if text else new_histogram()


@dataclass
class Plan:
    url: str
    payloads: list[bytes]
    concurrency: int
    duration_s: float | None = None
    request_count: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 30.0
    # Open loop: requests start at this rate (per second, evenly spaced) whatever the answers' speed, with at most
    # `concurrency` in flight; a request's latency counts from when it was due, so a server that falls behind
    # shows its queue in the latencies (no coordinated omission). None: each user sends as soon as answered.
    rate_rps: float | None = None

    def __post_init__(self):
        if not self.payloads:
            raise ValueError("a stress plan needs at least one payload")
        if (self.duration_s is None) == (self.request_count is None):
            raise ValueError("give either a duration or a request count")
        if self.rate_rps is not None and not (0 < self.rate_rps <= 100_000):
            raise ValueError("a request rate must be above 0 and at most 100,000 per second")


@dataclass
class Result:
    """One engine's (or several merged engines') outcome. `to_json`/`from_json` round-trip it exactly."""
    started_at: float
    finished_at: float
    requests: int = 0
    by_status: Counter = field(default_factory=Counter)  # every HTTP status seen, as strings
    by_exception: Counter = field(default_factory=Counter)  # transport failures by exception class
    histogram: HdrHistogram = field(default_factory=new_histogram)  # all requests, µs
    seconds: dict[int, dict] = field(default_factory=dict)  # wall-clock second -> {"ok", "failed", "hist"}
    concurrency: int = 0

    @property
    def failures(self) -> int:
        return sum(n for status, n in self.by_status.items() if int(status) >= 400) + sum(self.by_exception.values())

    @property
    def elapsed_s(self) -> float:
        return max(1e-9, self.finished_at - self.started_at)

    def summary(self) -> dict:
        hist = self.histogram
        count = hist.get_total_count()

        def ms(value_us):
            return round(value_us / 1000, 3)

        return {
            "requests": self.requests, "failures": self.failures,
            "error_rate": round(self.failures / self.requests, 6) if self.requests else 0.0,
            "throughput_rps": round(self.requests / self.elapsed_s, 2), "duration_s": round(self.elapsed_s, 3),
            "concurrency": self.concurrency,
            **{f"p{str(p).replace('.', '_')}_ms": ms(hist.get_value_at_percentile(p)) if count else None
               for p in PERCENTILES},
            "max_ms": ms(hist.get_max_value()) if count else None,
            "mean_ms": ms(hist.get_mean_value()) if count else None,
            "by_status": dict(sorted(self.by_status.items())), "by_exception": dict(sorted(self.by_exception.items())),
        }

    def series(self) -> list[dict]:
        """Per second since the start: requests, failures and latency percentiles (ms)."""
        if not self.seconds:
            return []
        first = min(self.seconds)
        rows = []
        for second in range(first, max(self.seconds) + 1):
            bucket = self.seconds.get(second)
            if bucket is None:
                rows.append({"t": second - first, "ok": 0, "failed": 0, "p50": None, "p95": None, "p99": None})
                continue
            hist = bucket["hist"]
            has = hist.get_total_count() > 0
            rows.append({"t": second - first, "ok": bucket["ok"], "failed": bucket["failed"],
                         **{f"p{p}": round(hist.get_value_at_percentile(p) / 1000, 3) if has else None
                            for p in (50, 95, 99)}})
        return rows

    def latency_buckets(self, buckets: int = 30) -> list[dict]:
        """The latency distribution in log-spaced buckets, for a histogram chart: [{"upto_ms", "count"}]."""
        hist = self.histogram
        if not hist.get_total_count():
            return []
        low, high = max(1, hist.get_min_value()), max(2, hist.get_max_value())
        edges = sorted({math.ceil(low * (high / low) ** (i / buckets)) for i in range(1, buckets + 1)} | {high})
        counts = [0] * len(edges)
        index = 0
        for item in hist.get_recorded_iterator():
            while index < len(edges) - 1 and item.value_iterated_to > edges[index]:
                index += 1
            counts[index] += item.count_added_in_this_iter_step
        return [{"upto_ms": round(edge / 1000, 3), "count": count} for edge, count in zip(edges, counts, strict=True) if count]

    def to_json(self) -> dict:
        return {
            "started_at": self.started_at, "finished_at": self.finished_at, "requests": self.requests,
            "by_status": dict(self.by_status), "by_exception": dict(self.by_exception),
            "histogram": encode(self.histogram), "concurrency": self.concurrency,
            "seconds": {str(s): {"ok": b["ok"], "failed": b["failed"], "hist": encode(b["hist"])}
                        for s, b in self.seconds.items()},
        }

    @classmethod
    def from_json(cls, data: dict) -> Result:
        return cls(
            started_at=data["started_at"], finished_at=data["finished_at"], requests=data["requests"],
            by_status=Counter(data["by_status"]), by_exception=Counter(data["by_exception"]),
            histogram=decode(data["histogram"]), concurrency=data.get("concurrency", 0),
            seconds={int(s): {"ok": b["ok"], "failed": b["failed"], "hist": decode(b["hist"])}
                     for s, b in data["seconds"].items()})

    @classmethod
    def merge(cls, results: list[Result]) -> Result:
        merged = cls(started_at=min(r.started_at for r in results), finished_at=max(r.finished_at for r in results))
        for result in results:
            merged.requests += result.requests
            merged.concurrency += result.concurrency
            merged.by_status.update(result.by_status)
            merged.by_exception.update(result.by_exception)
            merged.histogram.add(result.histogram)
            for second, bucket in result.seconds.items():
                into = merged.seconds.setdefault(second, {"ok": 0, "failed": 0, "hist": new_histogram()})
                into["ok"] += bucket["ok"]
                into["failed"] += bucket["failed"]
                into["hist"].add(bucket["hist"])
        return merged


def _request_headers(plan: Plan) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    for name, value in plan.headers.items():
        for same in [h for h in headers if h.lower() == name.lower()]:
            del headers[same]
        headers[name] = value
    return headers


async def run(plan: Plan) -> Result:
    result = Result(started_at=time.time(), finished_at=0.0, concurrency=plan.concurrency)
    try:
        client = client_for(plan.url, _request_headers(plan), timeout_s=plan.timeout_s)
    except ValueError as exc:  # nothing can be sent (a bad URL or header, a proxy setting that cannot be used)
        result.by_exception[f"cannot send: {exc}"] += 1
        result.finished_at = time.time()
        return result
    payloads = itertools.cycle(plan.payloads)
    remaining = [plan.request_count] if plan.request_count is not None else None
    deadline = time.monotonic() + plan.duration_s if plan.duration_s is not None else math.inf
    record = result.histogram.record_value
    seconds = result.seconds
    by_status = result.by_status
    by_exception = result.by_exception
    clock = time.perf_counter_ns
    slots = itertools.count()
    first_ns = clock()
    gap_ns = 1e9 / plan.rate_rps if plan.rate_rps else 0
    deadline_ns = first_ns + plan.duration_s * 1e9 if plan.duration_s is not None else math.inf

    async def one_user() -> None:
        sender = client.sender()
        try:
            while True:
                if remaining is not None:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                elif time.monotonic() >= deadline:
                    return
                body = next(payloads)
                if gap_ns:
                    due = first_ns + int(next(slots) * gap_ns)
                    if due >= deadline_ns:
                        return
                    wait_ns = due - clock()
                    if wait_ns > 0:
                        await asyncio.sleep(wait_ns / 1e9)
                    start = due  # late because every user was busy: that wait is the server's queue
                else:
                    start = clock()
                try:
                    status = (await sender.post(body)).status  # raises TimeoutError after plan.timeout_s
                    by_status[str(status)] += 1
                    failed = status >= 400
                except (TimeoutError, HTTPClientError, OSError) as exc:
                    by_exception[exc.__class__.__name__] += 1
                    failed = True
                elapsed_us = min(max(1, (clock() - start) // 1000), HIGHEST)
                record(elapsed_us)
                second = int(time.time())
                bucket = seconds.get(second)
                if bucket is None:
                    bucket = seconds[second] = {"ok": 0, "failed": 0, "hist": new_histogram()}
                bucket["hist"].record_value(elapsed_us)
                bucket["failed" if failed else "ok"] += 1
                result.requests += 1
        finally:
            await sender.aclose()

    await asyncio.gather(*(one_user() for _ in range(plan.concurrency)))
    result.finished_at = time.time()
    return result


def run_blocking(plan: Plan) -> Result:
    # uvloop: on a small machine the client's CPU per request is taken from the server under test.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(plan))


def check_thresholds(summary: dict, *, p95_ms_max: float | None, error_rate_max: float | None,
                     min_rps: float | None) -> list[str]:
    """What the run missed, in words; empty when it passed."""
    missed = []
    if summary["requests"] == 0:
        return ["no request was made"]
    if p95_ms_max is not None and (summary["p95_ms"] is None or summary["p95_ms"] > p95_ms_max):
        missed.append(f"p95 latency {summary['p95_ms']} ms is above the limit of {p95_ms_max:g} ms")
    if error_rate_max is not None and summary["error_rate"] > error_rate_max:
        missed.append(f"error rate {summary['error_rate']:.2%} is above the limit of {error_rate_max:.2%}")
    if min_rps is not None and summary["throughput_rps"] < min_rps:
        missed.append(f"throughput {summary['throughput_rps']} req/s is below the minimum of {min_rps:g} req/s")
    return missed
