"""The last look's pass: a large regression ruled out, not only none shown (pure).

The count test (`sequential`) fails a canary as soon as its error rate is shown beyond the
tolerance, and passes it early once the rate ratio is bounded inside the tolerance. A run
that ends with neither has shown no regression, which is not the same as having ruled one
out: after 15 minutes at one request a second, a 1% error rate is 9 errors a side, and a
canary at 2x (18 errors against 9) shows nothing either way; a canary whose error rate
swings by +-70% a minute leaves a 2x as unproven after 15 minutes as a 1x. Passing such a
run promotes whatever it could not see.

So the last look passes only when the data rule out a regression of the **pass margin**
(`compare.passMargin`, default 2x the baseline's error rate), or when the canary's error
rate came out no worse than the baseline's (`sequential` asks only about the side the
estimate leans to): a one-sided profile likelihood-ratio test of "the ratio is at or
beyond the margin", on the count log-likelihood divided by the dispersion factor phi
(quasi-likelihood, as everywhere in the test): rejected when 2 * (the largest
log-likelihood inside the margin - the one at the margin) reaches z^2, z the normal
quantile at the metric's confidence (1.645 at 95%), and the best-fitting ratio is inside.
Otherwise the run is inconclusive: the metric looks `extraMeasurements` more times (which
may still fail it or rule the margin out), then the rollout pauses. A canary that looked
no worse is not held: with no errors on either side nothing can be ruled out, and holding
every release of a service that makes no errors would make the rule useless there; under a
true 2x at a few errors a side, the canary comes out no worse only rarely (bench/judge.py
draws, 2x at 9 errors a side: 6.2% promoted, against 5.1% when every such look is held).

This test is fixed-horizon: it is asked at the last look and at the few extra ones only,
not at every look, and it never fails anything. Between the tolerance and the margin lies
what a run of this length cannot tell apart; a margin beyond the test's grid (256x)
turns the rule off (every run that shows no regression passes at the last look).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from rollouts.analysis.statistics import FloatArray

__all__ = ["margin_statistic", "rules_out"]


def margin_statistic(log_likelihood: FloatArray, grid: FloatArray, margin: float) -> float:
    """The likelihood-ratio statistic against 'the ratio is at or beyond `margin`'.

    `grid` holds log rate ratios (ascending), `log_likelihood` the (quasi-)log-likelihood of
    each. `margin` > 1 is an increase (the ratio at or above it), < 1 a decrease (at or
    below it). The margin's grid point is the nearest one on the acceptable side of it
    (conservative: the statistic at that point is at most the one at the margin). 0 when
    the best-fitting ratio is at or beyond the margin; inf when the margin lies beyond the
    grid's end (nothing there to rule out)."""
    if margin <= 0 or not math.isfinite(margin) or margin == 1.0:
        raise ValueError(f"a pass margin is a ratio other than 1, got {margin}")
    target = math.log(margin)
    upward = margin > 1.0
    if (upward and target > grid[-1]) or (not upward and target < grid[0]):
        return math.inf
    if upward:
        index = int(np.searchsorted(grid, target + 1e-12, side="left")) - 1
        inside = log_likelihood[: index + 1]
    else:
        index = int(np.searchsorted(grid, target - 1e-12, side="left"))
        inside = log_likelihood[index:]
    best = int(np.argmax(log_likelihood))
    if (upward and best >= index) or (not upward and best <= index):
        return 0.0
    return float(2.0 * (np.max(inside) - log_likelihood[index]))


def rules_out(
    log_likelihood: FloatArray, grid: FloatArray, margin: float, confidence: float
) -> bool:
    """Whether the data rule out a ratio at or beyond `margin` at `confidence` (one-sided)."""
    z = NormalDist().inv_cdf(confidence)
    return margin_statistic(log_likelihood, grid, margin) >= z * z
