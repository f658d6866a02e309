"""Steps with more than one field, as Argo Rollouts allows them: setCanaryScale,
setHeaderRoute and setMirrorRoute ride along with at most one of setWeight, pause, analysis,
experiment and plugin. Validation (model and manifest path), the order the handlers run in,
and the planner over a fake router: the canary's size and the header route are in place
before the step's pause or analysis starts."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollouts.models.rollout import CanaryStep, rollout_manifest_errors
from rollouts.models.step_kinds import STEP_ACTIONS, STEP_KINDS
from rollouts.models.wire import CANARY_PAUSE
from rollouts.planner.canary import STEP_HANDLERS
from rollouts.planner.types import ApplyRouteWrite
from tests.unit.fake_router import FakeRouter
from tests.unit.world import World, canary_spec

HEADER = {"name": "testers", "match": [{"headerName": "x-tester",
                                        "headerValue": {"exact": "yes"}}]}
MIRROR = {"name": "shadow", "match": [{"path": {"prefix": "/"}}]}
ROUTING = {"istio": {"virtualService": {"name": "vs", "routes": ["primary"]}},
           "managedRoutes": [{"name": "testers"}, {"name": "shadow"}]}
ANALYSIS = {"templates": [{"templateName": "t"}]}
EXPERIMENT = {"templates": [{"name": "e", "specRef": "canary"}]}

AT_MOST_ONE = ("a step has at most one of setWeight, pause, analysis, experiment, plugin "
               "(setCanaryScale, setHeaderRoute and setMirrorRoute may go with any of them)")


def routed(steps: list[dict[str, Any]], **canary: Any) -> dict[str, Any]:
    return canary_spec(steps, canaryService="canary", stableService="stable",
                       trafficRouting=ROUTING, **canary)


# --- validation -----------------------------------------------------------------------------

@pytest.mark.parametrize("step", [
    {"setCanaryScale": {"replicas": 1}, "setHeaderRoute": HEADER, "pause": {"duration": 15}},
    {"setCanaryScale": {"weight": 20}, "setWeight": 10},
    {"setHeaderRoute": HEADER, "setMirrorRoute": MIRROR},
    {"setHeaderRoute": HEADER, "setWeight": 5},
    {"setCanaryScale": {"replicas": 2}, "analysis": ANALYSIS},
    {"setMirrorRoute": MIRROR, "experiment": EXPERIMENT},
    {"setCanaryScale": {"replicas": 1}, "plugin": {"name": "p"}},
    {"setCanaryScale": {"replicas": 1}, "setHeaderRoute": HEADER, "setMirrorRoute": MIRROR,
     "pause": {}},
    {"setCanaryScale": {"replicas": 1}},
    {"pause": {}},
])
def test_allowed_combinations(step: dict[str, Any]) -> None:
    assert rollout_manifest_errors(routed([step])) == []


@pytest.mark.parametrize(("step", "message"), [
    ({}, "a step needs at least one of setCanaryScale, setHeaderRoute, setMirrorRoute, "
         "setWeight, pause, analysis, experiment, plugin"),
    ({"setWeight": 10, "pause": {}}, f"setWeight and pause cannot be combined in one step: "
                                     f"{AT_MOST_ONE}"),
    ({"analysis": ANALYSIS, "experiment": EXPERIMENT},
     f"analysis and experiment cannot be combined in one step: {AT_MOST_ONE}"),
    ({"pause": {}, "plugin": {"name": "p"}},
     f"pause and plugin cannot be combined in one step: {AT_MOST_ONE}"),
    ({"setCanaryScale": {"replicas": 1}, "setWeight": 10, "pause": {}, "analysis": ANALYSIS},
     f"setWeight and pause and analysis cannot be combined in one step: {AT_MOST_ONE}"),
])
def test_refused_combinations_name_the_fields(step: dict[str, Any], message: str) -> None:
    assert rollout_manifest_errors(routed([{"setWeight": 5}, step])) == [
        ("spec.strategy.canary.steps[1]", message)]


def test_a_combined_step_still_needs_a_router_for_its_routes_and_scale() -> None:
    """The rules of each field hold inside a combined step (here: without trafficRouting)."""
    errors = rollout_manifest_errors(canary_spec([
        {"setCanaryScale": {"replicas": 1}, "setHeaderRoute": HEADER, "pause": {}}]))
    assert [path for path, _ in errors] == ["spec.strategy.canary.steps[0].setCanaryScale",
                                            "spec.strategy.canary.steps[0].setHeaderRoute"]


def test_handlers_run_in_the_documented_order_and_cover_every_field() -> None:
    aliases = {name: info.alias or name for name, info in CanaryStep.model_fields.items()}
    assert tuple(aliases[field] for field, _ in STEP_HANDLERS) == STEP_KINDS
    # set-up first, then the one action
    assert STEP_KINDS[-len(STEP_ACTIONS):] == STEP_ACTIONS


# --- the planner over a fake router -------------------------------------------------------

SET_HEADER_STEPS = [
    {"setCanaryScale": {"replicas": 1}, "setHeaderRoute": HEADER, "pause": {}},
    {"setWeight": 50},
    {"pause": {}},
]


def released(steps: list[dict[str, Any]], **canary: Any) -> tuple[World, str, str]:
    """(world, old, new): app:2 released over a Healthy app:1; pods do not come up alone."""
    w = World(routed(steps, **canary), router=FakeRouter())
    w.run()
    assert w.status.phase == "Healthy" and w.route_weight == 0
    old = str(w.status.stable_rs)
    w.set_image("app:2")
    w.auto_ready = False
    w.step()
    return w, old, str(w.status.current_pod_hash)


def promote(w: World) -> None:
    w.operate("promote")


def test_scale_and_header_route_are_in_place_before_the_pause_starts() -> None:
    w, old, new = released(SET_HEADER_STEPS)
    # Sized at once; the header route waits for the canary's pod; no pause yet.
    assert w.sizes() == {old: 4, new: 1}
    assert w.route_headers == () and w.route_weight == 0
    w.settle(available={new: 0})
    w.step()
    assert w.status.phase != "Paused" and not w.status.pause_conditions
    assert w.status.message == ("Step 1/3: setCanaryScale: waiting for 1 canary pod "
                                "available (have 0)")
    assert w.route_headers == ()
    w.advance(5)
    w.settle()
    w.step()  # the pod is available: the route is written, the step waits to read it back
    assert w.route_headers == ("testers",) and not w.status.pause_conditions
    assert w.status.message == ('Step 1/3: setHeaderRoute "testers" set: waiting for the '
                                "routes to hold it")
    w.advance(2)
    w.step()
    assert w.status.phase == "Paused" and w.status.current_step_index == 0
    assert w.status.message == "Step 1/3: paused until promoted"
    pause = w.status.paused_for(CANARY_PAUSE)
    assert pause is not None and pause.start_time == w.now  # counted from the set-up's end
    # The scale stays in force after its step (until another setCanaryScale), the header
    # route until the promotion; setWeight 50 is served by the one pod.
    w.auto_ready = True
    promote(w)
    w.step()
    w.run()
    assert w.status.phase == "Paused" and w.status.current_step_index == 2
    assert w.sizes() == {old: 4, new: 1}
    assert (w.route_weight, w.route_headers) == (50, ("testers",))
    promote(w)
    w.step()
    w.run()
    assert w.status.phase == "Healthy" and w.status.stable_rs == new
    assert (w.route_weight, w.route_headers) == (0, ())


def test_a_route_lost_during_the_pause_is_written_again_and_the_pause_keeps_its_start() -> None:
    w, _, _ = released(SET_HEADER_STEPS)
    w.settle()
    w.run()
    started = w.status.paused_for(CANARY_PAUSE)
    assert started is not None and w.status.phase == "Paused"
    w.route_headers = ()  # someone's edit took the managed route away
    w.advance(10)
    again = w.step()
    assert again.actions and w.route_headers == ("testers",)
    w.step()
    assert w.status.phase == "Paused"
    assert w.status.paused_for(CANARY_PAUSE) == started


def test_the_analysis_of_a_combined_step_starts_once_the_canary_is_scaled() -> None:
    w, _, new = released([{"setCanaryScale": {"replicas": 2}, "analysis": ANALYSIS}])
    w.settle(available={new: 1})
    w.step()
    assert w.runs == {} and "setCanaryScale: waiting for 2 canary pods" in w.status.message
    w.settle()
    w.step()
    assert [r.step_index for r in w.runs.values()] == [0]
    w.finish_runs("Successful")
    w.auto_ready = True
    w.step()
    w.run()
    assert w.status.phase == "Healthy" and w.status.stable_rs == new
    # Past the last step no setCanaryScale is in force: the canary had all its pods first.
    weights = [w.route_weight]
    assert weights == [0] and w.sizes()[new] == 4


def test_set_weight_with_a_scale_waits_for_both() -> None:
    w, old, new = released([{"setCanaryScale": {"replicas": 3}, "setWeight": 25},
                            {"pause": {}}])
    assert w.sizes() == {old: 4, new: 3}
    w.settle(available={new: 2})
    w.step()
    assert "setCanaryScale: waiting for 3 canary pods available (have 2)" in w.status.message
    w.auto_ready = True
    w.step()
    w.run()
    assert (w.status.current_step_index, w.route_weight) == (1, 25)
    assert w.status.phase == "Paused"


# --- properties: random lists of combined steps over random histories ----------------------

combined_steps = st.one_of(
    st.builds(lambda w: {"setWeight": w}, st.integers(0, 100)),
    st.builds(lambda d: {"pause": {"duration": d}}, st.integers(0, 20)),
    st.just({"pause": {}}),
    st.builds(lambda r, d: {"setCanaryScale": {"replicas": r}, "pause": {"duration": d}},
              st.integers(1, 4), st.integers(0, 20)),
    st.builds(lambda r, w: {"setCanaryScale": {"replicas": r}, "setWeight": w},
              st.integers(1, 4), st.integers(0, 100)),
    st.builds(lambda r: {"setCanaryScale": {"replicas": r}, "setHeaderRoute": HEADER,
                         "pause": {}}, st.integers(1, 4)),
    st.just({"setCanaryScale": {"matchTrafficWeight": True}}),
    st.just({"setHeaderRoute": {"name": "testers"}}),
)
moves = st.sampled_from(["pass", "pass", "pass", "pods", "pods_partial", "clock", "promote",
                         "abort", "image"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(combined_steps, min_size=1, max_size=5), data=st.data())
def test_a_pause_starts_only_once_its_steps_scale_is_met_and_traffic_needs_pods(
        steps: list[dict[str, Any]], data: st.DataObject) -> None:
    w = World(routed(steps), router=FakeRouter(), auto_ready=False)
    for move in data.draw(st.lists(moves, min_size=5, max_size=40)):
        if not (w.move(move, data) or w.operate(move)):
            check_pass(w, steps)


def check_pass(w: World, steps: list[dict[str, Any]]) -> None:
    before = w.status.paused_for(CANARY_PAUSE)
    result = w.plan()
    status = result.status
    canary = w.rs(status.current_pod_hash)
    started = status.paused_for(CANARY_PAUSE)
    index = status.current_step_index or 0
    if started is not None and before is None and index < len(steps) and not status.abort:
        wanted = steps[index].get("setCanaryScale", {}).get("replicas")
        if wanted is not None:  # the scale of the pausing step was met before it started
            assert canary is not None and canary.available >= wanted, (steps[index], canary)
    for action in result.actions:
        if isinstance(action, ApplyRouteWrite):
            ops = {op["path"]: op["value"] for op in action.write.patch}
            if ops["/spec/canaryWeight"] > (w.route_weight or 0) or (
                    set(ops["/spec/headerRoutes"]) - set(w.route_headers)):
                # raised, or a header route added, only for pods that can serve it
                assert canary is not None and canary.available >= 1, (ops, canary)
    w.apply(result)
    w.history.append(result)
