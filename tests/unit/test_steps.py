"""One table per canary step handler: (situation) -> outcome, actions, wake-ups."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest

from rollouts.models.rollout import (
    CanaryStep,
    ObjectMeta,
    PauseCondition,
    RolloutStatus,
    SetCanaryScale,
    ValidRollout,
    parse_spec,
)
from rollouts.models.wire import CANARY_PAUSE, INCONCLUSIVE_PAUSE
from rollouts.planner.context import Context, Draft
from rollouts.planner.manifests import pod_template_hash
from rollouts.planner.steps import Abort, Advance, Outcome, Pause, Wait, Walk, step_weight
from rollouts.planner.steps import analysis as analysis_step
from rollouts.planner.steps import pause as pause_step
from rollouts.planner.steps import set_canary_scale as set_canary_scale_step
from rollouts.planner.steps import set_weight as set_weight_step
from rollouts.planner.types import (
    Action,
    AnalysisRunView,
    CreateAnalysisRun,
    Observed,
    PreparedRun,
    ReplicaSetView,
)
from tests.unit.world import T0, canary_spec

STABLE = ReplicaSetView(name="demo-s", pod_hash="s", revision=1, spec_replicas=4, replicas=4,
                        ready=4, available=4)


@dataclass
class FakeTraffic:
    """A traffic model that is at `at` percent; records what it was asked."""

    at: int
    asked: list[int] = field(default_factory=list)
    routes_traffic = False

    def pods(self, weight: int, canary: ReplicaSetView | None, stable: ReplicaSetView,
             scale: SetCanaryScale | None = None) -> tuple[int, int]:
        return (weight, 100 - weight)

    def writes(self, weight: int, canary: ReplicaSetView | None, stable: ReplicaSetView,
               scale: SetCanaryScale | None = None) -> tuple[Action, ...]:
        return ()

    def reached(self, weight: int, canary: ReplicaSetView | None, stable: ReplicaSetView,
                scale: SetCanaryScale | None = None) -> bool:
        self.asked.append(weight)
        return self.at == weight

    def verified_weight(self, canary: ReplicaSetView | None,
                        stable: ReplicaSetView | None) -> int:
        return self.at

    def off_canary(self, canary: ReplicaSetView | None) -> bool:
        return self.at == 0

    def waiting(self, weight: int, canary: ReplicaSetView | None, stable: ReplicaSetView,
                scale: SetCanaryScale | None = None) -> str:
        return f"at {self.at}"

    def recheck_after(self, weight: int, canary: ReplicaSetView | None,
                      stable: ReplicaSetView, scale: SetCanaryScale | None = None
                      ) -> float | None:
        return None


def situation(steps: list[dict[str, Any]], index: int, *, at: int = 0,
              now: dt.datetime = T0, pauses: list[PauseCondition] | None = None,
              runs: tuple[AnalysisRunView, ...] = (), attempt: int = 0,
              ) -> tuple[Context, Draft, Walk, CanaryStep]:
    spec = canary_spec(steps)
    # Built directly: setCanaryScale is refused at parse time until a router is configured.
    parsed = ValidRollout(ObjectMeta(name="demo", uid="u"), parse_spec(spec), spec["template"],
                          RolloutStatus())
    desired = pod_template_hash(parsed.template)
    status = RolloutStatus(stable_rs="s", observed_pod_hash=desired, current_pod_hash=desired,
                           analysis_attempt=attempt or None)
    prepared = {
        f"spec.strategy.canary.steps[{i}].analysis": PreparedRun(
            f"spec.strategy.canary.steps[{i}].analysis", "step", i, desired, attempt,
            {"metadata": {"name": f"run-{i}"}})
        for i, s in enumerate(steps) if "analysis" in s
    }
    observed = Observed(replica_sets=(STABLE,), analysis_runs=runs, prepared_runs=prepared)
    ctx = Context(parsed, parsed.spec, observed, now, desired, status)
    walk = Walk(steps=parsed.spec.strategy.canary.steps or [],  # type: ignore[union-attr]
                index=index, canary=None, stable=STABLE, traffic=FakeTraffic(at),
                pause_conditions=list(pauses or []))
    return ctx, Draft(), walk, walk.steps[index]


# --- setWeight -----------------------------------------------------------------------------

@pytest.mark.parametrize(("steps", "index", "at", "expected"), [
    ([{"setWeight": 25}], 0, 25, Advance()),
    ([{"setWeight": 25}], 0, 0, Wait("Step 1/1: setWeight 25: at 0")),
    ([{"setWeight": 25}, {"setWeight": 50}], 1, 25, Wait("Step 2/2: setWeight 50: at 25")),
    ([{"setWeight": 0}], 0, 0, Advance()),
    ([{"setWeight": 100}], 0, 100, Advance()),
])
def test_set_weight(steps: list[dict[str, Any]], index: int, at: int,
                    expected: Outcome) -> None:
    ctx, draft, walk, step = situation(steps, index, at=at)
    assert set_weight_step.handle(ctx, draft, walk, step) == expected
    assert draft.actions == [] and draft.wake_at == []


# --- pause ---------------------------------------------------------------------------------

LATER = T0 + dt.timedelta(seconds=30)


@pytest.mark.parametrize(("pause", "started", "now", "expected", "wake", "kept"), [
    # a timed pause starts now and asks to be woken at its end
    ({"duration": 60}, None, T0, Pause("Step 1/1: paused 60s, until 2026-01-01T00:01:00Z"),
     T0 + dt.timedelta(seconds=60), True),
    # ...half way through: the same message (a countdown would be stale once written)
    ({"duration": 60}, T0, LATER, Pause("Step 1/1: paused 60s, until 2026-01-01T00:01:00Z"),
     T0 + dt.timedelta(seconds=60), True),
    # ...over: advance and drop the condition
    ({"duration": "1m"}, T0, T0 + dt.timedelta(seconds=60), Advance(), None, False),
    # an untimed pause waits for promote, no wake-up
    ({}, None, T0, Pause("Step 1/1: paused until promoted"), None, True),
    ({}, T0, T0 + dt.timedelta(days=3), Pause("Step 1/1: paused until promoted"), None, True),
])
def test_pause(pause: dict[str, Any], started: dt.datetime | None, now: dt.datetime,
               expected: Outcome, wake: dt.datetime | None, kept: bool) -> None:
    pauses = [PauseCondition(reason=CANARY_PAUSE, start_time=started)] if started else []
    ctx, draft, walk, step = situation([{"pause": pause}], 0, now=now, pauses=pauses)
    assert pause_step.handle(ctx, draft, walk, step) == expected
    assert draft.wake_at == ([wake] if wake else [])
    reasons = [p.reason for p in walk.pause_conditions]
    assert reasons == ([CANARY_PAUSE] if kept else [])
    if kept and started is None:
        assert walk.pause_conditions[0].start_time == now


# --- analysis ------------------------------------------------------------------------------

def run(phase: str, *, attempt: int = 0, message: str = "") -> AnalysisRunView:
    ctx, *_ = situation([{"analysis": {"templates": [{"templateName": "t"}]}}], 0)
    return AnalysisRunView(name="run-0", phase=phase, message=message,
                           pod_hash=ctx.desired_hash, kind="step", step_index=0,
                           attempt=attempt)


ANALYSIS = [{"setWeight": 10}, {"analysis": {"templates": [{"templateName": "t"}]}}]


@pytest.mark.parametrize(("runs", "attempt", "expected", "creates", "pauses"), [
    ((), 0, Wait("Step 2/2: starting analysis"), True, False),
    ((run("Running"),), 0, Wait("Step 2/2: AnalysisRun run-0 Running"), False, False),
    ((run("Pending"),), 0, Wait("Step 2/2: AnalysisRun run-0 Pending"), False, False),
    ((run("Successful"),), 0, Advance(), False, False),
    ((run("Failed", message="error rate 0.3"),), 0,
     Abort("Aborted: step 2 AnalysisRun run-0 Failed: error rate 0.3"), False, False),
    ((run("Error"),), 0, Abort("Aborted: step 2 AnalysisRun run-0 Error"), False, False),
    ((run("Inconclusive"),), 0,
     Pause("Step 2/2: AnalysisRun run-0 Inconclusive; promote or abort"), False, True),
    # a run of an earlier attempt (before an abort and retry) does not count: start afresh
    ((run("Failed", attempt=0),), 1, Wait("Step 2/2: starting analysis"), True, False),
])
def test_analysis(runs: tuple[AnalysisRunView, ...], attempt: int, expected: Outcome,
                  creates: bool, pauses: bool) -> None:
    runs = tuple(AnalysisRunView(**{**r.__dict__, "step_index": 1}) for r in runs)
    ctx, draft, walk, step = situation(ANALYSIS, 1, runs=runs, attempt=attempt)
    assert analysis_step.handle(ctx, draft, walk, step) == expected
    created = [a for a in draft.actions if isinstance(a, CreateAnalysisRun)]
    assert [(c.kind, c.step_index, c.attempt, c.name) for c in created] == (
        [("step", 1, attempt, "run-1")] if creates else [])
    assert [p.reason for p in walk.pause_conditions] == ([INCONCLUSIVE_PAUSE] if pauses else [])


def test_analysis_waits_without_a_prepared_run_of_this_attempt() -> None:
    """The observer prepared runs for another attempt: nothing is started from them."""
    ctx, draft, walk, step = situation(ANALYSIS, 1, attempt=0)
    ctx = ctx.with_status(ctx.status.model_copy(update={"analysis_attempt": 2}))
    assert analysis_step.handle(ctx, draft, walk, step) == Wait("Step 2/2: starting analysis")
    assert draft.actions == []


# --- setCanaryScale ------------------------------------------------------------------------

@pytest.mark.parametrize(("steps", "index", "scale"), [
    ([{"setCanaryScale": {"replicas": 2}}], 0, {"replicas": 2}),
    ([{"setCanaryScale": {"weight": 30}}, {"setWeight": 10}], 1, {"weight": 30}),
    ([{"setCanaryScale": {"weight": 30}}, {"setCanaryScale": {"matchTrafficWeight": True}}],
     1, {"matchTrafficWeight": True}),
    ([{"setWeight": 10}, {"setCanaryScale": {"replicas": 1}}], 0, None),
])
def test_set_canary_scale(steps: list[dict[str, Any]], index: int,
                          scale: dict[str, Any] | None) -> None:
    ctx, draft, walk, step = situation(steps, index)
    if step.set_canary_scale is not None:
        assert set_canary_scale_step.handle(ctx, draft, walk, step) == Advance()
    shown = walk.canary_scale.to_wire() if walk.canary_scale else None
    assert shown == scale
    assert draft.actions == []


@pytest.mark.parametrize(("steps", "weights"), [
    ([{"pause": {}}, {"setWeight": 30}, {"pause": {}}, {"setWeight": 60}], [0, 30, 30, 60, 100]),
    ([], [100]),
    ([{"setCanaryScale": {"replicas": 1}}, {"setWeight": 5}], [0, 5, 100]),
])
def test_step_weight(steps: list[dict[str, Any]], weights: list[int]) -> None:
    parsed = [CanaryStep.model_validate(s) for s in steps]
    assert [step_weight(parsed, i) for i in range(len(weights))] == weights
