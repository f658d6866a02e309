"""Golden writes per router: what each one writes for 30% canary, a header and a mirror route.

Patches are compared whole: the resourceVersion guard first, then only the fields the
router owns (weights, its own routes inserted as entries of their own, its annotation).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from rollouts.planner.routing import (
    HeaderMatch,
    HeaderRoute,
    MirrorRoute,
    ObjectKey,
    RequestMatch,
    RouteWrite,
    TrafficIntent,
)
from tests.unit.traffic.cases import BY_NAME, OWNER, Store

HEADER = HeaderRoute("header-1", (HeaderMatch("x-canary", "yes"),))
MIRROR = MirrorRoute("mirror-1", 50, (RequestMatch(method="POST", path="/api"),))
INTENT = TrafficIntent(30, 70, header_routes=(HEADER,), mirror_routes=(MIRROR,),
                       canary_hash="abc", stable_hash="def")


def guard(version: int) -> dict[str, Any]:
    return {"op": "replace", "path": "/metadata/resourceVersion", "value": str(version)}


def weight(path: str, value: int) -> dict[str, Any]:
    return {"op": "replace", "path": f"{path}/weight", "value": value}


def writes_for(name: str, intent: TrafficIntent = INTENT) -> tuple[RouteWrite, ...]:
    case = BY_NAME[name]
    router = case.router()
    intent = TrafficIntent(
        intent.canary_weight, intent.stable_weight, intent.max_weight,
        intent.header_routes if case.headers else (),
        intent.mirror_routes if case.mirrors else (), intent.canary_hash, intent.stable_hash)
    return router.writes(Store.of(case.objects).observe(router), intent)


def key(api: str, kind: str, name: str) -> ObjectKey:
    return ObjectKey(api, kind, name, "default")


CANARY_REF = {"name": "web-canary", "port": 80}
CANARY_HOST = {"host": "web-canary.default.svc.cluster.local", "port": {"number": 80}}

GOLDEN: dict[str, tuple[RouteWrite, ...]] = {
    "gatewayapi": (RouteWrite(key("gateway.networking.k8s.io/v1", "HTTPRoute", "web-route"),
                              "patch", patch=(
        guard(101),
        {"op": "add", "path": "/spec/rules/0", "value": {
            "name": "header-1",
            "matches": [{"path": {"type": "PathPrefix", "value": "/"},
                         "headers": [{"type": "Exact", "name": "x-canary", "value": "yes"}]}],
            "backendRefs": [CANARY_REF]}},
        {"op": "add", "path": "/spec/rules/1", "value": {
            "name": "mirror-1",
            "matches": [{"path": {"type": "PathPrefix", "value": "/api"}, "method": "POST"}],
            "filters": [{"type": "RequestMirror",
                         "requestMirror": {"backendRef": CANARY_REF, "percent": 50}}],
            "backendRefs": [{"name": "web-stable", "port": 80, "weight": 70},
                            {"name": "web-canary", "port": 80, "weight": 30}]}},
        weight("/spec/rules/2/backendRefs/0", 70),
        weight("/spec/rules/2/backendRefs/1", 30))),),
    "istio-host": (RouteWrite(key("networking.istio.io/v1beta1", "VirtualService", "web-vsvc"),
                              "patch", patch=(
        guard(101),
        {"op": "add", "path": "/spec/http/0", "value": {
            "name": "header-1", "match": [{"headers": {"x-canary": {"exact": "yes"}}}],
            "route": [{"destination": CANARY_HOST}]}},
        {"op": "add", "path": "/spec/http/1", "value": {
            "name": "mirror-1",
            "match": [{"method": {"exact": "POST"}, "uri": {"prefix": "/api"}}],
            "route": [{"destination": {"host": "web-stable", "port": {"number": 80}},
                       "weight": 70},
                      {"destination": CANARY_HOST, "weight": 30}],
            "mirror": CANARY_HOST, "mirrorPercentage": {"value": 50.0}}},
        weight("/spec/http/2/route/0", 70), weight("/spec/http/2/route/1", 30),
        weight("/spec/tls/0/route/0", 70), weight("/spec/tls/0/route/1", 30))),),
    "istio-subset": (
        RouteWrite(key("networking.istio.io/v1beta1", "VirtualService", "web-subsets"),
                   "patch", patch=(guard(101), weight("/spec/tcp/0/route/0", 70),
                                   weight("/spec/tcp/0/route/1", 30))),
        RouteWrite(key("networking.istio.io/v1beta1", "DestinationRule", "web-destrule"),
                   "patch", patch=(
            guard(102),
            {"op": "add", "path": "/spec/subsets/0/labels/rollouts-pod-template-hash",
             "value": "abc"},
            {"op": "add", "path": "/spec/subsets/1/labels/rollouts-pod-template-hash",
             "value": "def"}))),
    "nginx": (RouteWrite(key("networking.k8s.io/v1", "Ingress", "web-web-ingress-canary"),
                         "create", manifest={
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web-web-ingress-canary", "namespace": "default",
                     "ownerReferences": [OWNER], "annotations": {
                         "nginx.ingress.kubernetes.io/canary-by-cookie": "beta",
                         "nginx.ingress.kubernetes.io/canary": "true",
                         "nginx.ingress.kubernetes.io/canary-weight": "30",
                         "nginx.ingress.kubernetes.io/canary-by-header": "x-canary",
                         "nginx.ingress.kubernetes.io/canary-by-header-value": "yes"}},
        "spec": {"ingressClassName": "nginx", "rules": [{"host": "web.example.com", "http": {
            "paths": [{"path": "/", "pathType": "Prefix", "backend": {
                "service": {"name": "web-canary", "port": {"number": 80}}}}]}}]}}),),
    "alb": (RouteWrite(key("networking.k8s.io/v1", "Ingress", "web-alb"), "patch", patch=(
        guard(101),
        {"op": "add", "path": "/spec/rules/0/http/paths/0", "value": {
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "header-1", "port": {"name": "use-annotation"}}}}},
        {"op": "add", "path": "/metadata/annotations/alb.ingress.kubernetes.io~1actions.web-root",
         "value": json.dumps({"Type": "forward", "ForwardConfig": {
             "TargetGroups": [
                 {"ServiceName": "web-canary", "ServicePort": "80", "Weight": 30},
                 {"ServiceName": "web-stable", "ServicePort": "80", "Weight": 70}],
             "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 300}}},
             separators=(",", ":"))},
        {"op": "add", "path": "/metadata/annotations/alb.ingress.kubernetes.io~1actions.header-1",
         "value": json.dumps({"Type": "forward", "ForwardConfig": {"TargetGroups": [
             {"ServiceName": "web-canary", "ServicePort": "80"}]}}, separators=(",", ":"))},
        {"op": "add",
         "path": "/metadata/annotations/alb.ingress.kubernetes.io~1conditions.header-1",
         "value": json.dumps([{"Field": "http-header", "HttpHeaderConfig": {
             "HttpHeaderName": "x-canary", "Values": ["yes"]}}], separators=(",", ":"))})),),
    "smi": (RouteWrite(key("split.smi-spec.io/v1alpha2", "TrafficSplit", "web-split"),
                       "create", manifest={
        "apiVersion": "split.smi-spec.io/v1alpha2", "kind": "TrafficSplit",
        "metadata": {"name": "web-split", "namespace": "default", "ownerReferences": [OWNER]},
        "spec": {"service": "web", "backends": [{"service": "web-canary", "weight": 30},
                                                {"service": "web-stable", "weight": 70}]}}),),
    "traefik": (RouteWrite(key("traefik.io/v1alpha1", "TraefikService", "web-ts"), "patch",
                           patch=(guard(101), weight("/spec/weighted/services/0", 70),
                                  weight("/spec/weighted/services/1", 30))),),
    "apisix": (RouteWrite(key("apisix.apache.org/v2", "ApisixRoute", "web-apisix"), "patch",
                          patch=(guard(101),
                                 {"op": "add", "path": "/spec/http/0", "value": {
                                     "name": "header-1", "priority": 1,
                                     "match": {"paths": ["/*"], "exprs": [{
                                         "subject": {"scope": "Header", "name": "x-canary"},
                                         "op": "Equal", "value": "yes"}]},
                                     "backends": [{"serviceName": "web-canary",
                                                   "servicePort": 80}]}},
                                 weight("/spec/http/1/backends/0", 70),
                                 weight("/spec/http/1/backends/1", 30))),),
    "ambassador": (RouteWrite(key("getambassador.io/v2", "Mapping", "web-mapping-canary"),
                              "create", manifest={
        "apiVersion": "getambassador.io/v2", "kind": "Mapping",
        "metadata": {"name": "web-mapping-canary", "namespace": "default",
                     "ownerReferences": [OWNER]},
        "spec": {"prefix": "/", "service": "web-canary.default:80", "host": "web.example.com",
                 "weight": 30}}),),
    "appmesh": (
        RouteWrite(key("appmesh.k8s.aws/v1beta2", "VirtualRouter", "web-vrouter"), "patch",
                   patch=(guard(102),
                          weight("/spec/routes/0/httpRoute/action/weightedTargets/0", 70),
                          weight("/spec/routes/0/httpRoute/action/weightedTargets/1", 30))),
        *(RouteWrite(key("appmesh.k8s.aws/v1beta2", "VirtualNode", f"web-{side}-node"),
                     "patch", patch=(guard(version), {
                         "op": "add", "path": "/spec/podSelector/matchLabels/"
                         "rollouts-pod-template-hash", "value": value}))
          for side, version, value in (("canary", 103, "abc"), ("stable", 104, "def")))),
}


def _comparable(writes: tuple[RouteWrite, ...]) -> list[Any]:
    """Writes with their operations in the order built (the same in every process:
    tests/unit/traffic/test_patch_order.py)."""
    return [(w.key, w.op, [dict(o) for o in w.patch], w.manifest) for w in writes]


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_writes(name: str) -> None:
    assert _comparable(writes_for(name)) == _comparable(GOLDEN[name])


def test_every_case_has_golden_writes() -> None:
    assert set(GOLDEN) == set(BY_NAME)


# --- details of single routers ------------------------------------------------------------


def test_gateway_grpc_and_tcp_routes_get_weights_only() -> None:
    from tests.unit.traffic.cases import CANARY, HTTP_ROUTE, STABLE, Case, ref, strip_gateway
    grpc = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
            "metadata": {"name": "web-grpc", "namespace": "edge"},
            "spec": {"rules": [{"backendRefs": [ref(STABLE), ref(CANARY)]}]}}
    tcp = {"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TCPRoute",
           "metadata": {"name": "web-tcp", "namespace": "edge"},
           "spec": {"rules": [{"backendRefs": [ref(STABLE, 1), ref(CANARY, 0)]}]}}
    route = {**HTTP_ROUTE, "metadata": {**HTTP_ROUTE["metadata"], "namespace": "edge"}}
    case = Case("gw", {"plugins": {"argoproj-labs/gatewayAPI": {
        "namespace": "edge", "httpRoutes": [{"name": "web-route", "useHeaderRoutes": False}],
        "grpcRoute": "web-grpc", "tcpRoutes": [{"name": "web-tcp"}]}}},
        [route, grpc, tcp], strip_gateway)
    router = case.router()
    store = Store.of(case.objects)
    assert [k.kind for k in router.objects()] == ["HTTPRoute", "GRPCRoute", "TCPRoute"]
    # GRPCRoute refs carry no weight: Gateway API's default (1) is read back.
    assert router.verified_weight(store.observe(router)) is None
    writes = router.writes(store.observe(router), INTENT)  # no rule is added: useHeaderRoutes
    assert all(op["path"].endswith("/weight") for w in writes for op in w.patch[1:])
    store.apply(writes)
    assert router.verified_weight(store.observe(router)) == 30


def test_nginx_weight_total_and_regex_header() -> None:
    case = BY_NAME["nginx"]
    intent = TrafficIntent(300, 700, 1000, header_routes=(
        HeaderRoute("header-1", (HeaderMatch("x-user", "beta-", "prefix"),)),))
    router = case.router(1000)
    (write,) = router.writes(Store.of(case.objects).observe(router), intent)
    assert write.manifest is not None
    annotations = write.manifest["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/canary-weight"] == "300"
    assert annotations["nginx.ingress.kubernetes.io/canary-weight-total"] == "1000"
    assert annotations["nginx.ingress.kubernetes.io/canary-by-header-pattern"] == "^beta\\-.*"
    assert "nginx.ingress.kubernetes.io/canary-by-header-value" not in annotations


def test_alb_ping_pong_splits_between_ping_and_pong() -> None:
    from rollouts.models.rollout import CanaryStrategy
    from rollouts.traffic import build_router
    from tests.unit.traffic.cases import ALB_INGRESS
    strategy = CanaryStrategy.model_validate({
        "pingPong": {"pingService": "web-ping", "pongService": "web-pong"},
        "trafficRouting": {"alb": {"ingress": "web-alb", "servicePort": 80,
                                   "rootService": "web-root"}}})
    for stable, canary in (("ping", "web-pong"), ("pong", "web-ping")):
        router = build_router(strategy, "default", "web", OWNER, stable_ping_pong=stable)
        assert router is not None
        store = Store.of([ALB_INGRESS])
        store.apply(router.writes(store.observe(router), TrafficIntent(25, 75)))
        action = json.loads(store.objects[router.objects()[0]]["metadata"]["annotations"][
            "alb.ingress.kubernetes.io/actions.web-root"])
        groups = action["ForwardConfig"]["TargetGroups"]
        assert (groups[0]["ServiceName"], groups[0]["Weight"]) == (canary, 25)
        assert router.verified_weight(store.observe(router)) == 25


def test_alb_action_written_with_other_spacing_is_left_alone() -> None:
    case = BY_NAME["alb"]
    router = case.router()
    store = Store.of(case.objects)
    store.apply(router.writes(store.observe(router), TrafficIntent(30, 70)))
    body = store.objects[router.objects()[0]]
    name = "alb.ingress.kubernetes.io/actions.web-root"
    body["metadata"]["annotations"][name] = json.dumps(
        json.loads(body["metadata"]["annotations"][name]), indent=2)
    assert router.writes(store.observe(router), TrafficIntent(30, 70)) == ()
