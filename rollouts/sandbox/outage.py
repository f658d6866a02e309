"""A metric source that fails during analysis: the Rollout must never be promoted on it.

`prometheus_outage()` runs, in one sandbox with the real controller (a subprocess), five
Rollouts released at the same moment, each judged by a `MetricStub` answering per Rollout:

* `errors`: a canary whose step analysis gets HTTP 503 from "Prometheus";
* `refused`: the same against an address nothing listens on (connection refused);
* `bluegreen-errors`: a blue-green whose pre-promotion analysis gets 503s;
* `hangs`: a canary whose queries are never answered; the metric's `timeout` (2 s) must cut
  each one off;
* `healthy`: a canary whose analysis succeeds, running alongside them: it must finish as if
  they did not exist (a hanging provider must not stall other Rollouts).

The first four must end Degraded and aborted after `consecutiveErrorLimit` (2: the third
error in a row) with the stable revision full and selected, and their new revision must never
have been stable; `healthy` must end Healthy on its new revision. Every run is also checked
against the write-history invariants.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rollouts.models.wire import POD_TEMPLATE_HASH_LABEL
from rollouts.sandbox.campaign import NEW_IMAGE, OLD_IMAGE, analysis_template
from rollouts.sandbox.cluster import GROUP, VERSION, Sandbox
from rollouts.sandbox.history import WriteHistory
from rollouts.sandbox.invariants import problems
from rollouts.sandbox.metricstub import Answer, MetricStub
from rollouts.sandbox.prometheus import find_free_port

__all__ = ["OUTAGE_RUNS", "OutageResult", "prometheus_outage"]

Obj = dict[str, Any]
ERROR_LIMIT = 2
QUERY_TIMEOUT = 2
# name -> (strategy, expected outcome)
OUTAGE_RUNS = {
    "errors": ("canary", "aborted"),
    "refused": ("canary", "aborted"),
    "bluegreen-errors": ("blueGreen", "aborted"),
    "hangs": ("canary", "aborted"),
    "healthy": ("canary", "promoted"),
}


@dataclass
class OutageRun:
    name: str
    expected: str
    outcome: str = "pending"
    seconds: float | None = None  # release -> end state
    message: str = ""
    problems: list[str] = field(default_factory=list)


@dataclass
class OutageResult:
    runs: list[OutageRun]
    queries: dict[str, int]

    @property
    def wrong(self) -> list[OutageRun]:
        return [r for r in self.runs if r.problems]


def _manifests(name: str, kind: str, template: str, namespace: str) -> list[Obj]:
    analysis = {"templates": [{"templateName": template}],
                "args": [{"name": "rollout", "value": name}]}
    if kind == "blueGreen":
        suffixes = ("active", "preview")
        strategy: Obj = {"blueGreen": {
            "activeService": f"{name}-active", "previewService": f"{name}-preview",
            "autoPromotionEnabled": True, "scaleDownDelaySeconds": 1,
            "abortScaleDownDelaySeconds": 0, "prePromotionAnalysis": analysis}}
    else:
        suffixes = ("stable", "canary")
        strategy = {"canary": {
            "canaryService": f"{name}-canary", "stableService": f"{name}-stable",
            "scaleDownDelaySeconds": 0, "abortScaleDownDelaySeconds": 0,
            "steps": [{"setWeight": 50}, {"analysis": analysis}, {"setWeight": 100}]}}
    services = [{"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": f"{name}-{s}", "namespace": namespace},
                 "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}}
                for s in suffixes]
    return [*services, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": OLD_IMAGE}]}},
                 "strategy": strategy}}]


def _template(namespace: str, name: str, address: str) -> Obj:
    doc = analysis_template(namespace, address, timeout=QUERY_TIMEOUT,
                            consecutive_error_limit=ERROR_LIMIT, count=3)
    doc["metadata"]["name"] = name
    return doc


def _end_state(sb: Sandbox, run: OutageRun, old: str) -> bool:
    obj = sb.rollout(run.name)
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"].get("generation"):
        return False
    sizes = sb.sizes(run.name)
    if run.expected == "aborted":
        done = status.get("phase") == "Degraded" and bool(status.get("abort"))
        keep: str | None = old
    else:
        done = status.get("phase") == "Healthy" and status.get("stableRS") != old
        keep = status.get("stableRS")
    return done and sizes.get(keep or "") == (2, 2) and all(
        s[0] == 0 for h, s in sizes.items() if h != keep)


def prometheus_outage(*, timeout: float = 90.0, ready_delay: float = 0.1) -> OutageResult:
    with Sandbox(ready_delay=ready_delay) as sb, MetricStub() as stub:
        history = WriteHistory(sb.emulator, sb.namespace).start()
        try:
            stub.rules['rollout="errors"'] = Answer.error()
            stub.rules['rollout="bluegreen-errors"'] = Answer.error()
            stub.rules['rollout="hangs"'] = Answer.hang()
            dead = f"http://127.0.0.1:{find_free_port()}"
            sb.apply([_template(sb.namespace, "outage", stub.url),
                      _template(sb.namespace, "outage-refused", dead)])
            runs = [OutageRun(name, expected) for name, (_, expected) in OUTAGE_RUNS.items()]
            for name, (kind, _) in OUTAGE_RUNS.items():
                template = "outage-refused" if name == "refused" else "outage"
                sb.apply(_manifests(name, kind, template, sb.namespace))
            sb.start_controller(process=True)
            old = {}
            for run in runs:
                old[run.name] = sb.wait_phase(run.name, "Healthy", timeout=timeout)["stableRS"]
            released = time.monotonic()
            for run in runs:
                sb.set_image(run.name, NEW_IMAGE)
            while time.monotonic() - released < timeout:
                for run in runs:
                    if run.seconds is None and _end_state(sb, run, old[run.name]):
                        run.seconds = time.monotonic() - released
                if all(run.seconds is not None for run in runs):
                    break
                time.sleep(0.1)
            time.sleep(1.0)
            writes = history.settle()
            for run in runs:
                _judge(sb, run, old[run.name], writes)
            sb.kill_controller()  # judged already: no need to wait for a clean shutdown
            return OutageResult(runs, dict(stub.served))
        finally:
            history.stop()


def _judge(sb: Sandbox, run: OutageRun, old: str, writes: list[Any]) -> None:
    status = sb.status(run.name)
    run.message = str(status.get("message") or "")
    run.problems += problems(writes, run.name)
    if run.seconds is None:
        run.outcome = "stuck"
        run.problems.append(f"not {run.expected}: phase={status.get('phase')} "
                            f"message={run.message!r} sizes={sb.sizes(run.name)}")
        return
    run.outcome = run.expected
    if run.expected == "aborted":
        became_stable = [w.rv for w in writes if w.resource == "rollout" and w.name == run.name
                         and ((w.obj.get("status") or {}).get("stableRS") not in (None, old))]
        if became_stable:
            run.problems.append(f"the new revision was stable at rv {became_stable[0]}")
        service = f"{run.name}-active" if run.name.startswith("bluegreen") else (
            f"{run.name}-stable")
        if sb.service_selector(service).get(POD_TEMPLATE_HASH_LABEL) != old:
            run.problems.append(f"Service {service} not on the stable revision {old}")
