"""The releases of bench/judge_prometheus.py: the cases, their series drawn and loaded into
a real Prometheus, and what Prometheus says of them (one range query per case and quantity).

Every release is a canary (20 req/s) next to its stable revision (80 req/s) for 14 minutes,
drawn with numpy (seeded): requests are Poisson, errors binomial, latencies lognormal
(median 50 ms, sigma 0.5) counted into histogram buckets, all scraped every 30 s. The
counters and histograms of every release (labels `case`, `seed`, `role`) are written as
OpenMetrics, turned into TSDB blocks by `promtool tsdb create-blocks-from openmetrics` and
served by a real Prometheus (the Debian `prometheus` binary), so no waiting in real time.
The judges see what Prometheus computes (`increase()` extrapolation, non-integer counts,
`histogram_quantile` interpolation), each release's numbers fetched with one range query per
case and quantity (`sum by (case, seed, role)`), the same PromQL shape as the templates'.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from margin_option import extra_looks

from rollouts.sandbox.prometheus import PrometheusServer

T0 = int(datetime(2025, 6, 1, tzinfo=UTC).timestamp())
BOUNDS_MS = (10, 20, 30, 40, 50, 60, 75, 100, 125, 150, 200, 250, 300, 400, 500, 750, 1000,
             2000)  # fmt: skip
MEDIAN_MS, SIGMA = 50.0, 0.5
CANARY_RPS, STABLE_RPS = 20.0, 80.0


@dataclass(frozen=True)
class Setup:
    """The looks of the error-rate metric (and its pass margin) and the series drawn for
    them."""

    interval: int = 60  # seconds between looks (the metric's interval and query window)
    horizon: int = 10  # minutes: count = horizon * 60 / interval looks
    scrape: int = 30  # seconds between scrapes of the drawn series
    query_offset: int = 0  # seconds the looks lie after the scrapes' grid
    # How a look counts: "increase" (increase() over the look, which extrapolates when the
    # window's first and last scrapes do not span it) or "difference" (every counter now
    # minus a look ago, a reset counting 0: what the scrapes saw, nothing extrapolated)
    looks_query: str = "difference"  # the catalog's
    # The metric's compare.passMargin.relative (margin_option.OFF: the last-look rule off);
    # None: the catalog's (the product's default)
    pass_margin: float | None = None
    # The metric's compare.extraMeasurements; None: the product's default (5 x count)
    extra_looks: int | None = None

    def __post_init__(self) -> None:
        # increase() needs two scrapes in its window; a difference one scrape a look.
        scrapes = 2 if self.looks_query == "increase" else 1
        if 60 % self.scrape or self.interval < scrapes * self.scrape:
            raise ValueError(f"the scrape must divide a minute, and a look span {scrapes} "
                             "scrape(s)")  # fmt: skip
        if (self.horizon * 60) % self.interval or not 0 <= self.query_offset < self.scrape:
            raise ValueError("the horizon must be whole looks, the offset under a scrape")

    @property
    def count(self) -> int:
        return self.horizon * 60 // self.interval

    @property
    def minutes(self) -> int:
        """Minutes drawn: the horizon, the extra looks, one minute to spare; at least 14."""
        extra = math.ceil(extra_looks(self.extra_looks, self.count) * self.interval / 60)
        return max(14, self.horizon + extra + 1)

    @property
    def looks(self) -> int:
        return self.minutes * 60 // self.interval - 1


@dataclass(frozen=True)
class Case:
    name: str
    bad: bool
    base_rate: float = 0.01
    error_ratio: float = 1.0
    latency_scale: float = 1.0
    canary_sigma: float = SIGMA
    canary_rps: float = CANARY_RPS
    stable_rps: float = STABLE_RPS
    noisy: bool = False  # per-minute gamma noise on the canary's error rate and latency


CASES = (
    Case("good, 0.1% errors", False, 0.001),
    Case("good, 1% errors", False, 0.01),
    Case("errors 1.5x, 0.1%", True, 0.001, 1.5),
    Case("errors 2x, 0.1%", True, 0.001, 2.0),
    Case("errors 10x, 0.1%", True, 0.001, 10.0),
    Case("errors 1.5x, 1%", True, 0.01, 1.5),
    Case("errors 2x, 1%", True, 0.01, 2.0),
    Case("errors 10x, 1%", True, 0.01, 10.0),
    Case("latency +10%", True, latency_scale=1.1),
    Case("latency +50%", True, latency_scale=1.5),
    Case("latency variance x1.6", True, canary_sigma=SIGMA * 1.6),
    Case("good, low traffic 1 rps", False, 0.01, canary_rps=1.0, stable_rps=4.0),
    Case("errors 10x, low traffic 1 rps", True, 0.01, 10.0, canary_rps=1.0, stable_rps=4.0),
    Case("good but noisy canary", False, 0.01, noisy=True),
    Case("errors 2x, noisy canary", True, 0.01, 2.0, noisy=True),
    Case("errors 10x, noisy canary", True, 0.01, 10.0, noisy=True),
)


# ---------------------------------------------------------------------------------------------
# Releases: draw, render, load


def _bucket_shares(scale: np.ndarray, sigma: float) -> np.ndarray:
    """P(latency <= bound) differences per bucket (last: above the largest bound)."""
    from scipy.stats import norm

    logs = np.log(np.array(BOUNDS_MS, dtype=float))
    mu = np.log(MEDIAN_MS * scale)[..., None]
    cdf = norm.cdf((logs - mu) / sigma)
    edge = (*cdf.shape[:-1], 1)
    return np.diff(np.concatenate([np.zeros(edge), cdf, np.ones(edge)], axis=-1), axis=-1)


def _side(
    rng: np.random.Generator, case: Case, canary: bool, seeds: int, setup: Setup
) -> dict[str, np.ndarray]:
    """Per-scrape increments for `seeds` releases: requests, errors, latency bucket counts."""
    scrape, minutes = setup.scrape, setup.minutes
    scrapes = minutes * 60 // scrape
    rps = case.canary_rps if canary else case.stable_rps
    rate = np.full((seeds, scrapes), case.base_rate * (case.error_ratio if canary else 1.0))
    scale = np.full((seeds, scrapes), case.latency_scale if canary else 1.0)
    if canary and case.noisy:
        per_minute = (seeds, minutes)
        noise = np.repeat(rng.gamma(2.0, 0.5, per_minute), 60 // scrape, axis=1)
        rate = rate * noise
        scale = scale * np.repeat(rng.lognormal(0.0, 0.1, per_minute), 60 // scrape, axis=1)
    requests = rng.poisson(rps * scrape, (seeds, scrapes))
    errors = rng.binomial(requests, np.minimum(rate, 1.0))
    shares = _bucket_shares(scale, case.canary_sigma if canary else SIGMA)
    buckets = rng.multinomial(requests, shares)
    return {"requests": requests, "errors": errors, "buckets": buckets}


def _counter_lines(selector: str, increments: np.ndarray, scrape: int) -> Iterable[str]:
    values = np.concatenate([[0], np.cumsum(increments)])
    for i, value in enumerate(values):
        yield f"{selector} {int(value)} {T0 + i * scrape}"


def render_case(index: int, case: Case, seeds: int, seed: int, setup: Setup = Setup()) -> str:
    rng = np.random.default_rng([seed, index])
    lines: list[str] = []
    buckets: list[str] = []
    scrape = setup.scrape
    for role in ("canary", "stable"):
        side = _side(rng, case, role == "canary", seeds, setup)
        for s in range(seeds):
            labels = f'case="{index}",role="{role}",seed="{s}"'
            ok = side["requests"][s] - side["errors"][s]
            lines += _counter_lines(f'http_requests_total{{code="200",{labels}}}', ok, scrape)
            lines += _counter_lines(f'http_requests_total{{code="500",{labels}}}',
                                    side["errors"][s], scrape)  # fmt: skip
            cumulative = np.cumsum(side["buckets"][s], axis=-1)
            for b, bound in enumerate((*BOUNDS_MS, math.inf)):
                le = "+Inf" if math.isinf(bound) else f"{bound / 1000:g}"
                name = f'http_request_duration_seconds_bucket{{{labels},le="{le}"}}'
                buckets += _counter_lines(name, cumulative[:, b], scrape)
    return "\n".join(lines + buckets) + "\n# EOF\n"


# ---------------------------------------------------------------------------------------------
# What Prometheus says: one range query per case and quantity


@dataclass
class Observed:
    """Per (seed, role): values at steps 1..points (NaN where Prometheus had none)."""

    points: int
    values: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def get(self, seed: int, role: str) -> np.ndarray:
        return self.values.get((str(seed), role), np.full(self.points, math.nan))


def range_query(
    prom: PrometheusServer, query: str, points: int, step: int = 60, offset: int = 0
) -> Observed:
    """`query` at T0 + offset + k * step for k = 1..points."""
    import httpx

    start, end = T0 + offset + step, T0 + offset + step * points
    params = {"query": query, "start": str(start), "end": str(end), "step": str(step)}
    body = httpx.get(f"{prom.url}/api/v1/query_range", params=params, timeout=120).json()
    if body.get("status") != "success":
        raise RuntimeError(f"{query}: {body}")
    observed = Observed(points)
    for series in body["data"]["result"]:
        row = np.full(points, math.nan)
        for ts, value in series["values"]:
            row[round((float(ts) - T0 - offset) / step) - 1] = float(value)
        labels = series["metric"]
        observed.values[(labels.get("seed", ""), labels.get("role", "canary"))] = row
    return observed


def observe(prom: PrometheusServer, index: int, setup: Setup = Setup()) -> dict[str, Observed]:
    """Per minute (the threshold and Kayenta-style judges, latency) and per look of the
    error-rate metric (`looks_errors`, `looks_requests`: increase over the look)."""
    c = f'case="{index}"'
    by = "sum by (seed, role)"
    p99 = "1000 * histogram_quantile(0.99, sum by (seed, role, le) (rate("
    minutes, offset = setup.minutes, setup.query_offset

    def per_minute(query: str) -> Observed:
        return range_query(prom, query, minutes, 60, offset)

    def per_look(query: str) -> Observed:
        return range_query(prom, query, setup.looks, setup.interval, offset)

    def increase(extra: str, window: int) -> str:
        if window == setup.interval and setup.looks_query == "difference":
            selector = f"http_requests_total{{{c}{extra}}}"
            return f"{by} (clamp_min({selector} - {selector} offset {window}s, 0))"
        return f"{by} (increase(http_requests_total{{{c}{extra}}}[{window}s]))"

    errors = ',code=~"5.."'
    return {
        "errors": per_minute(increase(errors, 60)),
        "requests": per_minute(increase("", 60)),
        "looks_errors": per_look(increase(errors, setup.interval)),
        "looks_requests": per_look(increase("", setup.interval)),
        "success5m": per_minute(f'{by} (rate(http_requests_total{{{c},code!~"5.."}}[5m]))'
                                f" / {by} (rate(http_requests_total{{{c}}}[5m]))"),
        "p99_5m": per_minute(f"{p99}http_request_duration_seconds_bucket{{{c}}}[5m])))"),
        "p99_1m": per_minute(f"{p99}http_request_duration_seconds_bucket{{{c}}}[1m])))"),
    }  # fmt: skip
