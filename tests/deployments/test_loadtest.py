"""The stress engine against a small aiohttp server on 127.0.0.1: counts, errors, percentiles, merging."""
import asyncio
import json
import threading

import pytest
from aiohttp import web

from deployments.verification import stress as loadtest


@pytest.fixture(scope="module")
def server():
    """POST /ok answers after ~2 ms; /flaky answers 500 to every third request; /slow sleeps 50 ms; /serial answers
    one request at a time, 10 ms each."""
    state = {"n": 0}

    async def ok(request):
        await request.read()
        await asyncio.sleep(0.002)
        return web.json_response({"prediction": 1})

    async def flaky(request):
        state["n"] += 1
        return web.json_response({"error": "boom"}, status=500) if state["n"] % 3 == 0 else web.json_response({})

    async def slow(request):
        await asyncio.sleep(0.05)
        return web.json_response({})

    lock = asyncio.Lock()

    async def serial(request):
        await request.read()
        async with lock:  # one at a time, about 10 ms each: about 100 req/s at most
            await asyncio.sleep(0.01)
        return web.json_response({"prediction": 1})

    app = web.Application()
    app.router.add_post("/ok", ok)
    app.router.add_post("/flaky", flaky)
    app.router.add_post("/slow", slow)
    app.router.add_post("/serial", serial)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


PAYLOADS = [json.dumps({"Pclass": 3}).encode(), json.dumps({"Pclass": 1}).encode()]


def test_request_count_mode_counts_exactly(server):
    result = loadtest.run_blocking(loadtest.Plan(url=f"{server}/ok", payloads=PAYLOADS, concurrency=8,
                                                 request_count=200))
    summary = result.summary()
    assert summary["requests"] == 200 and summary["failures"] == 0 and summary["by_status"] == {"200": 200}
    assert 2 <= summary["p50_ms"] < 200 and summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"]
    assert summary["p99_ms"] <= summary["max_ms"] and summary["throughput_rps"] > 0
    assert sum(row["ok"] for row in result.series()) == 200
    assert sum(b["count"] for b in result.latency_buckets()) == 200


def test_duration_mode_stops_on_time(server):
    result = loadtest.run_blocking(loadtest.Plan(url=f"{server}/ok", payloads=PAYLOADS, concurrency=4,
                                                 duration_s=1.0))
    assert 0.9 <= result.elapsed_s < 2.0 and result.requests > 50


def test_errors_by_status_and_by_exception(server):
    flaky = loadtest.run_blocking(loadtest.Plan(url=f"{server}/flaky", payloads=PAYLOADS, concurrency=1,
                                                request_count=30))
    assert flaky.summary()["by_status"] == {"200": 20, "500": 10} and flaky.failures == 10
    refused = loadtest.run_blocking(loadtest.Plan(url="http://127.0.0.1:1/score", payloads=PAYLOADS,
                                                  concurrency=2, request_count=10))
    assert refused.failures == 10 and sum(refused.by_exception.values()) == 10
    timeouts = loadtest.run_blocking(loadtest.Plan(url=f"{server}/slow", payloads=PAYLOADS, concurrency=2,
                                                   request_count=4, timeout_s=0.01))
    assert timeouts.failures == 4 and set(timeouts.by_exception) <= {"TimeoutError", "ServerTimeoutError"}


def test_shards_merge_exactly(server):
    plan = loadtest.Plan(url=f"{server}/ok", payloads=PAYLOADS, concurrency=3, request_count=90)
    shards = [loadtest.run_blocking(plan) for _ in range(3)]
    merged = loadtest.Result.merge([loadtest.Result.from_json(json.loads(json.dumps(s.to_json()))) for s in shards])
    assert merged.requests == 270 and merged.concurrency == 9
    assert merged.histogram.get_total_count() == 270
    assert merged.summary()["max_ms"] == max(s.summary()["max_ms"] for s in shards)
    assert sum(row["ok"] for row in merged.series()) == 270


def test_thresholds():
    summary = {"requests": 100, "p95_ms": 80.0, "error_rate": 0.02, "throughput_rps": 40.0}
    assert loadtest.check_thresholds(summary, p95_ms_max=100, error_rate_max=0.05, min_rps=20) == []
    missed = loadtest.check_thresholds(summary, p95_ms_max=50, error_rate_max=0.01, min_rps=50)
    assert [m.split()[0] for m in missed] == ["p95", "error", "throughput"]
    assert loadtest.check_thresholds({"requests": 0}, p95_ms_max=1, error_rate_max=0, min_rps=0) == [
        "no request was made"]


def test_plan_needs_duration_or_count():
    with pytest.raises(ValueError):
        loadtest.Plan(url="x", payloads=PAYLOADS, concurrency=1)
    with pytest.raises(ValueError):
        loadtest.Plan(url="x", payloads=[], concurrency=1, request_count=1)


def test_rate_mode_sends_at_the_rate_and_counts_the_queue(server):
    """Open loop: 100 req/s for 2 s is about 200 requests whatever the server's speed; against /slow (50 ms each)
    with 2 in flight at most the server keeps up with 40/s only, and the latencies carry the growing queue."""
    result = loadtest.run_blocking(loadtest.Plan(url=f"{server}/ok", payloads=PAYLOADS, concurrency=16,
                                                 duration_s=2, rate_rps=100))
    summary = result.summary()
    assert 185 <= summary["requests"] <= 201 and summary["failures"] == 0, summary
    assert summary["p95_ms"] < 50
    behind = loadtest.run_blocking(loadtest.Plan(url=f"{server}/slow", payloads=PAYLOADS, concurrency=2,
                                                 duration_s=2, rate_rps=100)).summary()
    assert behind["requests"] <= 90  # at most 2 in flight of 50 ms: 40/s
    assert behind["p95_ms"] > 500, behind  # the due time is long past when the last ones are sent
    with pytest.raises(ValueError, match="request rate"):
        loadtest.Plan(url=server, payloads=PAYLOADS, concurrency=1, duration_s=1, rate_rps=0)


def test_capacity_search_finds_the_knee_and_the_sustained_rate_holds(server):
    """/serial answers one request at a time in about 10 ms: it carries about 100 req/s. The search finds the knee
    below that; a fixed load at what it says one instance sustains meets the SLO, and 1.3 times that does not."""
    from deployments.verification import capacity

    plan = loadtest.Plan(url=f"{server}/serial", payloads=PAYLOADS, concurrency=64, duration_s=1.5)
    search = capacity.capacity_search(plan, p95_slo_ms=60, how=capacity.Settings(start_rps=20, confirm=False))
    assert search.knee is not None and search.first_miss is not None, search.steps
    assert 45 <= search.knee_rps <= 105, search.steps
    sustained = search.per_instance_rps
    steady = capacity.measure(plan, sustained, p95_slo_ms=60, error_rate_max=0.01)
    over = capacity.measure(plan, sustained * 1.3, p95_slo_ms=60, error_rate_max=0.01)
    assert steady.met, (sustained, steady, search.steps)
    assert not over.met and over.p95_ms > 60, (sustained, over, search.steps)
