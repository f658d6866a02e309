"""One handler per canary step kind; each returns what the step wants next.

A handler reads the step, the walk so far and the cluster (through the context and the
traffic model) and answers with one `Outcome`:

- `Advance`: the step is done; the walk moves on to the next step in this same pass.
- `Wait`: the step is in progress (pods coming up, a run measuring); look again later.
- `Pause`: the step holds the Rollout Paused (a pause step, an inconclusive run).
- `Abort`: the step failed; `plan` makes the abort transition.

Handlers may append actions (start an AnalysisRun) and wake-up times to the draft; the
replica and Service writes for the weight in force are made once, after the walk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rollouts.models.rollout import CanaryStep, PauseCondition, SetCanaryScale
from rollouts.planner.context import Context, Draft
from rollouts.planner.routing import managed_routes_at
from rollouts.planner.traffic import TrafficModel
from rollouts.planner.types import ReplicaSetView


@dataclass(frozen=True)
class Advance:
    pass


@dataclass(frozen=True)
class Wait:
    message: str


@dataclass(frozen=True)
class Pause:
    message: str


@dataclass(frozen=True)
class Abort:
    message: str  # why, for status.abortMessage


Outcome = Advance | Wait | Pause | Abort


@dataclass
class Walk:
    """Where the walk through the steps stands in this pass."""

    steps: Sequence[CanaryStep]
    index: int
    canary: ReplicaSetView | None
    stable: ReplicaSetView
    traffic: TrafficModel
    pause_conditions: list[PauseCondition]
    # What weights are out of (trafficRouting.maxTrafficWeight): the weight past the last step.
    full_weight: int = 100
    # The field of the current step that is not done yet (its handler did not advance).
    waiting_on: str | None = None

    @property
    def label(self) -> str:
        return f"Step {self.index + 1}/{len(self.steps)}"

    @property
    def weight(self) -> int:
        """The canary weight in force: the last setWeight at or before the current step
        (all of it past the last step)."""
        return step_weight(self.steps, self.index, self.full_weight)

    @property
    def canary_scale(self) -> SetCanaryScale | None:
        """The setCanaryScale in force: the last one at or before the current step (None:
        the canary is sized by the weight). Past the last step none is: the canary grows to
        every replica before the routes give it all the traffic, as in Argo Rollouts."""
        if self.index >= len(self.steps):
            return None
        passed = self.steps[: self.index + 1]
        return next((s.set_canary_scale for s in reversed(passed)
                     if s.set_canary_scale is not None), None)


def step_weight(steps: Sequence[CanaryStep], index: int, full: int = 100) -> int:
    """The canary weight in force at step `index`: the last setWeight at or before it.

    E.g. steps [pause, setWeight 30, pause, setWeight 60]: 0, 30, 30, 60, then 100.
    """
    if index >= len(steps):
        return full
    for step in reversed(steps[: index + 1]):
        if step.set_weight is not None:
            return step.set_weight
    return 0


Handler = Callable[[Context, Draft, Walk, CanaryStep], Outcome]


def hold_managed_route(ctx: Context, walk: Walk, what: str) -> Outcome:
    """A setHeaderRoute / setMirrorRoute step: done once the router's objects hold the
    managed routes of the steps up to this one (read back: nothing left to write); the
    writes themselves are made with the weight's, after the walk."""
    strategy = ctx.spec.strategy.canary
    assert strategy is not None
    traffic = walk.traffic.with_managed_routes(*managed_routes_at(strategy, walk.index + 1))
    if not traffic.writes(walk.weight, walk.canary, walk.stable, walk.canary_scale):
        return Advance()
    return Wait(f"{walk.label}: {what}: waiting for the routes to hold it")
