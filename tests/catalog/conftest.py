"""A real Prometheus holding synthetic traffic for every template in `analysis/`.

One server for the whole session, loaded once through promtool with every series of every
scenario. Each scenario has its own label values (the service / ingress / deployment /
cluster is named after the scenario), so scenarios never see each other's data.

Traffic is generated at exact ratios so results are deterministic: counters grow linearly
(`rate()` of a straight line is its slope), and histogram buckets are filled so that
`histogram_quantile` lands on round numbers (p99 90 ms good, 900 ms bad).

All samples sit around a fixed moment in the past, `AT` (2025-01-01T00:00:00Z); the tests
query exactly there, so nothing depends on the wall clock.

Without the `prometheus`/`promtool` binaries the live tests are skipped, except in CI
(CI=true), where a missing binary is a broken setup and fails.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from rollouts.sandbox.prometheus import PrometheusServer, Series, render_openmetrics

AT = datetime(2025, 1, 1, tzinfo=UTC)
_AT_S = int(AT.timestamp())
STEP = 15  # seconds between samples, a common scrape interval
START = _AT_S - 20 * 60  # 20 minutes of history before AT: enough for the default 5m window
BASE = 1000.0  # every counter starts here, so "idle" counters exist with a non-zero value

# Histogram bucket bounds in milliseconds; seconds-based histograms divide by 1000.
BOUNDS_MS: tuple[float, ...] = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, math.inf)
# (upper bound ms, requests/s in the bucket ending there): p99 = 50 + 50 * 4/5 = 90 ms.
FAST = ((50.0, 95.0), (100.0, 5.0))
# p99 = 500 + 500 * 4/5 = 900 ms; p50 = 250 + 250 * 50/95 ms.
SLOW = ((500.0, 95.0), (1000.0, 5.0))
IDLE: tuple[tuple[float, float], ...] = ()
DECOY_RATE = 1000.0  # traffic on labels a template must filter out: all errors, all slow


@dataclass(frozen=True)
class Kind:
    """How one metric source names and labels things."""

    name: str
    success_template: str
    latency_template: str
    requests: str  # request counter
    ok: tuple[str, str]  # label marking a non-error response
    error: tuple[str, str]  # label marking an error response
    histogram: str  # latency histogram, *_bucket
    seconds: bool  # histogram unit: seconds (else milliseconds)
    labels: Mapping[str, str]  # fixed labels; TARGET is replaced by the scenario's name
    target_label: str
    target_arg: str
    args: Mapping[str, str]  # fixed args (besides the target)
    decoy: Mapping[str, str] = field(default_factory=dict)  # labels the template must ignore

    def series_labels(self, ident: str, **override: str) -> dict[str, str]:
        return {**self.labels, self.target_label: ident, **override}

    def template_args(self, ident: str) -> dict[str, str]:
        return {**self.args, self.target_arg: ident}


KINDS: tuple[Kind, ...] = (
    Kind(
        name="http",
        success_template="http-success-rate",
        latency_template="http-latency-p99",
        requests="http_requests_total",
        ok=("code", "200"),
        error=("code", "503"),
        histogram="http_request_duration_seconds_bucket",
        seconds=True,
        labels={"namespace": "shop", "job": "app"},
        target_label="service",
        target_arg="service",
        args={"namespace": "shop"},
        decoy={"namespace": "other"},
    ),
    Kind(
        name="istio",
        success_template="istio-success-rate",
        latency_template="istio-latency",
        requests="istio_requests_total",
        ok=("response_code", "200"),
        error=("response_code", "503"),
        histogram="istio_request_duration_milliseconds_bucket",
        seconds=False,
        labels={"reporter": "destination", "destination_workload_namespace": "shop"},
        target_label="destination_service_name",
        target_arg="service",
        args={"namespace": "shop"},
        # The client side's view (retries, timeouts) must not leak into the server's.
        decoy={"reporter": "source"},
    ),
    Kind(
        name="nginx",
        success_template="nginx-ingress-success-rate",
        latency_template="nginx-ingress-latency",
        requests="nginx_ingress_controller_requests",
        ok=("status", "200"),
        error=("status", "500"),
        histogram="nginx_ingress_controller_request_duration_seconds_bucket",
        seconds=True,
        # `namespace` is the controller's own, as a scrape with honor_labels: false leaves it.
        labels={"exported_namespace": "shop", "namespace": "ingress-nginx"},
        target_label="ingress",
        target_arg="ingress",
        args={"namespace": "shop"},
        decoy={"exported_namespace": "other"},
    ),
    Kind(
        name="linkerd",
        success_template="linkerd-success-rate",
        latency_template="linkerd-latency",
        requests="response_total",
        ok=("classification", "success"),
        error=("classification", "failure"),
        histogram="response_latency_ms_bucket",
        seconds=False,
        labels={"namespace": "shop", "direction": "inbound"},
        target_label="deployment",
        target_arg="deployment",
        args={"namespace": "shop"},
        # What the workload sees from its own dependencies is not its success rate.
        decoy={"direction": "outbound"},
    ),
    Kind(
        name="envoy",
        success_template="envoy-success-rate",
        latency_template="envoy-latency",
        requests="envoy_cluster_upstream_rq_xx",
        ok=("envoy_response_code_class", "2"),
        error=("envoy_response_code_class", "5"),
        histogram="envoy_cluster_upstream_rq_time_bucket",
        seconds=False,
        labels={},
        target_label="envoy_cluster_name",
        target_arg="cluster-name",
        args={},
    ),
)

# Request traffic per scenario name: (ok req/s, error req/s); None = no such series at all,
# 0 = the series exists but its counter never moves.
REQUESTS: Mapping[str, tuple[float | None, float | None]] = {
    "good": (99.0, 1.0),  # 0.99
    "bad": (80.0, 20.0),  # 0.80
    "idle": (0.0, 0.0),  # no traffic: counters exist but are flat
    "all-errors": (None, 5.0),  # no non-error series at all: 0, not "no data"
    "no-errors": (50.0, None),  # no error series at all: 1, not "no data"
}
# Latency per scenario name: (upper bound ms, req/s in that bucket), non-cumulative.
LATENCIES: Mapping[str, Sequence[tuple[float, float]]] = {
    "good": FAST,
    "bad": SLOW,
    "idle": IDLE,
}
DECOYED = "good"  # the scenario that also gets decoy traffic (errors, slow requests)


@dataclass(frozen=True)
class Scenario:
    """One live check: a template, whose traffic, which arg overrides, what must come out."""

    template: str
    case: str
    traffic: str  # a REQUESTS / LATENCIES key, or one with no data at all
    overrides: Mapping[str, str]
    phase: str
    value: float | None  # the single result value; None: the result must be empty

    @property
    def id(self) -> str:
        return f"{self.template}:{self.case}"


def scenarios() -> list[Scenario]:
    out: list[Scenario] = []
    p50_slow = 250 + 250 * 50 / 95
    for kind in KINDS:
        s = kind.success_template
        out += [
            Scenario(s, "good", "good", {}, "Successful", 0.99),
            Scenario(s, "bad", "bad", {}, "Failed", 0.8),
            Scenario(s, "bad-with-lower-threshold", "bad", {"success-rate": "0.75"},
                     "Successful", 0.8),
            Scenario(s, "all-errors", "all-errors", {}, "Failed", 0.0),
            Scenario(s, "no-error-series", "no-errors", {}, "Successful", 1.0),
            Scenario(s, "no-traffic", "idle", {}, "Inconclusive", None),
            Scenario(s, "no-series", "absent", {}, "Inconclusive", None),
            Scenario(s, "below-min-request-rate", "good", {"min-request-rate": "1000"},
                     "Inconclusive", None),
        ]  # fmt: skip
        lat = kind.latency_template
        out += [
            Scenario(lat, "good", "good", {}, "Successful", 90.0),
            Scenario(lat, "bad", "bad", {}, "Failed", 900.0),
            Scenario(lat, "bad-p50", "bad", {"quantile": "0.5"}, "Successful", p50_slow),
            Scenario(lat, "bad-with-higher-threshold", "bad", {"latency-threshold-ms": "1000"},
                     "Successful", 900.0),
            Scenario(lat, "no-traffic", "idle", {}, "Inconclusive", None),
            Scenario(lat, "no-series", "absent", {}, "Inconclusive", None),
            Scenario(lat, "below-min-request-rate", "good", {"min-request-rate": "1000"},
                     "Inconclusive", None),
        ]  # fmt: skip
    return out


def kind_of(template: str) -> Kind:
    return next(k for k in KINDS if template in (k.success_template, k.latency_template))


# ---------------------------------------------------------------------------------------------
# Series


def _counter(rate: float) -> list[tuple[float, float]]:
    return [(float(ts), BASE + rate * (ts - START)) for ts in range(START, _AT_S + 1, STEP)]


def _le(bound_ms: float, seconds: bool) -> str:
    if math.isinf(bound_ms):
        return "+Inf"
    return f"{bound_ms / 1000 if seconds else bound_ms:g}"


def request_series(kind: Kind) -> list[Series]:
    series: list[Series] = []
    for ident, (ok, errors) in REQUESTS.items():
        for label, rate in ((kind.ok, ok), (kind.error, errors)):
            if rate is not None:
                labels = kind.series_labels(ident, **{label[0]: label[1]})
                series.append(Series(kind.requests, labels, _counter(rate)))
    if kind.decoy:
        labels = kind.series_labels(DECOYED, **kind.decoy, **{kind.error[0]: kind.error[1]})
        series.append(Series(kind.requests, labels, _counter(DECOY_RATE)))
    return series


def _buckets(
    kind: Kind, labels: Mapping[str, str], distribution: Sequence[tuple[float, float]]
) -> list[Series]:
    series = []
    for bound in BOUNDS_MS:
        rate = sum(r for upper, r in distribution if upper <= bound)
        le = _le(bound, kind.seconds)
        series.append(Series(kind.histogram, {**labels, "le": le}, _counter(rate)))
    return series


def latency_series(kind: Kind) -> list[Series]:
    series: list[Series] = []
    for ident, distribution in LATENCIES.items():
        series += _buckets(kind, kind.series_labels(ident), distribution)
    if kind.decoy:
        slow = [(BOUNDS_MS[-2], DECOY_RATE)]  # everything in the last finite bucket
        series += _buckets(kind, kind.series_labels(DECOYED, **kind.decoy), slow)
    return series


def all_series() -> list[Series]:
    series: list[Series] = []
    for kind in KINDS:
        series += request_series(kind)
        series += latency_series(kind)
    return series


# ---------------------------------------------------------------------------------------------
# Fixtures


def require_binaries() -> None:
    missing = [name for name in ("prometheus", "promtool") if shutil.which(name) is None]
    if not missing:
        return
    reason = f"{' and '.join(missing)} not on PATH: run scripts/setup.sh"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: a missing binary is a broken setup, not a skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def catalog_prometheus() -> Iterator[PrometheusServer]:
    """One Prometheus with the traffic of every scenario, queryable at `AT`."""
    require_binaries()
    server = PrometheusServer()
    try:
        server.load_openmetrics(render_openmetrics(all_series()))
        server.start()
        yield server
    finally:
        server.stop()
