"""What the statistical judges share: the tolerance, the evidence record, formatting (pure).

The judges compare a canary with its baseline and return an `Evidence` record that says what
was compared, what was estimated and why the decision was taken:

* `rank_tests.mann_whitney` — a fixed-horizon, rank-based comparison of two samples
  (latency, CPU, any sample whose distribution is unknown and outliers are common).
* `sequential.sequential_counts` — an anytime-valid comparison of error counts (errors out
  of requests), which may be looked at after every interval without inflating false
  alarms; `consistency` is its second opinion against per-look swings of the error rate.

Neither test ever passes or fails on too little data: below `min_samples` per side the
decision is `inconclusive` (the metric layer decides whether to wait for more).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from rollouts.analysis.sequential import SequentialState

__all__ = [
    "Decision",
    "Direction",
    "Evidence",
    "FloatArray",
    "Samples",
    "Tolerance",
    "check_confidence",
    "finite_values",
    "format_interval",
    "format_number",
]

Direction = Literal["increase", "decrease", "either"]
Decision = Literal["pass", "fail", "inconclusive", "continue"]

FloatArray = npt.NDArray[np.float64]
# What the tests accept: any sequence of numbers or a numpy array.
Samples = Sequence[float] | FloatArray


@dataclass(frozen=True, slots=True)
class Tolerance:
    """The change allowed before a canary counts as worse: `relative` (0.1 = 10% of the
    baseline) or `absolute` (in the metric's unit). Zero means any change counts."""

    relative: float | None = None
    absolute: float | None = None

    def __post_init__(self) -> None:
        if (self.relative is None) == (self.absolute is None):
            raise ValueError("a tolerance is either relative or absolute")
        value = self.relative if self.relative is not None else self.absolute
        if value is None or not math.isfinite(value) or value < 0:
            raise ValueError("a tolerance must be a finite number >= 0")

    def describe(self) -> str:
        if self.relative is not None:
            return f"{self.relative:.0%}" if self.relative >= 0.01 else f"{self.relative:g}x"
        return f"{self.absolute:g}"


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why a comparison decided what it decided; stored with every measurement.

    `canary` / `baseline` count samples (Mann-Whitney) or requests (sequential counts);
    `canary_errors` / `baseline_errors` are the error counts of the sequential test.
    `effect` is the Hodges-Lehmann shift (canary - baseline, in the metric's unit) or the
    estimated ratio of error rates (canary / baseline); `interval` its confidence interval
    (a confidence sequence for the sequential test). `p_value` for Mann-Whitney, `e_value`
    (the larger of the decision e-values) for the sequential test.
    """

    test: Literal["mannWhitney", "sequentialCounts"]
    decision: Decision
    reason: str
    canary: float
    baseline: float
    confidence: float
    statistic: float | None = None
    effect: float | None = None
    interval: tuple[float, float] | None = None
    p_value: float | None = None
    e_value: float | None = None
    canary_errors: float | None = None
    baseline_errors: float | None = None
    looks: int = 1
    state: SequentialState | None = None

    def has_min_samples(self, min_samples: int) -> bool:
        """Both sides have at least `min_samples` (at least 1) samples or requests: below,
        neither test decides, and the metric waits the short extension."""
        return min(self.canary, self.baseline) >= max(1, min_samples)



def finite_values(values: Samples) -> FloatArray:
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]



def format_number(value: float) -> str:
    return f"{value:.4g}"


def format_interval(interval: tuple[float, float]) -> str:
    return f"[{format_number(interval[0])}, {format_number(interval[1])}]"



def check_confidence(confidence: float) -> None:
    if not 0.5 <= confidence < 1.0:
        raise ValueError("confidence must be in [0.5, 1)")
