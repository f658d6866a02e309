"""The comparison templates of the catalog (`analysis/*-compare.yaml`), one per metric source.

Static: each loads with our model, declares exactly the args it uses, and has the two
comparison metrics (sequentialCounts on errors, mannWhitney on latency). Live: for every
source, a real Prometheus (promtool-backfilled, see `history`) holds a stable revision and
four canaries labelled the way that source labels revisions, and a one-step Rollout using the
template is replayed (`analysis.replay`) with the controller's own Prometheus provider taking
every measurement:

- `good`: 1% errors and p99 90 ms like the stable revision: promoted after the 15 looks;
- `bad-errors`: 5% errors: aborted at the first look, by error-rate-vs-baseline;
- `bad-latency`: p99 900 ms: aborted at 10 minutes, by latency-vs-baseline;
- `idle`: no traffic at all: never promoted (paused: Inconclusive after 3 extra looks).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from rollouts.analysis.providers.base import MeasurementResult, ProviderContext
from rollouts.analysis.providers.prometheus import PrometheusProvider
from rollouts.analysis.replay import Replay, ReplayInput, replay
from rollouts.models.analysis import Metric, load_cluster_analysis_template
from rollouts.models.rollout import parse_spec
from rollouts.sandbox.prometheus import PrometheusServer, Series, render_openmetrics
from tests.catalog.conftest import BOUNDS_MS, FAST, KINDS, SLOW, Kind, require_binaries
from tests.catalog.test_catalog import CATALOG, PLACEHOLDER, declared_args, read

RELEASE = datetime(2025, 2, 1, tzinfo=UTC)
T0 = int(RELEASE.timestamp())
SCRAPE = 15
START, END = T0 - 20 * 60, T0 + 30 * 60
STABLE_RPS, CANARY_RPS = 80.0, 20.0

TEMPLATES = {
    "http": "http-compare",
    "istio": "istio-compare",
    "nginx": "nginx-ingress-compare",
    "linkerd": "linkerd-compare",
    "envoy": "envoy-compare",
}
ROLE_LABELS = {
    "http": "rollouts_pod_template_hash",
    "istio": "destination_service_name",
    "nginx": "service",
    "linkerd": "rollouts_pod_template_hash",
    "envoy": "envoy_cluster_name",
}
# role value -> (requests/s, error share, latency distribution)
REVISIONS: Mapping[str, tuple[float, float, tuple[tuple[float, float], ...]]] = {
    "stable": (STABLE_RPS, 0.01, FAST),
    "good": (CANARY_RPS, 0.01, FAST),
    "bad-errors": (CANARY_RPS, 0.05, FAST),
    "bad-latency": (CANARY_RPS, 0.01, SLOW),
    "idle": (0.0, 0.0, ()),
}
TARGET = "checkout"


def _line(rate: float) -> list[tuple[float, float]]:
    return [(float(ts), rate * (ts - START)) for ts in range(START, END + 1, SCRAPE)]


def _le(bound: float, seconds: bool) -> str:
    return "+Inf" if math.isinf(bound) else f"{bound / 1000 if seconds else bound:g}"


def series_of(kind: Kind) -> list[Series]:
    out: list[Series] = []
    for role, (rps, share, latency) in REVISIONS.items():
        labels = {**kind.series_labels(TARGET), ROLE_LABELS[kind.name]: role}
        for (key, value), rate in ((kind.ok, rps * (1 - share)), (kind.error, rps * share)):
            out.append(Series(kind.requests, {**labels, key: value}, _line(rate)))
        for bound in BOUNDS_MS:
            rate = sum(r for upper, r in latency if upper <= bound)
            le = _le(bound, kind.seconds)
            out.append(Series(kind.histogram, {**labels, "le": le}, _line(rate)))
    return out


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    require_binaries()
    server = PrometheusServer()
    try:
        server.load_openmetrics(render_openmetrics(s for k in KINDS for s in series_of(k)))
        server.start()
        yield server
    finally:
        server.stop()


def _args(kind: Kind, canary: str, address: str) -> list[dict[str, str]]:
    declared = declared_args(read(TEMPLATES[kind.name]))
    given = {**kind.template_args(TARGET), "canary": canary, "baseline": "stable",
             "prometheus-address": address}  # fmt: skip
    return [{"name": k, "value": v} for k, v in given.items() if k in declared]


def replay_release(kind: Kind, canary: str, address: str) -> Replay:
    name = TEMPLATES[kind.name]
    template = load_cluster_analysis_template(read(name))
    step = {"analysis": {"templates": [{"templateName": name, "clusterScope": True}],
                         "args": _args(kind, canary, address)}}  # fmt: skip
    body: dict[str, Any] = {
        "apiVersion": "rollouts.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "checkout", "namespace": "shop"},
        "spec": {
            "selector": {"matchLabels": {"app": "checkout"}},
            "template": {"metadata": {"labels": {"app": "checkout"}},
                         "spec": {"containers": [{"name": "app", "image": "checkout:2"}]}},
            "strategy": {"canary": {"steps": [step]}},
        },
    }  # fmt: skip
    given = ReplayInput(body, parse_spec(body["spec"]), {}, {name: template}, canary, "stable")
    # The controller's own (asynchronous) provider takes every measurement, on one loop.
    loop = asyncio.new_event_loop()
    provider = PrometheusProvider()

    def sample(metric: Metric, at: datetime) -> MeasurementResult:
        return loop.run_until_complete(provider.measure(metric, ProviderContext(), at))

    try:
        return replay(given, sample, start=RELEASE, end=RELEASE + timedelta(minutes=25),
                      step=timedelta(minutes=1))  # fmt: skip
    finally:
        loop.run_until_complete(provider.aclose())
        loop.close()


def _minutes(result: Replay) -> float | None:
    return None if result.at is None else (result.at - RELEASE).total_seconds() / 60


# ---------------------------------------------------------------------------------------------
# Static


def test_every_source_has_a_comparison_template() -> None:
    assert sorted(p.stem for p in CATALOG.glob("*-compare.yaml")) == sorted(TEMPLATES.values())


@pytest.mark.parametrize("name", sorted(TEMPLATES.values()))
def test_comparison_template_shape(name: str) -> None:
    doc = read(name)
    template = load_cluster_analysis_template(doc)
    tests = {m.name: m.compare.test for m in template.spec.metrics if m.compare is not None}
    assert tests == {"error-rate-vs-baseline": "sequentialCounts",
                     "latency-vs-baseline": "mannWhitney"}  # fmt: skip
    body = {key: value for key, value in doc["spec"].items() if key != "args"}
    used = set(PLACEHOLDER.findall(yaml.safe_dump(body)))
    assert used == set(declared_args(doc))
    for metric in doc["spec"]["metrics"]:
        assert metric["provider"]["prometheus"]["address"] == "{{args.prometheus-address}}"
        assert "{{role}}" in metric["provider"]["prometheus"]["query"]


# ---------------------------------------------------------------------------------------------
# Live


@pytest.mark.prometheus
@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_a_good_canary_is_promoted(kind: Kind, prometheus: PrometheusServer) -> None:
    result = replay_release(kind, "good", prometheus.url)
    assert result.outcome == "promoted", result.message
    assert _minutes(result) == 14  # latency at 10m; errors: looks 0..14m pass at the last
    latency = [e for e in result.events if e.metric == "latency-vs-baseline"]
    assert [e.phase for e in latency] == ["Successful"]
    assert latency[0].evidence is not None and latency[0].evidence["canary"] == 11


@pytest.mark.prometheus
@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_an_error_rate_regression_aborts_at_the_second_look(
    kind: Kind, prometheus: PrometheusServer
) -> None:
    # 5x the baseline's errors: shown at the first look, consistent (beyond a swing of the
    # canary's rate; see rollouts/analysis/consistency.py) at the second.
    result = replay_release(kind, "bad-errors", prometheus.url)
    assert (result.outcome, _minutes(result)) == ("aborted", 1)
    assert "error-rate-vs-baseline" in result.message
    look, _ = [e for e in result.events if e.kind == "measurement"
               and e.metric == "error-rate-vs-baseline"]  # fmt: skip
    assert look.evidence is not None
    assert look.evidence["canaryErrors"] == pytest.approx(60)  # 5% of 1200 in [1m]
    assert look.evidence["baselineErrors"] == pytest.approx(48)  # 1% of 4800


@pytest.mark.prometheus
@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_a_latency_regression_aborts_at_the_latency_look(
    kind: Kind, prometheus: PrometheusServer
) -> None:
    result = replay_release(kind, "bad-latency", prometheus.url)
    assert (result.outcome, _minutes(result)) == ("aborted", 10)
    assert "latency-vs-baseline" in result.message
    (look,) = [e for e in result.events if e.metric == "latency-vs-baseline"]
    assert look.evidence is not None and look.evidence["effect"] == pytest.approx(810)


@pytest.mark.prometheus
@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_no_traffic_is_never_promoted(kind: Kind, prometheus: PrometheusServer) -> None:
    # Too little traffic waits 3 extra looks (not 5 x 15: that is for a doubling not yet
    # ruled out): the error metric is Inconclusive at minute 17, its 18th look.
    result = replay_release(kind, "idle", prometheus.url)
    assert (result.outcome, _minutes(result)) == ("paused", 17), result.message
    assert "error-rate-vs-baseline" in result.message and "too little traffic" in result.message
    assert "after 18 measurements" in result.message


def test_readme_lists_every_comparison_template_and_its_args() -> None:
    text = (CATALOG / "README.md").read_text(encoding="utf-8")
    for name in TEMPLATES.values():
        assert f"`{name}`" in text, name
        for arg in declared_args(read(name)):
            assert f"`{arg}`" in text, f"arg {arg} of {name} missing from analysis/README.md"
