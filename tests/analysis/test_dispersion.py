"""The count test's dispersion factor (rollouts.analysis.dispersion, sequential.dispersion_of):
Pearson's X^2 per window, the chi-square quantile against scipy, the lower confidence bound
by hand, and what it does to the count e-value of steady and swinging canaries."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollouts.analysis.comparison import decode_state, encode_state
from rollouts.analysis.consistency import SideCheck
from rollouts.analysis.dispersion import chi2_quantile, dispersion_factor, pearson_terms
from rollouts.analysis.sequential import (
    SequentialState,
    _bound_indices,
    _grid,
    _log_e_values,
    dispersion_of,
    sequential_counts,
)
from rollouts.analysis.statistics import Direction

TOLERANCE = 0.2


# ---------------------------------------------------------------------------------------------
# Tables and the scipy oracle


def test_pearson_term_worked_example() -> None:
    # 12 and 48 errors out of 1200 and 4800 requests at ratio 1.2: share 1440 / 6240 =
    # 0.23077, expected 13.846, variance 60 * 0.23077 * 0.76923 = 10.651, term 3.408 / 10.651.
    (term,) = pearson_terms(np.array([math.log(1.2)]), 12, 1200, 48, 4800)
    assert term == pytest.approx((12 - 60 * 1440 / 6240) ** 2 / (60 * 1440 / 6240 * 4800 / 6240))
    assert term == pytest.approx(0.3200, abs=1e-3)


def test_a_window_without_evidence_has_no_pearson_term() -> None:
    grid = _grid(TOLERANCE)
    assert not pearson_terms(grid, 0, 1200, 0, 4800).any()
    assert not pearson_terms(grid, 3, 0, 5, 4800).any()


@pytest.mark.parametrize("probability", [0.5, 0.9, 0.95, 0.99])
@pytest.mark.parametrize("degrees", [1, 2, 3, 5, 9, 14, 30, 100])
def test_chi2_quantile_against_scipy(probability: float, degrees: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    exact = float(stats.chi2.ppf(probability, degrees))
    # Wilson-Hilferty: a few percent at one degree, under 1% from five on
    tolerance = 0.06 if degrees < 3 else 0.015 if degrees < 5 else 0.006
    assert chi2_quantile(probability, degrees) == pytest.approx(exact, rel=tolerance)


def test_chi2_quantile_refuses_nonsense() -> None:
    for probability, degrees in ((0.0, 3), (1.0, 3), (0.95, 0)):
        with pytest.raises(ValueError):
            chi2_quantile(probability, degrees)


@pytest.mark.parametrize(
    ("pearson", "windows", "expected"),
    [
        (10.0, 1, 1.0),  # one window: no estimate
        (0.0, 10, 1.0),
        (math.nan, 10, 1.0),
        (8.0, 10, 1.0),  # under the median of chi2_9 (8.343): as Poisson
        (54.0, 10, 54.0 / 8.343),  # six times Poisson over 9 degrees: 6.47
        (3.0 * 8.343, 10, 3.0),
        (2.0, 2, 2.0 / 0.4549),  # one degree: X^2 / 0.455, 2.2x X^2 / (k - 1)
        (6.0, 4, 6.0 / 2.366),  # three degrees: 1.27x X^2 / (k - 1)
    ],
)
def test_dispersion_factor_table(pearson: float, windows: int, expected: float) -> None:
    # the medians of chi2 with 9, 1 and 3 degrees are scipy's; Wilson-Hilferty is within 4%
    assert dispersion_factor(pearson, windows) == pytest.approx(expected, rel=0.04)


@given(
    st.floats(min_value=0.0, max_value=1e4, allow_nan=False),
    st.integers(min_value=0, max_value=200),
)
def test_dispersion_factor_is_at_least_1_and_grows_with_pearson(pearson: float, k: int) -> None:
    low, high = dispersion_factor(pearson, k), dispersion_factor(pearson * 2 + 1, k)
    assert 1.0 <= low <= high


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=1, max_value=40), st.floats(min_value=0.05, max_value=0.8))
def test_a_binomial_split_has_pearson_mean_1_whatever_its_size(errors: int, share: float) -> None:
    # E[(x - n p)^2] = n p (1 - p): every window's term has mean exactly 1 at the true share,
    # however few its errors (the reason X^2 / (k - 1) estimates phi at low counts too).
    ratio = share / (1 - share)  # nc = nb: the share is ratio / (1 + ratio)
    outcomes = np.arange(errors + 1)
    stats = pytest.importorskip("scipy.stats")
    weights = stats.binom.pmf(outcomes, errors, share)
    terms = [
        pearson_terms(np.array([math.log(ratio)]), float(x), 100.0, float(errors - x), 100.0)[0]
        for x in outcomes
    ]
    assert float(np.dot(weights, terms)) == pytest.approx(1.0, rel=1e-9)


# ---------------------------------------------------------------------------------------------
# In the count test


def _state(looks: list[tuple[float, float, float, float]]) -> SequentialState:
    state = SequentialState.start(TOLERANCE)
    for look in looks:
        state = state.update(*look)
    return state


def _draws(seed: int, ratio: float, shape: float | None, looks: int = 15
           ) -> list[tuple[float, float, float, float]]:  # fmt: skip
    rng = np.random.default_rng(seed)
    nc, nb = rng.poisson(1200, looks), rng.poisson(4800, looks)
    swing = rng.gamma(shape, 1 / shape, looks) if shape is not None else np.ones(looks)
    xc, xb = rng.binomial(nc, np.minimum(1.0, 0.01 * ratio * swing)), rng.binomial(nb, 0.01)
    return [(float(xc[i]), float(nc[i]), float(xb[i]), float(nb[i])) for i in range(looks)]


def test_the_dispersion_is_the_minimum_chi_square_of_the_windows() -> None:
    looks = _draws(3, 2.0, None, looks=6)
    state = _state(looks)
    grid = _grid(TOLERANCE)
    before = sum(pearson_terms(grid, *look) for look in looks[:-1])
    newest = pearson_terms(grid, *looks[-1])
    assert state.pearson == pytest.approx(tuple(before))
    assert state.pearson_newest == pytest.approx(tuple(newest))
    assert state.pearson_windows == 6
    # every window; without the newest (what the failure with the checks uses)
    assert dispersion_of(state) == pytest.approx(
        dispersion_factor(float(np.min(before + newest)), 6)
    )
    assert dispersion_of(state, newest=False) == pytest.approx(
        dispersion_factor(float(np.min(before)), 5)
    )


def test_a_regression_that_starts_in_the_newest_window_is_not_taken_for_a_swing() -> None:
    # Five steady windows at ratio 1, then 10x: over every window the split varies hugely
    # (phi far over 1); the windows before the newest are Poisson (phi 1), so the 10x is
    # judged at full strength and fails at once.
    normal, ten = (12, 1200, 48, 4800), (120, 1200, 48, 4800)
    state = _state([normal] * 5 + [ten])
    assert dispersion_of(state) > 10.0
    assert dispersion_of(state, newest=False) == 1.0
    assert sequential_counts(state).decision == "fail"


def test_a_swinging_canary_has_its_count_evidence_divided() -> None:
    # gamma swings with cv 0.7 on 12 expected canary errors a minute: about six times the
    # binomial variance of the split
    state = _state(_draws(5, 1.0, 2.0))
    phi = dispersion_of(state)
    assert phi > 2.0
    typical = np.median([dispersion_of(_state(_draws(seed, 1.0, 2.0))) for seed in range(60)])
    assert 3.0 <= typical <= 9.0
    grid = _grid(TOLERANCE)
    _, high = _bound_indices(grid, TOLERANCE)
    raw_up, raw_down = _log_e_values(np.asarray(state.log_likelihood), grid)
    scaled_up, scaled_down = _log_e_values(np.asarray(state.log_likelihood) / phi, grid)
    # the evidence's e-value is the larger of the fail and pass e-values at the bound,
    # both from the log-likelihood divided by phi (closer to e = 1 on either side)
    expected = max(math.exp(scaled_up[high]), math.exp(scaled_down[high]))
    assert sequential_counts(state).e_value == pytest.approx(expected, rel=1e-9)
    assert abs(scaled_up[high]) < abs(raw_up[high])
    assert abs(scaled_down[high]) < abs(raw_down[high])
    assert f"dispersion {phi:.3g}" in sequential_counts(state).reason


def test_steady_canaries_are_judged_about_as_poisson() -> None:
    # Median-unbiased: under binomial splits the estimate exceeds 1 about half the time
    # (floored at 1 otherwise), and rarely by much.
    phis = np.array([dispersion_of(_state(_draws(seed, 2.0, None))) for seed in range(100)])
    assert 0.3 <= np.mean(phis > 1.0) <= 0.7
    assert np.percentile(phis, 90) <= 2.0


def test_overdispersed_good_canaries_rarely_fail() -> None:
    failed = 0
    for seed in range(300):
        state = SequentialState.start(TOLERANCE)
        for look in _draws(1000 + seed, 1.0, 2.0):
            state = state.update(*look)
            if sequential_counts(state).decision == "fail":
                failed += 1
                break
    assert failed <= 3  # 1% of 300


def test_10x_still_fails_at_the_first_look_and_2x_within_the_horizon() -> None:
    ten = _state(_draws(7, 10.0, None, looks=1))
    assert sequential_counts(ten).decision == "fail"
    caught = 0
    for seed in range(100):
        state = SequentialState.start(TOLERANCE)
        for look in _draws(2000 + seed, 2.0, None):
            state = state.update(*look)
            if sequential_counts(state).decision == "fail":
                caught += 1
                break
    assert caught >= 97


def test_the_state_round_trips_with_the_dispersion() -> None:
    state = _state(_draws(9, 1.0, 2.0, looks=5))
    back = decode_state(encode_state(state), TOLERANCE)
    assert back.pearson_windows == 5
    assert back.pearson == pytest.approx(state.pearson, abs=1e-4)
    assert dispersion_of(back) == pytest.approx(dispersion_of(state), rel=1e-4)


def test_a_state_saved_before_the_dispersion_estimates_it_from_its_next_window() -> None:
    state = _state(_draws(9, 1.0, 2.0, looks=5))
    data = json.loads(encode_state(state))
    del data["pearson"], data["pearsonWindows"]
    back = decode_state(json.dumps(data), TOLERANCE)
    assert (back.pearson, back.pearson_windows, dispersion_of(back)) == ((), 0, 1.0)
    assert back.update(12, 1200, 48, 4800).pearson_windows == 1


def test_a_pearson_list_of_another_length_is_refused() -> None:
    data = json.loads(encode_state(_state(_draws(9, 1.0, 2.0, looks=2))))
    data["pearson"] = data["pearson"][:-1]
    with pytest.raises(ValueError, match="another tolerance"):
        decode_state(json.dumps(data), TOLERANCE)


def test_a_regression_that_begins_partway_is_held_at_the_last_look_not_passed() -> None:
    # 5x from the fourth minute: from its second bad window the onset reads as dispersion
    # (good and bad windows, one ratio fitted: phi ~ 15), which divides the count e-value
    # below 1/alpha; the Poisson e-value with the checks agreeing holds the last look.
    good, bad = (12, 1200, 48, 4800), (60, 1200, 48, 4800)
    state = _state([good] * 3 + [bad] * 2)
    assert dispersion_of(state) > 10.0
    evidence = sequential_counts(state, final=True)
    assert evidence.decision == "inconclusive"
    assert "Poisson e=" in evidence.reason and "dispersion" in evidence.reason


# ---------------------------------------------------------------------------------------------
# No promotion by dispersion: phi may turn a failure into "not proven", never into a pass.
# Canary windows alternating between a high and a low error count against a steady baseline
# (1200 and 4800 requests a window): the Poisson count e-value is far over 1/alpha = 20, no
# consistency check agrees (half the windows beyond the bound), and phi explains it away.
# judge5's head passed these at the last look (a promoted regression).


@pytest.mark.parametrize(
    ("high", "low", "windows", "poisson_e_over"),
    [
        (36, 6, 6, 20.0),  # ratio 1.75, phi 10.6
        (30, 10, 10, 80.0),  # ratio 1.67, phi 4.3
        (40, 8, 8, 1e5),  # ratio 2, phi 9.3
        (48, 6, 6, 1e7),  # ratio 2.25, phi 15.4
    ],
)
def test_evidence_the_dispersion_explains_away_is_inconclusive_not_passed(
    high: int, low: int, windows: int, poisson_e_over: float
) -> None:
    state = _state([(high, 1200, 48, 4800), (low, 1200, 48, 4800)] * (windows // 2))
    grid = _grid(TOLERANCE)
    _, bound = _bound_indices(grid, TOLERANCE)
    poisson_up, _ = _log_e_values(np.asarray(state.log_likelihood), grid)
    assert math.exp(poisson_up[bound]) > poisson_e_over
    assert dispersion_of(state) > 4.0
    last = sequential_counts(state, final=True)
    assert (last.decision, last.reason.split(":")[0]) == (
        "inconclusive",
        "excess not shown consistent by the last look",
    )
    assert f"Poisson e={math.exp(poisson_up[bound]):.4g}" in last.reason
    assert sequential_counts(state).decision == "continue"  # before the last look: no pass


@pytest.mark.parametrize("direction", ["increase", "either"])
def test_no_early_pass_while_the_plain_count_test_holds(direction: Direction) -> None:
    # Whatever the looks, a pass (early or final) never comes with a side whose Poisson
    # count e-value is at 1/alpha: over swinging 2x regressions, every pass has it below.
    threshold = (2 if direction == "either" else 1) / 0.05
    grid = _grid(TOLERANCE)
    _, bound = _bound_indices(grid, TOLERANCE)
    for seed in range(40):
        state = SequentialState.start(TOLERANCE)
        for look, counts in enumerate(_draws(3000 + seed, 2.0, 2.0), start=1):
            state = state.update(*counts)
            evidence = sequential_counts(state, direction=direction, final=look >= 15)
            if evidence.decision == "pass":
                poisson_up, _ = _log_e_values(np.asarray(state.log_likelihood), grid)
                assert math.exp(poisson_up[bound]) < threshold
            if evidence.decision != "continue":
                break


# SideCheck(words, count_e, swing_e, sign_e, agreeing, disagreeing, windows, alone_e,
# poisson_e, plain_failed_e) at the threshold 20: the plain judgment's level and what holds.
@pytest.mark.parametrize(
    ("count_e", "swing_e", "agreeing", "poisson_e", "plain_failed_e", "level", "fails", "held"),
    [
        (1.0, 1.0, 2, 1.0, 1.0, 1.0, False, False),  # nothing: passes at the last look
        (30.0, 25.0, 2, 30.0, 1.0, 25.0, True, False),  # both judgments fail
        (30.0, 1.0, 2, 30.0, 1.0, 1.0, False, True),  # no check agrees: held
        (2.0, 25.0, 2, 500.0, 1.0, 25.0, False, True),  # phi explains a plain failure: held
        (2.0, 1.0, 2, 500.0, 1.0, 1.0, False, True),  # phi explains the Poisson e: held
        (2.0, 1.0, 2, 5.0, 40.0, 1.0, False, True),  # the plain judgment failed before: held
        (2.0, 1.0, 2, 5.0, 15.0, 1.0, False, False),  # ... below the threshold: not held
        (2.0, 1.0, 8, 300.0, 1.0, 300.0, False, True),  # 8 of 10 windows beyond: signs agree
    ],
)
def test_the_plain_judgment_holds_what_phi_explains_away(
    count_e: float,
    swing_e: float,
    agreeing: int,
    poisson_e: float,
    plain_failed_e: float,
    level: float,
    fails: bool,
    held: bool,
) -> None:
    side = SideCheck(
        "higher", count_e, swing_e, 1.0, agreeing, 10 - agreeing, 3, math.nan, poisson_e,
        plain_failed_e,
    )  # fmt: skip
    assert (side.plain_level, side.fails(20.0), side.held(20.0)) == (
        pytest.approx(level),
        fails,
        held,
    )


def test_a_plain_failure_phi_held_back_is_remembered_and_never_passed() -> None:
    # Weak evidence at the last look (ratio 1, phi 1) would pass; a state that remembers the
    # plain judgment failing at 1/alpha = 50 earlier is held instead, also after a round trip
    # through the saved JSON; a memory under the threshold (e = 15) does not hold it.
    state = _state([(12, 1200, 48, 4800)] * 4)
    assert sequential_counts(state, final=True).decision == "pass"
    remembered = decode_state(
        encode_state(replace(state, plain_failed_log_e=(math.log(50.0), 0.0))), TOLERANCE
    )
    assert remembered.plain_failed_log_e == pytest.approx((math.log(50.0), 0.0), abs=1e-4)
    assert sequential_counts(remembered, final=True).decision == "inconclusive"
    weak = replace(state, plain_failed_log_e=(math.log(15.0), 0.0))
    assert sequential_counts(weak, final=True).decision == "pass"
    old = json.loads(encode_state(remembered))
    del old["plainFailedLogE"]
    assert decode_state(json.dumps(old), TOLERANCE).plain_failed_log_e == (0.0, 0.0)


def test_the_judgment_remembers_a_plain_failure_in_its_state() -> None:
    # Four 3x windows: the plain judgment fails (Poisson e and the sign test over 4 of 4
    # windows); the evidence's state carries that level on.
    state = _state([(36, 1200, 48, 4800)] * 4)
    evidence = sequential_counts(state)
    assert evidence.decision == "fail"
    assert evidence.state is not None
    assert evidence.state.plain_failed_log_e[0] >= math.log(20.0)
    assert state.plain_failed_log_e == (0.0, 0.0)
