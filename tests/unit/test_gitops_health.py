"""The Argo CD health script in examples/ maps every phase the controller writes."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

lupa = pytest.importorskip("lupa")

SCRIPT = (pathlib.Path(__file__).resolve().parents[2] / "examples" / "argocd-health.lua")


def health(obj: dict[str, Any]) -> tuple[str, str]:
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True)

    def table(value: Any) -> Any:
        if isinstance(value, dict):
            return runtime.table_from({k: table(v) for k, v in value.items()})
        return value

    runtime.globals().obj = table(obj)
    result = runtime.execute(SCRIPT.read_text())
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
