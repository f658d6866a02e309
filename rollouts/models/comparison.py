"""`metrics[].compare` (spec) and `measurements[].evidence` (status): canary versus baseline.

Our extension to Argo's metric (Argo has no statistical comparison outside Kayenta). A metric
with `compare` runs its Prometheus query twice, once with `{{role}}` replaced by
`compare.canary` and once by `compare.baseline` (typically pod-template-hashes passed as
arguments with `valueFrom.podTemplateHashValue`), and judges the two answers with a test
instead of `successCondition` / `failureCondition`. See docs/analysis.md.

Defaults are documented on the fields and applied by the `effective_*` accessors, so the
manifest a user wrote round-trips unchanged.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field, model_validator

from rollouts.models.base import MAX_INT32, ApiModel, StatusModel

CompareTest = Literal["mannWhitney", "sequentialCounts"]
CompareDirection = Literal["increase", "decrease", "either"]
CompareDecision = Literal["pass", "fail", "inconclusive", "continue"]

ROLE_PLACEHOLDER: Final = "{{role}}"
INTERVAL_PLACEHOLDER: Final = "{{interval}}"
DEFAULT_CONFIDENCE: Final = 0.95
DEFAULT_RELATIVE_TOLERANCE: Final = 0.1
DEFAULT_MIN_SAMPLES: Final = {"mannWhitney": 10, "sequentialCounts": 100}
DEFAULT_EXTRA_MEASUREMENTS: Final = 3
# sequentialCounts: a last look that cannot rule out passMargin keeps looking, by default
# up to this many times `count` more (2x at 0.1% errors and 20 req/s needs about 90 looks).
COUNTS_EXTRA_PER_LOOK: Final = 5
DEFAULT_PASS_MARGIN: Final = 1.0


def default_extra_measurements(test: CompareTest, count: int | None, *, traffic: bool) -> int:
    """`extraMeasurements` when unset: 5 x `count` for sequentialCounts once both sides have
    minSamples (`traffic`), else 3."""
    if test == "sequentialCounts" and count is not None and traffic:
        return COUNTS_EXTRA_PER_LOOK * count
    return DEFAULT_EXTRA_MEASUREMENTS


class CompareTolerance(ApiModel):
    """How much worse the canary may be: `relative` to the baseline (0.1 = 10%) or
    `absolute` in the metric's unit (mannWhitney only)."""

    relative: float | None = Field(default=None, ge=0)
    absolute: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _exactly_one(self) -> CompareTolerance:
        if (self.relative is None) == (self.absolute is None):
            raise ValueError("tolerance needs exactly one of relative, absolute")
        return self


class Compare(ApiModel):
    """Judge the canary against a baseline with a statistical test."""

    test: CompareTest = Field(
        description="mannWhitney: samples (latency...); sequentialCounts: errors out of requests"
    )
    canary: str = Field(min_length=1, description="what {{role}} becomes in the canary's queries")
    baseline: str = Field(
        min_length=1, description="what {{role}} becomes in the baseline's queries"
    )
    total_query: str | None = Field(
        default=None,
        description="sequentialCounts: the requests query (provider.prometheus.query counts "
        "the errors); both use {{role}} and usually [{{interval}}]",
    )
    direction: CompareDirection | None = Field(
        default=None, description="which change is bad: increase (default), decrease, either"
    )
    tolerance: CompareTolerance | None = Field(
        default=None, description="allowed change before failing; default relative 0.1"
    )
    confidence: float | None = Field(
        default=None, ge=0.5, lt=1.0, description="default 0.95 (alpha 0.05)"
    )
    min_samples: int | None = Field(
        default=None,
        ge=1,
        le=MAX_INT32,
        description="fewer per side is inconclusive: samples (mannWhitney, default 10) or "
        "requests (sequentialCounts, default 100)",
    )
    extra_measurements: int | None = Field(
        default=None,
        ge=0,
        le=MAX_INT32,
        description="measurements added after count while the metric is inconclusive: too "
        "little traffic, or (sequentialCounts) passMargin not ruled out (default 3; "
        "sequentialCounts with minSamples on both sides: 5 x count)",
    )
    pass_margin: CompareTolerance | None = Field(
        default=None,
        description="sequentialCounts: the regression the last look (or an extra one) must "
        "rule out to pass a canary that made errors (default relative 1.0: twice the "
        "baseline's error rate); not ruled out: inconclusive",
    )

    @model_validator(mode="after")
    def _fits_the_test(self) -> Compare:
        if self.test == "sequentialCounts":
            if not self.total_query:
                raise ValueError("compare.test sequentialCounts needs compare.totalQuery")
            if ROLE_PLACEHOLDER not in self.total_query:
                raise ValueError(f"compare.totalQuery must contain {ROLE_PLACEHOLDER}")
            if self.tolerance is not None and self.tolerance.absolute is not None:
                raise ValueError(
                    "compare.tolerance.absolute is not supported by sequentialCounts "
                    "(it bounds the ratio of error rates): use relative"
                )
            margin = self.pass_margin
            if margin is not None and (margin.absolute is not None or not margin.relative):
                raise ValueError(
                    "compare.passMargin must be relative and above 0 (1.0: twice the "
                    "baseline's error rate)"
                )
        elif self.total_query is not None:
            raise ValueError("compare.totalQuery is only for test sequentialCounts")
        elif self.pass_margin is not None:
            raise ValueError("compare.passMargin is only for test sequentialCounts")
        return self

    def effective_direction(self) -> CompareDirection:
        return self.direction or "increase"

    def effective_confidence(self) -> float:
        return DEFAULT_CONFIDENCE if self.confidence is None else self.confidence

    def effective_min_samples(self) -> int:
        return DEFAULT_MIN_SAMPLES[self.test] if self.min_samples is None else self.min_samples

    def effective_extra_measurements(self, count: int | None, *, traffic: bool = True) -> int:
        """Measurements added after `count` (the metric's) while inconclusive. `traffic`:
        both sides have minSamples; without it the short default holds for counts too, so
        that a canary no request reaches pauses the rollout soon rather than after five
        horizons."""
        if self.extra_measurements is not None:
            return self.extra_measurements
        return default_extra_measurements(self.test, count, traffic=traffic)

    def effective_pass_margin(self) -> float:
        """The relative pass margin of sequentialCounts (1.0: a ratio of 2)."""
        margin = self.pass_margin.relative if self.pass_margin is not None else None
        return DEFAULT_PASS_MARGIN if margin is None else margin

    def effective_tolerance(self) -> CompareTolerance:
        return self.tolerance or CompareTolerance(relative=DEFAULT_RELATIVE_TOLERANCE)


class Evidence(StatusModel):
    """Why a comparison measurement decided what it did (one per measurement).

    `canary` / `baseline`: samples (mannWhitney) or requests (sequentialCounts) per side;
    `canaryErrors` / `baselineErrors`: error counts (sequentialCounts). `effect`: the
    Hodges-Lehmann shift (canary - baseline) or the ratio of error rates (canary /
    baseline); `intervalLow` / `intervalHigh` its confidence interval (unset: unbounded).
    `state` carries the sequential test from one measurement to the next.
    """

    test: CompareTest
    decision: CompareDecision
    reason: str
    canary: float
    baseline: float
    canary_errors: float | None = None
    baseline_errors: float | None = None
    statistic: float | None = None
    effect: float | None = None
    interval_low: float | None = None
    interval_high: float | None = None
    confidence: float
    p_value: float | None = None
    e_value: float | None = None
    looks: int | None = None
    state: str | None = None
