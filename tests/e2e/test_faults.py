"""A fixed-seed slice of the fault campaign (bench/faults.py runs the full one).

The real controller (a subprocess) is SIGKILLed at random instants while canary, blue-green,
abort and git-revert Rollouts progress; then it talks to the API through a proxy that fails
10% of requests and cuts 10% of watch streams; then its metric source errors, refuses and
hangs. Every run must reach the right end state, and the write history must show no step
skipped or repeated, no measurement duplicated, no promotion or abort lost, no canary
scaled down before the stable revision carried all traffic, and no ReplicaSet scaled to 0
while the stable/active Service selected it (rollouts/sandbox/invariants.py).
Nothing here asserts speed: the timeouts are generous.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from rollouts.sandbox.campaign import SCENARIOS, BatchResult, run_batch
from rollouts.sandbox.outage import OUTAGE_RUNS, prometheus_outage

pytestmark = pytest.mark.e2e
SEED = 20261204


@pytest.fixture(autouse=True)
def quiet_emulator() -> Iterator[None]:
    """A SIGKILLed controller leaves half-read requests; the emulator's tracebacks are noise."""
    logger = logging.getLogger("aiohttp.server")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def wrong(result: BatchResult) -> list[str]:
    return [f"{r.name} (seed {r.seed}) {r.outcome}: {r.problems}" for r in result.wrong]


@pytest.mark.parametrize("batch", range(3))
def test_controller_killed_at_random_instants_loses_nothing(batch: int) -> None:
    result = run_batch(seed=SEED + batch, size=7 if batch < 2 else 6, mode="kills",
                       kill_every=(0.5, 2.0), run_timeout=120.0)
    assert not wrong(result), wrong(result)
    assert result.kills >= 1, "no kill happened: the slice proved nothing"
    assert {r.scenario for r in result.runs} == set(SCENARIOS)


def test_api_faults_and_cut_watches_still_converge() -> None:
    result = run_batch(seed=SEED, size=8, mode="proxy", fault_rate=0.1, cut_rate=0.1,
                       run_timeout=150.0)
    assert not wrong(result), wrong(result)
    assert sum(result.faults.values()) >= 5, result.faults


def test_prometheus_outage_never_promotes_and_a_hang_stalls_no_one() -> None:
    result = prometheus_outage(timeout=120.0)
    problems = {r.name: r.problems for r in result.wrong}
    assert not problems, problems
    outcomes = {r.name: r.outcome for r in result.runs}
    assert outcomes == {name: expected for name, (_, expected) in OUTAGE_RUNS.items()}
    by_name = {r.name: r for r in result.runs}
    for name in ("errors", "refused", "bluegreen-errors", "hangs"):
        assert "consecutiveErrorLimit 2" in by_name[name].message, by_name[name].message
    assert "Timeout" in by_name["hangs"].message, by_name["hangs"].message
    # The healthy Rollout did not wait for the hanging one's three 2 s timeouts.
    healthy, hangs = by_name["healthy"].seconds, by_name["hangs"].seconds
    assert healthy is not None and hangs is not None and healthy < hangs, (healthy, hangs)


def test_without_faults_each_measurement_is_queried_once() -> None:
    """Regression: kopf's finalizer on a new AnalysisRun used to make the first measurement
    be taken twice (the write conflicted, or the next pass ran on a body older than the
    write). Blue-green only: a background run terminated mid-measurement may rightly leave
    one query unrecorded."""
    result = run_batch(seed=SEED, size=2, mode="none", scenarios=("bluegreen",))
    assert not wrong(result), wrong(result)
    assert [r.extra_queries for r in result.runs] == [0, 0]
