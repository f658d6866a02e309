"""A status held back as a passing state (planner.write_folding rule 2) is safe to lose.

A controller killed while a passing state's status is held plans again from the status
last written. Over random canary and blue-green histories (tests.unit.test_planner_properties'
moves: pods, clock, operations, new images, crashes), at every pass whose planned status is
passing: with its actions applied and its status not written, planning again from the
status last written, at the same instant, must decide exactly what planning from the held
status decides (the same actions: no ReplicaSet created twice, no scale repeated; the same
status: no step skipped or repeated, the same pause clocks). All other invariants of those
histories are checked as before.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from rollouts.models.rollout import CanaryStep, parse_spec
from rollouts.planner.types import Plan
from rollouts.planner.write_folding import passing
from tests.unit.test_planner_properties import (
    Checker,
    blue_green_specs,
    canary_specs,
    run_history,
)
from tests.unit.world import World, canary_spec

# A failing example is printed as drawn: shrinking these histories takes minutes.
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)


def steps(world: World) -> list[CanaryStep]:
    canary = parse_spec(world.spec).strategy.canary
    return list(canary.steps or []) if canary is not None else []


class PassingChecker(Checker):
    """Checker whose passes also check the property above at every passing state
    (test_the_bench_canary_passes_through_two_waiting_states shows such states occur)."""

    def reconcile(self) -> None:
        w = self.world
        result = w.plan()
        if passing(w.status, result.status, result.actions, result.events, steps(w)):
            lost = copy.deepcopy(w)
            lost.apply(Plan(actions=result.actions, status=w.status))  # status not written
            held = copy.deepcopy(w)
            held.apply(result)
            again, planned_on = lost.plan(), held.plan()
            # (Its Events differ: they name the transitions from the status each starts at.)
            differ = {name: (getattr(again.status, name), getattr(planned_on.status, name))
                      for name in type(again.status).model_fields
                      if getattr(again.status, name) != getattr(planned_on.status, name)}
            assert (again.actions, again.requeue_after) == (
                planned_on.actions, planned_on.requeue_after), (w.status, result.status)
            assert not differ, (differ, w.status, result.status)
        super().reconcile()


def run_passing(spec: dict[str, Any], data: st.DataObject) -> None:
    import tests.unit.test_planner_properties as properties

    original = properties.Checker
    properties.Checker = PassingChecker  # type: ignore[misc]
    try:
        run_history(spec, data)
    finally:
        properties.Checker = original  # type: ignore[misc]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=NO_SHRINK)
@given(spec=canary_specs, data=st.data())
def test_a_lost_passing_canary_status_is_planned_again_the_same(
        spec: dict[str, Any], data: st.DataObject) -> None:
    run_passing(spec, data)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=NO_SHRINK)
@given(spec=blue_green_specs, data=st.data())
def test_a_lost_passing_blue_green_status_is_planned_again_the_same(
        spec: dict[str, Any], data: st.DataObject) -> None:
    run_passing(spec, data)


def test_the_bench_canary_passes_through_two_waiting_states() -> None:
    """bench/run_canaries.py's canary: the new revision's waiting for its pod and the pass
    after the first pause are passing states (held); the pauses and the promotion are not."""
    world = World(canary_spec([{"setWeight": 50}, {"pause": {"duration": 2}},
                               {"setWeight": 100}, {"pause": {"duration": 2}}],
                              replicas=2, canaryService="canary", stableService="stable"),
                  auto_ready=False)
    for _ in range(3):
        world.step()
        world.settle()
    assert world.status.phase == "Healthy"
    world.set_image("app:2")
    kinds = []
    for _ in range(12):
        old = world.status
        result = world.plan()
        if result.status != old:
            kinds.append((result.status.phase, passing(old, result.status, result.actions,
                                                       result.events, steps(world))))
        world.apply(result)
        world.settle()
        world.advance(2)
    # Every state on the way is passing, no resting one is; the walk reaches them all.
    assert all(ok == (phase == "Progressing") for phase, ok in kinds), kinds
    assert [p for p, _ in kinds].count("Paused") == 2 and kinds[-1][0] == "Healthy", kinds
