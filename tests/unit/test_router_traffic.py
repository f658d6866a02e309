"""RouterTraffic over a fake router: pods sized to serve, weight raised only when served,
read back from the routes."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollouts.models.rollout import SetCanaryScale
from rollouts.planner.router_traffic import RouterTraffic
from rollouts.planner.types import (
    ApplyRouteWrite,
    PinService,
    Plan,
    ReplicaSetView,
    ScaleReplicaSet,
)
from tests.unit.fake_router import ROUTE, FakeRouter, route
from tests.unit.world import World, canary_spec


def rs(pod_hash: str, spec: int, available: int | None = None) -> ReplicaSetView:
    have = spec if available is None else available
    return ReplicaSetView(name=f"web-{pod_hash}", pod_hash=pod_hash, revision=1,
                          spec_replicas=spec, replicas=spec, ready=have, available=have)


STABLE = rs("s", 10)


def model(held: int | None, max_weight: int = 100) -> RouterTraffic:
    return RouterTraffic(10, FakeRouter(), route(held), max_weight)


@pytest.mark.parametrize(("weight", "scale", "max_weight", "pods"), [
    (0, None, 100, 0),
    (25, None, 100, 3),  # rounded up
    (100, None, 100, 10),
    (5, None, 10, 5),  # weights count out of maxTrafficWeight
    (25, SetCanaryScale(replicas=1), 100, 1),
    (25, SetCanaryScale(weight=50), 100, 5),
    (25, SetCanaryScale(match_traffic_weight=True), 100, 3),
])
def test_canary_sized_for_the_weight_stable_stays_whole(
        weight: int, scale: SetCanaryScale | None, max_weight: int, pods: int) -> None:
    assert model(0, max_weight).pods(weight, None, STABLE, scale) == (pods, 10)


@pytest.mark.parametrize(("held", "weight", "canary", "written", "reached"), [
    # the canary cannot serve 25 yet: the routes keep what they hold, nothing written
    (0, 25, None, None, False),
    (0, 25, rs("c", 3, 2), None, False),
    # now it can: 25 is written; reached only once the routes read back 25
    (0, 25, rs("c", 3), 25, False),
    (25, 25, rs("c", 3), None, True),
    # raising further waits for the pods again, from the weight held
    (25, 50, rs("c", 5, 3), None, False),
    # lowering never waits (abort, or a later smaller setWeight)
    (50, 0, rs("c", 5, 0), 0, False),
    (50, 10, rs("c", 5, 0), 10, False),
    (0, 0, rs("c", 5), None, True),
    # routes holding something unreadable count as 0 and are rewritten once served
    (None, 25, rs("c", 3), None, False),
])
def test_weight_raised_only_when_served(held: int | None, weight: int,
                                        canary: ReplicaSetView | None, written: int | None,
                                        reached: bool) -> None:
    traffic = model(held)
    writes = traffic.writes(weight, canary, STABLE)
    if written is None:
        assert writes == ()
    else:
        assert len(writes) == 1 and isinstance(writes[0], ApplyRouteWrite)
        write = writes[0].write
        assert write.key == ROUTE and write.op == "patch"
        assert write.patch[0] == {"op": "replace", "path": "/metadata/resourceVersion",
                                  "value": "1"}
        assert write.patch[1]["value"] == written
    assert traffic.reached(weight, canary, STABLE) is reached
    assert traffic.verified_weight(canary, STABLE) == (held or 0)
    assert traffic.off_canary(canary) is (held == 0)


@pytest.mark.parametrize(("held", "weight", "canary", "recheck"), [
    (0, 25, rs("c", 3), 2.0),  # 25 asked, the routes still show 0: read them back soon
    (25, 25, rs("c", 3), None),  # they show it: nothing to look again for
    (0, 25, rs("c", 3, 1), None),  # nothing asked yet (pods first): pods' events wake us
    (None, 0, None, 2.0),  # unreadable routes asked to go to 0
])
def test_routes_are_read_back_again_until_they_show_what_was_asked(
        held: int | None, weight: int, canary: ReplicaSetView | None,
        recheck: float | None) -> None:
    assert model(held).recheck_after(weight, canary, STABLE) == recheck


def test_waiting_says_what_for() -> None:
    assert model(0).waiting(25, rs("c", 3, 1), STABLE) == (
        "waiting for 3 canary pods available (have 1)")
    assert model(10).waiting(25, rs("c", 3), STABLE) == (
        "waiting for the fake routes to hold 25 (now 10)")


# --- the canary planner with a router -------------------------------------------------------

ROUTER_STEPS = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]


def router_world(**canary: object) -> World:
    w = World(canary_spec(ROUTER_STEPS, canaryService="canary", stableService="stable",
                          **canary), router=FakeRouter())
    w.run()
    assert w.status.phase == "Healthy" and w.route_weight == 0
    return w


def at_first_pause(**canary: object) -> tuple[World, str, str]:
    """(world, old, new): revision app:2 paused at 25% behind the router."""
    w = router_world(**canary)
    old = w.status.stable_rs
    w.set_image("app:2")
    w.run()
    assert w.status.phase == "Paused" and w.route_weight == 25
    assert old and w.status.current_pod_hash
    return w, old, w.status.current_pod_hash


def route_writes(p: Plan) -> list[int]:
    return [dict((op["path"], op["value"]) for op in a.write.patch)["/spec/canaryWeight"]
            for a in p.actions if isinstance(a, ApplyRouteWrite)]


def test_canary_sized_first_weight_raised_only_once_its_pods_are_available() -> None:
    w = router_world()
    old = w.status.stable_rs
    w.auto_ready = False
    w.set_image("app:2")
    first = w.step()
    new = w.status.current_pod_hash
    assert route_writes(first) == []  # no pod of the canary yet: no traffic to it
    assert w.sizes() == {old: 4, new: 1}  # one pod for 25% of 4; the stable stays whole
    w.settle(available={new: 0})
    assert route_writes(w.step()) == []
    assert w.status.message.endswith("waiting for 1 canary pod available (have 0)")
    w.settle()
    raised = w.step()
    assert route_writes(raised) == [25]  # served now: raised
    assert w.status.current_step_index == 0  # ...but not yet read back
    assert raised.requeue_after == 2.0  # routes are not watched: read them back soon
    w.step()
    assert (w.status.current_step_index, w.status.phase) == (1, "Paused")
    assert w.status.canary is not None and w.status.canary.weights is not None
    assert (w.status.canary.weights.canary.weight, w.status.canary.weights.verified) == (25, True)
    assert w.sizes() == {old: 4, new: 1}


def test_abort_sends_traffic_to_stable_before_the_canary_is_scaled_down() -> None:
    w, old, new = at_first_pause(abortScaleDownDelaySeconds=10, trafficRouting={"smi": {}})
    w.edit_status(abort=True, abort_message="Rollout aborted by user")
    w.auto_ready = False
    aborting = w.step()
    assert route_writes(aborting) == [0]
    assert not [a for a in aborting.actions if isinstance(a, ScaleReplicaSet)
                and a.name.endswith(str(new))]
    assert w.sizes()[new] == 1  # the canary keeps its pods while the routes change
    after = w.step()  # the routes read back 0: the canary gets its scale-down deadline
    deadline = w.rs(new).scale_down_at  # type: ignore[union-attr]
    assert route_writes(after) == [] and deadline == w.now + dt.timedelta(seconds=10)
    w.advance(10)
    w.step()
    assert w.sizes() == {old: 4, new: 0}
    assert w.status.phase == "Degraded"


def test_promotion_returns_the_routes_to_stable_and_keeps_the_old_pods_a_while() -> None:
    w, old, new = at_first_pause(scaleDownDelaySeconds=20, trafficRouting={"smi": {}})
    w.edit_status(promote_full=True, pause_conditions=None)
    w.run()
    assert w.status.stable_rs == new and w.status.phase == "Healthy"
    assert w.route_weight == 0  # both Services select the new revision; routes all-stable
    assert w.selector("stable") == w.selector("canary") == new
    assert w.sizes()[old] == 4  # the old revision drains for scaleDownDelaySeconds
    w.advance(20)
    w.run()
    assert w.sizes() == {new: 4, old: 0}
    writes = [weight for p in w.history for weight in route_writes(p)]
    assert writes == [25, 100, 0]  # the canary had all traffic before it became stable


def test_a_missing_route_is_an_invalid_spec_naming_it() -> None:
    w = router_world()
    w.route_weight = None
    p = w.step()
    assert p.actions == ()
    assert w.status.phase == "Degraded"
    assert "spec.strategy.canary.trafficRouting.fake.route: Route web-route not found" in (
        w.status.message)
    assert p.requeue_after == 5.0  # routes are not watched: look again for it


# --- properties: invariants 1 and 2 over random histories, with a router -------------------

router_moves = st.sampled_from(["pass", "pass", "pass", "pods", "pods_partial", "clock",
                                "promote", "abort", "image"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.one_of(
           st.builds(lambda w: {"setWeight": w}, st.integers(0, 100)),
           st.builds(lambda d: {"pause": {"duration": d}}, st.integers(0, 20)),
           st.just({"pause": {}})), max_size=5),
       replicas=st.integers(1, 6), data=st.data())
def test_router_invariants(steps: list[dict[str, object]], replicas: int,
                           data: st.DataObject) -> None:
    w = World(canary_spec(steps, replicas=replicas, canaryService="canary",
                          stableService="stable"), router=FakeRouter(), auto_ready=False)
    for move in data.draw(st.lists(router_moves, min_size=5, max_size=40)):
        if not (w.move(move, data) or w.operate(move)):
            check_router_pass(w, replicas)


def check_router_pass(w: World, replicas: int) -> None:
    result = w.plan()
    canary = w.rs(result.status.current_pod_hash)
    held = w.route_weight or 0
    for weight in route_writes(result):
        # Invariant 1: traffic is raised only to pods that can serve it.
        if weight > held:
            needed = math.ceil(replicas * weight / 100)
            assert canary is not None and canary.available >= needed, (weight, canary)
    stable_hash = result.status.stable_rs
    in_flight = stable_hash and stable_hash != result.status.current_pod_hash
    for action in result.actions:
        if not isinstance(action, ScaleReplicaSet) or not in_flight:
            continue
        if canary is not None and action.name == canary.name and action.replicas < (
                canary.spec_replicas) and result.status.abort:
            # Invariant 2: on abort the canary keeps its pods until the routes read back 0.
            assert held == 0, ("canary scaled down while routes send it traffic", held)
        stable = w.rs(stable_hash)
        if stable is not None and action.name == stable.name:
            assert action.replicas == replicas  # the stable stays whole under a router
    w.apply(result)
    w.history.append(result)


def promoted(w: World, image: str) -> str:
    """Release `image` and promote it fully; its hash."""
    w.set_image(image)
    w.run()
    w.edit_status(promote_full=True, pause_conditions=None)
    w.run()
    assert w.status.phase == "Healthy"
    return str(w.status.stable_rs)


@pytest.mark.parametrize(("limit", "waiting"), [(None, 2), (1, 1), (0, 0)])
def test_scale_down_delay_revision_limit_keeps_only_the_newest_old_revisions_waiting(
        limit: int | None, waiting: int) -> None:
    """Two quick promotions: both old revisions wait out scaleDownDelaySeconds, unless
    scaleDownDelayRevisionLimit says fewer may (the newest first)."""
    extra: dict[str, object] = {} if limit is None else {"scaleDownDelayRevisionLimit": limit}
    # The spec names a router (the limit requires one); the world's router is the fake.
    w = router_world(scaleDownDelaySeconds=60, trafficRouting={"smi": {}}, **extra)
    first = str(w.status.stable_rs)
    second = promoted(w, "app:2")
    third = promoted(w, "app:3")
    running = [h for h in (second, first) if w.sizes()[h] > 0]
    assert running == [second, first][:waiting]
    assert w.sizes()[third] == 4
    w.advance(60)
    w.run()
    assert w.sizes() == {third: 4, second: 0, first: 0}


def test_max_traffic_weight_the_canary_gets_all_of_it_before_promotion() -> None:
    """maxTrafficWeight 1000: setWeight 500 is half; past the last step the routes must
    read back 1000 (not 100) before the canary is promoted."""
    w = World(canary_spec([{"setWeight": 500}], canaryService="canary", stableService="stable",
                          trafficRouting={"smi": {}, "maxTrafficWeight": 1000}),
              router=FakeRouter())
    w.run()
    w.set_image("app:2")
    w.run()
    assert w.status.phase == "Healthy" and w.status.stable_rs == w.status.current_pod_hash
    writes = [weight for p in w.history for weight in route_writes(p)]
    assert writes == [500, 1000, 0]
    weights = w.status.canary.weights if w.status.canary else None
    assert weights is not None and (weights.canary.weight, weights.stable.weight) == (0, 1000)


@pytest.mark.parametrize(("weight", "min_pods", "pods"), [(5, 2, 2), (50, 2, 5), (0, 2, 0)])
def test_min_pods_per_replica_set(weight: int, min_pods: int, pods: int) -> None:
    model = RouterTraffic(10, FakeRouter(), route(0), min_pods=min_pods)
    assert model.pods(weight, None, STABLE) == (pods, 10)


def test_dynamic_stable_scale_shrinks_after_and_grows_before_the_routes_move() -> None:
    """4 replicas at 25%: the stable goes to 3 only once the routes hold 25; on abort it is
    back at 4 available before the routes send it everything again."""
    w, old, new = at_first_pause(dynamicStableScale=True, trafficRouting={"smi": {}})
    assert w.sizes() == {old: 3, new: 1} and w.route_weight == 25
    w.auto_ready = False
    w.edit_status(abort=True, abort_message="test")
    first = w.step()
    assert route_writes(first) == []  # the stable has 3 pods: it cannot take 100% yet
    assert w.sizes()[old] == 4 and w.route_weight == 25
    w.settle()
    second = w.step()
    assert route_writes(second) == [0]
    w.settle()
    w.run()
    w.advance(30)  # abortScaleDownDelaySeconds
    w.run()
    assert w.sizes() == {old: 4, new: 0} and w.route_weight == 0


def promotion_history(**canary: object) -> tuple[World, str, str, list[tuple[str | None, Plan]]]:
    """(world, old, new, [(stable Service's hash before the pass, the pass)]) of a full
    promotion from the first pause, pods ready at once."""
    w, old, new = at_first_pause(**canary)
    w.edit_status(promote_full=True, pause_conditions=None)
    passes = []
    for _ in range(30):
        before = w.selector("stable")
        passes.append((before, w.step()))
        if w.status.phase == "Healthy" and w.sizes()[old] == 0:
            break
        w.advance(10)
    return w, old, new, passes


@pytest.mark.parametrize("canary", [
    {"scaleDownDelaySeconds": 20, "trafficRouting": {"smi": {}}},
    {"scaleDownDelaySeconds": 0},
    {"dynamicStableScale": True, "trafficRouting": {"smi": {}}},
])
def test_promotion_repoints_the_stable_service_before_routes_and_old_pods_move(
        canary: dict[str, object]) -> None:
    """Issue 11, with a router: the stable Service is re-pointed before (or in the pass
    before, in write order) the routes send it everything; the old stable's last pod goes
    only on a later pass that sees the Service on the new revision."""
    w, old, new, passes = promotion_history(**canary)
    assert w.status.stable_rs == new and w.sizes() == {old: 0, new: 4}
    for before, result in passes:
        pins = [i for i, a in enumerate(result.actions)
                if isinstance(a, PinService) and a.service == "stable"]
        to_stable = [i for i, a in enumerate(result.actions)
                     if isinstance(a, ApplyRouteWrite) and route_writes(
                         replace(result, actions=(a,))) == [0]]
        if to_stable and before != new:
            assert pins and pins[0] < to_stable[0]
        for action in result.actions:
            if isinstance(action, ScaleReplicaSet) and action.replicas == 0:
                assert action.name == w.replica_sets[old].name and before == new


def test_dynamic_stable_scale_keeps_a_stable_pod_while_the_stable_service_selects_it() -> None:
    """setWeight 100 then a pause: the routes give the stable nothing, but the stable
    Service still selects it until the promotion, so it keeps one pod (not 0)."""
    w = World(canary_spec([{"setWeight": 100}, {"pause": {}}], canaryService="canary",
                          stableService="stable", dynamicStableScale=True,
                          trafficRouting={"smi": {}}), router=FakeRouter())
    w.run()
    old = w.status.stable_rs
    w.set_image("app:2")
    w.run()
    new = w.status.current_pod_hash
    assert w.status.phase == "Paused" and w.route_weight == 100
    assert w.selector("stable") == old and w.sizes() == {old: 1, new: 4}
    w.edit_status(current_step_index=2, pause_conditions=None)
    w.run()
    assert w.status.stable_rs == new and w.selector("stable") == new and w.route_weight == 0
    w.advance(30)  # scaleDownDelaySeconds
    w.run()
    assert w.sizes() == {old: 0, new: 4}
