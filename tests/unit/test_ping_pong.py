"""pingPong in the canary planner: ping and pong take turns being stable.

The fake route holds pong's weight (`spec.canaryWeight`); the router reads which Service is
the canary's from the Rollout's status at each pass, as `rollout_router` binds the real
ones, so after a promotion the same route object reads "all to stable".
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest

from rollouts.models.rollout import CanaryStrategy, RolloutStatus
from rollouts.planner.pingpong import Side, other, recorded_side, side_services, stable_side
from rollouts.planner.routing import ObjectKey, RouteWrite, TrafficIntent
from rollouts.planner.types import ApplyRouteWrite, Plan, ScaleReplicaSet, ServiceView
from rollouts.traffic import build_router
from tests.unit.fake_router import FakeRouter, RouteObserved
from tests.unit.traffic.cases import OWNER, VIRTUAL_SERVICE, Store
from tests.unit.world import World, canary_spec

STEPS = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]
PAIR = {"pingService": "ping", "pongService": "pong"}
ALB = {"alb": {"ingress": "web", "servicePort": 80, "rootService": "root"}}


@dataclass(frozen=True)
class PingPongRouter:
    """FakeRouter's route read as pong's weight; the canary's side from the world's status."""

    world: World
    name: str = "fake"

    def _canary_is_pong(self) -> bool:
        return stable_side(self.world.status) == "ping"

    def objects(self, observed: RouteObserved | None = None) -> tuple[ObjectKey, ...]:
        return FakeRouter().objects(observed)

    def problems(self, observed: RouteObserved) -> list[tuple[str, str]]:
        return FakeRouter().problems(observed)

    def writes(self, observed: RouteObserved, intent: TrafficIntent) -> tuple[RouteWrite, ...]:
        pong = intent.canary_weight if self._canary_is_pong() else intent.stable_weight
        return FakeRouter().writes(observed, TrafficIntent(pong, 100 - pong))

    def verified_weight(self, observed: RouteObserved) -> int | None:
        pong = FakeRouter().verified_weight(observed)
        if pong is None or self._canary_is_pong():
            return pong
        return 100 - pong

    def finalize(self, observed: RouteObserved) -> tuple[RouteWrite, ...]:
        return self.writes(observed, TrafficIntent(0, 100))


def route_writes(p: Plan) -> list[int]:
    return [dict((op["path"], op["value"]) for op in a.write.patch)["/spec/canaryWeight"]
            for a in p.actions if isinstance(a, ApplyRouteWrite)]


def ping_pong_world(**canary: object) -> World:
    w = World(canary_spec(STEPS, pingPong=PAIR, trafficRouting=ALB, **canary))
    w.router = PingPongRouter(w)
    for name in ("ping", "pong"):
        w.services[name] = ServiceView(name, {"app": "demo"})
    w.run()
    return w


def side(w: World) -> str | None:
    return w.status.canary.stable_ping_pong if w.status.canary else None


@pytest.mark.parametrize(("status", "sides"), [
    (RolloutStatus(), ("ping", "pong")),  # ping first
    (RolloutStatus.model_validate({"canary": {"stablePingPong": "ping"}}), ("ping", "pong")),
    (RolloutStatus.model_validate({"canary": {"stablePingPong": "pong"}}), ("pong", "ping")),
])
def test_the_stable_side_is_read_from_status(status: RolloutStatus,
                                             sides: tuple[str, str]) -> None:
    strategy = CanaryStrategy.model_validate({"pingPong": PAIR})
    assert side_services(strategy, status) == sides
    assert other(stable_side(status)) == sides[1]
    assert recorded_side(strategy, status) == sides[0]
    assert recorded_side(CanaryStrategy(), status) is None
    assert side_services(CanaryStrategy(), status) == (None, None)


def test_ping_pong_takes_turns_at_each_promotion() -> None:
    w = ping_pong_world(scaleDownDelaySeconds=20)
    v1 = w.status.stable_rs
    assert (w.status.phase, side(w), w.route_weight) == ("Healthy", "ping", 0)
    assert w.selector("ping") == w.selector("pong") == v1

    # v2 goes out on pong: pinned to it, the weight moves on pong; ping stays on v1.
    w.set_image("app:2")
    w.run()
    v2 = w.status.current_pod_hash
    assert (w.status.phase, side(w), w.route_weight) == ("Paused", "ping", 25)
    assert (w.selector("ping"), w.selector("pong")) == (v1, v2)

    # Promoted: pong gets everything, then becomes the stable side in a pass that writes
    # no route (the route already reads "all to stable" under the swapped roles).
    w.edit_status(promote_full=True, pause_conditions=None)
    w.run()
    flip = next(p for p in w.history if p.status.stable_rs == v2)
    assert route_writes(flip) == []
    assert (w.status.phase, side(w), w.status.stable_rs, w.route_weight) == (
        "Healthy", "pong", v2, 100)
    assert [x for p in w.history for x in route_writes(p)] == [25, 100]
    assert w.selector("pong") == w.selector("ping") == v2  # ping re-pointed at weight 0
    assert w.status.canary is not None and w.status.canary.weights is not None
    assert w.status.canary.weights.canary.weight == 0
    assert w.sizes()[v1] == 4  # drains for scaleDownDelaySeconds
    w.advance(20)
    w.run()
    assert w.sizes() == {v1: 0, v2: 4}

    # v3 goes out on ping: pong (stable) keeps its weight's complement.
    w.set_image("app:3")
    w.run()
    v3 = w.status.current_pod_hash
    assert (w.status.phase, side(w), w.route_weight) == ("Paused", "pong", 75)
    assert (w.selector("ping"), w.selector("pong")) == (v3, v2)


def test_abort_takes_the_canary_side_to_zero_then_re_points_it() -> None:
    w = ping_pong_world(abortScaleDownDelaySeconds=0)
    w.set_image("app:2")
    w.run()
    v1, v2 = w.status.stable_rs, w.status.current_pod_hash
    w.edit_status(abort=True, abort_message="Rollout aborted by user")
    aborting = w.step()
    assert route_writes(aborting) == [0]  # pong (the canary's side) to 0 first
    assert w.selector("pong") == v2  # not re-pointed while the routes still give it 25
    assert not [a for a in aborting.actions if isinstance(a, ScaleReplicaSet)
                and a.name.endswith(str(v2)) and a.replicas == 0]
    w.run()
    assert (w.status.phase, side(w), w.route_weight) == ("Degraded", "ping", 0)
    assert w.selector("pong") == w.selector("ping") == v1
    assert w.sizes()[v2] == 0
    assert w.status.canary is not None and w.status.canary.weights is not None
    assert w.status.canary.weights.canary.weight == 0


@pytest.mark.parametrize(("stable", "weights"), [
    ("ping", [("web-ping", 75), ("web-pong.default.svc.cluster.local", 25)]),
    ("pong", [("web-ping", 25), ("web-pong.default.svc.cluster.local", 75)]),
])
def test_istio_takes_the_same_turns(stable: Side, weights: list[tuple[str, int]]) -> None:
    """The VirtualService's destinations named by ping and pong: the canary's weight goes
    to whichever is not stable."""
    vs = copy.deepcopy(VIRTUAL_SERVICE)
    vs["spec"].pop("tls")
    for entry in vs["spec"]["http"][0]["route"]:
        host = entry["destination"]["host"]
        entry["destination"]["host"] = host.replace("web-stable", "web-ping").replace(
            "web-canary", "web-pong")
    strategy = CanaryStrategy.model_validate({
        "pingPong": {"pingService": "web-ping", "pongService": "web-pong"},
        "trafficRouting": {"istio": {"virtualService": {"name": "web-vsvc",
                                                        "routes": ["primary"]}}}})
    router = build_router(strategy, "default", "web", OWNER, stable_ping_pong=stable)
    assert router is not None
    store = Store.of([vs])
    assert router.problems(store.observe(router)) == []
    store.apply(router.writes(store.observe(router), TrafficIntent(25, 75)))
    body = next(iter(store.objects.values()))
    assert [(d["destination"]["host"], d["weight"])
            for d in body["spec"]["http"][0]["route"]] == weights
    assert router.verified_weight(store.observe(router)) == 25
