"""Minor status changes wait for the next write, at most FOLD_SECONDS; nothing else waits."""

from __future__ import annotations

import datetime as dt

import pytest

from rollouts.models.rollout import (
    CanaryStatus,
    Condition,
    PauseCondition,
    RolloutStatus,
    TrafficWeights,
    WeightDestination,
)
from rollouts.planner.types import Event
from rollouts.planner.write_folding import FOLD_SECONDS, fold, may_wait, minor_change

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
