"""Blue-green planning, case by case, on the in-memory world."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rollouts.planner.types import PinService, ScaleReplicaSet
from tests.unit.world import World, blue_green_spec


def healthy(**bg: Any) -> World:
    w = World(blue_green_spec(**bg))
    w.run()
    assert w.status.phase == "Healthy"
    return w


def test_first_revision_becomes_active_once_available() -> None:
    w = World(blue_green_spec())
    w.auto_ready = False
    w.step()
    assert w.selector("active") is None  # nothing is available yet
    w.settle()
    w.run()
    assert w.selector("active") == w.status.stable_rs
    assert w.status.blue_green is not None
    assert w.status.blue_green.active_selector == w.status.stable_rs


def test_auto_promotion_switches_only_when_fully_available() -> None:
    w = healthy()
    old = w.status.stable_rs
    w.auto_ready = False
    w.set_image("app:2")
    w.step()
    new = w.status.current_pod_hash
    assert w.selector("preview") == new and w.selector("active") == old
    w.settle(available={new or "": 2})
    result = w.step()
    assert not any(isinstance(a, PinService) and a.service == "active" for a in result.actions)
    w.settle()
    w.run()
    assert w.selector("active") == new
    assert w.status.stable_rs == new and w.status.phase == "Healthy"
    # The old revision keeps its pods for scaleDownDelaySeconds (30 by default).
    assert w.sizes()[old or ""] == 3
    assert w.rs(old).scale_down_at is not None  # type: ignore[union-attr]
    w.advance(30)
    w.run()
    assert w.sizes()[old or ""] == 0


def test_manual_promotion_waits_then_switches() -> None:
    w = healthy(autoPromotionEnabled=False)
    old = w.status.stable_rs
    w.set_image("app:2")
    w.run()
    assert w.status.phase == "Paused"
    assert w.selector("active") == old
    w.advance(3600)
    w.run()
    assert w.selector("active") == old
    w.edit_status(pause_conditions=None)  # promote
    w.run()
    assert w.status.phase == "Healthy"
    assert w.selector("active") == w.status.current_pod_hash


def test_auto_promotion_seconds_delays_switch() -> None:
    w = healthy(autoPromotionSeconds=60)
    old = w.status.stable_rs
    w.set_image("app:2")
    w.run()
    assert w.status.phase == "Paused" and w.selector("active") == old
    assert w.history[-1].requeue_after == 60
    w.advance(60)
    w.run()
    assert w.selector("active") == w.status.current_pod_hash


def test_preview_replica_count_scales_up_before_switch() -> None:
    w = healthy(previewReplicaCount=1, autoPromotionEnabled=False, replicas=3)
    w.set_image("app:2")
    w.run()
    new = w.status.current_pod_hash or ""
    assert w.sizes()[new] == 1
    w.edit_status(pause_conditions=None)
    w.auto_ready = False
    w.step()
    assert w.sizes()[new] == 3
    assert w.selector("active") != new
    w.settle()
    w.run()
    assert w.selector("active") == new


def test_abort_pins_stable_then_scales_preview_down_after_delay() -> None:
    w = healthy(autoPromotionEnabled=False, abortScaleDownDelaySeconds=10)
    old = w.status.stable_rs
    w.set_image("app:2")
    w.run()
    new = w.status.current_pod_hash or ""
    w.edit_status(abort=True, abort_message="Rollout aborted by user")
    w.run()
    assert w.status.phase == "Degraded"
    assert w.selector("active") == old and w.selector("preview") == old
    assert w.sizes()[new] == 3
    w.advance(10)
    w.run()
    assert w.sizes()[new] == 0
    assert w.status.phase == "Degraded"


def test_revert_drops_preview_at_once() -> None:
    w = healthy(autoPromotionEnabled=False)
    old = w.status.stable_rs
    w.set_image("app:2")
    w.run()
    new = w.status.current_pod_hash or ""
    w.set_image("app:1")
    w.run()
    assert w.status.phase == "Healthy"
    assert w.sizes() == {old: 3, new: 0}
    assert w.selector("preview") == old


def test_active_service_is_switched_before_the_old_revision_goes() -> None:
    """Issue 11 for blue-green: with scaleDownDelaySeconds 0 (and with the default) the old
    active revision is scaled to 0 only on a pass that sees the active Service on the new
    one; a switch whose Service write was lost (a 409) keeps the old pods."""
    for delay in (0, 30):
        w = healthy(scaleDownDelaySeconds=delay)
        old = w.status.stable_rs
        w.set_image("app:2")
        seen = []
        for _ in range(30):
            before = w.selector("active")
            result = w.plan()
            if any(isinstance(a, PinService) and a.service == "active" for a in result.actions) \
                    and not seen:
                # The first switch's Service write is lost: nothing after it is applied.
                seen.append("lost")
                w.history.append(result)
                continue
            w.apply(result)
            w.history.append(result)
            w.settle()
            for action in result.actions:
                if isinstance(action, ScaleReplicaSet) and action.replicas == 0:
                    assert action.name == w.replica_sets[old or ""].name
                    assert before == w.status.stable_rs != old
                    seen.append("scaled")
            w.advance(delay)
        assert seen == ["lost", "scaled"], delay
        assert w.selector("active") == w.status.stable_rs and w.sizes()[old or ""] == 0


def test_a_switch_whose_status_write_was_lost_does_not_send_active_back() -> None:
    """The switch pass re-points the active Service and its status write fails: the next
    pass, planned from the status before, must not point active back at the old revision
    (traffic would flap back; a campaign saw the canary's equivalent send the stable Service
    to a revision with no pod left, issue 11). It switches again and records it."""
    w = healthy(autoPromotionEnabled=True)
    old = w.status.stable_rs
    w.set_image("app:2")
    result = w.plan_until_pinned("active")
    new = w.status.current_pod_hash
    w.apply(replace(result, status=w.status))  # the status write is lost
    w.settle()
    assert w.selector("active") == new
    result = w.step()
    assert not any(isinstance(a, PinService) and a.service == "active" and a.pod_hash == old
                   for a in result.actions)
    assert w.selector("active") == new and w.status.stable_rs == new
