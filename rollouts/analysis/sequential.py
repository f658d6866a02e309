"""The sequential test on error counts, canary versus baseline (pure: numbers in, Evidence out).

`sequential_counts` is an anytime-valid comparison of error counts (errors out of requests,
canary versus baseline) that may be looked at after every interval without inflating false
alarms. Given the errors seen in a look on both sides, the canary's share of them is
binomial with probability rho*nc / (rho*nc + nb), where rho is the ratio of the canary's
error rate to the baseline's and nc, nb the requests of each side in that look (exact for
Poisson counts, the usual approximation for rare errors). The log-likelihood of rho is kept
on a fixed grid (`SequentialState`), look after look; mixtures of likelihood ratios over
the grid are e-values, and by Ville's inequality a test that rejects when an e-value
reaches 1/alpha keeps its false-alarm rate under alpha however often it looks. The same
e-values, inverted, give a confidence sequence for rho.

Real error rates also swing from look to look (a flaky dependency, a noisy neighbour),
and one bad minute can push that e-value over 1/alpha although the mean rate did not
change. So the test fails only when one of two checks that do not assume Poisson counts
agrees as well (`consistency`: the same e-value with per-look swings of the canary's
rate, or a sign test over the looks). Failing on the intersection of two rejections
keeps the count e-value's bound (the rejection set only shrinks), and a one-minute spike
no longer suffices. The same holds the other way: an early pass needs the mirror e-value
under swings as well, and count evidence the checks never confirmed by the last look is
inconclusive (the metric extends the step, then pauses), never a pass.

Counts that vary more than Poisson all the time are the dispersion factor's (`dispersion`):
the log-likelihood is divided by phi >= 1 estimated from the check windows (a
quasi-likelihood). The failure a check confirms takes phi of the windows before the newest
(an onset in the newest window is not a swing); from `dispersion.ESTIMATED_FROM_WINDOWS`
windows the count e-value divided by phi of every window may fail alone. Dividing by
phi >= 1 only shrinks the rejection set, so the bound under Poisson counts holds. phi may
turn a failure into "not proven", never into a pass: a pass needs the judgment without phi
not to hold or fail, at this look or (remembered in the state) any earlier one.

A run that reaches its last look (`count`) having shown nothing has not ruled a regression
out: 15 minutes at one request a second and 1% errors is 9 errors a side, and a canary at
2x looks the same. So from the last look on a canary passes only when the e-value against
'the ratio is at or beyond the pass margin' (`compare.passMargin`, default 2x) reaches
1/alpha, or when it made no errors at all. That e-value is anytime-valid like the others,
so the extra looks that follow an inconclusive last look (`extraMeasurements`, by default
five times `count`) may ask again without passing a regression at the margin more often
than alpha; the horizon grows with what the traffic can tell, and the rollout pauses only
when even the extra looks could not decide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Final

import numpy as np

from rollouts.analysis import consistency, dispersion
from rollouts.analysis.check_windows import CHECK_WINDOW_SECONDS, Window
from rollouts.analysis.statistics import (
    Direction,
    Evidence,
    FloatArray,
    check_confidence,
    format_interval,
    format_number,
)

__all__ = ["SequentialState", "resume_checks", "sequential_counts"]

# Grid of log(rate ratio) for the sequential test: from 1/256x to 256x around the tolerance,
# about 10% apart. Mixture alternatives lie within 32x of the value tested.
_GRID_SPAN: Final = math.log(256.0)
_GRID_STEP: Final = 0.1
_MIXTURE_SPAN: Final = math.log(32.0)


def _ratio_bounds(tolerance: float) -> tuple[float, float]:
    """log of the lowest and highest acceptable rate ratio for a relative tolerance."""
    high = math.log1p(tolerance)
    return -high, high


def _grid(tolerance: float) -> FloatArray:
    """log(rate ratio) points, with both bounds of the tolerance exactly on the grid."""
    low, high = _ratio_bounds(tolerance)
    inner = max(1, math.ceil((high - low) / _GRID_STEP)) if high > low else 0
    step = (high - low) / inner if inner else _GRID_STEP
    outer = math.ceil(_GRID_SPAN / step)
    return low + step * np.arange(-outer, inner + outer + 1, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class SequentialState:
    """What the sequential test carries from look to look: totals per side, the
    log-likelihood of each rate ratio on the grid (`_grid(tolerance)`) under Poisson counts,
    the consistency checks' restarting log products (swinging rates,
    `consistency.swing_log_likelihood`; the sign test's bets), the swing log-likelihood
    over the whole run (what an early pass must also reject), and the looks with errors
    and how many of them were above the tolerance's ratio and below its inverse
    (`consistency.look_side`). The checks count windows of at least a minute
    (`check_windows`), not looks: `looks_with_errors` and the sign counts are windows."""

    tolerance: float
    log_likelihood: tuple[float, ...]
    canary_requests: float = 0.0
    canary_errors: float = 0.0
    baseline_requests: float = 0.0
    baseline_errors: float = 0.0
    looks: int = 0
    # The checks' log products per alternative since their most favourable start
    # (`consistency.restarted`), on the increase and the decrease side; empty: none yet.
    swing_up: tuple[float, ...] = ()
    swing_down: tuple[float, ...] = ()
    signs_up: tuple[float, ...] = ()
    signs_down: tuple[float, ...] = ()
    looks_with_errors: int = 0
    looks_above: int = 0
    looks_below: int = 0
    # The swing log-likelihood of every grid point over the whole run; empty: none yet.
    swing_log_likelihood: tuple[float, ...] = ()
    # The looks not yet folded into the checks (shorter than a check window so far).
    window: Window = field(default_factory=Window)
    # Pearson's X^2 at every grid ratio (`dispersion`) of the closed windows but the newest,
    # the newest window's terms, and how many windows both hold; empty: none yet.
    pearson: tuple[float, ...] = ()
    pearson_newest: tuple[float, ...] = ()
    pearson_windows: int = 0
    # log of the largest 1/alpha at which the plain judgment (phi = 1, a check agreeing)
    # failed at a look, on the increase and the decrease side (`SideCheck.plain_level`):
    # what phi held back once is never passed later. Kept by `sequential_counts`.
    plain_failed_log_e: tuple[float, float] = (0.0, 0.0)

    @classmethod
    def start(cls, tolerance: float) -> SequentialState:
        return cls(tolerance, tuple(0.0 for _ in _grid(tolerance)))

    def update(
        self,
        canary_errors: float,
        canary_requests: float,
        baseline_errors: float,
        baseline_requests: float,
        seconds: float = CHECK_WINDOW_SECONDS,
    ) -> SequentialState:
        """Fold in one look's new counts, over the look's `seconds` (negative or non-finite
        counts count as 0; more errors than requests are capped at the requests). The count
        likelihood takes every look; the consistency checks take the looks by windows of
        at least `CHECK_WINDOW_SECONDS` (`check_windows`): a look of a minute or more is a
        window of its own, shorter ones are added up until one closes."""
        nc, nb = _count(canary_requests), _count(baseline_requests)
        xc, xb = min(_count(canary_errors), nc), min(_count(baseline_errors), nb)
        log_likelihood = np.asarray(self.log_likelihood, dtype=np.float64)
        if nc > 0 and nb > 0 and xc + xb > 0:
            ratio = np.exp(_grid(self.tolerance))
            share = ratio * nc / (ratio * nc + nb)
            log_likelihood = log_likelihood + xc * np.log(share) + xb * np.log1p(-share)
        window = self.window.add(xc, nc, xb, nb, seconds)
        counted = replace(
            self,
            log_likelihood=tuple(float(v) for v in log_likelihood),
            canary_requests=self.canary_requests + nc,
            baseline_requests=self.baseline_requests + nb,
            canary_errors=self.canary_errors + xc,
            baseline_errors=self.baseline_errors + xb,
            looks=self.looks + 1,
            window=window,
        )
        return _fold_window(counted) if window.closed else counted


def _fold_window(state: SequentialState) -> SequentialState:
    """The state with its open window folded into the consistency checks as one unit, and
    no window open. A window without requests on a side or without errors tells nothing
    about the split and counts for neither check."""
    xc, nc, xb, nb = state.window.counts
    state = replace(state, window=Window())
    if not (nc > 0 and nb > 0 and xc + xb > 0):
        return state
    grid = _grid(state.tolerance)
    swing = consistency.swing_log_likelihood(grid, xc, nc, xb, nb)
    pearson = sum(
        (np.asarray(terms) for terms in (state.pearson, state.pearson_newest) if terms),
        np.zeros(len(grid)),
    )
    newest = dispersion.pearson_terms(grid, xc, nc, xb, nb)
    whole_run = swing + (
        np.asarray(state.swing_log_likelihood) if state.swing_log_likelihood else 0.0
    )
    low, high = _bound_indices(grid, state.tolerance)
    checks = _swing_steps(grid, state.tolerance, swing)
    above = consistency.look_side(xc, nc, xb, nb, float(grid[high])) > 0
    below = consistency.look_side(xc, nc, xb, nb, float(grid[low])) < 0
    return replace(
        state,
        swing_up=consistency.restarted(state.swing_up, checks[0]),
        swing_down=consistency.restarted(state.swing_down, checks[1]),
        signs_up=consistency.restarted(state.signs_up, consistency.sign_steps(above)),
        signs_down=consistency.restarted(state.signs_down, consistency.sign_steps(below)),
        looks_with_errors=state.looks_with_errors + 1,
        looks_above=state.looks_above + above,
        looks_below=state.looks_below + below,
        swing_log_likelihood=tuple(float(v) for v in whole_run),
        pearson=tuple(float(v) for v in pearson),
        pearson_newest=tuple(float(v) for v in newest),
        pearson_windows=state.pearson_windows + 1,
    )


def resume_checks(
    state: SequentialState, swing_log_likelihood: tuple[float, ...]
) -> SequentialState:
    """A state saved before the checks restarted (whole-run swing log-likelihood and sign
    counts) carried on: the whole run is taken as the start point of both checks."""
    if not swing_log_likelihood:
        return state
    grid = _grid(state.tolerance)
    if len(swing_log_likelihood) != len(grid):
        raise ValueError("the state was built for another tolerance")
    swing = _swing_steps(grid, state.tolerance, np.asarray(swing_log_likelihood))
    signs = [
        beyond * consistency.sign_steps(True)
        + (state.looks_with_errors - beyond) * consistency.sign_steps(False)
        for beyond in (state.looks_above, state.looks_below)
    ]
    return replace(
        state,
        swing_log_likelihood=swing_log_likelihood,
        swing_up=consistency.restarted((), swing[0]),
        swing_down=consistency.restarted((), swing[1]),
        signs_up=consistency.restarted((), signs[0]),
        signs_down=consistency.restarted((), signs[1]),
    )


def _swing_steps(grid: FloatArray, tolerance: float, swing: FloatArray) -> list[FloatArray]:
    """The swing check's log likelihood ratios, alternatives against the bound, on the
    increase side and on the decrease side."""
    low, high = _bound_indices(grid, tolerance)
    return [
        swing[consistency.swing_alternatives(grid, bound, upward, _MIXTURE_SPAN)] - swing[bound]
        for bound, upward in ((high, True), (low, False))
    ]


def _bound_indices(grid: FloatArray, tolerance: float) -> tuple[int, int]:
    """The grid indices of the tolerance's lower and upper ratio bounds."""
    low_bound, high_bound = _ratio_bounds(tolerance)
    return int(np.argmin(np.abs(grid - low_bound))), int(np.argmin(np.abs(grid - high_bound)))


def _count(value: float) -> float:
    return value if math.isfinite(value) and value > 0 else 0.0


def _log_e_values(log_likelihood: FloatArray, grid: FloatArray) -> tuple[FloatArray, FloatArray]:
    """For every grid point r0, the log of the e-value against 'ratio <= r0' (an equal-weight
    mixture of likelihood ratios over the grid points above r0, within the mixture span) and
    against 'ratio >= r0' (points below). Computed in logs: e-values grow past 1e308."""
    ratios = log_likelihood[np.newaxis, :] - log_likelihood[:, np.newaxis]  # [r0, r1]
    distance = grid[np.newaxis, :] - grid[:, np.newaxis]
    span = _MIXTURE_SPAN + 1e-9
    logs = []
    for chosen in ((distance > 0) & (distance <= span), (distance < 0) & (distance >= -span)):
        count = chosen.sum(axis=1)
        masked = np.where(chosen, ratios, -np.inf)
        total = np.logaddexp.reduce(masked, axis=1)
        # A point with no alternatives on that side (the grid's edge) has no evidence: e = 1.
        logs.append(np.where(count > 0, total - np.log(np.maximum(count, 1)), 0.0))
    return logs[0], logs[1]


def _e(log_e: float) -> float:
    return math.exp(min(log_e, 700.0))


def _grid_value(grid: FloatArray, index: int) -> float:
    """exp(grid[index]); the grid's ends stand for 0 and infinity (nothing excluded there)."""
    if index == 0:
        return 0.0
    if index == len(grid) - 1:
        return math.inf
    return float(math.exp(grid[index]))


def _rate_ratio(state: SequentialState) -> float:
    """The canary's error rate over the baseline's; half an error is added to both sides
    when either has none, so that the estimate stays finite (1 with no errors at all)."""
    xc, xb = state.canary_errors, state.baseline_errors
    if state.canary_requests <= 0 or state.baseline_requests <= 0:
        return math.nan
    if xc == 0 or xb == 0:
        xc, xb = xc + 0.5, xb + 0.5
    return (xc / state.canary_requests) / (xb / state.baseline_requests)


def dispersion_of(state: SequentialState, *, newest: bool = True) -> float:
    """The dispersion factor the count log-likelihood is divided by (`dispersion`): the
    estimate of phi from the closed windows' Pearson X^2 at the rate ratio that fits them
    best (the minimum over the grid: Neyman's minimum chi-square); 1 before two windows
    with errors. Without the `newest` window, for the failure that a consistency check
    confirms: the newest window is then judged against the swings seen before it, so a
    regression that starts in it is not taken for a swing (1 before three windows)."""
    terms = [np.asarray(t) for t in (state.pearson, state.pearson_newest if newest else ()) if t]
    if not terms:
        return 1.0
    windows = state.pearson_windows - (0 if newest else 1)
    return dispersion.dispersion_factor(float(np.min(sum(terms))), windows)


def sequential_counts(
    state: SequentialState,
    *,
    direction: Direction = "increase",
    confidence: float = 0.95,
    min_samples: int = 100,
    final: bool = False,
    pass_margin: float = 1.0,
) -> Evidence:
    """Judge the counts accumulated in `state` (anytime-valid).

    With alpha = 1 - confidence and t the relative tolerance (the canary's error rate may be
    up to (1+t) times the baseline's; `decrease`: down to 1/(1+t) times):
    - fail as soon as the e-value against 'ratio within tolerance' reaches 1/alpha and
      the excess is consistent: the swing-robust e-value reaches 1/alpha as well, or the
      sign test over the looks reaches `consistency.CONSISTENT_LOOKS_E`;
    - pass early as soon as the e-value against 'ratio beyond tolerance' reaches 1/alpha,
      and so does the same e-value under per-look swings over the whole run (one quiet
      look of a canary whose rate swings does not pass it);
    - `either` checks both sides at alpha/2 each;
    - otherwise `continue`, or at the final look (and every look after it) `pass` (no
      regression shown) if a ratio of 1 + `pass_margin` (its inverse for `decrease`; both
      for `either`) is ruled out — the e-value against 'ratio at or beyond the margin' at
      1/alpha, with phi and without, as the early pass but at the margin: anytime-valid,
      so the extra looks may ask again — or if the canary has nothing to show on the bad
      side (no canary errors for `increase`), `inconclusive` if not — and `inconclusive`
      as well when the
      count e-value (with phi or without) is at 1/alpha there but the excess is not
      consistent or phi explains it away, or the judgment without phi failed at an earlier
      look: `inconclusive` (strong evidence, not decisive; the metric layer extends by
      `extraMeasurements` looks, then the run is Inconclusive and the rollout pauses);
    - the returned evidence's state remembers the judgment without phi failing
      (`plain_failed_log_e`): callers carry `evidence.state` to the next look.
    Fewer than `min_samples` requests on a side: inconclusive.
    """
    check_confidence(confidence)
    grid = _grid(state.tolerance)
    log_likelihood = np.asarray(state.log_likelihood, dtype=np.float64)
    if len(log_likelihood) != len(grid):
        raise ValueError("the state was built for another tolerance")
    # The quasi-likelihood: the log-likelihood divided by the dispersion (`dispersion`).
    # phi over every closed window: for the early pass, the interval and the failure on the
    # count e-value alone; phi before the newest window: for the failure with the checks.
    phi = dispersion_of(state)
    log_up, log_down = _log_e_values(log_likelihood / phi, grid)
    phi_before = dispersion_of(state, newest=False)
    poisson_up, poisson_down = (
        (log_up, log_down) if phi == 1.0 else _log_e_values(log_likelihood, grid)
    )
    confirmed_up, confirmed_down = (
        (log_up, log_down)
        if phi_before == phi
        else _log_e_values(log_likelihood / phi_before, grid)
    )
    alpha = 1.0 - confidence
    sides = 2 if direction == "either" else 1
    threshold = sides / alpha
    low_index, high_index = _bound_indices(grid, state.tolerance)

    log_level = math.log(2.0 / alpha)
    inside = (log_up < log_level) & (log_down < log_level)
    candidates = np.flatnonzero(inside)
    interval = (
        (_grid_value(grid, int(candidates[0])), _grid_value(grid, int(candidates[-1])))
        if len(candidates)
        else (math.nan, math.nan)
    )
    estimate = _rate_ratio(state)
    # The swing-robust e-value judges the open window as if it closed now, so that a 10x
    # fails at the first short look. The sign tests and the early pass count closed windows
    # only: judged at every 15 s look, an open window would count up to four times a minute
    # (2.3% of noisy good canaries rolled back instead of 0.7%: docs/benchmarks.md).
    checked = state if state.window.empty else _fold_window(state)
    sides_judged: list[consistency.SideCheck] = []
    # per side: the count e, the swing-robust e, and the sign test over the closed windows
    # that were not beyond the bound
    passes: list[tuple[float, float, float]] = []
    whole_run = np.asarray(state.swing_log_likelihood or np.zeros(len(grid)), dtype=np.float64)
    checks = (
        ("increase", "higher", high_index, confirmed_up, log_up, poisson_up, checked.swing_up,
         state.signs_up, log_down, state.looks_above),
        ("decrease", "lower", low_index, confirmed_down, log_down, poisson_down,
         checked.swing_down, state.signs_down, log_up, state.looks_below),
    )  # fmt: skip
    plain_failed = list(state.plain_failed_log_e)
    for order, (side, words, index, fail_logs, alone_logs, poisson_logs, swing, signs,
                pass_logs, agreeing) in enumerate(checks):  # fmt: skip
        if direction not in (side, "either"):
            continue
        side_check = consistency.SideCheck(
            f"{words} than {math.exp(grid[index]):.3g}x",
            _e(fail_logs[index]),
            consistency.mixture_e(swing),
            consistency.mixture_e(signs),
            agreeing,
            state.looks_with_errors - agreeing,
            state.pearson_windows,
            _e(alone_logs[index]),
            _e(poisson_logs[index]),
            _e(plain_failed[order]),
        )
        sides_judged.append(side_check)
        plain_failed[order] = max(plain_failed[order], math.log(max(1.0, side_check.plain_level)))
        # An early pass must hold under swings too: one quiet look of a swinging canary
        # (0 errors of 1,000 against 10) bounds the Poisson ratio but says little.
        within = consistency.swing_alternatives(grid, index, side == "decrease", _MIXTURE_SPAN)
        swing_pass = tuple(float(v) for v in whole_run[within] - whole_run[index])
        within_e = consistency.sign_e_value(
            state.looks_with_errors - agreeing, agreeing
        )  # windows not beyond the bound on this side, and those beyond
        # The early pass takes the smaller of the count e-values with and without phi:
        # phi may not pass what the plain test would not.
        plain_pass_logs = poisson_down if side == "increase" else poisson_up
        pass_e = min(_e(pass_logs[index]), _e(plain_pass_logs[index]))
        passes.append((pass_e, consistency.mixture_e(swing_pass), within_e))
    failing = [side for side in sides_judged if side.fails(threshold)]
    # The e-value a failure rests on, in the evidence and its reason: with phi of every
    # window when that one failed alone (the reason once showed "e=18.28 >= 20" for it).
    worst = max(failing or sides_judged, key=lambda side: side.failing_e(threshold))
    worst_words, fail_e = worst.words, worst.failing_e(threshold)
    pass_e = min(count for count, _, _ in passes)
    swing_pass_e = min(swing for _, swing, _ in passes)
    within_e = min(signs for _, _, signs in passes)
    evidence = Evidence(
        test="sequentialCounts",
        decision="continue",
        reason="",
        canary=state.canary_requests,
        baseline=state.baseline_requests,
        confidence=confidence,
        statistic=float(math.log(max(fail_e, pass_e))),
        effect=estimate,
        interval=interval,
        e_value=max(fail_e, pass_e),
        canary_errors=state.canary_errors,
        baseline_errors=state.baseline_errors,
        looks=state.looks,
        state=replace(state, plain_failed_log_e=(plain_failed[0], plain_failed[1])),
    )
    rates = (
        f"errors {format_number(state.canary_errors)}/{format_number(state.canary_requests)} vs "
        f"{format_number(state.baseline_errors)}/{format_number(state.baseline_requests)}, "
        f"ratio {format_number(estimate)} {format_interval(interval)}"
        + (f", dispersion {phi:.3g}" if phi > 1.0 else "")
    )
    if not evidence.has_min_samples(min_samples):
        return replace(
            evidence,
            decision="inconclusive",
            reason=f"too little traffic: requests canary {format_number(state.canary_requests)}, "
            f"baseline {format_number(state.baseline_requests)} (minSamples {min_samples})",
        )
    if failing:
        return replace(
            evidence,
            decision="fail",
            e_value=fail_e,
            reason=f"canary error rate {worst_words} baseline's: {rates}, "
            f"e={format_number(fail_e)} >= {format_number(threshold)}, "
            f"{worst.agreement(threshold)}",
        )
    consistent_pass = within_e >= consistency.CONSISTENT_LOOKS_E
    # Held evidence (the count e-value at 1/alpha on a side, with phi or without) is never
    # passed, early or at the last look: where phi alone explains it away, inconclusive.
    holding = [side for side in sides_judged if side.held(threshold)]
    if pass_e >= threshold and swing_pass_e >= threshold and consistent_pass and not holding:
        return replace(
            evidence,
            decision="pass",
            e_value=pass_e,
            reason=f"error rate bounded within tolerance: {rates}, "
            f"e={format_number(pass_e)} >= {format_number(threshold)}, "
            f"swing-robust e={format_number(swing_pass_e)} >= {format_number(threshold)}, "
            f"windows within: e={format_number(within_e)} >= "
            f"{format_number(consistency.CONSISTENT_LOOKS_E)}",
        )
    held = (
        f" but not consistent across looks or beyond the dispersion "
        f"({holding[0].agreement(threshold)})"
        if holding
        else ""
    )
    if final and held:
        # The count evidence is there but not (yet) consistent: neither a pass nor a fail.
        # The metric layer waits `extraMeasurements` more looks, then pauses the rollout.
        return replace(
            evidence,
            decision="inconclusive",
            reason=f"excess not shown consistent by the last look: {rates}, "
            f"e={format_number(fail_e)}{held}",
        )
    if final:
        margins = _margin_e_values(
            direction,
            pass_margin,
            grid,
            against_above=np.minimum(log_down, poisson_down),
            against_below=np.minimum(log_up, poisson_up),
        )
        margin_e = min(margins.values(), default=math.inf)
        words = _ratio_words(list(margins))
        if _nothing_on_the_bad_side(state, direction):
            why, shown = "no errors that could show one", ""
        elif not margins:
            why, shown = "passMargin off", ""
        elif margin_e >= threshold:
            why = f"{words} ruled out (passMargin)"
            shown = f", e={format_number(margin_e)} >= {format_number(threshold)}"
        else:
            return replace(
                evidence,
                decision="inconclusive",
                reason=f"no regression shown, but {words} not ruled out (passMargin): {rates}, "
                f"e={format_number(margin_e)} < {format_number(threshold)}",
            )
        return replace(
            evidence,
            decision="pass",
            reason=f"no regression shown and {why}: {rates}{shown}",
        )
    if not held and pass_e >= threshold:
        swing_sign = ">=" if swing_pass_e >= threshold else "<"
        within_sign = ">=" if consistent_pass else "<"
        held = (
            f" bounds the ratio, not across swings yet (swing-robust e="
            f"{format_number(swing_pass_e)} {swing_sign} {format_number(threshold)}, windows "
            f"within: e={format_number(within_e)} {within_sign} "
            f"{format_number(consistency.CONSISTENT_LOOKS_E)})"
        )
    return replace(
        evidence,
        decision="continue",
        reason=f"undecided: {rates}, e={format_number(max(fail_e, pass_e))}"
        + (held if held else f" < {format_number(threshold)}"),
    )


def _margin_ratios(direction: Direction, pass_margin: float) -> list[float]:
    high = 1.0 + pass_margin
    return {"increase": [high], "decrease": [1.0 / high], "either": [high, 1.0 / high]}[direction]


def _ratio_words(ratios: list[float]) -> str:
    return " and ".join(f"{format_number(r)}x" for r in ratios)


def _margin_e_values(
    direction: Direction,
    pass_margin: float,
    grid: FloatArray,
    *,
    against_above: FloatArray,
    against_below: FloatArray,
) -> dict[float, float]:
    """For each pass margin `direction` asks about (1 + `pass_margin` for an increase, its
    inverse for a decrease, both for `either`), the e-value against 'the ratio at or beyond
    it': `against_above` / `against_below` (log e-values per grid point) at the margin's
    grid point on the acceptable side (the nearest one inside: never overstated). A margin
    beyond the grid's end has nothing there to rule out: left out (the rule is off)."""
    e_values: dict[float, float] = {}
    for ratio in _margin_ratios(direction, pass_margin):
        target = math.log(ratio)
        if ratio > 1.0 and target <= grid[-1]:
            index = int(np.searchsorted(grid, target + 1e-12, side="left")) - 1
            e_values[ratio] = _e(float(against_above[index]))
        elif ratio < 1.0 and target >= grid[0]:
            index = int(np.searchsorted(grid, target - 1e-12, side="left"))
            e_values[ratio] = _e(float(against_below[index]))
    return e_values


def _nothing_on_the_bad_side(state: SequentialState, direction: Direction) -> bool:
    """No count that could show the canary worse in any amount: no canary errors (an
    increase is bad), no baseline errors (a decrease is), neither (`either`). With
    nothing counted nothing can be ruled out, and a service that makes no errors must
    still pass."""
    canary, baseline = state.canary_errors == 0, state.baseline_errors == 0
    return {"increase": canary, "decrease": baseline, "either": canary and baseline}[direction]
