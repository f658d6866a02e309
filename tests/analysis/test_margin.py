"""The last look's pass margin (`rollouts.analysis.margin`): tables by hand, properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollouts.analysis.margin import margin_statistic, rules_out
from rollouts.analysis.sequential import SequentialState, _grid

RATIOS = np.array([0.25, 0.5, 1.0, 2.0, 4.0])


def binomial_split(xc: float, xb: float, ratios: np.ndarray) -> np.ndarray:
    """The canary's share of the errors, equal traffic: binomial with p = r / (1 + r)."""
    share = ratios / (1.0 + ratios)
    return xc * np.log(share) + xb * np.log1p(-share)


def test_statistic_by_hand() -> None:
    # 10 errors a side: the best ratio is 1, and against 2 (p = 2/3) the statistic is
    # 2 * 20 * KL(1/2 || 2/3) = 40 * (0.5 ln 0.75 + 0.5 ln 1.5) = 2.35566.
    log_likelihood = binomial_split(10, 10, RATIOS)
    statistic = margin_statistic(log_likelihood, np.log(RATIOS), 2.0)
    assert statistic == pytest.approx(40 * (0.5 * math.log(0.75) + 0.5 * math.log(1.5)))
    assert statistic == pytest.approx(2.35566, abs=1e-5)
    # Below z^2 = 1.6449^2 = 2.7055 at 95%: a doubling is not ruled out; at 80%
    # (z^2 = 0.7084) it is.
    assert not rules_out(log_likelihood, np.log(RATIOS), 2.0, 0.95)
    assert rules_out(log_likelihood, np.log(RATIOS), 2.0, 0.80)
    # The decrease side mirrors it: 0.5x has p = 1/3.
    assert margin_statistic(log_likelihood, np.log(RATIOS), 0.5) == pytest.approx(statistic)


def test_statistic_with_more_errors_rules_the_margin_out() -> None:
    # 20 a side: twice the statistic, 4.71 >= 2.7055.
    log_likelihood = binomial_split(20, 20, RATIOS)
    assert margin_statistic(log_likelihood, np.log(RATIOS), 2.0) == pytest.approx(4.71132, 1e-5)
    assert rules_out(log_likelihood, np.log(RATIOS), 2.0, 0.95)


def test_the_margin_between_grid_points_takes_the_one_inside() -> None:
    # 3x lies between 2 and 4: the statistic is the one at 2 (never more than at 3).
    log_likelihood = binomial_split(10, 10, RATIOS)
    at_two = margin_statistic(log_likelihood, np.log(RATIOS), 2.0)
    assert margin_statistic(log_likelihood, np.log(RATIOS), 3.0) == pytest.approx(at_two)
    assert margin_statistic(log_likelihood, np.log(RATIOS), 1 / 3) == pytest.approx(at_two)


def test_a_best_fit_at_or_beyond_the_margin_rules_nothing_out() -> None:
    log_likelihood = binomial_split(40, 10, RATIOS)  # best fit 4x
    assert margin_statistic(log_likelihood, np.log(RATIOS), 2.0) == 0.0
    assert margin_statistic(log_likelihood, np.log(RATIOS), 4.0) == 0.0


def test_a_margin_beyond_the_grid_is_always_ruled_out() -> None:
    log_likelihood = binomial_split(1, 1, RATIOS)
    assert margin_statistic(log_likelihood, np.log(RATIOS), 8.0) == math.inf
    assert margin_statistic(log_likelihood, np.log(RATIOS), 0.125) == math.inf


@pytest.mark.parametrize("margin", [1.0, 0.0, -2.0, math.inf, math.nan])
def test_a_margin_is_a_ratio_other_than_one(margin: float) -> None:
    with pytest.raises(ValueError, match="ratio other than 1"):
        margin_statistic(np.zeros(5), np.log(RATIOS), margin)


counts = st.integers(min_value=0, max_value=400)


@given(counts, counts, st.floats(0.15, 20.0), st.floats(0.15, 20.0))
def test_a_wider_margin_is_ruled_out_whenever_a_narrower_one_is(
    xc: int, xb: int, first: float, second: float
) -> None:
    narrow, wide = sorted((1.0 + first, 1.0 + second))
    state = SequentialState.start(0.1).update(xc, 10_000, xb, 10_000)
    grid = _grid(0.1)
    log_likelihood = np.asarray(state.log_likelihood)
    assert margin_statistic(log_likelihood, grid, wide) >= margin_statistic(
        log_likelihood, grid, narrow
    )
    if rules_out(log_likelihood, grid, narrow, 0.95):
        assert rules_out(log_likelihood, grid, wide, 0.95)


@given(counts, counts, st.floats(1.0, 10.0))
def test_dividing_by_the_dispersion_never_rules_out_more(xc: int, xb: int, phi: float) -> None:
    state = SequentialState.start(0.1).update(xc, 10_000, xb, 10_000)
    grid = _grid(0.1)
    log_likelihood = np.asarray(state.log_likelihood)
    plain = margin_statistic(log_likelihood, grid, 2.0)
    assert margin_statistic(log_likelihood / phi, grid, 2.0) <= plain + 1e-9
