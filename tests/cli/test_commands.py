"""Every cluster command against the sandbox API server: exit codes, output, what is written."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from rollouts.cli.kubeopts import Globals
from rollouts.cli.main import app
from tests.cli.conftest import (
    BLUE_GREEN_SPEC,
    CANARY_PAUSED,
    GROUP,
    HEALTHY,
    VERSION,
    Sandbox,
)

STATUS_KEYS = ["name", "namespace", "phase", "message", "revision", "stableRevision", "step",
               "weights", "aborted", "analysis", "observedGeneration", "generation"]


# --- get / list -------------------------------------------------------------------------------


def test_get_shows_tree(sandbox: Sandbox) -> None:
    rollout = sandbox.rollout(status=CANARY_PAUSED)
    sandbox.replica_set(rollout, "old", 1, 3, 3)
    sandbox.replica_set(rollout, "new", 2, 1, 0)
    result = sandbox.invoke("get", "web")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Rollout web" in out
    assert "Paused" in out and "Step:     2/4" in out
    assert "✔ setWeight: 25" in out and "▶ pause: 60s" in out and "○ setWeight: 50" in out
    assert "canary 25%, stable 75%, desired 25% (verified)" in out
    assert "#2 web-new (canary)  pods 1 desired, 0 ready, 0 available" in out
    assert "#1 web-old (stable)  pods 3 desired, 3 ready, 3 available" in out
    assert all(len(line) <= 80 for line in out.splitlines())
    assert "\x1b[" not in out  # no colour when not a terminal


def test_get_output_json_and_yaml(sandbox: Sandbox) -> None:
    sandbox.rollout(status=CANARY_PAUSED)
    as_json = json.loads(sandbox.invoke("get", "web", "-o", "json").output)
    assert as_json["kind"] == "Rollout" and as_json["status"]["currentStepIndex"] == 1
    as_yaml = yaml.safe_load(sandbox.invoke("get", "web", "-o", "yaml").output)
    assert as_yaml == as_json


def test_get_not_found(sandbox: Sandbox) -> None:
    result = sandbox.invoke("get", "nope")
    assert result.exit_code == 1
    assert f"rollout nope not found in namespace {sandbox.namespace}" in result.output


def test_namespace_option_after_command(sandbox: Sandbox) -> None:
    other = f"{sandbox.namespace}-other"
    sandbox.emulator.create_object("", "v1", "namespaces", None, {"metadata": {"name": other}})
    sandbox.rollout("api", status=HEALTHY, namespace=other)
    assert sandbox.invoke("get", "api").exit_code == 1
    assert sandbox.invoke("get", "api", "-n", other).exit_code == 0
    assert sandbox.invoke("-n", other, "get", "api").exit_code == 0


def test_list(sandbox: Sandbox) -> None:
    sandbox.rollout("web", status=CANARY_PAUSED)
    sandbox.rollout("bg", spec=BLUE_GREEN_SPEC, status={"phase": "Healthy"})
    result = sandbox.invoke("list")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "STRATEGY", "PHASE", "STEP", "WEIGHT", "AGE"]
    assert lines[1].split()[:3] == ["bg", "BlueGreen", "Healthy"]
    assert lines[2].split()[:5] == ["web", "Canary", "Paused", "2/4", "25%"]
    rows = json.loads(sandbox.invoke("list", "-o", "json").output)
    assert [r["name"] for r in rows] == ["bg", "web"]
    assert rows[1] | {"age": None} == {"name": "web", "namespace": sandbox.namespace,
                                       "strategy": "Canary", "phase": "Paused", "step": "2/4",
                                       "weight": 25, "age": None}


def test_list_all_namespaces(sandbox: Sandbox) -> None:
    sandbox.rollout("web", status=CANARY_PAUSED)
    result = sandbox.invoke("list", "-A")
    assert result.exit_code == 0
    assert result.output.splitlines()[0].split()[0] == "NAMESPACE"
    assert any(line.split()[:2] == [sandbox.namespace, "web"]
               for line in result.output.splitlines())
    rows = yaml.safe_load(sandbox.invoke("list", "-A", "-o", "yaml").output)
    assert {"namespace": sandbox.namespace, "name": "web"}.items() <= next(
        r for r in rows if r["namespace"] == sandbox.namespace).items()


def test_list_empty(sandbox: Sandbox) -> None:
    result = sandbox.invoke("list")
    assert result.exit_code == 0
    assert "No rollouts found" in result.output


# --- status -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "args", "code", "message"), [
    (HEALTHY, (), 0, ""),
    ({**CANARY_PAUSED, "phase": "Degraded", "message": "boom", "abort": True,
      "abortMessage": "Rollout aborted by user"}, (), 1, "aborted: Rollout aborted by user"),
    ({**HEALTHY, "phase": "Degraded", "message": "no progress"}, (), 1, "degraded: no progress"),
    ({"phase": "Degraded", "message": "InvalidSpec: spec.replicas: bad", "observedGeneration": 1,
      "conditions": [{"type": "InvalidSpec", "status": "True", "reason": "InvalidSpec",
                      "message": "spec.replicas: bad"}]}, (), 1, "invalid spec: spec.replicas"),
    (CANARY_PAUSED, (), 2, "not done"),
    (CANARY_PAUSED, ("--until", "paused"), 0, ""),
    ({**CANARY_PAUSED, "phase": "Progressing"}, ("--until", "paused"), 2, "not done"),
    ({**HEALTHY, "observedGeneration": 0}, (), 2, "observe generation 1"),
    (CANARY_PAUSED, ("--timeout", "1s"), 2, "timed out"),
])
def test_status_exit_codes(sandbox: Sandbox, status: dict[str, Any], args: tuple[str, ...],
                           code: int, message: str) -> None:
    sandbox.rollout(status=status)
    result = sandbox.invoke("status", "web", *args)
    assert result.exit_code == code, result.output
    assert message in result.output


def test_status_json_shape(sandbox: Sandbox) -> None:
    sandbox.rollout(status=CANARY_PAUSED)
    result = sandbox.invoke("status", "web", "-o", "json", "--until", "paused")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert list(data) == STATUS_KEYS
    assert data == {
        "name": "web", "namespace": sandbox.namespace, "phase": "Paused",
        "message": "Step 2/4: paused for 60s more", "revision": "new", "stableRevision": "old",
        "step": {"index": 1, "total": 4}, "weights": {"canary": 25, "stable": 75, "desired": 25},
        "aborted": False, "analysis": [], "observedGeneration": 1, "generation": 1,
    }


def test_status_json_blue_green_and_analysis(sandbox: Sandbox) -> None:
    rollout = sandbox.rollout(spec=BLUE_GREEN_SPEC, status={**HEALTHY, "currentPodHash": "new"})
    meta = rollout["metadata"]
    sandbox.emulator.create_object(GROUP, VERSION, "analysisruns", sandbox.namespace, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "AnalysisRun",
        "metadata": {"name": "web-new-pre", "labels": {"rollouts-pod-template-hash": "new"},
                     "ownerReferences": [{"apiVersion": "rollouts.dev/v1alpha1",
                                          "kind": "Rollout", "name": "web",
                                          "uid": meta["uid"], "controller": True}]},
        "spec": {"metrics": [{"name": "m", "provider": {"web": {"url": "http://x"}}}]}})
    sandbox.emulator.patch_object(GROUP, VERSION, "analysisruns", sandbox.namespace,
                                  "web-new-pre", {"status": {"phase": "Failed",
                                                             "message": "m failed"}}, "status")
    data = json.loads(sandbox.invoke("status", "web", "-o", "json").stdout)
    assert data["step"] is None and data["weights"] is None
    assert data["analysis"] == [{"name": "web-new-pre", "phase": "Failed", "message": "m failed"}]


def test_status_watch_waits_for_healthy(sandbox: Sandbox) -> None:
    sandbox.rollout(status={**CANARY_PAUSED, "phase": "Progressing"})

    def finish() -> None:
        time.sleep(0.5)
        sandbox.emulator.patch_object(GROUP, VERSION, "rollouts", sandbox.namespace, "web",
                                      {"status": {**HEALTHY, "currentPodHash": "new",
                                                  "stableRS": "new"}}, "status")

    thread = threading.Thread(target=finish)
    thread.start()
    result = sandbox.invoke("status", "web", "--watch", "--timeout", "20s")
    thread.join()
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("web: Healthy")


def test_status_waits_for_observed_generation(sandbox: Sandbox) -> None:
    # Healthy, but for generation 1; the spec has moved on to generation 2.
    sandbox.rollout(status=HEALTHY)
    sandbox.emulator.patch_object(GROUP, VERSION, "rollouts", sandbox.namespace, "web",
                                  {"spec": {"replicas": 5}})
    result = sandbox.invoke("status", "web", "--timeout", "1s", "-o", "json")
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert (data["generation"], data["observedGeneration"]) == (2, 1)
    assert "observe generation 2" in result.output


def test_status_bad_options(sandbox: Sandbox) -> None:
    sandbox.rollout(status=HEALTHY)
    assert sandbox.invoke("status", "web", "--until", "done").exit_code == 2
    assert sandbox.invoke("status", "web", "--timeout", "soon").exit_code == 2
    assert sandbox.invoke("status", "nope").exit_code == 1


# --- operations -------------------------------------------------------------------------------


def test_promote_writes_status_only(sandbox: Sandbox) -> None:
    sandbox.rollout(status=CANARY_PAUSED)
    before = sandbox.read()
    sandbox.emulator.reset_counters()
    result = sandbox.invoke("promote", "web")
    assert result.exit_code == 0, result.output
    assert "rollout web promoted" in result.output
    assert "currentStepIndex: 1 -> 2" in result.output
    after = sandbox.read()
    assert after["status"]["currentStepIndex"] == 2
    assert "pauseConditions" not in after["status"]
    assert after["spec"] == before["spec"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    writes = {k: v for k, v in sandbox.emulator.requests.items()
              if k[0] in ("patch", "update", "create")}
    assert writes == {("patch", "rollouts/status"): 1}


def test_promote_full_and_blue_green(sandbox: Sandbox) -> None:
    sandbox.rollout(status=CANARY_PAUSED)
    assert sandbox.invoke("promote", "web", "--full").exit_code == 0
    assert sandbox.read()["status"]["promoteFull"] is True
    sandbox.rollout("bg", spec=BLUE_GREEN_SPEC, status={
        "currentPodHash": "new", "stableRS": "old", "controllerPause": True,
        "pauseConditions": [{"reason": "BlueGreenPause", "startTime": "2024-01-01T00:00:00Z"}]})
    result = sandbox.invoke("promote", "bg")
    assert result.exit_code == 0
    status = sandbox.read("bg")["status"]
    assert "pauseConditions" not in status and status["controllerPause"] is True


def test_abort_retry_pause_resume_cycle(sandbox: Sandbox) -> None:
    sandbox.rollout(status=CANARY_PAUSED)
    result = sandbox.invoke("abort", "web")
    assert result.exit_code == 0 and "rollout web aborted" in result.output
    status = sandbox.read()["status"]
    assert status["abort"] is True and status["abortMessage"] == "Rollout aborted by user"
    assert status["abortedAt"].endswith("Z")

    refused = sandbox.invoke("abort", "web")
    assert refused.exit_code == 1 and "it is aborted" in refused.output
    assert sandbox.invoke("promote", "web").exit_code == 1

    assert sandbox.invoke("retry", "web").exit_code == 0
    status = sandbox.read()["status"]
    assert "abort" not in status and status["currentStepIndex"] == 0
    assert sandbox.invoke("retry", "web").exit_code == 1

    assert sandbox.invoke("pause", "web").exit_code == 0
    assert [p["reason"] for p in sandbox.read()["status"]["pauseConditions"]] == ["PausedByUser"]
    again = sandbox.invoke("pause", "web")
    assert again.exit_code == 1 and "already paused" in again.output
    assert sandbox.invoke("resume", "web").exit_code == 0
    assert "pauseConditions" not in sandbox.read()["status"]
    nothing = sandbox.invoke("resume", "web")
    assert nothing.exit_code == 1 and "not paused by a user" in nothing.output


@pytest.mark.parametrize("command", ["promote", "abort", "retry", "pause", "resume"])
def test_operation_not_found(sandbox: Sandbox, command: str) -> None:
    result = sandbox.invoke(command, "ghost")
    assert result.exit_code == 1
    assert "rollout ghost not found" in result.output


def test_operation_on_steady_rollout_refused(sandbox: Sandbox) -> None:
    sandbox.rollout(status=HEALTHY)
    result = sandbox.invoke("promote", "web")
    assert result.exit_code == 1
    assert "no update in progress (revision old is already stable)" in result.output


def test_conflict_is_re_read_and_re_decided(sandbox: Sandbox) -> None:
    """A stale resourceVersion gets 409: the CLI reads again and decides on the new state."""
    sandbox.rollout(status=CANARY_PAUSED)
    seen: list[str] = []
    emulator = sandbox.emulator

    def handler(request: httpx.Request) -> httpx.Response:
        # Forward to the real sandbox, but let the "controller" write between the first read
        # and the first status patch.
        if request.method == "PATCH" and seen == ["GET"]:
            emulator.patch_object(GROUP, VERSION, "rollouts", sandbox.namespace, "web",
                                  {"status": {"currentStepIndex": 2, "pauseConditions": None}},
                                  "status")
        seen.append(request.method)
        with httpx.Client(base_url=emulator.url) as client:
            forwarded = client.send(client.build_request(
                request.method, str(request.url), content=request.content,
                headers={k: v for k, v in request.headers.items() if k.lower() != "host"}))
            return httpx.Response(forwarded.status_code, content=forwarded.content,
                                  headers={"Content-Type": "application/json"})

    result = CliRunner().invoke(
        app, ["--kubeconfig", str(sandbox.kubeconfig), "promote", "web"],
        obj=Globals(transport=httpx.MockTransport(handler)))
    assert result.exit_code == 0, result.output
    assert seen == ["GET", "PATCH", "GET", "PATCH"]
    assert "currentStepIndex: 2 -> 3" in result.output
    assert sandbox.read()["status"]["currentStepIndex"] == 3


def test_conflict_forever_gives_up(sandbox: Sandbox) -> None:
    sandbox.rollout(status=CANARY_PAUSED)
    body = sandbox.read()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=body)
        return httpx.Response(409, json={"kind": "Status", "reason": "Conflict",
                                         "message": "the object has been modified"})

    result = CliRunner().invoke(
        app, ["--kubeconfig", str(sandbox.kubeconfig), "pause", "web"],
        obj=Globals(transport=httpx.MockTransport(handler)))
    assert result.exit_code == 1
    assert "kept changing" in result.output and "3 conflicts" in result.output


def test_forbidden_names_verb_and_resource(sandbox: Sandbox) -> None:
    sandbox.rollout(status=CANARY_PAUSED)
    body = sandbox.read()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=body)
        return httpx.Response(403, json={
            "kind": "Status", "reason": "Forbidden",
            "message": 'rollouts.rollouts.dev "web" is forbidden: User "dev" cannot patch '
                       'resource "rollouts/status"'})

    result = CliRunner().invoke(
        app, ["--kubeconfig", str(sandbox.kubeconfig), "abort", "web"],
        obj=Globals(transport=httpx.MockTransport(handler)))
    assert result.exit_code == 1
    assert (f"forbidden: cannot patch rollouts/status in namespace {sandbox.namespace}"
            in result.output)


def test_forbidden_read(sandbox: Sandbox) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"kind": "Status", "reason": "Forbidden",
                                         "message": "no"})

    result = CliRunner().invoke(
        app, ["--kubeconfig", str(sandbox.kubeconfig), "list", "-A"],
        obj=Globals(transport=httpx.MockTransport(handler)))
    assert result.exit_code == 1
    assert "forbidden: cannot list rollouts cluster-wide" in result.output


def test_unreachable_server(tmp_path: Any) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "x", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}]}))
    result = CliRunner().invoke(app, ["--kubeconfig", str(config), "get", "web"])
    assert result.exit_code == 1
    assert "cannot reach the Kubernetes API" in result.output


def test_missing_kubeconfig(tmp_path: Any) -> None:
    result = CliRunner().invoke(app, ["--kubeconfig", str(tmp_path / "none"), "list"])
    assert result.exit_code == 1
    assert f"kubeconfig {tmp_path / 'none'} not found" in result.output


# --- misc -------------------------------------------------------------------------------------


def test_version() -> None:
    result = CliRunner().invoke(app, ["version"])
    assert result.exit_code == 0 and result.output.startswith("rollouts ")


def test_gen_crds_check(tmp_path: Any) -> None:
    runner = CliRunner()
    stale = runner.invoke(app, ["gen-crds", "--check", "--dir", str(tmp_path)])
    assert stale.exit_code == 1 and "out of date" in stale.output
    assert runner.invoke(app, ["gen-crds", "--dir", str(tmp_path)]).exit_code == 0
    fresh = runner.invoke(app, ["gen-crds", "--check", "--dir", str(tmp_path)])
    assert fresh.exit_code == 0 and "up to date" in fresh.output


def test_controller_and_demo_are_registered() -> None:
    runner = CliRunner()
    controller = runner.invoke(app, ["controller", "--help"])
    assert controller.exit_code == 0
    for option in ("--kubeconfig", "--context", "--namespace", "--all-namespaces",
                   "--standalone", "--peering", "--verbose"):
        assert option in controller.output
    demo = runner.invoke(app, ["demo", "--help"])
    assert demo.exit_code == 0 and "--keep" in demo.output and "--fast" in demo.output
