"""The sequential count test's second opinion (rollouts.analysis.consistency): a failure needs
the count e-value AND a check that does not assume Poisson counts (a swing-robust e-value or
a sign test over the looks). Tables, properties, and seeded simulations at a small size."""

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
from rollouts.analysis.consistency import (
    CONSISTENT_LOOKS_E,
    excess_errors,
    look_side,
    mixture_e,
    restarted,
    sign_e_value,
    swing_log_likelihood,
)
from rollouts.analysis.sequential import SequentialState, _grid, sequential_counts

TOLERANCE = 0.2


def run(looks: list[tuple[float, float, float, float]], **kwargs: object) -> list[str]:
    """The decision after every look (canary errors, canary requests, baseline errors,
    baseline requests), stopping at the first fail or pass."""
    state = SequentialState.start(TOLERANCE)
    decisions = []
    for look in looks:
        state = state.update(*look)
        decision = sequential_counts(state, **kwargs).decision  # type: ignore[arg-type]
        decisions.append(decision)
        if decision in ("fail", "pass"):
            break
    return decisions


# ---------------------------------------------------------------------------------------------
# Tables


@pytest.mark.parametrize(
    ("agreeing", "disagreeing", "expected"),
    [(0, 0, 1.0), (1, 1, 0.6667), (2, 0, 2.3333), (3, 0, 3.7499), (4, 0, 6.1995),
     (4, 1, 1.9003), (6, 1, 4.4119), (8, 2, 4.0021), (0, 5, 0.1666)],
)  # fmt: skip
def test_sign_e_value_table(agreeing: int, disagreeing: int, expected: float) -> None:
    # mean over q = 0.505, 0.515, ..., 0.995 of (2q)^a (2(1-q))^b; e.g. (1, 1): the mean
    # of 4q(1-q) over the bets, 2/3.
    assert sign_e_value(agreeing, disagreeing) == pytest.approx(expected, abs=2e-4)


@pytest.mark.parametrize(("agreeing", "disagreeing"), [(3, 0), (4, 0), (6, 1), (8, 2), (20, 5)])
def test_sign_e_value_against_the_uniform_mixture(agreeing: int, disagreeing: int) -> None:
    # The bets are a midpoint rule for q uniform on [1/2, 1): scipy's incomplete beta gives
    # 2 * integral of (2q)^a (2(1-q))^b over [1/2, 1].
    special = pytest.importorskip("scipy.special")
    a, b = agreeing + 1, disagreeing + 1
    exact = 2.0 ** (a + b - 1) * special.beta(a, b) * (1.0 - special.betainc(a, b, 0.5))
    assert sign_e_value(agreeing, disagreeing) == pytest.approx(exact, rel=2e-3)


def test_the_sign_test_needs_four_consistent_looks() -> None:
    assert sign_e_value(3, 0) < CONSISTENT_LOOKS_E <= sign_e_value(4, 0)
    assert sign_e_value(5, 1) < CONSISTENT_LOOKS_E <= sign_e_value(6, 1)
    assert sign_e_value(7, 3) < CONSISTENT_LOOKS_E <= sign_e_value(8, 2)


@pytest.mark.parametrize(
    ("look", "above", "below"),
    [
        ((12, 1200, 48, 4800), False, False),  # share at 1.2x 0.2308: 12 < 60 * 0.2308 + 0.69
        ((15, 1200, 48, 4800), False, False),  # 15 < 63 * 0.2308 + 0.69 = 15.2
        ((16, 1200, 48, 4800), True, False),  # 16 > 64 * 0.2308 + 0.69 = 15.5
        ((5, 1200, 48, 4800), False, True),  # at 1/1.2x: share 0.1724, 5 < 53 * 0.1724 - 0.69
        ((0, 1200, 0, 4800), False, False),  # no errors: neither
        ((2, 100, 0, 100), True, False),  # 2 > 2 * 0.545 + 0.69 = 1.78
        ((1, 100, 0, 100), False, False),  # 1 is no evidence at these counts
    ],
)
def test_looks_above_and_below_the_tolerance(
    look: tuple[float, float, float, float], above: bool, below: bool
) -> None:
    high = math.log1p(TOLERANCE)
    assert (look_side(*look, high) > 0) is above
    assert (look_side(*look, -high) < 0) is below


def test_excess_errors_worked_example() -> None:
    # 12 of 60 errors; the canary's share at 1.2x is 1440 / 6240: 13.846 expected
    assert excess_errors(12, 1200, 48, 4800, math.log(1.2)) == pytest.approx(12 - 60 * 1440 / 6240)


def test_a_look_without_errors_is_no_evidence_for_the_swing_likelihood() -> None:
    grid = _grid(TOLERANCE)
    assert not swing_log_likelihood(grid, 0, 1000, 0, 1000).any()
    assert not swing_log_likelihood(grid, 3, 0, 1, 1000).any()


def test_one_bad_minute_does_not_fail_a_canary() -> None:
    # A 3x spike in the first minute, then the canary's rate is the baseline's: the count
    # e-value alone would fail at once; the checks hold it, and the last look passes once
    # a doubling is ruled out (after 15 normal looks; after 9 it is not yet).
    spike = (36, 1200, 48, 4800)
    normal = (12, 1200, 48, 4800)
    state = SequentialState.start(TOLERANCE).update(*spike)
    first = sequential_counts(state)
    assert first.e_value is not None and first.e_value >= 20
    assert first.decision == "continue"
    assert "not consistent across looks" in first.reason
    assert "1 of 1 looks beyond" in first.reason
    decisions = run([spike] + [normal] * 9, final=False)
    assert "fail" not in decisions
    for _ in range(9):
        state = state.update(*normal)
    assert sequential_counts(state, final=True).decision == "inconclusive"
    for _ in range(6):
        state = state.update(*normal)
    assert sequential_counts(state, final=True).decision == "pass"


def test_one_quiet_look_of_a_swinging_canary_does_not_pass_early() -> None:
    # 1 error of 1,000 against 10 of 1,000 bounds the Poisson ratio below 1.1x (e=66), but
    # a canary whose rate swings has quiet minutes (a 10x regression drawn by
    # bench/judge.py's noisy case passed this way): the early pass waits.
    state = SequentialState.start(0.1).update(1, 1000, 10, 1000)
    evidence = sequential_counts(state)
    assert evidence.e_value is not None and evidence.e_value >= 20
    assert evidence.decision == "continue"
    assert "bounds the ratio, not across swings yet" in evidence.reason


def test_strong_count_evidence_not_consistent_at_the_last_look_is_inconclusive() -> None:
    # 3x in two looks: e past 20 (no dispersion is estimated from the one window before
    # the newest) but 2 of 2 looks beyond (sign e 2.3 < 4), swing-robust e small. Neither a
    # pass nor a fail: the metric layer extends, then pauses.
    spike = (36, 1200, 48, 4800)
    state = SequentialState.start(0.2)
    for counts in [spike] * 2:
        state = state.update(*counts)
    evidence = sequential_counts(state, final=True)
    assert evidence.e_value is not None and evidence.e_value >= 20
    assert evidence.decision == "inconclusive"
    assert evidence.reason.startswith("excess not shown consistent by the last look")
    assert sequential_counts(state, final=False).decision == "continue"


@pytest.mark.parametrize(
    ("look", "looks_to_fail"),
    [
        ((120, 1200, 48, 4800), 1),  # 10x at 1% (the bench's traffic): beyond any swing
        ((12, 1200, 4.8, 4800), 1),  # 10x at 0.1%
        ((24, 1200, 48, 4800), 4),  # 2x at 1%: four looks out of four above 1.2x
        ((50, 1000, 5, 1000), 1),  # 10x at 0.5% -> 5%, equal traffic
    ],
)
def test_constant_regressions_fail_by_the_look_in_the_table(
    look: tuple[float, float, float, float], looks_to_fail: int
) -> None:
    decisions = run([look] * 10)
    assert decisions[-1] == "fail"
    assert len(decisions) == looks_to_fail


@pytest.mark.parametrize(
    ("look", "looks_to_fail"),
    [
        # (after 0, 2, 5 good looks); before the restarts 10x 1/2/3, 5x 2/3/5, 3x 4/7/9;
        # with the restarts and before the dispersion estimate (round 5) 1/1/1, 2/2/2, 4/4/4
        ((120, 1200, 48, 4800), (1, 1, 1)),  # 10x at 1%
        ((60, 1200, 48, 4800), (2, 4, 5)),  # 5x
        ((36, 1200, 48, 4800), (4, 5, 6)),  # 3x
    ],
)
@pytest.mark.parametrize("good_looks", [0, 2, 5])
def test_a_regression_from_partway_fails_by_the_look_in_the_table(
    look: tuple[float, float, float, float], looks_to_fail: tuple[int, int, int], good_looks: int
) -> None:
    # The good looks before the onset do not count against the checks (they restart), and
    # the newest window is judged with the dispersion of the windows before it, so a 10x
    # onset fails at once; from the second bad window on, the change itself reads as
    # dispersion (phi over the good and the bad windows), which costs 5x and 3x one to
    # three looks (bench/judge_onset.py).
    decisions = run([(12, 1200, 48, 4800)] * good_looks + [look] * 10)
    assert decisions[-1] == "fail"
    assert len(decisions) - good_looks == looks_to_fail[(0, 2, 5).index(good_looks)]


def test_a_2x_regression_from_partway_needs_the_restarted_sign_test() -> None:
    # Within the swing, so the sign test decides: six looks beyond in a row since the onset
    # (e=18 >= RESTARTED_LOOKS_E) after five good looks, the count e-value divided by the
    # dispersion the onset adds; 7 before round 5, > 10 before the restarts.
    good, bad = (12, 1200, 48, 4800), (24, 1200, 48, 4800)
    assert len(run([bad] * 10)) == 4
    decisions = run([good] * 5 + [bad] * 10)
    assert decisions[-1] == "fail"
    assert len(decisions) - 5 == 9


def test_restarted_starts_afresh_when_the_mixture_goes_below_1() -> None:
    wealth = restarted((), np.array([1.0, -1.0]))  # mean(e, 1/e) = 1.54: kept
    assert wealth == (1.0, -1.0)
    assert restarted(wealth, np.array([-2.0, 0.5])) == (0.0, 0.0)  # mean 0.49: afresh
    assert mixture_e((0.0, 0.0)) == pytest.approx(1.0)
    assert mixture_e((math.log(3.0), 0.0)) == pytest.approx(2.0)
    assert mixture_e(()) == 1.0
    with pytest.raises(ValueError, match="another tolerance"):
        restarted((0.0,), np.array([1.0, 2.0]))


def test_looks_without_errors_do_not_block_detection_at_low_rates() -> None:
    # 0.1% base, 10x canary, 2000 requests a look; every other look has no errors at all
    # (e.g. a scrape gap): those looks count for neither check, and the regression fails.
    bad = (20, 2000, 2, 2000)
    quiet = (0, 2000, 0, 2000)
    decisions = run([bad, quiet] * 5)
    assert decisions[-1] == "fail"
    assert len(decisions) <= 3
    state = SequentialState.start(TOLERANCE).update(*quiet).update(*quiet)
    assert (state.looks, state.looks_with_errors) == (2, 0)


def test_a_decrease_needs_consistency_too() -> None:
    spike = (48, 4800, 36, 1200)  # the sides swapped: the canary is 1/3 of the baseline once
    normal = (48, 4800, 12, 1200)
    assert "fail" not in run([spike] + [normal] * 9, direction="decrease")
    assert run([(48, 4800, 120, 1200)] * 3, direction="decrease")[-1] == "fail"


def test_a_failure_on_every_window_s_dispersion_reports_that_e_value() -> None:
    # Found by the property below: from six windows the count e-value divided by phi of
    # every window (20.68) failed alone while the one of the windows before the newest was
    # 18.28; the evidence said "e=18.28 >= 20". It reports the e-value that failed.
    looks = [(1, 1, 0, 1), (1, 1, 0, 1), (0, 1, 0, 1), (0, 28, 5, 457), (7, 7, 0, 7),
             (1, 1, 0, 1), (1, 1, 0, 1)]  # fmt: skip
    state = SequentialState.start(TOLERANCE)
    for look in looks:
        state = state.update(*look)
    evidence = sequential_counts(state, min_samples=1)
    assert evidence.decision == "fail"
    assert evidence.e_value == pytest.approx(20.68, abs=0.01)
    assert "e=20.68 >= 20" in evidence.reason and "alone e=20.68" in evidence.reason


# ---------------------------------------------------------------------------------------------
# Properties


looks_strategy = st.lists(
    st.tuples(
        st.integers(0, 60), st.integers(1, 2000), st.integers(0, 60), st.integers(1, 2000)
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(looks=looks_strategy)
def test_the_rejection_set_only_shrinks(looks: list[tuple[int, int, int, int]]) -> None:
    # A failure always has the count e-value at 1/alpha: the checks never add a rejection,
    # so the count test's anytime bound under Poisson counts still holds.
    state = SequentialState.start(TOLERANCE)
    for look in looks:
        state = state.update(*look)
        evidence = sequential_counts(state, min_samples=1)
        if evidence.decision == "fail":
            assert evidence.e_value is not None and evidence.e_value >= 20.0


@settings(max_examples=40, deadline=None)
@given(
    ratio=st.floats(3.0, 50.0),
    requests=st.integers(500, 20_000),
    rate=st.floats(0.01, 0.05),
)
def test_a_constant_regression_of_3x_or_more_fails_by_look_4(
    ratio: float, requests: int, rate: float
) -> None:
    # Expected counts, equal traffic, >= 5 baseline errors a look: the sign test needs four
    # looks out of four; from 8x the swing-robust e-value fails it at the first look.
    canary = min(requests, requests * rate * ratio)
    decisions = run([(canary, requests, requests * rate, requests)] * 10)
    assert decisions[-1] == "fail"
    assert len(decisions) <= 4
    if ratio >= 8:
        assert len(decisions) == 1


@settings(max_examples=30, deadline=None)
@given(looks=looks_strategy)
def test_swapping_the_sides_mirrors_the_swing_likelihood(
    looks: list[tuple[int, int, int, int]],
) -> None:
    grid = _grid(TOLERANCE)  # symmetric around 0 in log(rho)
    for xc, nc, xb, nb in looks:
        forward = swing_log_likelihood(grid, xc, nc, xb, nb)
        swapped = swing_log_likelihood(grid, xb, nb, xc, nc)
        assert np.allclose(forward, swapped[::-1], atol=1e-9)


# ---------------------------------------------------------------------------------------------
# Seeded simulations (small: 200 releases of 10 looks)


def _releases(seed: int, ratio: float, noise_shape: float | None, base: float = 0.01
              ) -> list[list[tuple[float, float, float, float]]]:  # fmt: skip
    rng = np.random.default_rng(seed)
    releases = []
    for _ in range(200):
        nc, nb = rng.poisson(1200, 10), rng.poisson(4800, 10)
        swing = (rng.gamma(noise_shape, 1 / noise_shape, 10) if noise_shape is not None
                 else np.ones(10))  # fmt: skip
        xc = rng.binomial(nc, np.minimum(1.0, base * ratio * swing))
        xb = rng.binomial(nb, base)
        releases.append([(float(xc[i]), float(nc[i]), float(xb[i]), float(nb[i]))
                         for i in range(10)])  # fmt: skip
    return releases


def _failed(releases: list[list[tuple[float, float, float, float]]]) -> float:
    return sum(run(looks)[-1] == "fail" for looks in releases) / len(releases)


def test_good_but_overdispersed_canaries_are_rejected_at_most_alpha() -> None:
    # The canary's rate swings minute to minute (gamma, coefficient of variation 0.7, mean
    # unchanged): the count e-value alone fails ~10% of them (bench/judge_prometheus.py).
    assert _failed(_releases(11, 1.0, noise_shape=2.0)) <= 0.05
    assert _failed(_releases(12, 1.0, noise_shape=1.0)) <= 0.05  # coefficient of variation 1


def test_good_poisson_canaries_are_rejected_at_most_alpha() -> None:
    assert _failed(_releases(13, 1.0, None)) <= 0.05
    assert _failed(_releases(14, 1.2, None, base=0.001)) <= 0.05  # at the tolerance itself


def test_regressions_are_still_caught() -> None:
    assert _failed(_releases(15, 10.0, None, base=0.001)) == 1.0
    assert _failed(_releases(16, 2.0, None)) >= 0.95


# ---------------------------------------------------------------------------------------------
# State and imports


def test_the_state_round_trips_with_the_checks() -> None:
    state = SequentialState.start(0.1).update(30, 1000, 5, 1000).update(0, 1000, 0, 1000)
    back = decode_state(encode_state(state), 0.1)
    assert (back.looks, back.looks_with_errors, back.looks_above, back.looks_below) == (
        2, 1, 1, 0)  # fmt: skip
    for field in ("swing_up", "swing_down", "signs_up", "signs_down"):
        assert getattr(back, field) == pytest.approx(getattr(state, field), abs=1e-4)
    restored, original = sequential_counts(back), sequential_counts(state)
    assert restored.e_value == pytest.approx(original.e_value, rel=1e-4)


def _saved_before_restarts(looks: list[tuple[float, float, float, float]]) -> str:
    """The state JSON of the checks' first version: a whole-run swing log-likelihood."""
    grid = _grid(0.1)
    state, swing = SequentialState.start(0.1), np.zeros(len(grid))
    for look in looks:
        state = state.update(*look)
        swing = swing + swing_log_likelihood(grid, *look)
    data = json.loads(encode_state(state))
    del data["restarting"]
    data["swingLogLikelihood"] = [float(v) for v in swing]
    return json.dumps(data)


def test_a_state_saved_before_the_checks_keeps_its_count_evidence() -> None:
    state = SequentialState.start(0.1).update(30, 1000, 5, 1000)
    data = json.loads(encode_state(state))
    del data["restarting"], data["signs"], data["swingLogLikelihood"]
    back = decode_state(json.dumps(data), 0.1)
    assert back.log_likelihood == pytest.approx(state.log_likelihood, abs=1e-4)
    assert (back.swing_up, back.signs_up, back.looks_with_errors) == ((), (), 0)
    assert sequential_counts(back.update(30, 1000, 5, 1000)).looks == 2


def test_a_state_saved_before_the_restarts_carries_its_checks_on() -> None:
    # Without a restart in between (every look beyond), the whole-run sums are the same
    # products as the restarting ones.
    looks = [(30.0, 1000.0, 5.0, 1000.0)] * 2
    back = decode_state(_saved_before_restarts(looks), 0.1)
    state = SequentialState.start(0.1).update(*looks[0]).update(*looks[1])
    for field in ("swing_up", "signs_up"):
        assert getattr(back, field) == pytest.approx(getattr(state, field), abs=1e-6)
    assert sequential_counts(back).reason == sequential_counts(state).reason


def test_a_swing_likelihood_of_another_tolerance_is_refused() -> None:
    data = json.loads(_saved_before_restarts([(30, 1000, 5, 1000)]))
    data["swingLogLikelihood"] = data["swingLogLikelihood"][:-1]
    with pytest.raises(ValueError, match="another tolerance"):
        decode_state(json.dumps(data), 0.1)
    data = json.loads(encode_state(SequentialState.start(0.1).update(30, 1000, 5, 1000)))
    data["restarting"][0] = data["restarting"][0][:-1]
    with pytest.raises(ValueError, match="another tolerance"):
        decode_state(json.dumps(data), 0.1)


def test_numpy_is_imported_only_when_a_comparison_is_judged() -> None:
    code = ("import sys\n"
            "import rollouts.analysis.runner, rollouts.analysis.assessment, rollouts.cli.render\n"
            "print('numpy' in sys.modules)")  # fmt: skip
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()  # fmt: skip
    assert loaded == "False"
