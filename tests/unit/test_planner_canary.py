"""Canary planning, case by case, on the in-memory world."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from rollouts.planner.steps import step_weight
from rollouts.planner.traffic import replica_targets
from rollouts.planner.types import DeleteReplicaSet, ScaleReplicaSet
from tests.unit.world import World, canary_spec

STEPS = [{"setWeight": 25}, {"pause": {"duration": 10}}, {"setWeight": 50}, {"pause": {}}]


TOP_LEVEL = {"replicas", "progressDeadlineSeconds", "progressDeadlineAbort",
             "revisionHistoryLimit"}


def healthy_world(steps: list[dict[str, object]] | None = None, **kw: object) -> World:
    spec = canary_spec(STEPS if steps is None else steps, canaryService="canary",
                       stableService="stable",
                       **{k: v for k, v in kw.items() if k not in TOP_LEVEL - {"replicas"}})
    spec.update({k: v for k, v in kw.items() if k in TOP_LEVEL - {"replicas"}})
    w = World(spec)
    w.run()
    assert w.status.phase == "Healthy"
    return w


@pytest.mark.parametrize(
    ("replicas", "weight", "expected"),
    [
        (4, 0, (0, 4)),
        (4, 25, (1, 3)),
        (4, 50, (2, 2)),
        (4, 100, (4, 0)),
        (10, 33, (4, 6)),
        (1, 20, (1, 1)),  # both sides keep a pod while 0 < weight < 100
        (3, 99, (3, 1)),
        (0, 50, (0, 0)),
    ],
)
def test_replica_targets(replicas: int, weight: int, expected: tuple[int, int]) -> None:
    assert replica_targets(replicas, weight) == expected


def test_step_weight_is_last_set_weight_at_or_before_index() -> None:
    from rollouts.models.rollout import parse_spec

    spec = parse_spec(canary_spec([{"pause": {}}, {"setWeight": 30}, {"pause": {}},
                                   {"setWeight": 60}]))
    strategy = spec.strategy.canary
    assert strategy is not None
    assert [step_weight(strategy.steps or [], i) for i in range(5)] == [0, 30, 30, 60, 100]


def test_first_revision_goes_straight_to_stable() -> None:
    w = World(canary_spec(STEPS, canaryService="canary", stableService="stable"))
    w.run()
    assert w.status.phase == "Healthy"
    assert w.status.stable_rs == w.status.current_pod_hash
    assert w.sizes() == {w.status.stable_rs: 4}
    assert w.selector("stable") == w.selector("canary") == w.status.stable_rs
    assert w.status.current_step_index == len(STEPS)


def test_canary_walks_steps_and_pauses() -> None:
    w = healthy_world()
    old = w.status.stable_rs
    w.set_image("app:2")
    w.step()
    w.step()
    new = w.status.current_pod_hash
    assert new != old
    assert w.status.phase == "Paused"
    assert w.status.current_step_index == 1
    assert w.sizes() == {old: 3, new: 1}
    assert w.status.canary is not None and w.status.canary.weights is not None
    assert w.status.canary.weights.canary.weight == 25
    assert w.selector("canary") == new and w.selector("stable") == old
    # The timed pause ends by itself, and the plan asked to be woken for it.
    assert w.history[-1].requeue_after == 10
    w.advance(10)
    w.run()
    assert w.status.current_step_index == 3
    assert w.status.phase == "Paused"
    assert w.status.message == "Step 4/4: paused until promoted"
    assert w.sizes() == {old: 2, new: 2}


def test_indefinite_pause_waits_for_promote_then_completes() -> None:
    w = healthy_world()
    old = w.status.stable_rs
    w.set_image("app:2")
    w.run()
    w.advance(10)
    w.run()
    w.advance(3600)
    w.run()
    assert w.status.current_step_index == 3 and w.status.phase == "Paused"
    # promote = the CLI's status edit: next step, pause lifted.
    w.edit_status(current_step_index=4, pause_conditions=None)
    w.run()
    new = w.status.current_pod_hash
    assert w.status.phase == "Healthy"
    assert w.status.stable_rs == new
    assert w.sizes() == {old: 0, new: 4}
    assert w.selector("stable") == new


def test_promote_full_skips_remaining_steps() -> None:
    w = healthy_world()
    w.set_image("app:2")
    w.step()
    w.edit_status(promote_full=True)
    w.run()
    assert w.status.phase == "Healthy"
    assert w.status.stable_rs == w.status.current_pod_hash
    assert w.status.promote_full is None


def test_abort_restores_stable_before_removing_canary() -> None:
    w = healthy_world()
    old = w.status.stable_rs
    w.set_image("app:2")
    w.run()
    w.advance(10)
    w.run()
    new = w.status.current_pod_hash
    assert w.sizes() == {old: 2, new: 2}
    w.edit_status(abort=True, abort_message="Rollout aborted by user")
    # The stable's new pods are not available yet: the canary must stay.
    first = w.plan()
    w.apply(first)
    assert ScaleReplicaSet(w.rs(old).name, 4, None) in first.actions  # type: ignore[union-attr]
    assert not any(isinstance(a, ScaleReplicaSet) and a.name == w.rs(new).name  # type: ignore[union-attr]
                   for a in first.actions)
    assert w.status.phase == "Degraded"
    w.settle(available={old: 2})
    blocked = w.plan()
    assert not any(isinstance(a, ScaleReplicaSet) and a.replicas == 0 for a in blocked.actions)
    w.settle()
    w.run()
    assert w.sizes() == {old: 4, new: 0}
    assert w.status.phase == "Degraded"
    assert w.status.message.startswith("Rollout aborted by user; stable revision")
    assert w.selector("canary") == old and w.selector("stable") == old
    assert w.status.current_step_index == 0
    # Degraded holds while Git still has the rejected revision...
    w.advance(3600)
    w.run()
    assert w.status.phase == "Degraded"
    # ...and retry starts over.
    w.edit_status(abort=None, abort_message=None, aborted_at=None, current_step_index=0)
    w.run()
    assert w.status.phase == "Paused" and w.status.current_step_index == 1


def test_new_commit_clears_abort() -> None:
    w = healthy_world()
    w.set_image("app:2")
    w.run()
    w.edit_status(abort=True)
    w.run()
    assert w.status.phase == "Degraded"
    w.set_image("app:3")
    w.run()
    assert w.status.abort is None
    assert w.status.phase == "Paused"


def test_git_revert_returns_to_stable_at_once() -> None:
    w = healthy_world()
    old = w.status.stable_rs
    w.set_image("app:2")
    w.run()
    w.advance(10)
    w.run()
    new = w.status.current_pod_hash
    w.set_image("app:1")  # the revert
    result = w.step()
    assert w.status.current_pod_hash == old
    assert ScaleReplicaSet(w.rs(old).name, 4, None) in result.actions  # type: ignore[union-attr]
    w.run()
    assert w.status.phase == "Healthy"
    assert w.sizes() == {old: 4, new: 0}
    assert w.status.current_step_index == len(STEPS)


def test_progress_deadline_degrades_and_optionally_aborts() -> None:
    for abort in (False, True):
        w = healthy_world(progressDeadlineSeconds=60, progressDeadlineAbort=abort)  # type: ignore[arg-type]
        old = w.status.stable_rs
        w.auto_ready = False
        w.set_image("app:2")
        w.step()
        w.settle(available={w.status.current_pod_hash or "": 0})
        w.step()
        assert w.status.phase == "Progressing"
        assert w.history[-1].requeue_after == pytest.approx(60)
        w.advance(61)
        w.step()
        assert w.status.phase == "Degraded"
        assert "ProgressDeadlineExceeded" in w.status.message
        stalled = w.status.condition("Stalled")
        assert stalled is not None and stalled.status == "True"
        assert bool(w.status.abort) is abort
        if abort:
            w.settle(available={w.status.current_pod_hash or "": 0})
            w.step()
            assert w.sizes()[old or ""] == 4


def test_user_pause_holds_progress() -> None:
    w = healthy_world([{"setWeight": 50}])
    w.set_image("app:2")
    w.edit_status(pause_conditions=None)
    w.step()
    from rollouts.models.rollout import PauseCondition

    w.edit_status(pause_conditions=[PauseCondition(reason="PausedByUser",
                                                   start_time="2026-01-01T00:00:00Z")])
    w.run()
    assert w.status.phase == "Paused"
    assert w.status.stable_rs != w.status.current_pod_hash
    w.edit_status(pause_conditions=None)
    w.run()
    assert w.status.phase == "Healthy"


def test_history_is_trimmed_to_limit() -> None:
    w = healthy_world([], revisionHistoryLimit=1)  # type: ignore[arg-type]
    deleted: list[str] = []
    for tag in range(2, 6):
        w.set_image(f"app:{tag}")
        w.run()
        deleted += [a.name for p in w.history for a in p.actions
                    if isinstance(a, DeleteReplicaSet)]
    assert len(w.replica_sets) == 2  # stable + one old
    assert deleted


def test_missing_service_is_invalid_spec_naming_the_field() -> None:
    w = World(canary_spec([], canaryService="nope", stableService="stable"))
    result = w.step()
    assert result.status.phase == "Degraded"
    assert "spec.strategy.canary.canaryService" in result.status.message
    invalid = result.status.condition("InvalidSpec")
    assert invalid is not None and invalid.status == "True"
    assert result.actions == ()


@pytest.mark.parametrize(
    ("steps", "field"),
    [
        ([{"setWeight": 120}], "steps[0].setWeight"),
        ([{"setWeight": 10, "pause": {}}], "steps[0]"),
        ([{"pause": {"duration": "-5s"}}], "steps[0].pause.duration"),
        ([{"setCanaryScale": {"replicas": 2}}], "steps[0].setCanaryScale"),
        ([{"bogus": 1}], "steps[0].bogus"),
    ],
)
def test_bad_steps_are_invalid_spec(steps: list[dict[str, object]], field: str) -> None:
    result = World(canary_spec(steps)).step()
    assert result.status.phase == "Degraded"
    assert field in result.status.message
    assert result.actions == ()


def test_max_surge_and_unavailable_bound_each_pass() -> None:
    w = healthy_world([{"setWeight": 100}], replicas=10, maxSurge=2, maxUnavailable=0)  # type: ignore[arg-type]
    w.auto_ready = False
    w.set_image("app:2")
    for _ in range(40):
        w.step()
        total = sum(w.sizes().values())
        assert total <= 12
        available = sum(min(r.available, r.spec_replicas) for r in w.replica_sets.values())
        assert available >= 10 or w.history[-1].status.phase == "Healthy"
        w.settle()
    assert w.status.phase == "Healthy"
    assert math.isclose(sum(w.sizes().values()), 10)


def test_promotion_repoints_the_stable_service_before_the_old_stable_goes() -> None:
    """Issue 11: the old stable's last pods used to go one pass before the stable Service
    was re-pointed (it selected a ReplicaSet at 0). Now the Service follows the canary
    first, and the pods go once it is seen doing so."""
    w = World(canary_spec([{"setWeight": 50}], canaryService="canary", stableService="stable"))
    w.run()
    old = w.status.stable_rs
    w.set_image("app:2")
    seen = []
    for _ in range(30):
        before = w.selector("stable")
        result = w.step()
        for action in result.actions:
            if isinstance(action, ScaleReplicaSet) and action.replicas == 0:
                assert w.replica_sets[old].name == action.name
                seen.append(before)
        if w.status.phase == "Healthy" and w.rs(old) and w.rs(old).spec_replicas == 0:
            break
    new = w.status.stable_rs
    assert new != old and w.selector("stable") == new
    assert seen and all(selector == new for selector in seen)


def test_a_promotion_whose_status_writes_were_lost_never_points_the_stable_service_back() -> None:
    """Found by the API-fault campaign (issue 11): the promotion pass re-pointed the stable
    Service and its status write failed; the next pass, planned from the same status,
    retired the old stable's last pod (the Service was seen on the canary) and its write
    failed too; the pass after that, still at the setWeight 100 step, found the step
    unfinished (the old stable below its one-pod floor) and pointed the stable Service back
    at the old revision, which had no pod left. The world shows the promotion done: the
    planner must finish it, whatever the status says."""
    w = World(canary_spec([{"setWeight": 50}, {"setWeight": 100}], replicas=4,
                          canaryService="canary", stableService="stable"))
    w.run()
    old = w.status.stable_rs
    w.set_image("app:2")
    result = w.plan_until_pinned("stable")
    new = w.status.current_pod_hash
    assert new != old
    for _ in range(2):  # two passes whose status writes are lost
        w.apply(replace(result, status=w.status))
        w.settle()
        result = w.plan()
    assert w.selector("stable") == new and w.rs(old).spec_replicas == 0
    for _ in range(5):
        result = w.step()
        assert w.selector("stable") == new, "the stable Service went back to the old revision"
    assert w.status.stable_rs == new and w.status.phase == "Healthy"


def test_an_abort_of_a_promotion_the_status_never_recorded_moves_traffic_last() -> None:
    """The promotion's status writes were lost (the stable Service is on the canary, the
    old stable's pods are gone) and the user aborts: the old stable is scaled back up and
    the stable Service returns to it only once its pods are available (stable first)."""
    w = World(canary_spec([{"setWeight": 50}, {"setWeight": 100}], replicas=4,
                          canaryService="canary", stableService="stable"))
    w.run()
    old = w.status.stable_rs
    w.set_image("app:2")
    w.auto_ready = False
    result = w.plan_until_pinned("stable")
    new = w.status.current_pod_hash
    for _ in range(2):  # the promotion and the retirement, both status writes lost
        w.apply(replace(result, status=w.status))
        w.settle()
        result = w.plan()
    assert w.selector("stable") == new and w.rs(old).spec_replicas == 0
    w.edit_status(abort=True, abort_message="aborted by test")
    w.step()
    assert w.rs(old).spec_replicas == 4 and w.selector("stable") == new
    w.settle(available={old: 2})
    w.step()
    assert w.selector("stable") == new, "moved to a stable with 2 of 4 pods"
    w.settle()
    w.step()
    assert w.selector("stable") == old
    w.step()
    assert w.rs(new).spec_replicas == 0 and w.status.phase == "Degraded"
