"""Noticing a Service selector taken away again and again (rollouts.planner.selector_contest):
tables over the pure decision, then the whole planner in the in-memory world."""

from __future__ import annotations

import datetime as dt

import pytest

from rollouts.models.rollout import POD_TEMPLATE_HASH_LABEL as HASH
from rollouts.models.rollout import Condition, RolloutStatus, SelectorRepair
from rollouts.planner import selector_contest
from rollouts.planner.selector_contest import CONDITION, THRESHOLD, assess, repairs_of
from rollouts.planner.types import Observed, PinService, ServiceView
from tests.unit.world import T0, World, canary_spec

FLUX = "kustomize-controller"


def taken(name: str = "web", rv: str = "41", manager: str = FLUX) -> ServiceView:
    """A Service whose selector a GitOps tool applied whole: the hash key is gone."""
    return ServiceView(name, {"app": "web"}, rv, selector_manager=manager)


def repair(minutes_ago: float, rv: str = "1", service: str = "web",
           manager: str = FLUX) -> SelectorRepair:
    return SelectorRepair(service=service, manager=manager, resource_version=rv,
                          time=T0 - dt.timedelta(minutes=minutes_ago))


STABLE = RolloutStatus(stable_rs="aaa")
PIN = PinService("web", "aaa", "41", {"app": "web", HASH: "aaa"})


@pytest.mark.parametrize(("status", "view", "recorded"), [
    # The first pin of a fresh Service (no stable revision yet) is no repair.
    (RolloutStatus(), taken(), 0),
    # A stable Rollout finding the hash key gone: a repair, naming who took it.
    (STABLE, taken(), 1),
    # A Service that still has a hash key (a routine switch between revisions): no repair.
    (STABLE, ServiceView("web", {"app": "web", HASH: "old"}, "41"), 0),
    # The same observation planned twice counts once (invariant 6).
    (STABLE.model_copy(update={"selector_repairs": [repair(0.5, rv="41")]}), taken(), 1),
    # Repairs older than the window are forgotten.
    (STABLE.model_copy(update={"selector_repairs": [repair(6, rv="7")]}), taken(), 1),
], ids=["first-pin", "repair", "routine-switch", "same-observation", "window"])
def test_what_counts_as_a_repair(status: RolloutStatus, view: ServiceView,
                                 recorded: int) -> None:
    observed = Observed(services={"web": view})
    found = repairs_of(status, [PIN], observed, T0)
    assert len(found) == recorded
    if recorded and view.selector_manager:
        assert found[0].manager == FLUX


def test_below_the_threshold_nothing_is_said() -> None:
    status = STABLE.model_copy(update={"selector_repairs": [
        repair(1, rv=str(n)) for n in range(THRESHOLD - 2)]})
    contest = assess(status, [PIN], Observed(services={"web": taken()}), T0)
    assert contest.repairs is not None and len(contest.repairs) == THRESHOLD - 1
    assert contest.conditions == () and contest.events == ()


def test_the_threshold_raises_the_condition_and_one_event_naming_manager_and_fix() -> None:
    status = STABLE.model_copy(update={"selector_repairs": [
        repair(1, rv=str(n)) for n in range(THRESHOLD - 1)]})
    contest = assess(status, [PIN], Observed(services={"web": taken()}), T0)
    (condition,) = contest.conditions
    assert (condition.type, condition.status, condition.reason) == (
        CONDITION, "True", "SelectorTakenRepeatedly")
    assert condition.last_transition_time == T0
    (event,) = contest.events
    assert (event.type, event.reason) == ("Warning", CONDITION)
    for text in (f'"{FLUX}"', "Service web", f"{THRESHOLD} times", "without spec.selector",
                 "docs/gitops.md"):
        assert text in event.message
    assert event.message == condition.message

    # Still contested a minute later: the condition stays (its transition time too), and the
    # Event is not posted again.
    later = status.model_copy(update={"selector_repairs": contest.repairs,
                                      "conditions": [condition]})
    again = assess(later, [PinService("web", "aaa", "42")],
                   Observed(services={"web": taken(rv="42")}), T0 + dt.timedelta(minutes=1))
    assert again.conditions[0].status == "True"
    assert again.conditions[0].last_transition_time == T0
    assert again.events == ()


def test_a_quiet_window_settles_the_condition() -> None:
    contested = Condition(type=CONDITION, status="True", reason="SelectorTakenRepeatedly",
                          message="...", last_transition_time=T0)
    status = STABLE.model_copy(update={
        "selector_repairs": [repair(n, rv=str(n)) for n in range(THRESHOLD)],
        "conditions": [contested]})
    later = T0 + selector_contest.WINDOW + dt.timedelta(minutes=THRESHOLD)
    contest = assess(status, [], Observed(), later)
    assert contest.repairs is None
    (condition,) = contest.conditions
    assert (condition.status, condition.reason) == ("False", "SelectorKept")
    assert contest.events == ()


def test_the_planner_repairs_every_time_and_reports_the_contest() -> None:
    """A GitOps tool applies the stable Service with a selector every minute: the planner
    pins it again each time (the whole selector, the Rollout's labels and the hash) and,
    at the third time within five minutes, says who does it."""
    world = World(canary_spec([{"setWeight": 50}], canaryService="canary",
                              stableService="stable"))
    world.run()
    stable = world.status.stable_rs
    assert stable and world.selector("stable") == stable
    reasons: list[str] = []
    for n in range(THRESHOLD):
        world.advance(60)
        world.services["stable"] = ServiceView("stable", {"app": "demo"}, f"{100 + n}",
                                               selector_manager=FLUX)
        result = world.step()
        (pin,) = [a for a in result.actions if isinstance(a, PinService)]
        assert pin.selector == {"app": "demo", HASH: stable}
        assert world.selector("stable") == stable
        reasons += [e.reason for e in result.events]
    assert reasons.count(CONDITION) == 1
    condition = world.status.condition(CONDITION)
    assert condition is not None and condition.status == "True"
    assert f'"{FLUX}"' in condition.message
    # Re-planning the same world counts nothing twice and posts nothing again.
    assert world.plan().status.selector_repairs == world.status.selector_repairs
