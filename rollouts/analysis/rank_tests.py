"""Rank tests for samples: Mann-Whitney U and the Hodges-Lehmann shift (pure).

`mann_whitney` is a fixed-horizon, rank-based comparison of two samples (latency, CPU, any
sample where the distribution is unknown and outliers are common): Mann-Whitney U with the
tie-corrected normal approximation and continuity correction (what
`scipy.stats.mannwhitneyu(method="asymptotic", use_continuity=True)` computes), and the
Hodges-Lehmann shift (median of all pairwise differences) with its distribution-free
confidence interval (Moses' method, normal approximation for the order statistic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Final, Literal

import numpy as np

from rollouts.analysis.statistics import (
    Direction,
    Evidence,
    FloatArray,
    Samples,
    Tolerance,
    check_confidence,
    finite_values,
    format_interval,
    format_number,
)

__all__ = ["Alternative", "MannWhitneyResult", "hodges_lehmann", "mann_whitney", "mann_whitney_u"]

Alternative = Literal["greater", "less", "two-sided"]

_NORMAL: Final = NormalDist()


def _rank(values: FloatArray) -> FloatArray:
    """Ranks 1..n with ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    # Start index of each run of equal values, and the average rank of that run.
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    average = (starts + ends + 1) / 2.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


@dataclass(frozen=True, slots=True)
class MannWhitneyResult:
    u: float  # U of the first sample: pairs (x, y) with x > y, ties counting one half
    z: float
    p_value: float


def mann_whitney_u(
    x: Samples, y: Samples, alternative: Alternative = "two-sided"
) -> MannWhitneyResult:
    """Mann-Whitney U test of x against y, normal approximation with tie and continuity
    corrections. `greater`: x tends to be larger than y.

    Worked example: x = [3, 4], y = [1, 2, 3]: ranks of the pooled [3,4,1,2,3] are
    [3.5, 5, 1, 2, 3.5], R1 = 8.5, U1 = 8.5 - 3 = 5.5 of n1*n2 = 6 pairs.
    """
    xs, ys = finite_values(x), finite_values(y)
    n1, n2 = len(xs), len(ys)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one finite value")
    pooled = np.concatenate([xs, ys])
    ranks = _rank(pooled)
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2.0)
    u2 = n1 * n2 - u1
    n = n1 + n2
    _, counts = np.unique(pooled, return_counts=True)
    ties = float((counts.astype(np.float64) ** 3 - counts).sum())
    variance = n1 * n2 / 12.0 * ((n + 1) - (ties / (n * (n - 1)) if n > 1 else 0.0))
    mean = n1 * n2 / 2.0
    if alternative == "greater":
        u, sides = u1, 1.0
    elif alternative == "less":
        u, sides = u2, 1.0
    else:
        u, sides = max(u1, u2), 2.0
    if variance <= 0:  # every value equal: no evidence either way
        return MannWhitneyResult(u1, 0.0, 1.0)
    z = (u - mean - 0.5) / math.sqrt(variance)
    p = min(1.0, max(0.0, sides * (1.0 - _NORMAL.cdf(z))))
    return MannWhitneyResult(u1, z, p)


def hodges_lehmann(
    x: Samples, y: Samples, confidence: float = 0.95
) -> tuple[float, tuple[float, float]]:
    """The Hodges-Lehmann shift of x over y (median of all x_i - y_j) and its two-sided
    confidence interval: the C-th smallest and largest pairwise differences, where
    C = n1*n2/2 - z * sqrt(n1*n2*(n1+n2+1)/12). Too few samples for the confidence asked
    give an infinite interval.

    Worked example: x = [5, 6], y = [1, 2]: differences [4, 3, 5, 4], shift 4.
    """
    xs, ys = finite_values(x), finite_values(y)
    n1, n2 = len(xs), len(ys)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one finite value")
    differences = np.sort(np.subtract.outer(xs, ys).ravel())
    shift = float(np.median(differences))
    z = _NORMAL.inv_cdf(0.5 + confidence / 2.0)
    c = math.floor(n1 * n2 / 2.0 - z * math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12.0))
    if c < 1:
        return shift, (-math.inf, math.inf)
    return shift, (float(differences[c - 1]), float(differences[len(differences) - c]))


def _allowed_shift(tolerance: Tolerance, baseline: FloatArray) -> float:
    if tolerance.absolute is not None:
        return tolerance.absolute
    assert tolerance.relative is not None
    return tolerance.relative * abs(float(np.median(baseline)))



def mann_whitney(
    canary: Samples,
    baseline: Samples,
    *,
    direction: Direction = "increase",
    tolerance: Tolerance | None = None,
    confidence: float = 0.95,
    min_samples: int = 10,
) -> Evidence:
    """Judge canary samples against baseline samples (fixed horizon).

    `direction` says which change is bad. Fails when the canary is shifted the bad way by
    more than the tolerance, with significance `1 - confidence` (split in two for
    `either`); otherwise passes, with the shift and its interval in the evidence.
    Fewer than `min_samples` finite values on a side: inconclusive.
    """
    check_confidence(confidence)
    tolerance = tolerance or Tolerance(absolute=0.0)
    xs, ys = finite_values(canary), finite_values(baseline)
    base = Evidence(
        test="mannWhitney",
        decision="inconclusive",
        reason="",
        canary=float(len(xs)),
        baseline=float(len(ys)),
        confidence=confidence,
    )
    if not base.has_min_samples(min_samples):
        return replace(
            base,
            reason=f"too few samples: canary {len(xs)}, baseline {len(ys)} "
            f"(minSamples {min_samples})",
        )
    allowed = _allowed_shift(tolerance, ys)
    shift, interval = hodges_lehmann(xs, ys, confidence)
    alpha = 1.0 - confidence
    tests: list[tuple[str, MannWhitneyResult, float]] = []
    if direction in ("increase", "either"):
        tests.append(("higher", mann_whitney_u(xs - allowed, ys, "greater"), allowed))
    if direction in ("decrease", "either"):
        tests.append(("lower", mann_whitney_u(xs + allowed, ys, "less"), -allowed))
    level = alpha / len(tests)
    worst_word, worst, bound = min(tests, key=lambda t: t[1].p_value)
    evidence = replace(
        base,
        statistic=worst.u,
        effect=shift,
        interval=interval,
        p_value=min(1.0, worst.p_value * len(tests)),
    )
    described = f"shift {format_number(shift)} {format_interval(interval)}"
    if worst.p_value < level:
        return replace(
            evidence,
            decision="fail",
            reason=f"canary {worst_word} than baseline beyond tolerance {format_number(bound)}: "
            f"{described}, p={worst.p_value * len(tests):.2g}",
        )
    return replace(
        evidence,
        decision="pass",
        reason=f"no shift beyond tolerance {format_number(allowed)}: {described}, "
        f"p={min(1.0, worst.p_value * len(tests)):.2g}",
    )
