"""The Helm chart: lint, render for several value sets, validate offline, check its promises.

Every rendered object of a built-in kind is validated with kubernetes-validate (strict, a
current Kubernetes); the custom resources the chart renders are validated against their
CRD's schema (the chart's own crds/) or, for the ServiceMonitor, checked by hand.
"""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from rollouts.models.crds import crds_differ
from rollouts.telemetry import Telemetry
from tests.chart.helm import CHART, NAMESPACE, ROOT, VALUE_SETS, by_kind, helm, render

KUBERNETES_VERSIONS = ("1.35.0", kubernetes_validate.latest_version())
BUILTIN_GROUPS = ("", "apps", "policy", "rbac.authorization.k8s.io", "apiextensions.k8s.io")


def test_value_sets_exist() -> None:
    assert set(VALUE_SETS) >= {"default", "namespaced", "no-ha", "servicemonitor"}


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm_lint_strict(name: str) -> None:
    done = helm("lint", "--strict", str(CHART), "--values", str(VALUE_SETS[name]))
    assert done.returncode == 0, done.stdout + done.stderr


def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for path in (CHART / "crds").glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
            schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


def _check_service_monitor(doc: dict[str, Any], docs: list[dict[str, Any]]) -> None:
    spec = doc["spec"]
    service = next(d for d in by_kind(docs, "Service") if d["metadata"]["name"].endswith(
        "-metrics"))
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert all(e["port"] in ports and e["path"] == "/metrics" for e in spec["endpoints"])


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_rendered_manifests_validate_offline(name: str) -> None:
    docs = render(VALUE_SETS[name], crds=True)
    schemas = _crd_schemas()
    for doc in docs:
        group = doc["apiVersion"].rpartition("/")[0]
        what = f"{doc['kind']}/{doc['metadata']['name']}"
        if group in BUILTIN_GROUPS:
            for version in KUBERNETES_VERSIONS:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    pytest.fail(f"{what} is invalid for Kubernetes {version}: {exc.message}")
        elif (doc["apiVersion"], doc["kind"]) in schemas:
            jsonschema.validate(doc, schemas[(doc["apiVersion"], doc["kind"])])
        elif doc["kind"] == "ServiceMonitor":
            _check_service_monitor(doc, docs)
        else:
            pytest.fail(f"{what}: no schema to validate {doc['apiVersion']} against")


def test_validation_bites() -> None:
    deployment = by_kind(render(), "Deployment")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_chart_crds_are_the_generated_ones() -> None:
    """One source of truth: the models generate crds/, and the chart carries the same files."""
    chart_crds = {p.name: p.read_text() for p in (CHART / "crds").glob("*.yaml")}
    repo_crds = {p.name: p.read_text() for p in (ROOT / "crds").glob("*.yaml")}
    assert chart_crds == repo_crds, (
        "charts/rollouts/crds differs from crds/: run `rollouts gen-crds`")
    assert crds_differ(CHART / "crds") == []


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]


def test_default_install_is_ha_hardened_and_probed() -> None:
    docs = render(VALUE_SETS["default"])
    deployment = by_kind(docs, "Deployment")[0]
    pod = deployment["spec"]["template"]["spec"]
    container = _container(docs)
    assert deployment["spec"]["replicas"] == 2
    assert f"--peering={'rollouts'}" in container["args"]
    assert "--standalone" not in container["args"]
    assert by_kind(docs, "ClusterKopfPeering")[0]["metadata"]["name"] == "rollouts"
    assert by_kind(docs, "PodDisruptionBudget")[0]["spec"]["maxUnavailable"] == 1
    # Hardened: non-root, read-only root, no escalation, no capabilities, seccomp.
    security = container["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"].startswith("/readyz")
    assert "--metrics-address=:8080" in container["args"]
    assert {"name": "POD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in (
        container["env"])
    service = by_kind(docs, "Service")[0]
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert not by_kind(docs, "Role") and not by_kind(docs, "ServiceMonitor")


def _rules(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def test_namespaced_mode_has_a_role_per_namespace() -> None:
    docs = render(VALUE_SETS["namespaced"])
    container = _container(docs)
    assert [a for a in container["args"] if a.startswith("--namespace=")] == [
        "--namespace=shop", "--namespace=payments"]
    roles = {r["metadata"]["namespace"]: r for r in by_kind(docs, "Role")}
    bindings = {b["metadata"]["namespace"]: b for b in by_kind(docs, "RoleBinding")}
    assert set(roles) == set(bindings) == {"shop", "payments"}
    for binding in bindings.values():
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "rollouts", "namespace": NAMESPACE}]
    assert ("rollouts.dev", "rollouts/status", "update") in _rules(roles["shop"])
    assert ("kopf.dev", "kopfpeerings", "patch") in _rules(roles["shop"])
    # The ClusterRole keeps only cluster-scoped kinds: nothing namespaced cluster-wide.
    cluster = _rules(by_kind(docs, "ClusterRole")[0])
    assert {resource for _, resource, _ in cluster} == {"clusteranalysistemplates"}
    assert {p["metadata"]["namespace"] for p in by_kind(docs, "KopfPeering")} == {
        "shop", "payments"}


def test_no_ha_is_one_standalone_replica() -> None:
    docs = render(VALUE_SETS["no-ha"])
    assert by_kind(docs, "Deployment")[0]["spec"]["replicas"] == 1
    assert "--standalone" in _container(docs)["args"]
    assert not by_kind(docs, "PodDisruptionBudget")
    assert not by_kind(docs, "ClusterKopfPeering")
    assert not [r for r in _rules(by_kind(docs, "ClusterRole")[0]) if r[0] == "kopf.dev"]


def test_notifications_pass_their_objects_and_grant_only_them(tmp_path: pathlib.Path) -> None:
    docs = render({"notifications": {"configMap": "notify", "secret": "notify-urls"}},
                  tmp=tmp_path)
    args = _container(docs)["args"]
    assert f"--notifications-configmap={NAMESPACE}/notify" in args
    assert "--notifications-secret=notify-urls" in args
    (role,) = [r for r in by_kind(docs, "Role") if r["metadata"]["name"].endswith(
        "-notifications")]
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["notify"],
         "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["notify-urls"],
         "verbs": ["get"]}]
    (binding,) = [b for b in by_kind(docs, "RoleBinding")
                  if b["metadata"]["name"] == role["metadata"]["name"]]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    # Off by default: no flag, no Role.
    default = render(VALUE_SETS["default"])
    assert not [a for a in _container(default)["args"] if "notifications" in a]
    assert not by_kind(default, "Role")


ROUTERS = {
    "gatewayAPI": ("gateway.networking.k8s.io", {"httproutes", "grpcroutes", "tcproutes"}),
    "istio": ("networking.istio.io", {"virtualservices", "destinationrules"}),
    "ingress": ("networking.k8s.io", {"ingresses"}),
    "smi": ("split.smi-spec.io", {"trafficsplits"}),
    "traefik": ("traefik.io", {"traefikservices"}),
    "apisix": ("apisix.apache.org", {"apisixroutes"}),
    "ambassador": ("getambassador.io", {"mappings"}),
    "appMesh": ("appmesh.k8s.aws", {"virtualservices", "virtualrouters", "virtualnodes"}),
}


@pytest.mark.parametrize("router", sorted(ROUTERS))
def test_each_router_switch_grants_only_its_kinds(router: str, tmp_path: pathlib.Path) -> None:
    switches = {name: name == router for name in ROUTERS}
    rules = _rules(by_kind(render({"trafficRouters": switches}, tmp=tmp_path),
                           "ClusterRole")[0])
    group, resources = ROUTERS[router]
    granted = {(g, r, v) for g, r, v in rules if g == group}
    assert {r for _, r, _ in granted} == resources
    # Read with get on each pass (never listed or watched); objects the controller creates
    # and owns (NGINX canary Ingresses, SMI TrafficSplits, Ambassador canary Mappings) are
    # also created and deleted.
    writes = {"create", "delete"} if router in ("ingress", "smi", "ambassador") else set()
    for resource in resources:
        assert {v for _, r, v in granted if r == resource} == {"get", "patch"} | writes
    others = {g for g, _ in ROUTERS.values()} - {group}
    assert not [r for r in rules if r[0] in others]


def test_common_routers_are_on_by_default() -> None:
    groups = {g for g, _, _ in _rules(by_kind(render(), "ClusterRole")[0])}
    assert {"gateway.networking.k8s.io", "networking.istio.io", "networking.k8s.io"} <= groups
    assert "split.smi-spec.io" not in groups


def test_servicemonitor_and_dashboard() -> None:
    docs = render(VALUE_SETS["servicemonitor"])
    monitor = by_kind(docs, "ServiceMonitor")[0]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    dashboard = json.loads(by_kind(docs, "ConfigMap")[0]["data"]["rollouts.json"])
    # Every metric the dashboard queries is one the controller exports.
    exported = {family.name for family in Telemetry().registry.collect()}
    queried = {
        re.sub(r"_(bucket|count|sum|total)$", "", name)
        for panel in dashboard["panels"] for target in panel["targets"]
        for name in re.findall(r"\brollouts_[a-z_]+", target["expr"])
    }
    assert queried and queried <= exported, queried - exported


@pytest.mark.parametrize(("values", "complaint"), [
    ({"replicaCount": 0}, "replicaCount"),
    ({"replicaCunt": 2}, "replicaCunt"),
    ({"trafficRouters": {"nginx": True}}, "nginx"),
    ({"watchNamespaces": ["Not_A_Namespace"]}, "watchNamespaces"),
    ({"notifications": {"configMap": "Bad Name"}}, "/notifications/configMap"),
    ({"metrics": {"serviceMonitor": {"enabled": True}, "service": {"enabled": False}}},
     "metrics.service.enabled"),
])
def test_bad_values_are_refused(values: dict[str, Any], complaint: str,
                                tmp_path: pathlib.Path) -> None:
    path = tmp_path / "values.json"
    path.write_text(json.dumps(values))
    done = helm("template", "r", str(CHART), "--values", str(path))
    assert done.returncode != 0
    assert complaint in done.stderr
