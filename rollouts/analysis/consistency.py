"""The second opinion of the sequential count test: is the canary's excess consistent? (pure)

The count test (`sequential.sequential_counts`) reads errors as Poisson given the traffic. A
canary whose error rate swings from look to look (a flaky dependency, a noisy neighbour,
mean unchanged) has more variance than that, and one bad minute can push the count e-value
over 1/alpha. So a failure also needs one of two checks that do not assume Poisson counts
to agree; the test fails only on the intersection of the rejections, so the count test's
anytime bound under Poisson counts still holds (the rejection set only shrinks):

* **swing-robust e-value** (`swing_log_likelihood`): the same mixture e-value, but with the
  canary's rate in every look multiplied by an unknown swing G (log G normal, mean 0,
  standard deviation `SWING_SIGMA` = 0.55: one look in three is off by more than a factor
  1.7 either way; a symmetric law in log G, so swapping the sides mirrors the test). A 10x
  regression is far beyond any swing and fails at the first look; a 2x one is not, and
  needs the second check.
* **sign test over looks** (`sign_e_value`): each look with errors is "above" when its split
  of errors puts the canary beyond the tolerance (more canary errors than the median of
  the binomial split at the tolerance's ratio; the median is within ln 2 of the mean).
  Under a canary whose per-look rate is not above the tolerance more often than not —
  Poisson counts at the tolerance, or any swings whose median is at most their mean — a
  look is above with probability at most 1/2, so the mixture over q in [1/2, 1) of
  prod (2q)^above (2(1-q))^not-above is an e-process (Ville). It must reach
  `CONSISTENT_LOOKS_E` (4: four looks with errors out of four above, six of seven, eight of
  ten): a regression that holds shows in most looks, one bad minute does not.

Looks without errors on either side tell nothing about the split and count for neither.

Both checks **restart** (`restarted`), so that a regression which begins partway through a
run is not diluted by the good looks before it: each keeps its log product per alternative
(a rate ratio beyond the bound for the swing check, a bet q for the sign test) since its
last start, and starts afresh when the mixture over the alternatives goes below 1 (a start
after this look is then more favourable than any before it; CUSUM on the mixture). Picking
the best of many starts lets more chance runs through, so the restarted sign test needs
`RESTARTED_LOOKS_E` (12: six looks beyond in a row), while the sign test over the whole
run keeps `CONSISTENT_LOOKS_E`; the swing check keeps 1/alpha (one look decides it for
a 10x). None of this is the bound: a failure still needs the count e-value at 1/alpha, so
the rejection set stays inside the count test's and its anytime bound under Poisson counts
holds. The thresholds are set on bench/judge_prometheus.py's noisy-but-good canary.

Since round 5 the count e-value is that of the quasi-likelihood (divided by the estimated
dispersion, `dispersion`), and from `ESTIMATED_FROM_WINDOWS` windows it may fail without
these checks (`SideCheck.fails`); a Poisson count e-value at 1/alpha that the dispersion
explains away holds the last look (`SideCheck.held`): phi never turns into a pass what
the plain count test would not pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from rollouts.analysis.dispersion import ESTIMATED_FROM_WINDOWS

__all__ = [
    "CONSISTENT_LOOKS_E",
    "RESTARTED_LOOKS_E",
    "SWING_SIGMA",
    "SideCheck",
    "excess_errors",
    "look_side",
    "mixture_e",
    "restarted",
    "sign_e_value",
    "sign_steps",
    "swing_alternatives",
    "swing_log_likelihood",
]

FloatArray = npt.NDArray[np.float64]

# Chosen on bench/judge_prometheus.py's cases (docs/benchmarks.md): a smaller sigma or
# threshold lets more one-minute spikes through, a larger one slows the 10x (sigma) and 2x
# (threshold) regressions.
SWING_SIGMA: Final = 0.55
CONSISTENT_LOOKS_E: Final = 4.0
# The sign test since its most favourable start needs more: it has had many starts to pick
# from. 12 (six looks beyond in a row) keeps the noisy-but-good canary's false rollbacks
# where the whole-run test alone had them (docs/benchmarks.md).
RESTARTED_LOOKS_E: Final = 12.0
_SWING_NODES: Final = 81
_LN2: Final = math.log(2.0)
# The sign test's bets q (probability that a look is above, under the alternative).
_BETS: Final = tuple(0.5 + 0.01 * (i + 0.5) for i in range(50))


def swing_alternatives(
    grid: FloatArray, bound: int, upward: bool, span: float
) -> npt.NDArray[np.intp]:
    """Indices of the grid points the swing check mixes over on one side: beyond the bound
    (above it when `upward`, else below), within `span` in log(rate ratio)."""
    distance = (grid - grid[bound]) * (1.0 if upward else -1.0)
    chosen: npt.NDArray[np.intp] = np.flatnonzero((distance > 0) & (distance <= span + 1e-9))
    return chosen


def sign_steps(beyond: bool) -> FloatArray:
    """The log factor of one look with errors for every bet q: log 2q when the look was
    beyond the bound, log 2(1-q) when it was not."""
    bets = np.asarray(_BETS)
    steps: FloatArray = np.log(2.0 * bets) if beyond else np.log(2.0 * (1.0 - bets))
    return steps


def restarted(log_wealth: tuple[float, ...], steps: FloatArray) -> tuple[float, ...]:
    """Fold one look's log factors into the per-alternative log products, and start afresh
    (all zeros) when their mixture (`mixture_e`) has gone below 1: a start after this look
    is then more favourable than any before it. An empty `log_wealth` is all zeros."""
    previous = np.asarray(log_wealth, dtype=np.float64) if log_wealth else np.zeros(len(steps))
    if len(previous) != len(steps):
        raise ValueError("the state was built for another tolerance")
    wealth = tuple(float(v) for v in previous + steps)
    return wealth if mixture_e(wealth) >= 1.0 else tuple(0.0 for _ in wealth)


def mixture_e(log_wealth: tuple[float, ...]) -> float:
    """The mean over the alternatives of exp(log wealth); 1 with nothing seen yet."""
    if not log_wealth:
        return 1.0
    logs = np.asarray(log_wealth, dtype=np.float64)
    return math.exp(min(float(np.logaddexp.reduce(logs)) - math.log(len(logs)), 700.0))


def _swing_nodes() -> tuple[FloatArray, FloatArray]:
    """log G nodes and log weights of the swing: log G normal with mean 0 and standard
    deviation `SWING_SIGMA`, on an even grid of +-5 sigma (a symmetric law in log G, so that
    swapping canary and baseline mirrors the test)."""
    logs = np.linspace(-5.0 * SWING_SIGMA, 5.0 * SWING_SIGMA, _SWING_NODES)
    log_weights = -0.5 * (logs / SWING_SIGMA) ** 2
    return logs, log_weights - np.logaddexp.reduce(log_weights)


def swing_log_likelihood(
    log_ratios: FloatArray,
    canary_errors: float,
    canary_requests: float,
    baseline_errors: float,
    baseline_requests: float,
) -> FloatArray:
    """The log-likelihood of one look's split of errors for every log(rate ratio) in
    `log_ratios`, when the canary's rate in this look is the ratio times a swing G: the
    binomial split at share rho*G*nc / (rho*G*nc + nb), averaged over G. Zeros (no
    evidence) when either side had no requests or neither had errors."""
    if canary_requests <= 0 or baseline_requests <= 0 or canary_errors + baseline_errors <= 0:
        return np.zeros(len(log_ratios))
    logs, log_weights = _swing_nodes()
    # log of the canary's odds of an error being its own: log(rho * G * nc / nb)
    odds = log_ratios[:, np.newaxis] + logs[np.newaxis, :] + math.log(
        canary_requests / baseline_requests
    )
    log_share, log_other = -np.logaddexp(0.0, -odds), -np.logaddexp(0.0, odds)
    terms = canary_errors * log_share + baseline_errors * log_other + log_weights
    result: FloatArray = np.logaddexp.reduce(terms, axis=1)
    return result


def excess_errors(
    canary_errors: float,
    canary_requests: float,
    baseline_errors: float,
    baseline_requests: float,
    log_ratio: float,
) -> float:
    """How many more of the look's errors the canary had than its expected share at rate
    ratio exp(log_ratio): errors * rho*nc / (rho*nc + nb). The binomial median is within
    ln 2 of that share, so when exp(log_ratio) is the true ratio, at most half of the looks
    have an excess above ln 2, at most half below -ln 2 (`look_side`).

    Worked example: 12 and 48 errors out of 1200 and 4800 requests, ratio 1.2: the canary's
    share is 1440 / 6240 = 0.2308, expected 13.85 of 60, excess -1.85.
    """
    odds = math.exp(log_ratio) * canary_requests
    return canary_errors - (canary_errors + baseline_errors) * odds / (odds + baseline_requests)


def look_side(
    canary_errors: float,
    canary_requests: float,
    baseline_errors: float,
    baseline_requests: float,
    log_ratio: float,
) -> int:
    """1 when the canary had more of the look's errors than the median split at rate ratio
    exp(log_ratio) (an excess above ln 2), -1 when fewer (below -ln 2), else 0."""
    excess = excess_errors(
        canary_errors, canary_requests, baseline_errors, baseline_requests, log_ratio
    )
    return 1 if excess > _LN2 else -1 if excess < -_LN2 else 0


def sign_e_value(agreeing: int, disagreeing: int) -> float:
    """The sign test's e-value after `agreeing` looks above (or below) the tolerance and
    `disagreeing` looks with errors that were not: the mean over the bets q of
    (2q)^agreeing * (2(1-q))^disagreeing. 1 with no looks; 3 of 3 gives 3.75, 4 of 4
    6.2, 4 of 5 1.9."""
    logs = [
        agreeing * math.log(2.0 * q) + disagreeing * math.log(2.0 * (1.0 - q)) for q in _BETS
    ]
    peak = max(logs)
    return math.exp(min(peak + math.log(sum(math.exp(v - peak) for v in logs) / len(logs)), 700))


@dataclass(frozen=True, slots=True)
class SideCheck:
    """One side of the sequential test's failure check (higher or lower than the tolerance):
    the count e-value, and the two checks of which one must agree with it."""

    words: str  # e.g. "higher than 1.2x"
    count_e: float
    swing_e: float  # since its most favourable start (`restarted`)
    sign_e: float  # since its most favourable start
    agreeing: int  # looks with errors beyond the bound on this side, over the whole run
    disagreeing: int  # looks with errors that were not
    # closed windows with errors, which the dispersion is estimated from (`dispersion`)
    dispersion_windows: int = 0
    # the count e-value with the dispersion of every window, the newest included (count_e
    # takes it from the windows before the newest); nan: count_e
    alone_e: float = math.nan
    # the count e-value under Poisson counts (not divided by any dispersion); nan: count_e
    poisson_e: float = math.nan
    # the largest threshold at which the plain judgment (phi = 1: the Poisson count e-value
    # with a check agreeing) failed at an earlier look (`plain_level`); 1: never
    plain_failed_e: float = 1.0

    def fails(self, threshold: float) -> bool:
        """The count e-value (of the quasi-likelihood: divided by the dispersion of the
        windows before the newest) at the threshold, and a check agreeing; or, from
        `ESTIMATED_FROM_WINDOWS` windows on, the count e-value divided by the dispersion of
        every window, alone: the estimate then stands in for the checks."""
        alone_e = self.count_e if math.isnan(self.alone_e) else self.alone_e
        checked = self._checked_level(self.count_e) >= threshold
        return checked or (alone_e >= threshold and self.dispersion_estimated)

    def failing_e(self, threshold: float) -> float:
        """The count e-value a failure at `threshold` rests on: `count_e` where a check
        agrees, else the one of every window's dispersion (`alone_e`), which failed alone;
        `count_e` when the side does not fail."""
        if self._checked_level(self.count_e) >= threshold or math.isnan(self.alone_e):
            return self.count_e
        return self.alone_e if self.fails(threshold) else self.count_e

    @property
    def plain_level(self) -> float:
        """The largest threshold at which the plain judgment fails at this look: the
        Poisson count e-value (phi = 1) at it and a check agreeing."""
        return self._checked_level(self.count_e if math.isnan(self.poisson_e) else self.poisson_e)

    def _checked_level(self, count_e: float) -> float:
        """The largest threshold at which `count_e` with a check agreeing fails: count_e
        itself when a sign test agrees (its thresholds are fixed), else the smaller of it
        and the swing-robust e-value."""
        signs = self.run_sign_e >= CONSISTENT_LOOKS_E or self.sign_e >= RESTARTED_LOOKS_E
        return count_e if signs else min(count_e, self.swing_e)

    def held(self, threshold: float) -> bool:
        """Strong evidence that does not fail (yet): the count e-value at the threshold
        without a check agreeing, or the Poisson count e-value (phi = 1) at the threshold
        where the count e-value divided by the dispersion is not, or a plain judgment that
        failed at an earlier look (`plain_failed_e`). The dispersion may turn a failure
        into 'not proven', never into a pass: a swinging 2x regression reads as dispersion
        as much as a swinging good canary does (docs/benchmarks.md, "No promotion by
        dispersion"). At the last look: neither a pass nor a fail."""
        poisson_e = self.count_e if math.isnan(self.poisson_e) else self.poisson_e
        strongest = max(self.count_e, poisson_e, self.plain_failed_e)
        return not self.fails(threshold) and strongest >= threshold

    @property
    def dispersion_estimated(self) -> bool:
        return self.dispersion_windows >= ESTIMATED_FROM_WINDOWS

    @property
    def run_sign_e(self) -> float:
        """The sign test over the whole run."""
        return sign_e_value(self.agreeing, self.disagreeing)

    def agreement(self, threshold: float) -> str:
        """The checks in words, e.g. 'swing-robust e=3.1 < 20, 4 of 4 looks beyond:
        e=6.2 >= 4, since the best start e=6.2 < 12, dispersion not yet estimated (4 of 6
        windows)' (the swing-robust e and the last sign e count from their most
        favourable start)."""
        looks = self.agreeing + self.disagreeing
        swing = "<" if self.swing_e < threshold else ">="
        signs = "<" if self.run_sign_e < CONSISTENT_LOOKS_E else ">="
        restarted_signs = "<" if self.sign_e < RESTARTED_LOOKS_E else ">="
        estimated = "" if self.dispersion_estimated else " not yet"
        alone = "" if math.isnan(self.alone_e) else f", alone e={self.alone_e:.4g}"
        poisson = "" if math.isnan(self.poisson_e) else f"Poisson e={self.poisson_e:.4g}, "
        return poisson + (
            f"swing-robust e={self.swing_e:.4g} {swing} {threshold:.4g}, "
            f"{self.agreeing} of {looks} looks beyond: e={self.run_sign_e:.4g} {signs} "
            f"{CONSISTENT_LOOKS_E:.4g}, since the best start e={self.sign_e:.4g} "
            f"{restarted_signs} {RESTARTED_LOOKS_E:.4g}, dispersion{estimated} estimated "
            f"({self.dispersion_windows} windows, {ESTIMATED_FROM_WINDOWS} needed{alone})"
        )
