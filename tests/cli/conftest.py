"""A sandbox API server with the CRDs installed, one fresh namespace per test.

No controller runs: Rollouts are given hand-written status, and the tests read what the CLI
prints and what it wrote.
"""

from __future__ import annotations

import itertools
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from typer.testing import CliRunner

from rollouts.cli.main import app
from rollouts.sandbox.apiserver import ApiEmulator
from rollouts.sandbox.emulator_thread import EmulatorThread

ROOT = pathlib.Path(__file__).resolve().parents[2]
GROUP, VERSION = "rollouts.dev", "v1alpha1"
_counter = itertools.count()

TEMPLATE = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {"containers": [{"name": "web", "image": "example/web:2"}]},
}
CANARY_SPEC: dict[str, Any] = {
    "replicas": 4,
    "selector": {"matchLabels": {"app": "web"}},
    "template": TEMPLATE,
    "strategy": {"canary": {"steps": [
        {"setWeight": 25}, {"pause": {"duration": "60s"}}, {"setWeight": 50}, {"pause": {}},
    ]}},
}
BLUE_GREEN_SPEC: dict[str, Any] = {
    "replicas": 2,
    "selector": {"matchLabels": {"app": "web"}},
    "template": TEMPLATE,
    "strategy": {"blueGreen": {"activeService": "web", "previewService": "web-preview",
                               "autoPromotionEnabled": False}},
}
# A canary half-way: step 2 (a 60s pause) of 4, 25% weight.
CANARY_PAUSED: dict[str, Any] = {
    "phase": "Paused",
    "message": "Step 2/4: paused for 60s more",
    "observedGeneration": 1,
    "currentPodHash": "new",
    "stableRS": "old",
    "currentStepIndex": 1,
    "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2024-01-01T00:00:00Z"}],
    "canary": {"weights": {"canary": {"podTemplateHash": "new", "weight": 25},
                           "stable": {"podTemplateHash": "old", "weight": 75},
                           "verified": True}, "desiredWeight": 25},
}
HEALTHY: dict[str, Any] = {
    "phase": "Healthy",
    "message": "Revision old is stable with 4 pods available",
    "observedGeneration": 1,
    "currentPodHash": "old",
    "stableRS": "old",
    "currentStepIndex": 4,
}


@dataclass
class Sandbox:
    emulator: ApiEmulator
    namespace: str
    kubeconfig: pathlib.Path
    runner: CliRunner

    def invoke(self, *args: str, **kwargs: Any) -> Any:
        return self.runner.invoke(app, ["--kubeconfig", str(self.kubeconfig), *args], **kwargs)

    def rollout(self, name: str = "web", spec: dict[str, Any] | None = None,
                status: dict[str, Any] | None = None, namespace: str | None = None
                ) -> dict[str, Any]:
        ns = namespace or self.namespace
        created = self.emulator.create_object(GROUP, VERSION, "rollouts", ns, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "Rollout",
            "metadata": {"name": name}, "spec": spec or CANARY_SPEC})
        if status is not None:
            created = self.emulator.patch_object(GROUP, VERSION, "rollouts", ns, name,
                                                 {"status": status}, "status")
        return created

    def read(self, name: str = "web") -> dict[str, Any]:
        obj = self.emulator.get_object(GROUP, VERSION, "rollouts", self.namespace, name)
        assert obj is not None
        return obj

    def replica_set(self, rollout: dict[str, Any], pod_hash: str, revision: int,
                    replicas: int, ready: int) -> None:
        meta = rollout["metadata"]
        self.emulator.create_object("apps", "v1", "replicasets", self.namespace, {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": f"{meta['name']}-{pod_hash}",
                "labels": {"app": "web", "rollouts-pod-template-hash": pod_hash},
                "annotations": {"rollouts.dev/revision": str(revision)},
                "ownerReferences": [{"apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout",
                                     "name": meta["name"], "uid": meta["uid"],
                                     "controller": True}],
            },
            "spec": {"replicas": replicas,
                     "selector": {"matchLabels": {"rollouts-pod-template-hash": pod_hash}},
                     "template": {"metadata": {"labels": {"rollouts-pod-template-hash":
                                                          pod_hash}},
                                  "spec": TEMPLATE["spec"]}},
        })
        self.emulator.patch_object("apps", "v1", "replicasets", self.namespace,
                                   f"{meta['name']}-{pod_hash}",
                                   {"status": {"replicas": replicas, "readyReplicas": ready,
                                               "availableReplicas": ready}}, "status")


@pytest.fixture(scope="module")
def emulator() -> Iterator[ApiEmulator]:
    emu = ApiEmulator()
    with EmulatorThread(emu):
        for path in sorted((ROOT / "crds").glob("*.yaml")):
            emu.apply_yaml(path)
        yield emu


@pytest.fixture
def sandbox(emulator: ApiEmulator, tmp_path: pathlib.Path) -> Sandbox:
    namespace = f"t{next(_counter)}"
    emulator.create_object("", "v1", "namespaces", None, {"metadata": {"name": namespace}})
    kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig", namespace=namespace)
    return Sandbox(emulator, namespace, kubeconfig, CliRunner())
