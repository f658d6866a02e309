"""A real kubectl against the emulator: OpenAPI download, server-side validation, Table columns.

kubectl is installed by scripts/setup.sh (scripts/install_helm.py --kubectl); the tests skip
when it is missing rather than pass without it.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from rollouts.sandbox import openapi
from rollouts.sandbox.apiserver import ApiEmulator
from rollouts.sandbox.emulator_thread import EmulatorThread

ROOT = pathlib.Path(__file__).resolve().parents[2]
KUBECTL = shutil.which("kubectl")


@pytest.fixture(scope="module")
def emulator() -> Iterator[ApiEmulator]:
    emulator = ApiEmulator()
    thread = EmulatorThread(emulator)
    thread.start()
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        emulator.apply_yaml(path)
    try:
        yield emulator
    finally:
        thread.stop()


def kubectl(emulator: ApiEmulator, tmp: pathlib.Path,
            *args: str) -> subprocess.CompletedProcess[str]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed (scripts/setup.sh installs it)")
    config = emulator.write_kubeconfig(tmp / "kubeconfig")
    env = {"KUBECONFIG": str(config), "HOME": str(tmp), "PATH": os.environ.get("PATH", "")}
    return subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=env,
                          timeout=60, check=False)


def test_openapi_v3_lists_every_group_version_with_its_document(emulator: ApiEmulator) -> None:
    root = httpx.get(f"{emulator.url}/openapi/v3", timeout=10).json()["paths"]
    assert {"api/v1", "apis/apps/v1", "apis/rollouts.dev/v1alpha1"} <= set(root)
    url = root["apis/rollouts.dev/v1alpha1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/rollouts.dev/v1alpha1?hash=")
    doc = httpx.get(emulator.url + url, timeout=10).json()
    rollout = doc["components"]["schemas"]["dev.rollouts.v1alpha1.Rollout"]
    assert rollout["x-kubernetes-group-version-kind"] == [
        {"group": "rollouts.dev", "version": "v1alpha1", "kind": "Rollout"}]
    assert "strategy" in rollout["properties"]["spec"]["properties"]
    patch = doc["paths"]["/apis/rollouts.dev/v1alpha1/namespaces/{namespace}/rollouts/{name}"][
        "patch"]
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]


def test_openapi_names_follow_kubernetes() -> None:
    assert openapi.schema_name("", "v1", "Pod") == "io.k8s.api.core.v1.Pod"
    assert openapi.schema_name("apps", "v1", "ReplicaSet") == "io.k8s.api.apps.v1.ReplicaSet"
    assert (openapi.schema_name("coordination.k8s.io", "v1", "Lease")
            == "io.k8s.api.coordination.v1.Lease")
    assert (openapi.schema_name("rollouts.dev", "v1alpha1", "Rollout")
            == "dev.rollouts.v1alpha1.Rollout")


def test_unknown_openapi_paths_are_404(emulator: ApiEmulator) -> None:
    answer = httpx.get(f"{emulator.url}/openapi/v3/apis/nothing.dev/v1", timeout=10)
    assert answer.status_code == 404 and answer.json()["reason"] == "NotFound"


def test_kubectl_applies_the_examples_with_validation(
    emulator: ApiEmulator, tmp_path: pathlib.Path
) -> None:
    outputs = []
    for name in ("canary.yaml", "canary.yaml", "bluegreen.yaml", "canary-analysis.yaml",
                 "bluegreen-analysis.yaml", "canary-compare.yaml", "demo-analysis.yaml"):
        done = kubectl(emulator, tmp_path, "apply", "-f", str(ROOT / "examples" / name))
        assert done.returncode == 0, (name, done.stderr)
        outputs.append(done.stdout)
    assert "rollout.rollouts.dev/web created" in outputs[0]
    assert "rollout.rollouts.dev/web unchanged" in outputs[1]



BAD: dict[str, Any] = {
    "apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "bad"},
    "spec": {
        "replicas": -5,
        "selector": {"matchLabels": {"app": "bad"}},
        "template": {"metadata": {"labels": {"app": "bad"}},
                     "spec": {"containers": [{"name": "app", "image": "app:1"}]}},
        "strategy": {"canary": {"steps": [{"pause": {"duration": "5m5"}}]}},
    },
}


def test_kubectl_is_refused_unknown_fields_and_invalid_values(
    emulator: ApiEmulator, tmp_path: pathlib.Path
) -> None:
    import json

    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({**BAD, "spec": {**BAD["spec"], "colour": "red"}}))
    refused = kubectl(emulator, tmp_path, "apply", "-f", str(unknown))
    assert refused.returncode != 0
    assert ('Rollout in version "v1alpha1" cannot be handled as a Rollout: strict decoding '
            'error: unknown field "spec.colour"') in refused.stderr
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps(BAD))
    refused = kubectl(emulator, tmp_path, "apply", "-f", str(invalid))
    assert refused.returncode != 0
    assert ("spec.replicas: Invalid value: -5: spec.replicas in body should be greater than "
            "or equal to 0") in refused.stderr
    assert 'spec.strategy.canary.steps[0].pause.duration: Invalid value: "5m5"' in refused.stderr
    assert emulator.get_object("rollouts.dev", "v1alpha1", "rollouts", "default", "bad") is None


def test_kubectl_get_shows_the_usual_columns(
    emulator: ApiEmulator, tmp_path: pathlib.Path
) -> None:
    emulator.apply_manifest({"apiVersion": "v1", "kind": "Service",
                             "metadata": {"name": "cols", "namespace": "default"},
                             "spec": {"ports": [{"port": 80}]}})
    emulator.apply_manifest({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                             "metadata": {"name": "cols", "namespace": "default"},
                             "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                                      "template": {"metadata": {"labels": {"a": "b"}}}}})
    services = kubectl(emulator, tmp_path, "get", "svc", "cols")
    assert services.returncode == 0, services.stderr
    assert services.stdout.split("\n")[0].split() == [
        "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert "80/TCP" in services.stdout
    replica_sets = kubectl(emulator, tmp_path, "get", "rs", "cols")
    assert replica_sets.stdout.split("\n")[0].split() == [
        "NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert replica_sets.stdout.split("\n")[1].split()[:2] == ["cols", "2"]
