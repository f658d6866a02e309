"""The pod-ratio traffic model as tables: weight -> pods, read-back, reached."""

from __future__ import annotations

import pytest

from rollouts.models.rollout import CanaryStrategy
from rollouts.planner.traffic import PodRatioTraffic, rolling_counts
from rollouts.planner.types import ReplicaSetView


def rs(pod_hash: str, spec: int, available: int | None = None,
       replicas: int | None = None) -> ReplicaSetView:
    have = spec if available is None else available
    return ReplicaSetView(name=f"web-{pod_hash}", pod_hash=pod_hash, revision=1,
                          spec_replicas=spec, replicas=spec if replicas is None else replicas,
                          ready=have, available=have)


MODEL = PodRatioTraffic(4, CanaryStrategy(max_surge="25%", max_unavailable="25%"))


@pytest.mark.parametrize(("weight", "canary", "stable", "pods", "reached", "verified"), [
    # from all-stable toward 25%: one canary pod first (surge), the stable keeps its 4
    (25, None, rs("s", 4), (1, 3), False, 0),
    # the canary pod is not available yet: the stable may still lose one (maxUnavailable)
    (25, rs("c", 1, 0), rs("s", 4), (1, 3), False, 0),
    # ...but not two
    (0, rs("c", 1, 0), rs("s", 3), (0, 4), False, 0),
    # available: the stable sheds its extra pod
    (25, rs("c", 1), rs("s", 4), (1, 3), False, 20),
    # 1 canary + 3 stable, all available: 25% reached, and verified from the pods
    (25, rs("c", 1), rs("s", 3), (1, 3), True, 25),
    # the stable still runs a 4th (terminating) pod: not reached
    (25, rs("c", 1), rs("s", 3, 3, replicas=4), (1, 3), False, 25),
    # toward 50%: the canary grows within surge, the stable keeps 3 available in all
    (50, rs("c", 1), rs("s", 3), (2, 2), False, 25),
    (100, rs("c", 4), rs("s", 0), (4, 0), True, 100),
    # back to 0 (abort): canary to zero as the stable is whole
    (0, rs("c", 2), rs("s", 4), (0, 4), False, 33),
    (0, rs("c", 0), rs("s", 4), (0, 4), True, 0),
])
def test_pod_ratio(weight: int, canary: ReplicaSetView | None, stable: ReplicaSetView,
                   pods: tuple[int, int], reached: bool, verified: int) -> None:
    assert MODEL.pods(weight, canary, stable) == pods
    assert MODEL.reached(weight, canary, stable) is reached
    assert MODEL.verified_weight(canary, stable) == verified
    assert MODEL.writes(weight, canary, stable) == ()  # the pods are the split: no writes
    assert MODEL.off_canary(canary)  # ...so scaling the canary down is what moves it


def test_pod_ratio_reports_what_it_waits_for() -> None:
    assert MODEL.waiting(50, rs("c", 2, 1), rs("s", 2)) == (
        "waiting for 2 canary pods available (have 1)")


@pytest.mark.parametrize(("surge", "unavailable", "canary", "stable", "target", "expected"), [
    # the worked example of rolling_counts' docstring
    ("25%", "25%", None, rs("s", 4), (2, 2), (1, 3)),
    ("25%", "25%", rs("c", 1), rs("s", 3), (2, 2), (2, 2)),
    # no surge: the stable must give a pod up first
    (0, 1, None, rs("s", 4), (1, 3), (0, 3)),
    (0, 1, rs("c", 0), rs("s", 3), (1, 3), (1, 3)),
    # neither surge nor unavailability: one pod may be unavailable (as Deployments)
    (0, 0, None, rs("s", 4), (1, 3), (0, 3)),
    # a big surge: everything at once, the stable shrinks as the canary becomes available
    ("100%", "0%", None, rs("s", 4), (4, 0), (4, 4)),
    ("100%", "0%", rs("c", 4, 2), rs("s", 4), (4, 0), (4, 2)),
])
def test_rolling_counts(surge: int | str, unavailable: int | str,
                        canary: ReplicaSetView | None, stable: ReplicaSetView,
                        target: tuple[int, int], expected: tuple[int, int]) -> None:
    strategy = CanaryStrategy(max_surge=surge, max_unavailable=unavailable)
    assert rolling_counts(4, strategy, canary, stable, target) == expected
