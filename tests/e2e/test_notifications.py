"""Notifications from a real controller process, across kills and restarts."""

from __future__ import annotations

import base64
import collections
import json
import pathlib
from typing import Any

import pytest

from tests.e2e.conftest import CountingSandbox
from tests.e2e.dsl import canary, pause, rollout_manifest, set_weight
from tests.e2e.processes import ControllerProcess, controller, wait_until
from tests.notifications.receiver import ThreadedReceiver, always

pytestmark = pytest.mark.e2e

SECRET_PATH = "/hooks/secret-path-7f3a9c"
SUBSCRIBED = ("on-rollout-started", "on-rollout-paused", "on-rollout-aborted")


def manifests(receiver_url: str) -> list[dict[str, Any]]:
    rollout, services = rollout_manifest("web", canary(set_weight(50), pause()), replicas=2)
    rollout["metadata"]["annotations"] = {
        f"notifications.argoproj.io/subscribe.{trigger}.audit": "" for trigger in SUBSCRIBED}
    url = base64.b64encode((receiver_url + SECRET_PATH).encode()).decode()
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "notify"},
         "data": {"service.webhook.audit": "url: $audit-url\n"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "notify"},
         "data": {"audit-url": url}},
        *services, rollout,
    ]


def records(sandbox: CountingSandbox) -> list[dict[str, Any]]:
    return list(sandbox.status("web").get("notifications") or [])


def states(sandbox: CountingSandbox) -> dict[str, str]:
    return {r["trigger"]: r["state"] for r in records(sandbox)}


def accepted_triggers(receiver: ThreadedReceiver) -> collections.Counter[str]:
    return collections.Counter(body["trigger"] for body in receiver.accepted())


def start(sandbox: CountingSandbox, log: pathlib.Path) -> Any:
    return controller(sandbox.kubeconfig, log, "-n", sandbox.namespace, "--standalone",
                      "--notifications-configmap", "notify",
                      "--notifications-secret", "notify")


def kill(process: ControllerProcess) -> None:
    process.process.kill()
    process.process.wait(timeout=10)


def test_notifications_survive_controller_restarts(sandbox: CountingSandbox,
                                                   tmp_path: pathlib.Path) -> None:
    with ThreadedReceiver(always(503)) as receiver:
        sandbox.apply(manifests(receiver.url))
        logs = [tmp_path / f"controller-{i}.log" for i in range(3)]

        # 1. The receiver is down (503) when the release starts; the controller is killed
        #    while it retries. The records stay Pending in status.
        with start(sandbox, logs[0]) as first:
            sandbox.wait_phase("web", "Healthy")
            assert records(sandbox) == []  # a created Rollout is deployed, not rolled out
            sandbox.set_image("web", "web:2")
            sandbox.wait_phase("web", "Paused", step=1)
            wait_until("both events to be tried",
                       lambda: {b["trigger"] for b in receiver.bodies()} >= {
                           "on-rollout-started", "on-rollout-paused"},
                       on_timeout=first.output)
            kill(first)
        assert states(sandbox) == {"on-rollout-started": "Pending",
                                   "on-rollout-paused": "Pending"}
        assert receiver.accepted() == []

        # 2. The receiver is back; a new controller delivers what is Pending, once.
        receiver.behaviour = always(200)
        with start(sandbox, logs[1]) as second:
            wait_until("the pending records to be sent", lambda: set(
                states(sandbox).values()) == {"Sent"}, on_timeout=second.output)
            assert accepted_triggers(receiver) == {"on-rollout-started": 1,
                                                   "on-rollout-paused": 1}
            kill(second)

        # 3. Everything is Sent; a third controller sends nothing again, only what happens
        #    next (an abort).
        with start(sandbox, logs[2]) as third:
            # As `rollouts abort` does it: written into status, acted on by the controller.
            sandbox.patch_status("web", {"abort": True, "abortMessage": "by the test"})
            wait_until("the abort to be sent",
                       lambda: states(sandbox).get("on-rollout-aborted") == "Sent",
                       timeout=45, on_timeout=third.output)
            assert accepted_triggers(receiver) == {"on-rollout-started": 1,
                                                   "on-rollout-paused": 1,
                                                   "on-rollout-aborted": 1}
            body = next(b for b in receiver.accepted() if b["trigger"] == "on-rollout-aborted")
            assert body["rollout"] == {"namespace": sandbox.namespace, "name": "web"}
            assert body["id"] in {r["id"] for r in records(sandbox)}
            metrics = third.get("/metrics")
            assert metrics is not None and (
                'rollouts_notifications_delivered_total{kind="webhook",result="sent",'
                'trigger="on-rollout-aborted"} 1.0') in metrics.text
            output = "".join(log.read_text(errors="replace") for log in logs)

    # The secret URL appears nowhere the controller writes.
    where = output + json.dumps(sandbox.rollout("web")) + json.dumps(sandbox.events("web"))
    assert "secret-path-7f3a9c" not in where
    assert "notification sent" in output
    assert sandbox.rollout("web")["metadata"].get("generation") == 2  # spec untouched
