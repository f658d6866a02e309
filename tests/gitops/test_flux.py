"""Flux's health check on a Rollout (examples/gitops/flux/) against recorded Rollouts.

kustomize-controller judges custom resources with kstatus. Its generic rules for a resource
with status conditions, restated here: a status whose observedGeneration lags the
generation is InProgress; condition Stalled=True is Failed; Reconciling=True is InProgress;
Ready=False is InProgress; otherwise Current. A health check passes on Current, fails on
Failed, and waits (until the Kustomization's timeout) on InProgress.
"""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
import yaml

from tests.gitops.lua import recorded

FLUX = pathlib.Path(__file__).resolve().parents[2] / "examples" / "gitops" / "flux"


def kstatus(obj: dict[str, Any]) -> str:
    status = obj.get("status") or {}
    observed = status.get("observedGeneration")
    if observed is not None and observed != obj["metadata"].get("generation"):
        return "InProgress"
    conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
    if conditions.get("Stalled") == "True":
        return "Failed"
    if conditions.get("Reconciling") == "True" or conditions.get("Ready") == "False":
        return "InProgress"
    return "Current"


@pytest.mark.parametrize(("name", "expected"), [
    ("canary-healthy", "Current"), ("canary-paused-at-step", "InProgress"),
    ("canary-paused-by-user", "InProgress"), ("canary-paused-at-last-pause", "InProgress"),
    ("canary-aborted", "Failed"), ("bluegreen-healthy", "Current"),
    ("bluegreen-paused", "InProgress"), ("bluegreen-promoted", "Current")])
def test_recorded_rollouts(name: str, expected: str) -> None:
    obj = recorded(name)
    assert kstatus(obj) == expected
    # kubectl wait --for=condition=Ready agrees with Flux on finished releases.
    ready = {c["type"]: c["status"] for c in obj["status"]["conditions"]}["Ready"]
    assert (ready == "True") == (expected == "Current")
    obj["metadata"]["generation"] += 1  # a new commit the controller has not seen yet
    assert kstatus(obj) == "InProgress"


def test_the_kustomization_checks_the_rollout() -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all((FLUX / "kustomization.yaml").read_text())}
    kustomization, source = docs["Kustomization"], docs["GitRepository"]
    assert kustomization["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
    assert {"apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout", "name": "web",
            "namespace": "web"} in kustomization["spec"]["healthChecks"]
    assert kustomization["spec"]["timeout"]
    assert kustomization["spec"]["sourceRef"] == {"kind": "GitRepository",
                                                  "name": source["metadata"]["name"]}
