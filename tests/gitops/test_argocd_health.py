"""The Argo CD health script (examples/gitops/argocd/health.lua) maps every phase the
controller writes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.gitops.argocd_cm import script
from tests.gitops.lua import recorded, run


def health(obj: dict[str, Any]) -> tuple[str, str]:
    result = run(script("health.lua"), obj)
    return str(result["status"]), str(result["message"])


def rollout(phase: str | None, generation: int = 2, observed: int = 2) -> dict[str, Any]:
    status: dict[str, Any] = {"observedGeneration": observed, "message": f"it is {phase}"}
    if phase is not None:
        status["phase"] = phase
    return {"metadata": {"generation": generation}, "status": status}


@pytest.mark.parametrize(
    ("phase", "expected"),
    [("Healthy", "Healthy"), ("Paused", "Suspended"), ("Degraded", "Degraded"),
     ("Progressing", "Progressing"), (None, "Progressing")],
)
def test_phases(phase: str | None, expected: str) -> None:
    status, message = health(rollout(phase))
    assert status == expected
    assert message == f"it is {phase}"


def test_stale_generation_is_progressing_even_if_healthy() -> None:
    status, message = health(rollout("Healthy", generation=3, observed=2))
    assert status == "Progressing"
    assert "observe" in message


def test_no_status_yet() -> None:
    status, _ = health({"metadata": {"generation": 1}})
    assert status == "Progressing"


@pytest.mark.parametrize(("name", "expected"), [
    ("canary-healthy", "Healthy"), ("canary-paused-at-step", "Suspended"),
    ("canary-paused-by-user", "Suspended"), ("canary-paused-at-last-pause", "Suspended"),
    ("canary-aborted", "Degraded"), ("bluegreen-healthy", "Healthy"),
    ("bluegreen-paused", "Suspended"), ("bluegreen-promoted", "Healthy")])
def test_recorded_rollouts(name: str, expected: str) -> None:
    obj = recorded(name)
    status, message = health(obj)
    assert status == expected
    assert message == obj["status"]["message"]
    # A spec change the controller has not seen yet is Progressing, whatever the phase.
    obj["metadata"]["generation"] += 1
    assert health(obj)[0] == "Progressing"
