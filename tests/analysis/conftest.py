"""Fixtures for provider tests: a real Prometheus with a recorded metric history.

The server is session-scoped (one process for the whole run, ~0.1 s to start). Without the
binary the tests that need it are skipped with the reason, except in CI (CI=true), where a
missing binary is a broken setup and fails instead.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from rollouts.sandbox.prometheus import PrometheusServer, Series, render_openmetrics

STEP = 15  # seconds between recorded samples, like a common scrape interval
HISTORY = 3 * 3600


@dataclass(frozen=True)
class History:
    """A recorded metric history and the moments worth querying it at."""

    prometheus: PrometheusServer
    start: float  # first sample (unix seconds, a multiple of STEP)
    end: float  # last sample
    at: float  # a moment in the middle, at least 10 minutes from both ends


def require_binaries() -> None:
    missing = [name for name in ("prometheus", "promtool") if shutil.which(name) is None]
    if not missing:
        return
    reason = f"{' and '.join(missing)} not on PATH: run scripts/setup.sh"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: a missing binary is a broken setup, not a skip)")
    pytest.skip(reason)


def _counter(rate_per_second: float, start: float, end: float) -> list[tuple[float, float]]:
    samples = []
    ts = start
    while ts <= end:
        samples.append((ts, rate_per_second * (ts - start)))
        ts += STEP
    return samples


def history_series(start: float, end: float) -> list[Series]:
    """Request counters whose rates give exact ratios.

    good:  10 req/s, no errors           -> success rate 1
    bad:   6 req/s of 200, 4 req/s of 500 -> success rate 0.6
    idle:  counters that never move      -> 0/0 = NaN
    and a latency gauge per app.
    """
    name = "http_requests_total"
    series = [
        Series(name, {"app": "good", "code": "200"}, _counter(10, start, end)),
        Series(name, {"app": "good", "code": "500"}, _counter(0, start, end)),
        Series(name, {"app": "bad", "code": "200"}, _counter(6, start, end)),
        Series(name, {"app": "bad", "code": "500"}, _counter(4, start, end)),
        Series(name, {"app": "idle", "code": "200"}, _counter(0, start, end)),
    ]
    gauge = "request_latency_seconds"
    for app, value in (("good", 0.125), ("bad", 2.5)):
        samples = [(ts, value) for ts, _ in _counter(0, start, end)]
        series.append(Series(gauge, {"app": app}, samples))
    series.append(Series("weird_gauge", {"kind": "nan"}, [(start, math.nan), (end, math.nan)]))
    return series


@pytest.fixture(scope="session")
def prometheus_history() -> Iterator[History]:
    require_binaries()
    # Aligned to STEP and ending 10 minutes ago: well inside the past, clear of the head.
    end = (int(time.time()) // STEP) * STEP - 600
    start = end - HISTORY
    server = PrometheusServer(scrape_interval=1.0)
    try:
        server.load_openmetrics(render_openmetrics(history_series(start, end)))
        server.start()
        yield History(server, float(start), float(end), float(start + HISTORY // 2))
    finally:
        server.stop()


@pytest.fixture
def prometheus(prometheus_history: History) -> PrometheusServer:
    return prometheus_history.prometheus
