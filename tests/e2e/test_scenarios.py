"""End-to-end scenarios: the real kopf controller, API emulator and kubelet simulator.

Each test runs in its own Sandbox (tests/e2e/conftest.py) and reads as given/when/then
(tests/e2e/dsl.py). Operations go through the real `rollouts` CLI.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from typing import Any

import pytest

from rollouts.errors import ConflictError
from rollouts.kube.analysis import Templates
from rollouts.kube.client import KubeClient
from rollouts.kube.execute import execute
from rollouts.kube.observe import observe
from rollouts.models.rollout import ValidRollout, parse_rollout
from rollouts.planner.plan import plan
from tests.e2e.conftest import CountingSandbox
from tests.e2e.dsl import (
    abort,
    aborted,
    blue_green,
    canary,
    condition,
    degraded,
    healthy,
    image,
    kill_controller,
    message_contains,
    pause,
    paused,
    pods_ready,
    promote,
    retry,
    revert,
    rollout,
    rollout_manifest,
    scenario,
    selector,
    set_weight,
    sizes,
    stable_is,
    start_controller,
    weights,
)

pytestmark = pytest.mark.e2e

SCALE_DOWN_DEADLINE = "rollouts.dev/scale-down-deadline"


# --- canary ------------------------------------------------------------------------------------


def test_canary_goes_through_its_steps_to_healthy(cluster: CountingSandbox) -> None:
    s = scenario(cluster).given(rollout(
        "web", canary(set_weight(25), pause(2), set_weight(75))))
    s.remember("v1", "stable")
    with s.recording() as trace:
        s.when(image("web:2")).then(paused(at_step=1), weights(canary=25),
                                    sizes(canary=1, stable=3))
        s.remember("v2", "canary")
        s.then(healthy(), stable_is("v2"), sizes(stable=4, v1=0, others=0),
               selector("web-stable", "v2"), selector("web-canary", "v2"))
    points = trace.points()
    assert ("Paused", 1) in points, points
    # setWeight 75 was a step of its own, not skipped on the way to full size: the canary
    # ran at 3 of 4 pods. (Its "waiting for pods" status is a passing state, not written
    # when the pods come within the hold: rollouts/planner/write_folding.py.)
    v2 = trace.samples[-1].status.get("stableRS")
    assert any(sample.sizes.get(v2, (0, 0))[0] == 3 for sample in trace.samples), points


def test_indefinite_pause_waits_for_promote(cluster: CountingSandbox) -> None:
    s = scenario(cluster).given(rollout(
        "web", canary(set_weight(25), pause(), set_weight(50), pause(2))))
    s.when(image("web:2")).then(paused(at_step=1), weights(canary=25))
    s.holds(paused(at_step=1), sizes(canary=1, stable=3), seconds=1.0)
    s.when(promote()).then(paused(at_step=3), weights(canary=50), sizes(canary=2, stable=2))
    s.then(healthy(), sizes(stable=4, others=0), selector("web-stable", "stable"))


def test_promote_full_skips_every_step(cluster: CountingSandbox) -> None:
    s = scenario(cluster).given(rollout(
        "web", canary(pause(), set_weight(50), pause())))
    s.when(image("web:2")).then(paused(at_step=0), sizes(canary=0, stable=4))
    with s.recording() as trace:
        s.when(promote(full=True)).then(healthy(), sizes(stable=4, others=0),
                                        selector("web-stable", "stable"))
    assert not any(p == "Paused" for p, _ in trace.points()[1:]), trace.points()


def test_abort_sends_everything_to_stable_then_retry_starts_over(
        cluster: CountingSandbox) -> None:
    s = scenario(cluster).given(rollout(
        "web", canary(set_weight(50), pause(), set_weight(75))))
    s.remember("v1", "stable")
    s.when(image("web:2")).then(paused(at_step=1), sizes(canary=2, stable=2))
    s.remember("v2", "canary")
    with s.recording() as trace:
        s.when(abort()).then(
            degraded("aborted"), aborted(), condition("Stalled", "True"),
            sizes(stable=4, canary=0), stable_is("v1"),
            selector("web-stable", "v1"), selector("web-canary", "v1"), weights(canary=0))
    # Invariant 2, stable first: the canary shrank only once the stable had every pod
    # available and the canary Service had been pointed back at it.
    v1, v2 = s.memory["v1"], s.memory["v2"]
    shrunk = [x for x in trace.samples if x.sizes_before.get(v2, (0, 0))[0] < 2]
    assert shrunk, "the canary was never seen scaling down"
    early = [(x.sizes_before, x.selectors) for x in shrunk
             if x.sizes_before.get(v1, (0, 0))[1] < 4 or x.selectors.get("web-canary") != v1]
    assert not early, early
    s.holds(degraded(), sizes(stable=4, canary=0), seconds=0.5)
    s.when(retry()).then(paused(at_step=1), aborted(False), weights(canary=50),
                         sizes(canary=2, stable=2), selector("web-canary", "canary"))


def test_pods_that_turn_unready_lose_their_traffic_share(cluster: CountingSandbox) -> None:
    s = scenario(cluster).given(rollout("web", canary(set_weight(25), pause())))
    s.when(image("web:2")).then(paused(at_step=1), weights(canary=25))
    s.when(pods_ready("canary", False)).then(paused(at_step=1), weights(canary=0),
                                             sizes(canary=(1, 0), stable=3))
    s.when(pods_ready("canary", True)).then(paused(at_step=1), weights(canary=25),
                                            sizes(canary=1, stable=3))


def test_git_revert_returns_to_stable_at_once(cluster: CountingSandbox) -> None:
    s = scenario(cluster).given(rollout(
        "web", canary(set_weight(25), pause(), set_weight(75), pause())))
    s.remember("v1", "stable")
    s.when(image("web:2")).then(paused(at_step=1), sizes(canary=1, stable=3))
    s.remember("v2", "canary")
    with s.recording() as trace:
        s.when(revert()).then(healthy(), stable_is("v1"), sizes(stable=4, v2=0),
                              selector("web-canary", "v1"), selector("web-stable", "v1"))
    after = [x for x in trace.samples if x.status.get("currentPodHash") == s.memory["v1"]]
    assert after, "the revert was never observed"
    assert all(x.status.get("phase") != "Paused" for x in after), trace.points()
    assert all(x.status.get("currentStepIndex") == 4 for x in after), trace.points()


# --- blue-green --------------------------------------------------------------------------------


def test_blue_green_auto_promotion(cluster: CountingSandbox) -> None:
    s = scenario(cluster).given(rollout(
        "shop", blue_green(auto_promotion=True, scale_down_delay=1), replicas=3))
    s.remember("blue", "stable")
    with s.recording() as trace:
        s.when(image("shop:2"))
        s.then(healthy(), selector("shop-active", "stable"), selector("shop-preview", "stable"))
        s.remember("green", "stable")
        s.then(sizes(stable=3, blue=0))
    green, blue = s.memory["green"], s.memory["blue"]
    switched = [x for x in trace.samples if x.selectors.get("shop-active") == green]
    assert switched, "the switch was never observed"
    # Invariant 1: the active Service selects green only once every green pod is available.
    early = [x.sizes.get(green) for x in switched if x.sizes.get(green, (0, 0))[1] < 3]
    assert not early, early
    # The old revision kept its pods past the switch, with a scale-down deadline...
    assert any(x.sizes.get(blue, (0, 0))[0] == 3
               and SCALE_DOWN_DEADLINE in x.annotations.get(blue, {}) for x in switched), \
        [(x.sizes.get(blue), x.annotations.get(blue)) for x in switched[:5]]
    # ...and was never scaled down before the switch.
    before = [x for x in trace.samples if x.selectors.get("shop-active") == blue]
    assert all(x.sizes.get(blue, (0, 0))[0] == 3 for x in before)


def test_blue_green_waits_for_promote(cluster: CountingSandbox) -> None:
    s = scenario(cluster).given(rollout(
        "shop", blue_green(auto_promotion=False, scale_down_delay=1), replicas=3))
    s.remember("blue", "stable")
    s.when(image("shop:2")).then(paused(), sizes(stable=3, canary=3),
                                 selector("shop-active", "blue"),
                                 selector("shop-preview", "canary"))
    s.remember("green", "canary")
    s.holds(paused(), selector("shop-active", "blue"), seconds=1.0)
    s.when(promote()).then(healthy(), stable_is("green"), selector("shop-active", "green"),
                           selector("shop-preview", "green"))
    s.then(sizes(green=3, blue=0))


# --- controller restarts (invariant 4) ---------------------------------------------------------


def test_restart_at_an_indefinite_pause_resumes_at_the_same_step(
        sandbox: CountingSandbox) -> None:
    s = scenario(sandbox).when(start_controller(process=True))
    s.given(rollout("web", canary(set_weight(25), pause(), set_weight(50), pause())))
    s.when(image("web:2")).then(paused(at_step=1), sizes(canary=1, stable=3))
    s.when(kill_controller(), start_controller(process=True))
    # Neither skipped nor restarted from step 0 by the fresh controller.
    s.holds(paused(at_step=1), weights(canary=25), sizes(canary=1, stable=3), seconds=2.0)
    s.when(promote()).then(paused(at_step=3), weights(canary=50), sizes(canary=2, stable=2))


def test_restart_during_a_timed_pause_still_ends_the_pause(sandbox: CountingSandbox) -> None:
    s = scenario(sandbox).when(start_controller(process=True))
    s.given(rollout("web", canary(set_weight(25), pause(3), set_weight(75))))
    s.when(image("web:2")).then(paused(at_step=1))
    s.remember("v2", "canary")
    started = s.world().status["pauseConditions"][0]["startTime"]
    s.when(kill_controller(), start_controller(process=True))
    with s.recording() as trace:
        s.then(healthy(), stable_is("v2"), sizes(stable=4, others=0))
    # The pause was not started over by the new controller.
    starts = {p.get("startTime") for x in trace.samples
              for p in x.status.get("pauseConditions") or []}
    assert starts <= {started}, (started, starts)


# --- conflicts (stale writes) ------------------------------------------------------------------


def test_stale_status_writes_are_replanned(cluster: CountingSandbox) -> None:
    """Metadata-only changes bump resourceVersion under the controller while it works: its
    guarded status writes fail (409 Conflict on the stale resourceVersion) and it observes and
    plans again instead of losing or repeating progress."""
    s = scenario(cluster).given(rollout(
        "web", canary(set_weight(25), pause(1), set_weight(50), pause(1), set_weight(75))))
    stop = threading.Event()
    rng = random.Random(7)

    def hammer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            cluster.emulator.patch_object("rollouts.dev", "v1alpha1", "rollouts", "default",
                                          "web", {"metadata": {"labels": {"noise": str(i)}}})
            stop.wait(rng.uniform(0.005, 0.05))

    generation = s.world().rollout["metadata"]["generation"]
    thread = threading.Thread(target=hammer, daemon=True)
    with s.recording() as trace:
        thread.start()
        try:
            s.when(image("web:2")).then(healthy(), sizes(stable=4, others=0))
        finally:
            stop.set()
            thread.join(timeout=5)
    assert s.world().rollout["metadata"]["generation"] == generation + 1
    conflicts = cluster.failed_writes("/rollouts/web/status", codes=(409,))
    assert conflicts >= 1, cluster.responses
    assert cluster.failed_writes("/rollouts/web/status", codes=(422,)) == 0, cluster.responses
    # Progress only moved forward: no step repeated or skipped back.
    steps = [x.status.get("currentStepIndex") for x in trace.samples
             if x.status.get("currentPodHash") != x.status.get("stableRS")]
    assert steps == sorted(steps), trace.points()


async def test_a_stale_plan_writes_no_status_and_a_fresh_one_does(
        sandbox: CountingSandbox) -> None:
    """One layer down, without a controller: execute() of a plan made from a Rollout that has
    changed since raises ConflictError and leaves its status alone; observing and planning
    again succeeds."""
    manifest, services = rollout_manifest("web", canary(set_weight(50)), replicas=2)
    sandbox.apply([*services, manifest])

    def look() -> tuple[ValidRollout, Any]:
        rollout = parse_rollout(sandbox.rollout("web"))
        assert isinstance(rollout, ValidRollout)
        sets = sandbox.emulator.list_objects("apps", "v1", "replicasets", "default")
        svcs = {n: sandbox.emulator.get_object("", "v1", "services", "default", n)
                for n in ("web-stable", "web-canary")}
        return rollout, observe(rollout, replica_sets=sets, services=svcs, analysis_runs=(),
                                templates=Templates())

    now = dt.datetime.now(dt.UTC)
    stale, observed = look()
    stale_plan = plan(stale, observed, now)
    sandbox.emulator.patch_object("rollouts.dev", "v1alpha1", "rollouts", "default", "web",
                                  {"metadata": {"labels": {"touched": "yes"}}})
    async with KubeClient.load(str(sandbox.kubeconfig)) as client:
        with pytest.raises(ConflictError):
            await execute(client, stale.metadata, stale.status.to_wire(), stale_plan, now)
        assert not sandbox.status("web"), "a stale plan wrote the status"
        fresh, observed = look()
        assert await execute(client, fresh.metadata, fresh.status.to_wire(),
                             plan(fresh, observed, now), now)
    status = sandbox.status("web")
    # Healthy too when the kubelet made the pods ready before the second look (under load).
    assert status["currentPodHash"] and status["phase"] in ("Progressing", "Healthy"), status
    assert len(sandbox.replica_sets("web")) == 1  # the create was idempotent


# --- bad specs and deadlines -------------------------------------------------------------------


def test_invalid_spec_is_reported_while_others_progress(cluster: CountingSandbox) -> None:
    s = scenario(cluster).given(
        rollout("broken", canary(set_weight(150), services=False), wait=False),
        rollout("web", canary(set_weight(50), pause(1))),
    )
    s.of("broken").then(degraded("spec.strategy.canary.steps[0].setWeight"),
                        condition("InvalidSpec", "True",
                                  message="spec.strategy.canary.steps[0].setWeight"))
    s.when(image("web:2")).then(paused(at_step=1), weights(canary=50))
    s.then(healthy(), sizes(stable=4, others=0))
    s.of("broken").then(degraded("setWeight"), sizes(stable=0, others=0))


def test_progress_deadline_exceeded(cluster: CountingSandbox) -> None:
    s = scenario(cluster).given(rollout(
        "web", canary(set_weight(50), pause()), progressDeadlineSeconds=3))
    s.remember("v1", "stable")
    # (The "waiting for pods" status may be held up to 3 s, as long as the deadline: the
    # Rollout may go from Healthy to Degraded without Progressing written in between.)
    s.when(image("web:crashloop")).then(sizes(canary=(2, 0)))
    s.then(degraded("ProgressDeadlineExceeded"),
           condition("Progressing", "False", reason="ProgressDeadlineExceeded"),
           condition("Stalled", "True"), aborted(False), stable_is("v1"))


def test_progress_deadline_abort_returns_to_stable(cluster: CountingSandbox) -> None:
    s = scenario(cluster).given(rollout(
        "web", canary(set_weight(50), pause()), progressDeadlineSeconds=3,
        progressDeadlineAbort=True))
    s.remember("v1", "stable")
    s.when(image("web:crashloop")).then(sizes(canary=(2, 0)))  # (see the test above)
    s.then(degraded(), aborted(), message_contains("ProgressDeadlineExceeded"),
           stable_is("v1"), sizes(stable=4, canary=0),
           selector("web-stable", "v1"), selector("web-canary", "v1"))
