"""Invariants 1, 2, 4 and 6 of DESIGN.md as properties over random histories.

Each example builds a random Rollout (steps, sizes, surge), then runs a random sequence of
reconcile passes interleaved with pods becoming (un)available, the clock moving, operator
actions (promote, abort, retry, pause), new images, reverts and controller crashes that lose
a status write or part of the actions. After every pass the invariants are checked.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollouts.models.rollout import PauseCondition, parse_spec
from rollouts.planner.manifests import pod_template_hash
from rollouts.planner.traffic import replica_targets, traffic_share
from rollouts.planner.types import PinService, Plan, ScaleReplicaSet
from tests.unit.world import World, blue_green_spec, canary_spec

step_strategy = st.one_of(
    st.builds(lambda w: {"setWeight": w}, st.integers(0, 100)),
    st.builds(lambda d: {"pause": {"duration": d}}, st.integers(0, 30)),
    st.just({"pause": {}}),
    st.just({"analysis": {"templates": [{"templateName": "t"}]}}),
)

canary_specs = st.builds(
    lambda steps, replicas, surge, unavailable: canary_spec(
        steps, replicas=replicas, maxSurge=surge, maxUnavailable=unavailable,
        canaryService="canary", stableService="stable"),
    st.lists(step_strategy, max_size=6),
    st.integers(1, 6),
    st.sampled_from([0, 1, 2, "25%", "50%"]),
    st.sampled_from([0, 1, "25%", "50%"]),
).filter(lambda s: not (s["strategy"]["canary"]["maxSurge"] in (0, "0%")
                        and s["strategy"]["canary"]["maxUnavailable"] in (0, "0%")))

blue_green_specs = st.builds(
    lambda replicas, auto, seconds, preview: blue_green_spec(
        replicas=replicas, autoPromotionEnabled=auto,
        **({"autoPromotionSeconds": seconds} if seconds else {}),
        **({"previewReplicaCount": preview} if preview else {})),
    st.integers(1, 5), st.booleans(), st.sampled_from([None, 5, 20]),
    st.sampled_from([None, 1, 2]),
)

moves = st.sampled_from([
    "pass", "pass", "pass", "pass", "pods", "pods", "pods_partial", "clock", "promote",
    "promote_full", "abort", "retry", "pause", "resume", "image", "revert", "crash",
    "run_ok", "run_ok", "run_failed", "run_inconclusive",
])


class Checker:
    """Runs one random history and checks the invariants after each pass."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.world = World(spec, auto_ready=False)
        self.replicas = spec["replicas"]
        self.blue_green = "blueGreen" in spec["strategy"]
        self.images = ["app:1"]
        self.aborted_by_user = False

    # --- moves ----------------------------------------------------------------------------
    def do(self, move: str, data: st.DataObject) -> None:
        w = self.world
        if w.move(move, data, clock=[1, 5, 10, 30, 700]):
            return
        if move == "promote":
            self.promote()
        elif move == "promote_full":
            w.edit_status(promote_full=True)
        elif move == "abort":
            desired = pod_template_hash(w.spec["template"])
            if w.status.stable_rs and w.status.stable_rs != desired == w.status.current_pod_hash:
                w.edit_status(abort=True, abort_message="aborted by test")
                self.aborted_by_user = True
        elif move == "retry":
            if w.status.abort:
                w.edit_status(abort=None, abort_message=None, current_step_index=0,
                              pause_conditions=None)
                self.aborted_by_user = False
        elif move == "pause":
            w.edit_status(pause_conditions=[
                *(w.status.pause_conditions or []),
                PauseCondition(reason="PausedByUser", start_time="2026-01-01T00:00:00Z")])
        elif move == "resume":
            w.edit_status(pause_conditions=[
                p for p in w.status.pause_conditions or [] if p.reason != "PausedByUser"] or None)
        elif move == "image":
            self.images.append(f"app:{len(self.images) + 1}")
            w.set_image(self.images[-1])
            self.aborted_by_user = False
        elif move == "revert" and len(self.images) > 1:
            self.images.append(self.images[-2])
            w.set_image(self.images[-1])
            self.aborted_by_user = False
        elif move == "crash":
            self.crash(data)
        elif move.startswith("run_"):
            phase = {"run_ok": "Successful", "run_failed": "Failed",
                     "run_inconclusive": "Inconclusive"}[move]
            w.finish_runs(phase, message="verdict from test")
        else:
            self.reconcile()

    def promote(self) -> None:
        w = self.world
        steps = w.spec["strategy"].get("canary", {}).get("steps") or []
        index = w.status.current_step_index or 0
        if self.blue_green:
            w.edit_status(pause_conditions=None)
        elif index < len(steps):
            w.edit_status(current_step_index=index + 1, pause_conditions=None)

    def crash(self, data: st.DataObject) -> None:
        """A pass whose process dies: some actions applied, the status write lost."""
        w = self.world
        result = w.plan()
        keep = data.draw(st.integers(0, len(result.actions)))
        status = w.status
        w.apply(Plan(actions=result.actions[:keep], status=status))

    # --- a pass and its checks ------------------------------------------------------------
    def reconcile(self) -> None:
        w = self.world
        before = copy.deepcopy(w)
        result = w.plan()
        assert result == w.plan(), "planning is deterministic"
        self.check_weights_gate(before, result)
        self.check_active_switch(before, result)
        self.check_stable_switch(before, result)
        self.check_abort_order(before, result)
        self.check_repoint_first(before, result)
        w.apply(result)
        w.history.append(result)
        self.check_no_lost_abort()
        self.check_idempotent()

    def check_weights_gate(self, before: World, result: Plan) -> None:
        """Invariant 1 (canary): a step index moves past setWeight w only when the canary
        already had the available pods w needs; the reported weight is the pod share."""
        if self.blue_green or result.status.phase == "Degraded":
            return
        old, new = before.status, result.status
        desired = new.current_pod_hash
        if desired == new.stable_rs and old.stable_rs == new.stable_rs:
            return
        if old.current_pod_hash != desired or old.abort or new.abort:
            return
        steps = before.spec["strategy"]["canary"]["steps"]
        canary = before.rs(desired)
        start = old.current_step_index or 0
        end = new.current_step_index or 0
        # promote --full skips the remaining steps on purpose; the completion gate below
        # still holds for it.
        skipped = range(0) if old.promote_full else range(start, min(end, len(steps)))
        for i in skipped:
            weight = steps[i].get("setWeight")
            if weight is not None:
                need = replica_targets(self.replicas, weight)[0]
                assert canary is not None and canary.available >= need, (i, weight)
        if new.stable_rs == desired and old.stable_rs != desired:
            assert canary is not None and canary.available >= self.replicas
        if new.canary and new.canary.weights and new.stable_rs != desired:
            stable = before.rs(new.stable_rs)
            assert new.canary.weights.canary.weight == traffic_share(canary, stable)

    def check_active_switch(self, before: World, result: Plan) -> None:
        """Invariant 1 (blue-green): active moves only to a fully available revision."""
        if not self.blue_green:
            return
        for action in result.actions:
            if isinstance(action, PinService) and action.service == "active":
                rs = before.rs(action.pod_hash)
                assert rs is not None
                assert rs.available >= self.replicas and rs.spec_replicas == self.replicas

    def check_stable_switch(self, before: World, result: Plan) -> None:
        """Invariant 1 (canary): the stable Service moves from one revision to another only
        when the new one has every replica available (or more available pods than the one
        it leaves, which then has not all of them). A pass planned from a status whose
        write was lost (the promotion's) must not send it back to a revision whose pods
        were retired meanwhile (found by the API-fault campaign, issue 11)."""
        if self.blue_green:
            return
        selected = before.selector("stable")
        for action in result.actions:
            if (isinstance(action, PinService) and action.service == "stable"
                    and selected is not None and action.pod_hash != selected):
                rs, left = before.rs(action.pod_hash), before.rs(selected)
                assert rs is not None and (rs.available >= self.replicas or rs.available > (
                    left.available if left else 0)), (
                    f"stable Service {selected} -> {action.pod_hash} with "
                    f"{rs.available if rs else 0}/{self.replicas} available")

    def check_repoint_first(self, before: World, result: Plan) -> None:
        """Re-point first, then scale down: no ReplicaSet is scaled to 0 while the stable
        (or active) Service is seen selecting it (issue 11: on a canary's promotion the
        stable Service is re-pointed first, the old stable's last pod goes a pass later)."""
        service = "active" if self.blue_green else "stable"
        selected = before.selector(service)
        for action in result.actions:
            if isinstance(action, ScaleReplicaSet) and action.replicas == 0:
                target = next(r for r in before.replica_sets.values() if r.name == action.name)
                assert target.pod_hash != selected, f"{service} still selects {action.name}"

    def check_abort_order(self, before: World, result: Plan) -> None:
        """Invariant 2: while aborted, nothing but the stable shrinks before the stable is
        fully available, and after the pass every managed Service selects the stable."""
        status = result.status
        if not status.abort or not status.stable_rs:
            return
        stable = before.rs(status.stable_rs)
        stable_full = stable is not None and stable.available >= self.replicas
        for action in result.actions:
            if isinstance(action, ScaleReplicaSet):
                target = next(r for r in before.replica_sets.values() if r.name == action.name)
                if target.pod_hash != status.stable_rs and action.replicas < target.spec_replicas:
                    expired = target.scale_down_at is not None and \
                        before.now >= target.scale_down_at
                    assert stable_full or expired, "canary scaled down before stable was ready"
        after = copy.deepcopy(before)
        after.apply(result)
        services = ("active", "preview") if self.blue_green else ("canary", "stable")
        for name in services:
            assert after.selector(name) in (status.stable_rs, None)

    def check_no_lost_abort(self) -> None:
        """Invariant 4: an abort survives any crash until retry or a new revision."""
        if self.aborted_by_user:
            assert self.world.status.abort

    def check_idempotent(self) -> None:
        """Invariant 6: with nothing changing, planning converges and then writes nothing."""
        probe = copy.deepcopy(self.world)
        for _ in range(4):
            result = probe.plan()
            if not result.actions and result.status == probe.status:
                return
            probe.apply(result)
        result = probe.plan()
        assert not result.actions and result.status == probe.status, "no fixed point"


def run_history(spec: dict[str, Any], data: st.DataObject) -> Checker:
    parse_spec(spec)
    checker = Checker(spec)
    checker.reconcile()
    checker.world.settle()
    checker.reconcile()
    for move in data.draw(st.lists(moves, min_size=5, max_size=40)):
        checker.do(move, data)
    # Finally let everything settle: the Rollout must come to rest.
    for _ in range(25):
        checker.world.finish_runs("Successful")
        checker.do("pods", data)
        checker.do("promote", data)
        checker.do("pass", data)
        checker.world.advance(31)
    return checker


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=canary_specs, data=st.data())
def test_canary_invariants(spec: dict[str, Any], data: st.DataObject) -> None:
    checker = run_history(spec, data)
    status = checker.world.status
    assert status.phase in ("Healthy", "Degraded", "Paused")
    if status.phase == "Healthy":
        assert status.stable_rs == status.current_pod_hash


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=blue_green_specs, data=st.data())
def test_blue_green_invariants(spec: dict[str, Any], data: st.DataObject) -> None:
    checker = run_history(spec, data)
    status = checker.world.status
    assert status.phase in ("Healthy", "Degraded", "Paused")


@settings(max_examples=100, deadline=None)
@given(spec=canary_specs, kill_at=st.integers(0, 30), data=st.data())
def test_restart_resumes_at_same_step(spec: dict[str, Any], kill_at: int,
                                      data: st.DataObject) -> None:
    """Invariant 4: a fresh controller reading only status continues where the last one
    stopped: it never skips an indefinite pause and never re-runs a finished promotion."""
    world = World(spec)
    world.run()
    world.set_image("app:2")
    indices: list[int] = []
    for n in range(40):
        if n == kill_at:
            result = world.plan()
            world.apply(replace(result, status=world.status))  # status write lost
            continue
        world.step()
        indices.append(world.status.current_step_index or 0)
        world.finish_runs("Successful")
        world.advance(30)
    steps = spec["strategy"]["canary"]["steps"]
    first_indefinite = next((i for i, s in enumerate(steps)
                             if "pause" in s and "duration" not in s["pause"]), None)
    assert indices == sorted(indices), "step index never goes back"
    if first_indefinite is not None:
        assert max(indices) == first_indefinite
        assert world.status.phase == "Paused"
    else:
        assert world.status.phase == "Healthy"
