"""A controller started for a namespace that does not exist yet (`rollouts controller -n
later`, as GitOps may order it) serves the Rollouts created there once it does: what the
start-up warning of rollouts.kube.namespaces promises."""

from __future__ import annotations

import pathlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from rollouts.operator import OperatorConfig, run_operator
from rollouts.sandbox.apiserver import ApiEmulator
from rollouts.sandbox.emulator_thread import EmulatorThread
from rollouts.sandbox.kubelet import KubeletSimulator

pytestmark = pytest.mark.e2e

ROOT = pathlib.Path(__file__).resolve().parents[2]
NS = "later"
TIMEOUT = 30.0

ROLLOUT: dict[str, Any] = {
    "apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout",
    "metadata": {"name": "web", "namespace": NS},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
        "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
    },
}


@pytest.fixture
def emulator(tmp_path: pathlib.Path) -> Iterator[tuple[ApiEmulator, pathlib.Path]]:
    emulator = ApiEmulator()
    thread = EmulatorThread(emulator, kubelet=KubeletSimulator(emulator, ready_delay=0.1))
    thread.start()
    try:
        crds = (ROOT / "crds" / "rollouts.dev_rollouts.yaml").read_text()
        for crd in yaml.safe_load_all(crds):
            emulator.apply_manifest(crd)
        yield emulator, emulator.write_kubeconfig(tmp_path / "kubeconfig")
    finally:
        thread.stop()


def test_rollouts_in_a_namespace_created_after_the_start_are_served(
        emulator: tuple[ApiEmulator, pathlib.Path]) -> None:
    api, kubeconfig = emulator
    assert api.get_object("", "v1", "namespaces", None, NS) is None
    stop, ready = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def main() -> None:
        try:
            run_operator(OperatorConfig(requeue_floor=0.2, cancellation_timeout=2.0),
                         kubeconfig=str(kubeconfig), namespaces=(NS,), stop_flag=stop,
                         ready_flag=ready)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=main, name="operator", daemon=True)
    thread.start()
    try:
        assert ready.wait(TIMEOUT), "the operator did not become ready"
        api.apply_manifest({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        api.create_object("rollouts.dev", "v1alpha1", "rollouts", NS, ROLLOUT)
        deadline, phase = time.monotonic() + TIMEOUT, None
        while time.monotonic() < deadline and phase != "Healthy":
            body = api.get_object("rollouts.dev", "v1alpha1", "rollouts", NS, "web") or {}
            phase = (body.get("status") or {}).get("phase")
            time.sleep(0.05)
        assert phase == "Healthy"
    finally:
        stop.set()
        thread.join(timeout=15)
    assert not thread.is_alive() and not errors, errors
