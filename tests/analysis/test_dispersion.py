"""The sequential test's overdispersion estimate: scipy as an oracle for the deviance, tables
by hand, properties (more dispersion never makes an e-value larger than it was, nor a fail
out of a non-fail), seeded simulations (Poisson data keep their false-alarm bound, a noisy
but good canary is rolled back less), the state's round trip, and numpy's lazy import."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollouts.analysis.comparison import decode_state, encode_state
from rollouts.analysis.statistics import SequentialState, sequential_counts

scipy_stats = pytest.importorskip("scipy.stats")

looks_strategy = st.lists(
    st.tuples(st.integers(0, 60), st.integers(0, 60)), min_size=1, max_size=8
)


def _state(looks: list[tuple[int, int]], requests: float = 1000.0) -> SequentialState:
    state = SequentialState.start(0.1)
    for canary_errors, baseline_errors in looks:
        state = state.update(canary_errors, requests, baseline_errors, requests)
    return state


# ---------------------------------------------------------------------------------------------
# The estimate


def test_one_look_or_no_errors_is_dispersion_one() -> None:
    assert SequentialState.start(0.1).dispersion_estimate() == 1.0
    assert _state([(30, 5)]).dispersion_estimate() == 1.0  # one look: nothing to compare it with
    assert _state([(0, 0), (0, 0), (0, 0)]).dispersion_estimate() == 1.0


def test_looks_with_the_same_split_show_no_overdispersion() -> None:
    assert _state([(10, 10)] * 6).dispersion_estimate() == 1.0
    assert _state([(12, 48), (6, 24), (24, 96)]).dispersion_estimate() == 1.0


@pytest.mark.parametrize(
    "looks",
    [
        [(20, 5), (3, 22), (18, 7), (4, 21)],
        [(40, 10), (10, 40), (25, 25)],
        [(1, 9), (9, 1), (5, 5), (0, 10), (10, 0)],
    ],
)
def test_dispersion_is_the_excess_deviance_per_degree_of_freedom(
    looks: list[tuple[int, int]],
) -> None:
    # Equal requests per side: the fitted share is sum(xc) / sum(m), so the binomial
    # deviance has a closed form; scipy computes it from the log-pmfs.
    xc = np.array([c for c, _ in looks], dtype=float)
    m = np.array([c + b for c, b in looks], dtype=float)
    fitted = xc.sum() / m.sum()
    deviance = 2 * float(
        (scipy_stats.binom.logpmf(xc, m, xc / m) - scipy_stats.binom.logpmf(xc, m, fitted)).sum()
    )
    freedom = len(looks) - 1
    expected = max(1.0, (1.0 + deviance - math.sqrt(2 * freedom)) / (1.0 + freedom))
    assert expected > 1.5  # these tables are overdispersed on purpose
    assert _state(looks).dispersion_estimate() == pytest.approx(expected, rel=2e-3)


def test_dispersion_by_hand() -> None:
    # Two looks, 10 errors each, split 10/0 and 0/10: the fitted share is 1/2, the saturated
    # log-likelihood 0, the fitted one 20 * log(1/2): deviance 40 log 2 = 27.73, one degree
    # of freedom (margin sqrt 2), one pseudo-look: (1 + 27.73 - 1.414) / 2 = 13.66.
    assert _state([(10, 0), (0, 10)]).dispersion_estimate() == pytest.approx(13.658, rel=2e-3)


def test_poisson_noise_alone_rarely_moves_the_estimate() -> None:
    # Ten looks of 20 errors split by a fair coin: a deviance beyond its mean by more than
    # one standard deviation, which makes phi > 1, happens about one time in six.
    rng = np.random.default_rng(93)
    estimates = [
        _state([(c, 20 - c) for c in rng.binomial(20, 0.5, 10)]).dispersion_estimate()
        for _ in range(400)
    ]
    assert sum(phi > 1.0 for phi in estimates) / 400 < 0.25
    assert float(np.median(estimates)) == 1.0


# ---------------------------------------------------------------------------------------------
# Properties of the scaled test


@settings(max_examples=150, deadline=None)
@given(looks_strategy, st.floats(1.0, 20.0), st.floats(0.0, 20.0))
def test_more_dispersion_never_raises_an_e_value_above_one(
    looks: list[tuple[int, int]], phi: float, extra: float
) -> None:
    # An e-value mixes exp(log-likelihood ratio / phi): convex in 1/phi and 1 at 1/phi = 0,
    # so for phi2 >= phi1: e(phi2) <= max(1, e(phi1)). With any threshold above 1 a fail or
    # an early pass at the larger dispersion is one at the smaller.
    state = _state(looks)
    for direction in ("increase", "decrease", "either"):
        low = sequential_counts(state, direction=direction, min_samples=1, dispersion=phi)
        high = sequential_counts(state, direction=direction, min_samples=1, dispersion=phi + extra)
        assert low.e_value is not None and high.e_value is not None
        assert high.e_value <= max(1.0, low.e_value) * (1 + 1e-9)
        if high.decision in ("fail", "pass"):
            assert low.decision == high.decision


@settings(max_examples=100, deadline=None)
@given(looks_strategy)
def test_the_estimate_never_makes_the_test_bolder_than_poisson(
    looks: list[tuple[int, int]],
) -> None:
    state = _state(looks)
    assert state.dispersion_estimate() >= 1.0
    estimated = sequential_counts(state, min_samples=1)
    poisson = sequential_counts(state, min_samples=1, dispersion=1.0)
    assert estimated.dispersion == state.dispersion
    if estimated.decision == "fail":
        assert poisson.decision == "fail"


def test_a_dispersion_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        sequential_counts(_state([(5, 5)]), dispersion=0.5)
    with pytest.raises(ValueError, match=">= 1"):
        sequential_counts(_state([(5, 5)]), dispersion=math.nan)


def test_each_look_is_judged_with_the_estimate_of_the_looks_before_it() -> None:
    before = _state([(20, 5), (3, 22), (18, 7)])
    after = before.update(4, 1000, 21, 1000)
    assert after.dispersion == before.dispersion_estimate() > 1.0
    assert after.dispersion_estimate() != after.dispersion


def test_a_regression_starting_mid_run_is_judged_at_its_first_look_like_poisson() -> None:
    # 1% errors on both sides for two looks (1200 canary, 4800 baseline requests), then the
    # canary at 5%: the third look fails at once. Its own jump would read as overdispersion
    # (an estimate including it is far above 1) but it is judged with the first two looks'.
    state = SequentialState.start(0.1)
    for canary_errors in (12, 12):
        state = state.update(canary_errors, 1200, 48, 4800)
        assert sequential_counts(state).decision == "continue"
    state = state.update(60, 1200, 48, 4800)
    assert state.dispersion == 1.0 and state.dispersion_estimate() > 3.0
    assert sequential_counts(state).decision == "fail"


def test_the_reason_names_the_dispersion_only_when_it_was_used() -> None:
    assert "dispersion" not in sequential_counts(_state([(10, 10)] * 3)).reason
    noisy = sequential_counts(_state([(20, 5), (3, 22), (18, 7), (4, 21), (20, 5)]))
    assert noisy.dispersion is not None and noisy.dispersion > 1
    assert f"dispersion {noisy.dispersion:.3g}" in noisy.reason


# ---------------------------------------------------------------------------------------------
# Seeded simulations


def _false_alarms(
    rng: np.random.Generator, noise_cv: float, runs: int, poisson: bool
) -> list[int]:
    """Good canaries (1% errors, 1000 requests a side a look, 10 looks, 10% tolerance) whose
    error rate is multiplied every look by a gamma draw with mean 1 and CV `noise_cv`: the
    looks at which they were failed."""
    fails: list[int] = []
    shape = 1 / noise_cv**2 if noise_cv else 0.0
    for _ in range(runs):
        # Drawn before judging, so that both tests of a seed see the same releases.
        noise = rng.gamma(shape, 1 / shape, 10) if noise_cv else np.ones(10)
        canary = rng.binomial(1000, np.minimum(0.01 * noise, 1.0))
        baseline = rng.binomial(1000, 0.01, 10)
        state = SequentialState.start(0.1)
        for look in range(10):
            state = state.update(float(canary[look]), 1000.0, float(baseline[look]), 1000.0)
            evidence = sequential_counts(
                state, min_samples=100, final=look == 9, dispersion=1.0 if poisson else None
            )
            if evidence.decision != "continue":
                fails += [look + 1] if evidence.decision == "fail" else []
                break
    return fails


def test_poisson_good_canaries_keep_the_false_alarm_bound() -> None:
    runs = 400
    fails = len(_false_alarms(np.random.default_rng(91), 0.0, runs, poisson=False))
    assert fails / runs <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / runs)


def test_a_noisy_good_canary_is_rolled_back_less_than_by_the_poisson_test() -> None:
    runs = 300
    robust = _false_alarms(np.random.default_rng(92), 0.7, runs, poisson=False)
    poisson = _false_alarms(np.random.default_rng(92), 0.7, runs, poisson=True)
    assert len(poisson) / runs > 0.05  # the Poisson test does read the noise as evidence
    assert len(robust) < len(poisson)
    # Once two looks show the noise, the estimate discounts it at the looks after. The first
    # two looks cannot: they are judged with what was seen before them, too little to tell
    # a noisy minute from a regression (hence the same fails at looks 1 and 2).
    assert sum(look >= 3 for look in robust) <= 0.6 * sum(look >= 3 for look in poisson)
    assert [look for look in robust if look <= 2] == [look for look in poisson if look <= 2]


# ---------------------------------------------------------------------------------------------
# The state between looks, and the import


def test_the_dispersion_survives_the_round_trip_through_status() -> None:
    state = _state([(20, 5), (3, 22), (18, 7)])
    back = decode_state(encode_state(state), 0.1)
    assert back.looks_with_errors == 3
    assert back.saturated == pytest.approx(state.saturated, abs=1e-4)
    assert back.dispersion_estimate() == pytest.approx(state.dispersion_estimate(), rel=1e-4)
    assert back.dispersion == state.dispersion > 1.0


def test_a_state_saved_before_the_estimate_reads_as_no_overdispersion_yet() -> None:
    state = _state([(20, 5), (3, 22)])
    data = json.loads(encode_state(state))
    del data["dispersion"]
    back = decode_state(json.dumps(data), 0.1)
    assert back.dispersion_estimate() == 1.0
    later = back.update(18, 1000, 7, 1000).update(4, 1000, 21, 1000)
    assert later.dispersion > 1.0  # the looks after the upgrade are measured


def test_the_controller_does_not_import_numpy() -> None:
    # numpy (about 14 MiB) is loaded by the statistics when a comparison is judged.
    code = "import rollouts.operator, sys; assert 'numpy' not in sys.modules, 'numpy loaded'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
