"""Comparison metrics end to end: a real Prometheus holding a recorded history (backfilled
with promtool, no waiting), AnalysisRuns in the API emulator, `reconcile_analysis_run` with
the real Prometheus provider, one pass per interval on the injected clock.

The history: a baseline (`stable`) and three canaries, 20 requests/s each, errors drawn per
15 s scrape from a seeded Poisson:
- `good`: 0.1% errors, like the baseline;
- `bad`: 1% errors, a 10x regression that a "success rate >= 95%" threshold passes;
- `quiet`: 0.05 requests/s, too little traffic to judge;
and a latency gauge per revision (`slow` is 30% slower than `stable`).
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from rollouts.analysis.runner import ProviderConfig, ProviderSet, reconcile_analysis_run
from rollouts.kube.client import KubeClient
from rollouts.kube.config import Connection
from rollouts.sandbox.apiserver import ApiEmulator
from rollouts.sandbox.prometheus import PrometheusServer, Series, render_openmetrics
from tests.analysis.conftest import require_binaries

pytestmark = pytest.mark.prometheus

CRDS = pathlib.Path(__file__).resolve().parents[2] / "crds"
G, V, NS = "rollouts.dev", "v1alpha1", "default"
STEP = 15
HISTORY = 3600
TRAFFIC = {"stable": (20.0, 0.001), "good": (20.0, 0.001), "bad": (20.0, 0.01), "quiet": (0.05, 0)}
LATENCY = {"stable": 0.2, "slow": 0.26, "same": 0.2}

ERRORS = (
    'sum(increase(http_requests_total{code="500",rollouts_pod_template_hash="{{role}}"}'
    "[{{interval}}]))"
)
REQUESTS = 'sum(increase(http_requests_total{rollouts_pod_template_hash="{{role}}"}[{{interval}}]))'


def _series(start: int, end: int) -> list[Series]:
    rng = np.random.default_rng(20261204)
    times = np.arange(start, end + 1, STEP, dtype=float)
    series = []
    for hash_, (rate, error_rate) in TRAFFIC.items():
        requests = rng.poisson(rate * STEP, len(times))
        errors = rng.binomial(requests, error_rate)
        for code, counts in (("200", requests - errors), ("500", errors)):
            cumulative = np.cumsum(counts) - counts[0]
            series.append(
                Series(
                    "http_requests_total",
                    {"rollouts_pod_template_hash": hash_, "code": code},
                    list(zip(times.tolist(), cumulative.astype(float).tolist(), strict=True)),
                )
            )
    for hash_, mean in LATENCY.items():
        values = rng.normal(mean, mean * 0.1, len(times))
        series.append(
            Series(
                "request_latency_seconds",
                {"rollouts_pod_template_hash": hash_},
                list(zip(times.tolist(), values.tolist(), strict=True)),
            )
        )
    return series


@pytest.fixture(scope="module")
def history() -> Iterator[tuple[PrometheusServer, datetime]]:
    require_binaries()
    end = (int(time.time()) // STEP) * STEP - 600
    start = end - HISTORY
    server = PrometheusServer()
    try:
        server.load_openmetrics(render_openmetrics(_series(start, end)))
        server.start()
        # Runs start 10 minutes into the history.
        yield server, datetime.fromtimestamp(start + 600, UTC)
    finally:
        server.stop()


@pytest.fixture
async def client() -> AsyncIterator[KubeClient]:
    async with ApiEmulator() as emulator:
        for crd in sorted(CRDS.glob("rollouts.dev_*.yaml")):
            emulator.apply_yaml(crd)
        async with KubeClient(Connection(host=emulator.url)) as kube:
            yield kube


def counts_metric(**compare: Any) -> dict[str, Any]:
    return {
        "name": "errors",
        "interval": "1m",
        "count": 10,
        "provider": {"prometheus": {"query": ERRORS}},
        "compare": {
            "test": "sequentialCounts",
            "canary": "{{args.canary-hash}}",
            "baseline": "{{args.stable-hash}}",
            "totalQuery": REQUESTS,
            **compare,
        },
    }


async def run_analysis(
    client: KubeClient,
    prometheus: PrometheusServer,
    started: datetime,
    metric: dict[str, Any],
    canary: str,
    passes: int = 20,
) -> tuple[dict[str, Any], int]:
    """Create the run and reconcile it once a minute until it completes; (body, passes)."""
    await client.create(
        G,
        V,
        "analysisruns",
        NS,
        {
            "apiVersion": f"{G}/{V}",
            "kind": "AnalysisRun",
            "metadata": {"name": "run"},
            "spec": {
                "args": [
                    {"name": "canary-hash", "value": canary},
                    {"name": "stable-hash", "value": "stable"},
                ],
                "metrics": [metric],
            },
        },
    )
    providers = ProviderSet.from_config(ProviderConfig(prometheus_address=prometheus.url), client)
    try:
        for minute in range(passes):
            body = await client.get(G, V, "analysisruns", NS, "run")
            await reconcile_analysis_run(
                client, body, providers, started + timedelta(minutes=minute)
            )
            body = await client.get(G, V, "analysisruns", NS, "run")
            if body["status"]["phase"] not in ("Pending", "Running"):
                return body, minute + 1
    finally:
        await providers.aclose()
    return body, passes


async def test_a_ten_fold_error_regression_fails_within_a_few_intervals(
    client: KubeClient, history: tuple[PrometheusServer, datetime]
) -> None:
    prometheus, started = history
    body, passes = await run_analysis(client, prometheus, started, counts_metric(), "bad")
    status = body["status"]
    assert status["phase"] == "Failed", status
    assert passes <= 4
    [result] = status["metricResults"]
    evidence = result["measurements"][-1]["evidence"]
    assert evidence["decision"] == "fail"
    assert evidence["test"] == "sequentialCounts"
    assert evidence["canary"] > 1000 and evidence["baseline"] > 1000
    assert evidence["canaryErrors"] > evidence["baselineErrors"]
    assert evidence["intervalLow"] > 1.1
    assert evidence["eValue"] >= 20
    assert "canary error rate higher than 1.1x baseline's" in status["message"]
    # The queries each side ran, with the arguments and {{role}} substituted.
    metadata = result["measurements"][-1]["metadata"]
    assert 'rollouts_pod_template_hash="bad"' in metadata["ResolvedPrometheusQuery/canary"]
    assert "[60s]" in metadata["ResolvedPrometheusQuery/baseline totalQuery"]


async def test_a_threshold_passes_the_same_regression(
    client: KubeClient, history: tuple[PrometheusServer, datetime]
) -> None:
    # What the comparison is for: the bad canary's success rate is 99%, so a 95% threshold
    # template is satisfied by it.
    prometheus, started = history
    threshold = {
        "name": "success-rate",
        "interval": "1m",
        "count": 3,
        "successCondition": "result[0] >= 0.95",
        "provider": {
            "prometheus": {
                "query": 'sum(rate(http_requests_total{code="200",'
                'rollouts_pod_template_hash="{{args.canary-hash}}"}[5m])) / '
                'sum(rate(http_requests_total{rollouts_pod_template_hash="{{args.canary-hash}}"}'
                "[5m]))"
            }
        },
    }
    body, _ = await run_analysis(client, prometheus, started, threshold, "bad")
    assert body["status"]["phase"] == "Successful"


async def test_a_good_canary_passes(
    client: KubeClient, history: tuple[PrometheusServer, datetime]
) -> None:
    prometheus, started = history
    # 20 req/s at 0.1%: about 12 errors a side in 10 looks, which rules out 5x but not the
    # default passMargin's 2x (that run would be Inconclusive: test_comparison.py).
    metric = counts_metric(passMargin={"relative": 4})
    body, passes = await run_analysis(client, prometheus, started, metric, "good")
    status = body["status"]
    assert status["phase"] == "Successful", status
    assert passes <= 10
    evidence = status["metricResults"][0]["measurements"][-1]["evidence"]
    assert evidence["decision"] == "pass"
    assert evidence["canary"] > 10_000


async def test_too_little_traffic_is_inconclusive_after_the_extension(
    client: KubeClient, history: tuple[PrometheusServer, datetime]
) -> None:
    prometheus, started = history
    metric = {**counts_metric(extraMeasurements=2), "count": 3}
    body, passes = await run_analysis(client, prometheus, started, metric, "quiet")
    status = body["status"]
    assert status["phase"] == "Inconclusive", status
    assert passes == 5  # count 3 + 2 extra measurements
    assert "too little traffic" in status["message"]


async def test_mann_whitney_fails_a_slower_canary_and_passes_an_equal_one(
    client: KubeClient, history: tuple[PrometheusServer, datetime]
) -> None:
    prometheus, started = history
    metric = {
        "name": "latency",
        "interval": "1m",
        "count": 2,
        "provider": {
            "prometheus": {
                "query": 'request_latency_seconds{rollouts_pod_template_hash="{{role}}"}',
                "rangeQuery": {"start": "now-5m", "end": "now", "step": "15s"},
            }
        },
        "compare": {
            "test": "mannWhitney",
            "canary": "{{args.canary-hash}}",
            "baseline": "{{args.stable-hash}}",
            "tolerance": {"relative": 0.1},
        },
    }
    body, passes = await run_analysis(client, prometheus, started, metric, "slow")
    status = body["status"]
    assert (status["phase"], passes) == ("Failed", 1), status
    evidence = status["metricResults"][0]["measurements"][-1]["evidence"]
    assert evidence["canary"] == evidence["baseline"] == 21  # 5 minutes every 15 s
    assert 0.03 < evidence["effect"] < 0.09
    assert evidence["pValue"] < 0.05

    await client.delete(G, V, "analysisruns", NS, "run")
    body, passes = await run_analysis(client, prometheus, started, metric, "same")
    assert (body["status"]["phase"], passes) == ("Successful", 2), body["status"]
