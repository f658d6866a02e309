"""A release that replaces a canary the routes weigh (found by test_router_properties).

The shrunk histories as tables, replayed deterministically with the property test's own
per-pass checks: traffic never goes to a revision with no pod available (the routes go to
0 before the canary Service leaves the older canary, whose pods stay while it selects
them), and while aborted, once the canary is gone, the reported canary weight is 0.
"""

from __future__ import annotations

from typing import Any

import pytest

from rollouts.planner.manifests import pod_template_hash
from tests.unit import test_router_properties as props
from tests.unit.test_router_properties import RouterWorld, healthy_router_world, run_history
from tests.unit.traffic.cases import BY_NAME, CANARY


def experiment(baseline: int, canary: int) -> dict[str, Any]:
    return {"experiment": {"templates": [
        {"name": "baseline", "specRef": "stable", "weight": baseline},
        {"name": "canary", "specRef": "canary", "weight": canary}]}}


# (router, steps, replicas, dynamicStableScale, moves after the first release)
CASES = [
    # An experiment step (templates 1/1, open-ended): the canary reaches 100 past the last
    # step, then two releases replace it (one pass's route write lost), then an abort.
    ("alb", [experiment(1, 1)], 2, True,
     ["pass", "pass", "ready_pass", "ready_pass", "image", "conflict", "ready_pass", "image",
      "pass", "abort"]),
    ("istio-subset", [experiment(1, 1)], 2, True,
     ["pass", "pass", "ready_pass", "ready_pass", "image", "conflict", "ready_pass", "image",
      "pass", "abort"]),
    # setWeight 39: a release while the canary holds 39 (the next revision's step asks 39
    # too, which the routes already hold), then an abort before its pods come.
    ("istio-subset", [{"setWeight": 39}], 2, False,
     ["ready_pass", "ready_pass", "image", "pass", "abort", "pass", "pass"]),
    ("gatewayapi", [{"setWeight": 39}], 3, True,
     ["ready_pass", "ready_pass", "image", "conflict", "pass", "abort", "pass", "pass"]),
]


def world(router: str, steps: list[dict[str, Any]], replicas: int,
          dynamic: bool) -> RouterWorld:
    return healthy_router_world(BY_NAME[router], steps, replicas, dynamic)


@pytest.mark.parametrize(("router", "steps", "replicas", "dynamic", "moves"), CASES)
def test_replaced_canary_history(router: str, steps: list[dict[str, Any]], replicas: int,
                                 dynamic: bool, moves: list[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(props, "event", lambda _: None)  # hypothesis's, outside a test
    w = world(router, steps, replicas, dynamic)
    run_history(w, ["image", *moves], data=None)  # no move here draws


@pytest.mark.parametrize("router", ["alb", "istio-subset", "gatewayapi"])
def test_a_release_over_a_weighed_canary_lowers_the_routes_before_the_service_moves(
        router: str) -> None:
    """The canary holds 39; a release replaces it. That pass writes weight 0 and leaves the
    canary Service (and the older canary's pods) where they are; the next pass, reading 0,
    re-points the Service."""
    w = world(router, [{"setWeight": 39}], 2, False)
    w.set_image("app:2")
    for _ in range(3):
        w.step()
        w.settle()
    old = w.status.current_pod_hash
    router_ = w.real_router()
    assert router_.verified_weight(w.routes()) == 39 and w.selector(CANARY) == old
    w.set_image("app:3")
    new = pod_template_hash(w.spec["template"])
    result = w.plan()
    w.apply(result)
    assert router_.verified_weight(w.routes()) == 0
    assert w.selector(CANARY) == old and w.sizes()[old] > 0
    result = w.plan()
    w.apply(result)
    assert w.selector(CANARY) == new
    assert result.status.canary is not None and result.status.canary.weights is not None
    assert result.status.canary.weights.canary.weight == 0


def test_a_canary_with_no_pod_available_loses_its_weight_even_with_a_short_stable() -> None:
    """dynamicStableScale lowers the canary's weight only once the stable has grown back,
    but not for a canary with no pod available: what the routes send it is lost (Argo
    Rollouts sets weight 0 for a new ReplicaSet with none)."""
    w = world("gatewayapi", [{"setWeight": 50}, {"pause": {}}], 2, True)
    w.set_image("app:2")
    for _ in range(6):
        w.step()
        w.settle()
    canary, stable = w.status.current_pod_hash, w.status.stable_rs
    assert w.real_router().verified_weight(w.routes()) == 50 and w.sizes()[stable] == 1
    w.settle(available={canary: 0})
    w.step()
    assert w.real_router().verified_weight(w.routes()) == 0
    assert w.sizes()[stable] == 2  # and the stable grows back to carry it
