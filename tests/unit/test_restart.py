"""spec.restartAt: tables for the pure parts, restarts followed pod by pod, and a property
over random availability: one eviction a pass, never beyond maxUnavailable, every old pod
replaced in the end."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollouts.models.rollout import parse_spec
from rollouts.models.wire import format_time
from rollouts.planner.restart import max_unavailable, restart_order
from rollouts.planner.types import EvictPod, ReplicaSetView
from tests.unit.pod_world import PodWorld
from tests.unit.world import blue_green_spec, canary_spec


def restarting(world: PodWorld, after: float = 0) -> dt.datetime:
    at = world.now + dt.timedelta(seconds=after)
    world.spec = {**world.spec, "restartAt": format_time(at)}
    world.generation += 1
    return at


def evictions(plan: Any) -> list[EvictPod]:
    return [a for a in plan.actions if isinstance(a, EvictPod)]


@pytest.mark.parametrize(("spec", "expected"), [
    (canary_spec([], replicas=4), 1),  # 25% of 4
    (canary_spec([], replicas=10, maxUnavailable="50%"), 5),
    (canary_spec([], replicas=3), 1),  # 25% of 3 rounds down to 0: at least 1
    (canary_spec([], replicas=4, maxUnavailable=2), 2),
    (blue_green_spec(replicas=3), 1),  # blue-green default 0: at least 1
])
def test_max_unavailable(spec: dict[str, Any], expected: int) -> None:
    assert max_unavailable(parse_spec(spec)) == expected


def test_restart_order_is_stable_then_desired_then_oldest() -> None:
    sets = tuple(ReplicaSetView(f"rs-{h}", h, revision, 1)
                 for h, revision in (("d", 4), ("o2", 2), ("s", 3), ("o1", 1)))
    assert [r.pod_hash for r in restart_order(sets, "s", "d")] == ["s", "d", "o1", "o2"]


def steady(**kw: Any) -> PodWorld:
    w = PodWorld(canary_spec([], canaryService="canary", stableService="stable", **kw))
    w.run()
    assert w.status.phase == "Healthy"
    return w


def test_every_pod_is_replaced_one_at_a_time() -> None:
    w = steady()
    old = {p.uid for p in w.pods.values()}
    w.advance(60)
    at = restarting(w)
    for _ in range(20):
        result = w.step()
        assert len(evictions(result)) <= 1
        if w.status.restarted_at is not None:
            break
    assert w.status.restarted_at == at
    assert len(w.evicted) == 4 and len(w.pods) == 4
    assert not old & {p.uid for p in w.pods.values()}
    assert all(p.created is not None and p.created >= at for p in w.pods.values())
    assert any(e.reason == "RolloutRestarted" for e in w.history[-1].events)
    assert w.status.phase == "Healthy" and w.status.stable_rs == w.status.current_pod_hash
    # Done: nothing more to do, and the pods are no longer listed.
    lists = w.pod_lists
    assert not w.step().actions and w.pod_lists == lists


def test_an_eviction_waits_for_the_replacement_to_be_available() -> None:
    w = steady()
    w.auto_ready = False
    w.advance(60)
    restarting(w)
    assert len(evictions(w.step())) == 1
    w.settle(available={w.status.stable_rs or "": 3})  # the new pod is not ready yet
    for _ in range(3):
        result = w.step()
        assert not evictions(result)
        assert result.requeue_after is not None and result.requeue_after <= 5
    w.settle()
    assert len(evictions(w.step())) == 1


def test_a_restart_in_the_future_waits_for_its_time() -> None:
    w = steady()
    restarting(w, after=120)
    result = w.step()
    assert not evictions(result) and result.requeue_after == 120
    w.advance(120)
    assert len(evictions(w.step())) == 1


def test_a_new_revision_cancels_the_restart() -> None:
    w = steady()
    w.advance(60)
    at = restarting(w)
    w.step()
    w.set_image("app:2")
    w.step()
    assert w.status.restarted_at == at
    w.run()
    assert w.status.phase == "Healthy"
    assert len(w.evicted) == 1


def test_blue_green_restarts_too() -> None:
    w = PodWorld(blue_green_spec(replicas=2))
    w.run()
    w.advance(30)
    at = restarting(w)
    w.run()
    assert w.status.restarted_at == at and len(w.evicted) == 2


@settings(max_examples=60, deadline=None)
@given(replicas=st.integers(1, 6), unavailable=st.sampled_from([0, 1, 2, "50%"]),
       data=st.data())
def test_restart_property(replicas: int, unavailable: int | str, data: st.DataObject) -> None:
    w = steady(replicas=replicas, maxUnavailable=unavailable)
    w.auto_ready = False
    budget = max_unavailable(parse_spec(w.spec))
    w.advance(60)
    at = restarting(w)
    for _ in range(200):
        stable = w.rs(w.status.stable_rs)
        assert stable is not None
        down_before = stable.spec_replicas - stable.available
        result = w.step()
        evicted = evictions(result)
        assert len(evicted) <= 1
        if evicted:
            assert down_before < budget
        if w.status.restarted_at == at:
            break
        if data.draw(st.booleans()):
            w.settle()
        else:
            w.settle(available={h: data.draw(st.integers(0, r.spec_replicas))
                                for h, r in w.replica_sets.items()})
    else:
        w.settle()
        for _ in range(3 * replicas + 2):
            w.step()
            w.settle()
    assert w.status.restarted_at == at
    assert all(p.created is not None and p.created >= at for p in w.pods.values())


def test_a_lagging_replica_set_status_does_not_allow_a_second_eviction() -> None:
    """The evicted pod is gone from the list at once; the ReplicaSet's status may still count
    it as available. The pods decide then: one replacement starting is one pod down."""
    from rollouts.models.rollout import RolloutStatus
    from rollouts.planner.restart import plan_restart
    from rollouts.planner.types import Observed, PodView

    now = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    spec = parse_spec({**canary_spec([], replicas=3), "restartAt": format_time(now)})
    status = RolloutStatus(stable_rs="a", current_pod_hash="a", observed_pod_hash="a")
    old = now - dt.timedelta(hours=1)
    pods = (PodView("p1", "u1", "a", created=old, ready=True),
            PodView("p2", "u2", "a", created=old, ready=True),
            PodView("p3", "u3", "a", created=now, ready=False))  # the replacement
    stale_status = (ReplicaSetView("demo-a", "a", 1, 3, replicas=3, ready=3, available=3),)
    decision = plan_restart(spec, status, status, Observed(replica_sets=stale_status, pods=pods),
                            now)
    assert decision.evict == () and decision.restarted_at is None
    ready = tuple(dataclasses.replace(p, ready=True) for p in pods)
    decision = plan_restart(spec, status, status, Observed(replica_sets=stale_status, pods=ready),
                            now)
    assert [e.name for e in decision.evict] == ["p1"]
