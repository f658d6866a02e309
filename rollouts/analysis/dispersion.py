"""How much more the canary's share of errors varies than Poisson counts allow (pure).

The count test (`sequential`) reads the canary's share of each look's errors as binomial:
exact for Poisson counts. A canary whose error rate swings from minute to minute (a flaky
dependency, a noisy neighbour; mean unchanged) has a share that varies more than that, and
its log-likelihood ratio grows faster than the evidence it holds. The quasi-likelihood
remedy (Wedderburn 1974; McCullagh & Nelder, *Generalized Linear Models*, 2nd ed., ch. 9):
keep the binomial model for the mean and multiply its variance by a dispersion factor
phi >= 1, which divides the log-likelihood by phi. In the normal regime of a
log-likelihood ratio this is also what keeps it an e-process: when the score of a look
has variance phi * I (sub-Gaussian with that variance proxy), exp(LLR / phi) is a
nonnegative supermartingale under the null, where exp(LLR) is not (Howard, Ramdas,
McAuliffe & Sekhon 2021, "Time-uniform Chernoff bounds via nonnegative supermartingales").

phi is estimated from the check windows (`check_windows`: at least a minute, so that one
swing counts once) with Pearson's statistic at the maximum-likelihood rate ratio,
X^2 = sum over windows of (xc - x p)^2 / (x p (1 - p)), x the window's errors of both sides,
xc the canary's, p the canary's share at that ratio. Under binomial splits every window's
term has mean exactly 1 whatever its counts, and X^2 / phi is about chi-square with k - 1
degrees of freedom (one rate ratio is fitted). The factor used is the **median-unbiased
estimate** X^2 / median(chi2_{k-1}) (the phi at which the X^2 seen is the median one;
close to the textbook X^2 / (k - 1), a little larger with few windows), floored at 1: a
canary is never judged as less variable than Poisson. (The lower 95% and 80% confidence
bounds were tried: they keep more power on swinging 2x regressions but roll back 0.9% of
swinging good canaries, against 0.5-0.6%: docs/benchmarks.md, "Round 5".)

With one window there is no estimate (phi = 1), and with a few it is rough, so until
`ESTIMATED_FROM_WINDOWS` windows with errors the consistency checks (`consistency`: the
swing-robust e-value, the sign tests), which need no estimate, must agree with the count
e-value for it to fail; from then on the count e-value divided by phi may fail alone
(`consistency.SideCheck.fails`). The chi-square quantile is the Wilson-Hilferty
approximation (numpy only at run time; tests compare it with scipy).

Under Poisson counts the test's anytime bound holds as before: dividing by phi >= 1 only
brings every e-value closer to 1, so the rejection set shrinks. Under swings, a plug-in phi
makes the bound approximate rather than exact (the estimate is itself random and looks at
the same data); the benches (docs/benchmarks.md, "Round 5") measure the false-rollback rate
it gives.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "ESTIMATED_FROM_WINDOWS",
    "chi2_quantile",
    "dispersion_factor",
    "pearson_terms",
]

FloatArray = npt.NDArray[np.float64]

# From this many windows with errors (5 degrees of freedom) the estimate of phi stands on its
# own: the count e-value divided by it may fail without the consistency checks. Chosen on
# bench/judge_power.py sweeps (docs/benchmarks.md, "Round 5"): 4 and 8 gave the same
# false rollbacks of swinging good canaries; fewer windows than 6 leave phi rough.
ESTIMATED_FROM_WINDOWS: Final = 6


def pearson_terms(
    log_ratios: FloatArray,
    canary_errors: float,
    canary_requests: float,
    baseline_errors: float,
    baseline_requests: float,
) -> FloatArray:
    """One window's Pearson term (xc - x p)^2 / (x p (1 - p)) for every log(rate ratio) in
    `log_ratios`, p = rho nc / (rho nc + nb) the canary's share of the window's x errors.
    Zeros when a side had no requests or neither side had errors (no evidence).

    Worked example: 12 and 48 errors out of 1200 and 4800 requests, ratio 1.2: p = 0.2308,
    expected 13.85, variance 60 p (1 - p) = 10.65, term 1.85^2 / 10.65 = 0.321.
    """
    errors = canary_errors + baseline_errors
    if canary_requests <= 0 or baseline_requests <= 0 or errors <= 0:
        return np.zeros(len(log_ratios))
    odds = np.exp(log_ratios) * canary_requests
    share = odds / (odds + baseline_requests)
    variance = errors * share * (1.0 - share)
    terms: FloatArray = (canary_errors - errors * share) ** 2 / np.maximum(variance, 1e-300)
    return terms


def chi2_quantile(probability: float, degrees: float) -> float:
    """The `probability` quantile of chi-square with `degrees` of freedom (Wilson-Hilferty:
    (X / k)^(1/3) is about normal with mean 1 - 2/(9k) and variance 2/(9k); within 3% of
    the exact quantile at one degree and 0.5% from five on, at 0.95)."""
    if not 0.0 < probability < 1.0 or degrees <= 0:
        raise ValueError("chi2_quantile needs 0 < probability < 1 and degrees > 0")
    z = NormalDist().inv_cdf(probability)
    spread = 2.0 / (9.0 * degrees)
    return degrees * max(0.0, 1.0 - spread + z * math.sqrt(spread)) ** 3


def dispersion_factor(pearson: float, windows: int) -> float:
    """The dispersion the count test divides its log-likelihood by: the median-unbiased
    estimate of phi from Pearson's X^2 = `pearson` over `windows` windows with errors
    (k - 1 degrees of freedom: one rate ratio is fitted), X^2 / median(chi2_{k-1}),
    floored at 1; 1 with fewer than two windows or a non-finite X^2.

    >>> dispersion_factor(7.0, 10)  # X^2 under the median of chi2_9 (8.34): Poisson
    1.0
    >>> round(dispersion_factor(54.0, 10), 2)  # six times Poisson over 9 degrees
    6.47
    """
    if windows < 2 or not math.isfinite(pearson) or pearson <= 0:
        return 1.0
    return max(1.0, pearson / chi2_quantile(0.5, windows - 1))
