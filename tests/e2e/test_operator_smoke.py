"""The real operator (kopf + planner + executor) against the API emulator and kubelet simulator.

A canary Rollout becomes Healthy on its first revision, then a new image goes through
setWeight -> pause{duration: 2} -> Healthy, with only selectors touched on the Services and
no kopf bookkeeping in the Rollout's annotations.
"""

from __future__ import annotations

import copy
import pathlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from rollouts.models.rollout import POD_TEMPLATE_HASH_LABEL
from rollouts.operator import OperatorConfig, run_operator
from rollouts.sandbox.apiserver import ApiEmulator
from rollouts.sandbox.emulator_thread import EmulatorThread
from rollouts.sandbox.kubelet import KubeletSimulator

pytestmark = pytest.mark.e2e

ROOT = pathlib.Path(__file__).resolve().parents[2]
NS = "default"
TIMEOUT = 30.0


def _crds() -> list[dict[str, Any]]:
    docs = []
    for name in ("rollouts.dev_rollouts.yaml", "rollouts.dev_analysisruns.yaml"):
        path = ROOT / "crds" / name
        if path.exists():
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    if not docs:  # a minimal stand-in until the generated CRDs exist
        docs.append({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "rollouts.rollouts.dev"},
            "spec": {
                "group": "rollouts.dev",
                "scope": "Namespaced",
                "names": {"plural": "rollouts", "singular": "rollout", "kind": "Rollout",
                          "listKind": "RolloutList"},
                "versions": [{
                    "name": "v1alpha1", "served": True, "storage": True,
                    "schema": {"openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                    "subresources": {"status": {}, "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas",
                        "labelSelectorPath": ".status.selector"}},
                }],
            },
        })
    return docs


@pytest.fixture
def cluster(tmp_path: pathlib.Path) -> Iterator[tuple[ApiEmulator, pathlib.Path]]:
    emulator = ApiEmulator()
    kubelet = KubeletSimulator(emulator, ready_delay=0.1)
    thread = EmulatorThread(emulator, kubelet=kubelet)
    thread.start()
    try:
        for crd in _crds():
            emulator.apply_manifest(crd)
        kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)
        yield emulator, kubeconfig
    finally:
        thread.stop()


@pytest.fixture
def operator(cluster: tuple[ApiEmulator, pathlib.Path]) -> Iterator[ApiEmulator]:
    emulator, kubeconfig = cluster
    stop, ready = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def main() -> None:
        try:
            run_operator(
                OperatorConfig(requeue_floor=0.2, cancellation_timeout=2.0),
                kubeconfig=str(kubeconfig),
                namespaces=(NS,),
                stop_flag=stop,
                ready_flag=ready,
            )
        except BaseException as exc:  # surfaced by the test below
            errors.append(exc)

    thread = threading.Thread(target=main, name="operator", daemon=True)
    thread.start()
    assert ready.wait(TIMEOUT), "the operator did not become ready"
    try:
        yield emulator
    finally:
        stop.set()
        thread.join(timeout=15)
        assert not thread.is_alive(), "the operator did not stop"
        assert not errors, errors


def wait_for(what: str, check: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": NS, "labels": {"team": "shop"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


ROLLOUT = {
    "apiVersion": "rollouts.dev/v1alpha1",
    "kind": "Rollout",
    "metadata": {"name": "web", "namespace": NS},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "web:1"}]},
        },
        "strategy": {"canary": {
            "canaryService": "web-canary",
            "stableService": "web",
            "scaleDownDelaySeconds": 0,
            # 2 s, not 1: pause start times have second precision (as in Argo), so a 1 s pause
            # can end a few milliseconds after it starts and be missed by the polling below.
            "steps": [{"setWeight": 50}, {"pause": {"duration": 2}}],
        }},
    },
}


def test_canary_rollout_end_to_end(operator: ApiEmulator) -> None:
    emulator = operator

    def rollout() -> dict[str, Any]:
        obj = emulator.get_object("rollouts.dev", "v1alpha1", "rollouts", NS, "web")
        assert obj is not None
        return obj

    def replica_sets() -> dict[str, dict[str, Any]]:
        return {
            rs["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL]: rs
            for rs in emulator.list_objects("apps", "v1", "replicasets", NS,
                                            label_selector=POD_TEMPLATE_HASH_LABEL)
        }

    emulator.create_object("", "v1", "services", NS, service("web"))
    emulator.create_object("", "v1", "services", NS, service("web-canary"))
    emulator.create_object("rollouts.dev", "v1alpha1", "rollouts", NS, copy.deepcopy(ROLLOUT))
    # Invariant 7: a bad spec next to it gets InvalidSpec and does not disturb the other.
    broken = copy.deepcopy(ROLLOUT)
    broken["metadata"]["name"] = "broken"
    # Admitted by the CRD (its pattern holds), refused by the controller (beyond 87600h).
    broken["spec"]["strategy"]["canary"]["steps"] = [{"pause": {"duration": "99999h"}}]
    emulator.create_object("rollouts.dev", "v1alpha1", "rollouts", NS, broken)

    # --- first revision: straight to Healthy ---------------------------------------------
    status = wait_for("the first revision to be Healthy", lambda: (
        (s := rollout().get("status") or {}).get("phase") == "Healthy"
        and s.get("stableRS") and s))
    stable_hash = status["stableRS"]
    rs = replica_sets()[stable_hash]
    assert rs["spec"]["replicas"] == 2
    assert rs["metadata"]["ownerReferences"][0]["name"] == "web"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"

    # No kopf bookkeeping in annotations; the only trace is the (renamed) finalizer.
    meta = rollout()["metadata"]
    assert not any(k.startswith("kopf.") for k in (meta.get("annotations") or {}))
    assert meta.get("finalizers") == ["rollouts.dev/finalizer"]

    # Invariant 6: a Healthy Rollout with nothing changing is left alone.
    quiet_rv = rollout()["metadata"]["resourceVersion"]
    time.sleep(1.0)
    assert rollout()["metadata"]["resourceVersion"] == quiet_rv

    # --- a new image: canary RS, weight step, timed pause, promotion -------------------
    emulator.patch_object(
        "rollouts.dev", "v1alpha1", "rollouts", NS, "web",
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}},
    )
    seen_phases: list[tuple[str | None, int | None]] = []

    def healthy_on_new_revision() -> dict[str, Any] | None:
        s = rollout().get("status") or {}
        point = (s.get("phase"), s.get("currentStepIndex"))
        if not seen_phases or seen_phases[-1] != point:
            seen_phases.append(point)
        new = s.get("currentPodHash")
        if new and new != stable_hash and s.get("phase") == "Healthy" \
                and s.get("stableRS") == new:
            return s
        return None

    status = wait_for("the canary to be promoted", healthy_on_new_revision)
    new_hash = status["stableRS"]
    sets = replica_sets()
    assert new_hash in sets and sets[new_hash]["spec"]["replicas"] == 2
    assert ("Paused", 1) in seen_phases, seen_phases
    assert status["currentStepIndex"] == 2

    # Services: only the hash selector key was added, everything else as written.
    for name in ("web", "web-canary"):
        svc = emulator.get_object("", "v1", "services", NS, name)
        assert svc is not None
        assert svc["spec"]["selector"] == {"app": "web", POD_TEMPLATE_HASH_LABEL: new_hash}
        assert svc["metadata"]["labels"] == {"team": "shop"}
        assert svc["spec"]["ports"][0]["targetPort"] == 8080

    # The old revision is scaled down (scaleDownDelaySeconds: 0).
    wait_for("the old ReplicaSet to scale to zero",
             lambda: stable_hash not in replica_sets()
             or replica_sets()[stable_hash]["spec"]["replicas"] == 0)

    broken_status = wait_for("InvalidSpec on the broken Rollout", lambda: (
        emulator.get_object("rollouts.dev", "v1alpha1", "rollouts", NS, "broken") or {}
    ).get("status"))
    assert broken_status["phase"] == "Degraded"
    assert "steps[0]" in broken_status["message"], broken_status["message"]

    # Events were posted about the Rollout.
    events = emulator.list_objects("", "v1", "events", NS)
    ours = [e for e in events if e.get("reportingComponent") == "rollouts-controller"]
    assert {e["involvedObject"]["name"] for e in ours} == {"web", "broken"}

    # Deleting the Rollout: the controller stops its reconcile and releases the finalizer;
    # the ReplicaSets go with it (ownerReferences).
    emulator.delete_object("rollouts.dev", "v1alpha1", "rollouts", NS, "web")
    wait_for("the Rollout to be gone", lambda: emulator.get_object(
        "rollouts.dev", "v1alpha1", "rollouts", NS, "web") is None)
    wait_for("its ReplicaSets to be collected", lambda: not any(
        rs["metadata"]["name"].startswith("web-") for rs in emulator.list_objects(
            "apps", "v1", "replicasets", NS)))
