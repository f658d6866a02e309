"""Minor status changes wait for the next write, at most FOLD_SECONDS; nothing else waits."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from rollouts.models.rollout import (
    CanaryStatus,
    CanaryStep,
    Condition,
    PauseCondition,
    RolloutPause,
    RolloutStatus,
    TrafficWeights,
    WeightDestination,
)
from rollouts.planner.types import (
    CreateReplicaSet,
    DeleteAnalysisRun,
    Event,
    PinService,
    ScaleReplicaSet,
)
from rollouts.planner.write_folding import (
    FOLD_SECONDS,
    fold,
    may_wait,
    minor_change,
    passing,
    with_status,
)

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


def status(**changes: object) -> RolloutStatus:
    base = RolloutStatus(
        phase="Progressing", message="Step 1/4: waiting", observed_generation=2, replicas=3,
        updated_replicas=1, ready_replicas=2, available_replicas=2, current_pod_hash="new",
        stable_rs="old", current_step_index=0, step="1/4",
        canary=CanaryStatus(desired_weight=50, weights=TrafficWeights(
            canary=WeightDestination(pod_template_hash="new", weight=33),
            stable=WeightDestination(pod_template_hash="old", weight=67), verified=False)),
        conditions=[Condition(type="Ready", status="False", reason="Progressing",
                              message="Step 1/4: waiting", last_transition_time=NOW)],
    )
    return base.model_copy(update=changes)


def weights(canary: int, *, canary_hash: str = "new", verified: bool = False) -> CanaryStatus:
    return CanaryStatus(desired_weight=50, weights=TrafficWeights(
        canary=WeightDestination(pod_template_hash=canary_hash, weight=canary),
        stable=WeightDestination(pod_template_hash="old", weight=100 - canary),
        verified=verified))


MINOR = [
    {"replicas": 2, "updated_replicas": 2},
    {"ready_replicas": 3, "available_replicas": 3},
    {"message": "Step 1/4: 1/1 available"},
    {"progress_at": NOW},
    {"canary": weights(50)},
    {"conditions": [Condition(type="Ready", status="False", reason="Progressing",
                              message="other words", last_transition_time=NOW)]},
]
MAJOR = [
    {"phase": "Paused"},
    {"phase": "Degraded"},
    {"step": "2/4", "current_step_index": 1},
    {"observed_generation": 3},
    {"stable_rs": "new"},
    {"current_pod_hash": "newer"},
    {"abort": True},
    {"pause_conditions": [PauseCondition(reason="CanaryPauseStep", start_time=NOW)]},
    {"canary": weights(33, verified=True)},
    {"canary": weights(33, canary_hash="newer")},
    {"conditions": [Condition(type="Ready", status="True", reason="Healthy",
                              message="Step 1/4: waiting", last_transition_time=NOW)]},
    {"replicas": 2, "step": "2/4"},
]


@pytest.mark.parametrize("change", MINOR)
def test_minor_changes(change: dict[str, object]) -> None:
    assert minor_change(status(), status(**change))


@pytest.mark.parametrize("change", MAJOR)
def test_major_changes(change: dict[str, object]) -> None:
    assert not minor_change(status(), status(**change))


def test_no_change_and_degraded_and_new_rollouts_are_not_minor() -> None:
    assert not minor_change(status(), status())
    degraded = status(phase="Degraded")
    assert not minor_change(degraded, degraded.model_copy(update={"replicas": 1}))
    assert not minor_change(RolloutStatus(), RolloutStatus(replicas=1))


def test_a_minor_change_is_held_then_written_when_its_time_is_up() -> None:
    old, new = status(), status(replicas=2)
    held = fold(old, new, may_wait=True, pending_since=None, requeue_after=None, now=NOW)
    assert (held.write, held.pending_since, held.requeue_after) == (False, NOW, FOLD_SECONDS)
    later = NOW + dt.timedelta(seconds=1)
    again = fold(old, new, may_wait=True, pending_since=held.pending_since,
                 requeue_after=0.5, now=later)
    assert (again.write, again.pending_since, again.requeue_after) == (False, NOW, 0.5)
    due = NOW + dt.timedelta(seconds=FOLD_SECONDS)
    written = fold(old, new, may_wait=True, pending_since=NOW, requeue_after=7.0, now=due)
    assert (written.write, written.pending_since, written.requeue_after) == (True, None, 7.0)


def test_a_transition_or_an_event_is_written_at_once() -> None:
    old = status()
    paused = status(step="2/4", current_step_index=1, phase="Paused")
    minor = status(replicas=2)
    event = Event("Normal", "ReplicaSetCreated", "Created ReplicaSet web-new")
    assert not may_wait(old, paused, (), (), posting_events=False)
    resting = status(phase="Paused")  # a minor change of a resting Rollout, with an Event
    assert not may_wait(resting, resting.model_copy(update={"replicas": 2}), (), (event,),
                        posting_events=False)
    assert may_wait(old, minor, (), (), posting_events=False)
    assert not may_wait(old, minor, (), (), posting_events=True)
    done = fold(old, paused, may_wait=False, pending_since=NOW, requeue_after=None, now=NOW)
    assert (done.write, done.pending_since) == (True, None)


STEPS = [CanaryStep(set_weight=50), CanaryStep(pause=RolloutPause(duration="2s")),
         CanaryStep(set_weight=100), CanaryStep(pause=RolloutPause())]
SCALE = ScaleReplicaSet("web-new", 2, None, "7")


def test_passing_states_may_wait() -> None:
    healthy = status(phase="Healthy", current_pod_hash="old", observed_pod_hash="old",
                     current_step_index=4, step="4/4")
    first = status(observed_pod_hash="new", observed_generation=3)  # waiting at step 1
    create = CreateReplicaSet("web-new", "new", 1, 2, {})
    assert passing(healthy, first, (create, PinService("web-canary", "new")), (), STEPS)
    paused = status(phase="Paused", current_step_index=1, step="2/4", pause_conditions=[
        PauseCondition(reason="CanaryPauseStep", start_time=NOW)])
    after_pause = status(current_step_index=2, step="3/4", message="Step 3/4: waiting")
    assert passing(paused, after_pause, (SCALE,), (), STEPS)
    assert may_wait(paused, after_pause, (SCALE,), (Event("Normal", "RolloutStepChanged",
                                                          "Step 2/4 -> 3/4"),),
                    posting_events=False, steps=STEPS)


@pytest.mark.parametrize("why", ["past a setWeight", "promotion", "paused", "analysis",
                                 "warning", "never reconciled", "indefinite pause passed"])
def test_what_is_not_a_passing_state(why: str) -> None:
    old, new = status(), status(current_step_index=1, step="2/4")
    actions: tuple[Any, ...] = (SCALE,)
    events: tuple[Event, ...] = ()
    if why == "promotion":
        old, new = status(current_step_index=2), status(current_step_index=2, stable_rs="new")
    elif why == "paused":
        old, new = status(current_step_index=2), status(current_step_index=2, phase="Paused")
    elif why == "analysis":
        old, new = status(current_step_index=2), status(current_step_index=2, replicas=1)
        actions = (DeleteAnalysisRun("run-1"),)
    elif why == "warning":
        old, new = status(current_step_index=2), status(current_step_index=2, replicas=1)
        events = (Event("Warning", "SelectorRepaired", "taken back"),)
    elif why == "never reconciled":
        old, new = RolloutStatus(), status(current_step_index=0)
    elif why == "indefinite pause passed":
        old, new = status(current_step_index=3), status(current_step_index=4, step="4/4")
    assert not passing(old, new, actions, events, STEPS)


def test_due_events_a_written_status_shows_go_out_the_others_wait_with_the_status() -> None:
    """Rule 3: the first `shown` due Events go out; the rest wait with a status that may
    wait, and go out with one that is written at once."""
    due = [Event("Normal", "ReplicaSetCreated", "created"),
           Event("Normal", "RolloutPaused", "paused"),
           Event("Normal", "RolloutStepChanged", "step 2 -> 3")]
    assert with_status(due, 2, status_may_wait=True) == (tuple(due[:2]), (due[2],))
    assert with_status(due, 0, status_may_wait=True) == ((), tuple(due))
    assert with_status(due, 3, status_may_wait=True) == (tuple(due), ())
    assert with_status(due, 2, status_may_wait=False) == (tuple(due), ())
    assert with_status([], 0, status_may_wait=True) == ((), ())


def test_the_experiment_templates_weights_are_never_held() -> None:
    """canary.weights.additional (an experiment's traffic, as read back) is experiment
    state: a change of it is written at once, even in a state the Rollout passes through."""
    old = status()
    weights = old.canary.weights if old.canary else None
    assert weights is not None and old.canary is not None
    shares = [WeightDestination(pod_template_hash="exp", weight=10,
                                service_name="web-exp-canary")]
    new = old.model_copy(update={"canary": old.canary.model_copy(update={
        "weights": weights.model_copy(update={"additional": shares})})})
    assert not passing(old, new, (), (), STEPS)
    assert not minor_change(old, new)
    moved = new.model_copy(update={"ready_replicas": 3})  # the same shares, pods moving
    assert minor_change(new, moved) and passing(new, moved, (SCALE,), (), STEPS)
