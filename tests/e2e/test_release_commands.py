"""`rollouts set image` and `rollouts undo` drive a real controller through the strategy."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import CountingSandbox
from tests.e2e.dsl import (
    Action,
    Scenario,
    canary,
    healthy,
    pause,
    paused,
    promote,
    rollout,
    scenario,
    set_weight,
    sizes,
    stable_is,
    weights,
)

pytestmark = pytest.mark.e2e


def set_image(image: str) -> Action:
    def act(s: Scenario) -> None:
        result = s.cli("set", "image", s.name, f"{s.name}={image}")
        assert "commit the change to Git" in " ".join(result.output.split())

    return act


def undo(*args: str) -> Action:
    return lambda s: s.cli("undo", s.name, *args)


def test_set_image_then_undo(cluster: CountingSandbox) -> None:
    s = scenario(cluster).given(rollout("web", canary(set_weight(50), pause()), replicas=2))
    s.remember("v1", "stable")
    s.when(set_image("web:2")).then(paused(at_step=1), weights(canary=50),
                                    sizes(canary=1, stable=1))
    s.remember("v2", "canary")
    s.when(promote()).then(healthy(), stable_is("v2"))
    # Back to revision 1's template: a new rollout of it, through the steps.
    s.when(undo()).then(paused(at_step=1), sizes(v1=1, stable=1))
    assert cluster.rollout("web")["spec"]["template"]["spec"]["containers"][0][
        "image"] == "web:1"
    # Undo once more: revision 2 is the stable one, so the Rollout returns to it at once.
    s.when(undo("--to-revision", "2")).then(healthy(), stable_is("v2"), sizes(v2=2))
