"""The step as people read it (status.step, the STEP column, Events): 1-based, and where an
abort found the Rollout."""

from __future__ import annotations

from rollouts.models.rollout import parse_rollout
from rollouts.planner import operations
from tests.unit.world import World, canary_spec

STEPS = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]


def released() -> World:
    w = World(canary_spec(STEPS, canaryService="canary", stableService="stable"))
    w.run()
    w.set_image("app:2")
    w.run()
    return w


def test_the_step_is_one_based_with_the_total() -> None:
    w = released()
    assert w.status.current_step_index == 1
    assert w.status.step == "2/4"


def test_a_first_revision_shows_every_step_done() -> None:
    w = World(canary_spec(STEPS, canaryService="canary", stableService="stable"))
    w.run()
    assert w.status.step == "4/4"


def test_step_events_use_the_same_numbers() -> None:
    w = released()
    messages = [e.message for plan in w.history for e in plan.events
                if e.reason == "RolloutStepChanged"]
    assert "Step 1/4 -> 2/4" in messages
    assert not any("index" in m for m in messages)


def test_an_abort_keeps_where_it_stopped() -> None:
    w = released()
    changes = operations.abort(parse_rollout(w.rollout()), w.now)
    w.status = changes.applied_to(w.status)
    w.run()
    assert w.status.current_step_index == 0  # as in Argo Rollouts
    assert w.status.step == "aborted at 2/4"
    assert w.status.phase == "Degraded"


def test_a_promotion_to_healthy_is_one_event() -> None:
    w = released()
    w.status = operations.promote(parse_rollout(w.rollout()), full=True).applied_to(w.status)
    w.run()
    reasons = [e.reason for plan in w.history[-6:] for e in plan.events]
    assert reasons.count("RolloutPromoted") == 1
    assert "RolloutHealthy" not in reasons
    assert w.status.phase == "Healthy"
