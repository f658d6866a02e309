"""observe_rollout keeps one tuple per Rollout, made into series when scraped (telemetry.py):
what the series show follows every change, a field going away included, and goes with the
Rollout."""

from __future__ import annotations

from typing import Any

from rollouts.telemetry import Telemetry
from tests.unit.test_telemetry import _rollout, _samples

KEY = frozenset({("namespace", "shop"), ("name", "web")})


def rollout_series(t: Telemetry) -> dict[Any, float]:
    return {k: v for k, v in _samples(t).items() if k[0].startswith("rollouts_rollout_")}


def test_the_series_follow_every_change_and_go_with_the_rollout() -> None:
    t = Telemetry(process_metrics=False)
    for body, kind in [
        (_rollout("Progressing", step=0, desired=50, weight=0), "ADDED"),
        (_rollout("Progressing", step=0, desired=50, weight=0), "MODIFIED"),
        (_rollout("Paused", step=1, desired=50, weight=50), "MODIFIED"),
        (_rollout("Paused", step=1), "MODIFIED"),  # the weights left the status
        (_rollout("Healthy", step=None), "MODIFIED"),
    ]:
        t.observe_rollout(body, kind)
        status = body["status"]
        canary = status.get("canary") or {}
        expected = {("rollouts_rollout_info", KEY | {("phase", status["phase"]),
                                                     ("strategy", "canary")}): 1.0}
        for name, value in (("current_step_index", status.get("currentStepIndex")),
                            ("canary_desired_weight", canary.get("desiredWeight")),
                            ("canary_weight", ((canary.get("weights") or {}).get("canary")
                                               or {}).get("weight"))):
            if value is not None:
                expected[(f"rollouts_rollout_{name}", KEY)] = float(value)
        assert rollout_series(t) == expected
    t.observe_rollout(_rollout("Healthy", step=4, desired=100, weight=100), "MODIFIED")
    t.observe_rollout(_rollout("Healthy"), "DELETED")
    assert rollout_series(t) == {}
    t.observe_rollout(_rollout("Healthy", step=4), "ADDED")  # created again: all anew
    assert rollout_series(t)[("rollouts_rollout_current_step_index", KEY)] == 4
