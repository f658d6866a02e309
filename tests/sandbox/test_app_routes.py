"""The sandbox's clients send their requests through the weights the route objects hold."""

from __future__ import annotations

import json
import pathlib
from fractions import Fraction
from typing import Any

from rollouts.sandbox.apiserver import ApiEmulator
from rollouts.sandbox.app import AppSimulator
from rollouts.sandbox.routes import route_groups
from tests.sandbox.test_app import Targets, replica_set, service, set_ready, wait_until
from tests.sandbox.test_app import emulator as emulator_fixture

emulator = emulator_fixture  # the same fixture, under the name the tests ask for

ROUTER_CRDS = pathlib.Path(__file__).resolve().parents[2] / "rollouts/sandbox/crds/routers.yaml"
QUARTER = {"web-stable": Fraction(3, 4), "web-canary": Fraction(1, 4)}


def http_route(canary: int) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web-route", "namespace": "default"},
            "spec": {"rules": [
                {"name": "testers", "backendRefs": [{"name": "web-canary", "port": 80}]},
                {"backendRefs": [{"name": "web-stable", "port": 80, "weight": 100 - canary},
                                 {"name": "web-canary", "port": 80, "weight": canary}]}]}}


def ingress(name: str, service_name: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": name, "annotations": annotations},
            "spec": {"rules": [{"host": "web.example.com", "http": {"paths": [
                {"path": "/", "backend": {"service": {"name": service_name}}}]}}]}}


def test_weights_are_read_from_each_kind_managed_rules_carry_none() -> None:
    assert route_groups({"httproutes": [http_route(25)]}) == [QUARTER]
    assert route_groups({"virtualservices": [{"spec": {"http": [
        {"name": "testers", "route": [{"destination": {"host": "web-canary"}}]},
        {"name": "primary", "route": [
            {"destination": {"host": "web-stable"}, "weight": 75},
            {"destination": {"host": "web-canary.default.svc.cluster.local"},
             "weight": 25}]}]}}]}) == [QUARTER]
    assert route_groups({"ingresses": [
        ingress("web", "web-stable", {}),
        ingress("web-web-canary", "web-canary", {
            "nginx.ingress.kubernetes.io/canary": "true",
            "nginx.ingress.kubernetes.io/canary-weight": "25"})]}) == [QUARTER]
    assert route_groups({"trafficsplits": [{"spec": {"backends": [
        {"service": "web-stable", "weight": 75},
        {"service": "web-canary", "weight": 25}]}}]}) == [QUARTER]
    assert route_groups({"httproutes": [http_route(0)]}) == [
        {"web-stable": Fraction(1), "web-canary": Fraction(0)}]
    assert route_groups({"trafficsplits": [{"spec": {}}]}) == []


def test_the_simulated_clients_follow_the_route_weights(emulator: ApiEmulator) -> None:
    emulator.apply_yaml(ROUTER_CRDS)
    now = [0.0]
    with AppSimulator(emulator, Targets(), spare_endpoints=2, clock=lambda: now[0]) as sim:
        emulator.apply_manifest(service("web-stable", {"app": "web",
                                                       "rollouts-pod-template-hash": "old"}))
        emulator.apply_manifest(service("web-canary", {"app": "web",
                                                       "rollouts-pod-template-hash": "new"}))
        emulator.apply_manifest(replica_set("web-old", "old", "web:1", 4))
        emulator.apply_manifest(replica_set("web-new", "new", "web:2", 1))
        set_ready(emulator, "web-old", 4)
        set_ready(emulator, "web-new", 1)
        emulator.apply_manifest(http_route(25))
        old, new = ("default", "web-old"), ("default", "web-new")
        # 5 pods behind the route serve 50 req/s in all: a quarter to the canary's one pod.
        wait_until(lambda: sim.apps.get(new) and sim.apps[new].rates.get("web-canary"))
        wait_until(lambda: sim.apps[new].rates == {"web-canary": 12.5})
        assert sim.apps[old].rates == {"web-stable": 37.5}
        # The route goes back to all-stable (an abort): the canary gets no request.
        emulator.apply_manifest(http_route(0))
        wait_until(lambda: sim.apps[new].rates == {"web-canary": 0.0})
        assert sim.apps[old].rates == {"web-stable": 50.0}
        before = sim.apps[new].streams["web-canary"].requests
        now[0] += 100
        sim.apps[new].advance(now[0])
        assert sim.apps[new].streams["web-canary"].requests == before


def alb_ingress(action: object) -> dict[str, Any]:
    prefix = "alb.ingress.kubernetes.io"
    return {"metadata": {"name": "web-alb", "annotations": {
        f"{prefix}/actions.web-stable": json.dumps(action),
        f"{prefix}/actions.testers": json.dumps({"Type": "forward", "ForwardConfig": {
            "TargetGroups": [{"ServiceName": "web-canary", "ServicePort": "80"}]}})}},
        "spec": {"rules": [{"http": {"paths": [
            {"path": "/", "backend": {"service": {"name": "testers",
                                                  "port": {"name": "use-annotation"}}}},
            {"path": "/", "backend": {"service": {"name": "web-stable",
                                                  "port": {"name": "use-annotation"}}}}]}}]}}


def test_the_other_routers_objects_are_read_too() -> None:
    """ALB's action annotation, a weighted TraefikService, an ApisixRoute's backends,
    Ambassador Mappings sharing a prefix, an App Mesh VirtualRouter's targets (a virtual
    node standing for the Service its DNS discovery names)."""
    action = {"Type": "forward", "ForwardConfig": {"TargetGroups": [
        {"ServiceName": "web-canary", "ServicePort": "80", "Weight": 25},
        {"ServiceName": "web-stable", "ServicePort": "80", "Weight": 75}]}}
    assert route_groups({"ingresses": [alb_ingress(action)]}) == [QUARTER]
    assert route_groups({"ingresses": [alb_ingress("not json")]}) == []
    assert route_groups({"traefikservices": [{"spec": {"weighted": {"services": [
        {"name": "web-stable", "weight": 75}, {"name": "web-canary", "weight": 25}]}}}]}) == [
        QUARTER]
    assert route_groups({"apisixroutes": [{"spec": {"http": [
        {"name": "testers", "backends": [{"serviceName": "web-canary"}]},
        {"name": "main", "backends": [{"serviceName": "web-stable", "weight": 75},
                                      {"serviceName": "web-canary", "weight": 25}]}]}}]}) == [
        QUARTER]
    mapping = {"spec": {"prefix": "/", "service": "web-stable.default:80"}}
    canary = {"spec": {"prefix": "/", "service": "http://web-canary:80", "weight": 25}}
    elsewhere = {"spec": {"prefix": "/admin", "service": "admin"}}
    assert route_groups({"mappings": [mapping, canary, elsewhere]}) == [QUARTER]
    assert route_groups({"mappings": [mapping]}) == []
    nodes = [{"metadata": {"name": f"web-{side}-node"}, "spec": {"serviceDiscovery": {
        "dns": {"hostname": f"web-{side}.default.svc.cluster.local"}}}}
        for side in ("canary", "stable")]
    router = {"spec": {"routes": [{"name": "primary", "httpRoute": {"action": {
        "weightedTargets": [{"virtualNodeRef": {"name": "web-stable-node"}, "weight": 75},
                            {"virtualNodeRef": {"name": "web-canary-node"}, "weight": 25}]}}}]}}
    assert route_groups({"virtualrouters": [router], "virtualnodes": nodes}) == [QUARTER]
    assert route_groups({"virtualrouters": [router]}) == [
        {"web-stable-node": Fraction(3, 4), "web-canary-node": Fraction(1, 4)}]
