"""The chart's RBAC is enough, and no more: the controller runs on a token bound to exactly
the rules `helm template` renders, in the sandbox whose API emulator enforces them.

A canary (with an AnalysisRun and role metadata on its pods), a blue-green release and a
Rollout migrating from a Deployment (workloadRef) run to Healthy with no 403, then the
blue-green one is restarted (evictions); then the
requests the controller was allowed are compared with the rules the chart grants: every
granted (group, resource, verb) was used, or is listed below with the code that needs it.
"""

from __future__ import annotations

import datetime as dt
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from rollouts.cli.main import app
from rollouts.models.wire import format_time, whole_seconds
from rollouts.sandbox import rbac
from tests.chart.helm import NAMESPACE, by_kind, render
from tests.e2e.conftest import CountingSandbox
from tests.e2e.processes import controller, wait_until
from tests.json_http import serve_json

pytestmark = pytest.mark.e2e

SERVICE_ACCOUNT = rbac.User.service_account(NAMESPACE, "rollouts")
TOKEN = "chart-service-account-token"
NO_ROUTERS = {name: False for name in ("gatewayAPI", "istio", "ingress", "smi", "traefik",
                                       "apisix", "ambassador", "appMesh")}

# Granted but not called by these two releases, each with the code that calls it.
NOT_EXERCISED = {
    ("", "secrets", "get"): "analysis/runner.py _Secrets: credentials a metric provider names",
    ("batch", "jobs", "create"): "analysis/providers/job.py: the job metric provider",
    ("batch", "jobs", "get"): "analysis/providers/job.py: reads its Job back",
    ("batch", "jobs", "delete"): "analysis/providers/job.py: stops a Job of a finished run",
    ("rollouts.dev", "analysisruns", "delete"): "kube/execute.py DeleteAnalysisRun (pruning)",
    ("apps", "replicasets", "delete"): "kube/execute.py DeleteReplicaSet (revisionHistoryLimit)",
    ("", "events", "patch"): "kube/execute.py _write_event: a repeat Event counted (this "
                             "scenario's one repeat, a restart's progress, is folded now: "
                             "planner/events.py rule 4; tests/unit/test_event_writes.py)",
}


@pytest.fixture
def metric_url() -> Iterator[str]:
    with serve_json(lambda path, headers: (200, {"successRate": 0.99})) as url:
        yield f"{url}/metrics"


def manifests(metric_url: str) -> str:
    return f"""
apiVersion: rollouts.dev/v1alpha1
kind: AnalysisTemplate
metadata: {{name: success-rate}}
spec:
  metrics:
    - name: success-rate
      interval: 1s
      count: 2
      successCondition: "result >= 0.95"
      provider:
        web: {{url: "{metric_url}", jsonPath: "{{$.successRate}}"}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec: {{selector: {{app: web}}, ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: web-canary}}
spec: {{selector: {{app: web}}, ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: rollouts.dev/v1alpha1
kind: Rollout
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: web, image: "example/web:1"}}]}}
  strategy:
    canary:
      canaryService: web-canary
      stableService: web
      scaleDownDelaySeconds: 0
      canaryMetadata: {{labels: {{role: canary}}}}
      stableMetadata: {{labels: {{role: stable}}}}
      steps:
        - setWeight: 50
        - analysis: {{templates: [{{templateName: success-rate}}]}}
        - experiment: {{duration: 1s, templates: [{{name: baseline, specRef: stable}}]}}
---
apiVersion: rollouts.dev/v1alpha1
kind: Experiment
metadata: {{name: side-by-side}}
spec:
  duration: 1s
  scaleDownDelaySeconds: 1
  templates:
    - name: probe
      selector: {{matchLabels: {{app: probe}}}}
      template:
        metadata: {{labels: {{app: probe}}}}
        spec:
          containers: [{{name: probe, image: "example/web:1", ports: [{{containerPort: 80}}]}}]
      service: {{}}
---
apiVersion: v1
kind: Service
metadata: {{name: shop}}
spec: {{selector: {{app: shop}}, ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: shop-preview}}
spec: {{selector: {{app: shop}}, ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: rollouts.dev/v1alpha1
kind: Rollout
metadata: {{name: shop}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: shop}}}}
  template:
    metadata: {{labels: {{app: shop}}}}
    spec: {{containers: [{{name: shop, image: "example/shop:1"}}]}}
  strategy:
    blueGreen:
      activeService: shop
      previewService: shop-preview
      autoPromotionEnabled: false
      scaleDownDelaySeconds: 1
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: api}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata: {{labels: {{app: api}}}}
    spec: {{containers: [{{name: api, image: "example/api:1"}}]}}
---
apiVersion: rollouts.dev/v1alpha1
kind: Rollout
metadata: {{name: api}}
spec:
  replicas: 2
  workloadRef: {{apiVersion: apps/v1, kind: Deployment, name: api, scaleDown: progressively}}
  strategy:
    canary:
      steps: [{{setWeight: 50}}]
"""


def granted(docs: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(group, resource, verb)
            for role in by_kind(docs, "ClusterRole") + by_kind(docs, "Role")
            for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def install(sandbox: CountingSandbox, docs: list[dict[str, Any]]) -> pathlib.Path:
    """The chart's RBAC objects, ServiceAccount and peering object into the sandbox, and a
    kubeconfig whose token is that ServiceAccount's."""
    sandbox.emulator.apply_manifest(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    for doc in docs:
        if doc["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                           "RoleBinding", "ClusterKopfPeering", "KopfPeering"):
            sandbox.emulator.apply_manifest(doc)
    sandbox.emulator.add_token(TOKEN, SERVICE_ACCOUNT)
    return sandbox.emulator.write_kubeconfig(sandbox.workdir / "chart-kubeconfig",
                                             namespace=sandbox.namespace, token=TOKEN)


def run_releases(sandbox: CountingSandbox, metric_url: str) -> None:
    sandbox.apply(manifests(metric_url))
    sandbox.wait_phase("web", "Healthy")
    sandbox.wait_phase("shop", "Healthy")
    sandbox.wait_phase("api", "Healthy")  # workloadRef: the Deployment is scaled down
    sandbox.wait_for("the api Deployment at 0", lambda: sandbox.emulator.get_object(
        "apps", "v1", "deployments", sandbox.namespace, "api")["spec"]["replicas"] == 0)
    sandbox.set_image("web", "example/web:2")
    sandbox.set_image("shop", "example/shop:2")
    # The canary passes its analysis by itself; blue-green waits for `rollouts promote`.
    sandbox.wait_phase("shop", "Paused")
    result = CliRunner().invoke(app, ["--kubeconfig", str(sandbox.kubeconfig), "-n",
                                      sandbox.namespace, "promote", "shop"])
    assert result.exit_code == 0, result.output
    for name, image in (("web", "example/web:2"), ("shop", "example/shop:2")):
        sandbox.wait_for(f"{name} to finish on {image}", lambda n=name, i=image: (
            (s := sandbox.status(n)).get("phase") == "Healthy"
            and sandbox.rollout(n)["spec"]["template"]["spec"]["containers"][0]["image"] == i
            and s.get("stableRS") == s.get("currentPodHash")), timeout=60)
    runs = sandbox.analysis_runs("web")
    assert [r["status"]["phase"] for r in runs.values()] == ["Successful"]
    sandbox.wait_for("the Experiment to end", lambda: (sandbox.emulator.get_object(
        "rollouts.dev", "v1alpha1", "experiments", sandbox.namespace, "side-by-side") or {}
    ).get("status", {}).get("phase") == "Successful")
    sandbox.wait_for("its pods and Service gone after scaleDownDelaySeconds", lambda: (
        sandbox.emulator.get_object("", "v1", "services", sandbox.namespace,
                                    "side-by-side-probe") is None))
    # A restart evicts every pod of shop (pods list, pods/eviction create).
    time.sleep(1.1)  # creation timestamps have whole seconds: its pods are older
    restart_at = format_time(whole_seconds(dt.datetime.now(dt.UTC)))
    sandbox.patch_spec("shop", {"restartAt": restart_at})
    sandbox.wait_for("shop restarted", lambda: sandbox.status("shop").get(
        "restartedAt") == restart_at, timeout=60)


def used_by_controller(sandbox: CountingSandbox) -> set[tuple[str, str, str]]:
    return {(group, resource, verb)
            for (user, verb, group, resource, _), n in sandbox.emulator.allowed.items()
            if user == SERVICE_ACCOUNT.name and n}


@pytest.mark.parametrize("mode", ["cluster", "namespaced"])
def test_chart_rbac_is_sufficient_and_minimal(mode: str, sandbox: CountingSandbox,
                                              metric_url: str, tmp_path: pathlib.Path) -> None:
    values: dict[str, Any] = {"trafficRouters": NO_ROUTERS}
    if mode == "namespaced":
        values["watchNamespaces"] = [sandbox.namespace]
    docs = render(values, tmp=tmp_path)
    kubeconfig = install(sandbox, docs)
    args = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    # The chart's own arguments, with the metrics port moved to a free one.
    args = [a for a in args[1:] if not a.startswith("--metrics-address")]
    with controller(kubeconfig, tmp_path / "controller.log", *args) as process:
        wait_until("the controller to act", lambda: process.status("/readyz") == 200,
                   timeout=45, on_timeout=process.output)
        run_releases(sandbox, metric_url)
        log = process.output()
    # The start-up check that each named namespace exists (rollouts.kube.namespaces) is
    # refused by the namespaced Roles, on purpose: the controller skips it (a debug line).
    expected = {("GET", f"/api/v1/namespaces/{ns}", 403): 1
                for ns in values.get("watchNamespaces", ())}
    assert {key: sandbox.responses[key] for key in expected} == expected
    forbidden = {key: n for key, n in sandbox.responses.items()
                 if key[2] == 403 and key not in expected}
    assert not forbidden, f"403s: {forbidden}\n{log[-3000:]}"
    assert "Forbidden" not in log

    used, rules = used_by_controller(sandbox), granted(docs)
    assert used <= rules, f"used but not granted: {used - rules}"
    unexplained = rules - used - set(NOT_EXERCISED)
    assert not unexplained, f"granted but never used: {sorted(unexplained)}"
    stale = set(NOT_EXERCISED) & used
    assert not stale, f"now exercised, drop from NOT_EXERCISED: {stale}"


def test_a_rule_missing_from_the_chart_is_a_403_the_controller_reports(
        sandbox: CountingSandbox, tmp_path: pathlib.Path) -> None:
    """The enforcement bites: without rollouts/status the status write is refused."""
    docs = render({"trafficRouters": NO_ROUTERS, "replicaCount": 1}, tmp=tmp_path)
    role = by_kind(docs, "ClusterRole")[0]
    role["rules"] = [r for r in role["rules"] if r["resources"] != ["rollouts/status"]]
    kubeconfig = install(sandbox, docs)
    sandbox.apply(manifests("http://127.0.0.1:9/unused"))
    with controller(kubeconfig, tmp_path / "controller.log", "--standalone") as process:
        wait_until("a refused status write", lambda: sandbox.responses.get(
            ("PUT", f"/apis/rollouts.dev/v1alpha1/namespaces/{sandbox.namespace}"
                      "/rollouts/web/status", 403)), timeout=45, on_timeout=process.output)
        wait_until("the controller to log it", lambda: (
            'cannot update resource \\"rollouts/status\\" in API group \\"rollouts.dev\\"'
            in process.output()), on_timeout=process.output)


ROUTER_GROUPS = {"gateway.networking.k8s.io", "split.smi-spec.io", "networking.k8s.io"}


def router_manifests() -> list[dict[str, Any]]:
    """Three Rollouts behind a Gateway API HTTPRoute, an SMI TrafficSplit (created by the
    controller) and an NGINX canary Ingress (created by the controller)."""
    from tests.e2e.dsl import canary, pause, rollout_manifest, set_weight
    from tests.e2e.test_router_scenarios import HTTP_ROUTE, INGRESS
    docs: list[dict[str, Any]] = [HTTP_ROUTE, INGRESS]
    for name, routing in (
            ("web", {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web-route"}}}),
            ("split", {"smi": {"trafficSplitName": "split-split"}}),
            ("edge", {"nginx": {"stableIngress": "web-ingress"}})):
        manifest, services = rollout_manifest(
            name, canary(set_weight(50), pause(), trafficRouting=routing))
        if name == "web":  # the HTTPRoute and the Ingress name web-stable / web-canary
            docs += services
        else:
            strategy = manifest["spec"]["strategy"]["canary"]
            strategy["stableService"], strategy["canaryService"] = "web-stable", "web-canary"
        docs.append(manifest)
    return docs


def test_chart_router_rules_are_sufficient_and_used(sandbox: CountingSandbox,
                                                    tmp_path: pathlib.Path) -> None:
    """Gateway API, SMI and NGINX Rollouts released to 50% and deleted mid-release, on the
    chart's rules for those routers: no 403, and every router verb granted was called
    (get and patch the user's objects; create and delete the owned TrafficSplit and canary
    Ingress)."""
    docs = render({"trafficRouters": {**NO_ROUTERS, "gatewayAPI": True, "smi": True,
                                      "ingress": True}}, tmp=tmp_path)
    kubeconfig = install(sandbox, docs)
    args = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    args = [a for a in args[1:] if not a.startswith("--metrics-address")]
    names = ("web", "split", "edge")
    with controller(kubeconfig, tmp_path / "controller.log", *args) as process:
        wait_until("the controller to act", lambda: process.status("/readyz") == 200,
                   timeout=45, on_timeout=process.output)
        sandbox.apply(router_manifests())
        for name in names:
            sandbox.wait_phase(name, "Healthy")
            sandbox.set_image(name, f"example/{name}:2")
        for name in names:
            sandbox.wait_for(f"{name} paused at 50", lambda n=name: (
                (s := sandbox.status(n)).get("phase") == "Paused"
                and s["canary"]["weights"]["canary"]["weight"] == 50), timeout=60)
        for name in names:
            sandbox.emulator.delete_object("rollouts.dev", "v1alpha1", "rollouts",
                                           sandbox.namespace, name)
        for name in names:
            wait_until(f"{name} gone", lambda n=name: sandbox.emulator.get_object(
                "rollouts.dev", "v1alpha1", "rollouts", sandbox.namespace, n) is None,
                timeout=45, on_timeout=process.output)
        log = process.output()
    forbidden = {key: n for key, n in sandbox.responses.items() if key[2] == 403}
    assert not forbidden, f"403s: {forbidden}\n{log[-3000:]}"
    used = {u for u in used_by_controller(sandbox) if u[0] in ROUTER_GROUPS}
    rules = {g for g in granted(docs) if g[0] in ROUTER_GROUPS}
    assert used <= rules, f"used but not granted: {used - rules}"
    assert rules - used == {("gateway.networking.k8s.io", "grpcroutes", "get"),
                            ("gateway.networking.k8s.io", "grpcroutes", "patch"),
                            ("gateway.networking.k8s.io", "tcproutes", "get"),
                            ("gateway.networking.k8s.io", "tcproutes", "patch")}, rules - used
