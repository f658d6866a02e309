"""Minor status changes wait for the next write, at most FOLD_SECONDS; nothing else waits."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
    PASSING_SECONDS,
    fold,
    hold_seconds,
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


def test_due_events_wait_with_a_status_that_may_wait() -> None:
    """Rule 3: due Events all wait with a status that may wait (a write is certain to
    come), and all go out with one that is written at once."""
    due = [Event("Normal", "ReplicaSetCreated", "created"),
           Event("Normal", "RolloutPaused", "paused"),
           Event("Normal", "RolloutStepChanged", "step 2 -> 3")]
    assert with_status(due, status_may_wait=True) == ((), tuple(due))
    assert with_status(due, status_may_wait=False) == (tuple(due), ())
    assert with_status([], status_may_wait=True) == ((), ())
    assert with_status([], status_may_wait=False) == ((), ())


@pytest.mark.parametrize(("old", "new", "seconds"), [
    # a new revision at its first step, waiting for its pods: until it rests
    (status(phase="Healthy", current_step_index=4, observed_pod_hash="a"),
     status(current_step_index=0, observed_pod_hash="b"), PASSING_SECONDS),
    # the same step, still waiting (a scale done, counts moved): until it rests
    (status(observed_pod_hash="b"), status(observed_pod_hash="b", replicas=2),
     PASSING_SECONDS),
    # a step done (past a timed pause): what step-lag readers wait for, 3 s
    (status(phase="Paused", current_step_index=1, observed_pod_hash="b"),
     status(current_step_index=2, observed_pod_hash="b"), FOLD_SECONDS),
    # a new revision that walked a timed pause at its start: a step done
    (status(phase="Healthy", current_step_index=4, observed_pod_hash="a"),
     status(current_step_index=1, observed_pod_hash="b"), FOLD_SECONDS),
    # a minor change of a resting Rollout (the counts after the old pods go): 3 s
    (status(phase="Healthy", current_step_index=4), status(phase="Healthy",
                                                           current_step_index=4, replicas=2),
     FOLD_SECONDS),
    (status(phase="Paused", current_step_index=1), status(phase="Paused",
                                                          current_step_index=1, replicas=2),
     FOLD_SECONDS),
])
def test_how_long_a_status_may_wait(old: RolloutStatus, new: RolloutStatus,
                                    seconds: float) -> None:
    assert hold_seconds(old, new) == seconds


def test_a_passing_state_is_held_up_to_its_own_limit() -> None:
    old, new = status(observed_pod_hash="a"), status(observed_pod_hash="b")
    first = fold(old, new, may_wait=True, pending_since=None, requeue_after=None, now=NOW,
                 seconds=PASSING_SECONDS)
    assert (first.write, first.requeue_after) == (False, PASSING_SECONDS)
    assert first.until == NOW + dt.timedelta(seconds=PASSING_SECONDS)
    later = NOW + dt.timedelta(seconds=FOLD_SECONDS + 1)  # past the short hold: still held
    assert not fold(old, new, may_wait=True, pending_since=NOW, requeue_after=None,
                    now=later, seconds=PASSING_SECONDS).write
    end = NOW + dt.timedelta(seconds=PASSING_SECONDS)
    assert fold(old, new, may_wait=True, pending_since=NOW, requeue_after=None, now=end,
                seconds=PASSING_SECONDS).write


@given(passes=st.lists(st.tuples(st.floats(0.01, 4.0), st.booleans(),
                                 st.sampled_from([FOLD_SECONDS, PASSING_SECONDS])),
                       min_size=1, max_size=30))
def test_a_held_change_never_outlives_its_hold(
        passes: list[tuple[float, bool, float]]) -> None:
    """Over any run of passes (gap to the next, whether the change may wait, the pass's
    limit), a held change is written by the first pass at or past the end of the hold that
    pass computes, never held past it, and never asks to be woken after it."""
    old, new = status(), status(replicas=2)
    now, since = NOW, None
    for gap, waits, seconds in passes:
        now += dt.timedelta(seconds=gap)
        folded = fold(old, new, may_wait=waits, pending_since=since, requeue_after=None,
                      now=now, seconds=seconds)
        first = since if since is not None else now
        if not waits or (now - first).total_seconds() >= seconds:
            assert folded.write and folded.pending_since is None
        else:
            assert not folded.write and folded.pending_since == first
            assert folded.until == first + dt.timedelta(seconds=seconds)
            assert folded.requeue_after is not None
            assert now + dt.timedelta(seconds=folded.requeue_after) <= folded.until
        since = folded.pending_since


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
