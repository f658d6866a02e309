"""The trafficRouting models and their cross-field rules, as `rollout_manifest_errors` reports
them (the same (field, message) pairs lint and the controller show)."""

from __future__ import annotations

from typing import Any

import pytest

from rollouts.models.rollout import rollout_manifest_errors

C = "spec.strategy.canary"
ISTIO = {"istio": {"virtualService": {"name": "vs", "routes": ["primary"]}}}


def spec(canary: dict[str, Any]) -> dict[str, Any]:
    return {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
            "strategy": {"canary": canary}}


def routed(routing: dict[str, Any], steps: list[Any] | None = None, **more: Any
           ) -> dict[str, Any]:
    return spec({"canaryService": "c", "stableService": "s", "trafficRouting": routing,
                 "steps": steps or [], **more})


ACCEPTED = [
    routed(ISTIO, [{"setWeight": 10}, {"setCanaryScale": {"weight": 20}},
                   {"setHeaderRoute": {"name": "h", "match": [
                       {"headerName": "x-canary", "headerValue": {"exact": "yes"}}]}},
                   {"setMirrorRoute": {"name": "m", "percentage": 20, "match": [
                       {"method": {"exact": "GET"}, "path": {"prefix": "/api"},
                        "headers": {"x-a": {"regex": "b.*"}}}]}},
                   {"setHeaderRoute": {"name": "h"}}],
           **{"trafficRouting": {**ISTIO, "managedRoutes": [{"name": "h"}, {"name": "m"}]}}),
    routed({"nginx": {"stableIngress": "web", "annotationPrefix": "custom.nginx.org",
                      "additionalIngressAnnotations": {"canary-by-header": "X-Canary"},
                      "canaryIngressAnnotations": {"team": "web"}},
            "maxTrafficWeight": 1000},
           [{"setWeight": 500}], dynamicStableScale=True,
           abortScaleDownDelaySeconds=10,
           minPodsPerReplicaSet=2, scaleDownDelayRevisionLimit=1,
           canaryMetadata={"labels": {"role": "canary"}},
           stableMetadata={"labels": {"role": "stable"}}),
    spec({"pingPong": {"pingService": "ping", "pongService": "pong"},
          "trafficRouting": {"alb": {"ingress": "web", "servicePort": 80,
                                     "rootService": "root"}}}),
    routed({"nginx": {"stableIngresses": ["a", "b"]}, "smi": {}}),
    # pingPong with Istio: our extension (Argo Rollouts validates it for ALB only)
    spec({"pingPong": {"pingService": "ping", "pongService": "pong"},
          "trafficRouting": {"istio": {"virtualService": {"name": "vs", "routes": ["p"]}}}}),
    # ...and an ALB edge in front of another router, which splits canary/stableService
    routed({"alb": {"ingress": "web", "servicePort": 80, "rootService": "root"},
            "nginx": {"stableIngress": "web"}},
           pingPong={"pingService": "ping", "pongService": "pong"}),
    spec({"trafficRouting": {"istio": {  # subset-level: no Services needed
        "virtualService": {"name": "vs"},
        "destinationRule": {"name": "dr", "canarySubsetName": "c", "stableSubsetName": "s"}}}}),
    routed({"plugins": {"argoproj-labs/gatewayAPI": {"httpRoutes": [
        {"name": "r", "useHeaderRoutes": True}], "namespace": "edge"}}},
           [{"setHeaderRoute": {"name": "h", "match": [
               {"headerName": "x", "headerValue": {"prefix": "y"}}]}}],
           **{"trafficRouting": {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "r"}},
                                 "managedRoutes": [{"name": "h"}]}}),
]


@pytest.mark.parametrize("body", ACCEPTED)
def test_accepted(body: dict[str, Any]) -> None:
    assert rollout_manifest_errors(body, refuse_not_run=False) == []


REFUSED = [
    (routed({}), f"{C}.trafficRouting", "needs at least one router"),
    (spec({"trafficRouting": ISTIO}), f"{C}.canaryService",
     "canaryService is required with trafficRouting"),
    (routed({"istio": {"virtualService": {"name": "a"}, "virtualServices": [{"name": "b"}]}}),
     f"{C}.trafficRouting.istio", "needs exactly one of virtualService, virtualServices"),
    (routed({"nginx": {}}), f"{C}.trafficRouting.nginx",
     "needs exactly one of stableIngress, stableIngresses"),
    (routed({"alb": {"ingress": "x"}}), f"{C}.trafficRouting.alb.servicePort",
     "Field required"),
    (routed({"linkerd": {}}), f"{C}.trafficRouting.linkerd", "unknown field"),
    (routed(ISTIO, [{"setHeaderRoute": {"name": "h"}}]), f"{C}.steps[0].setHeaderRoute.name",
     'route "h" is not listed in spec.strategy.canary.trafficRouting.managedRoutes'),
    (routed({"alb": {"ingress": "x", "servicePort": 80}, "managedRoutes": [{"name": "m"}]},
            [{"setMirrorRoute": {"name": "m"}}]), f"{C}.steps[0].setMirrorRoute",
     "setMirrorRoute needs a router that supports it (argoproj-labs/gatewayAPI, istio); "
     "this Rollout uses alb"),
    (spec({"steps": [{"setCanaryScale": {"replicas": 1}}]}), f"{C}.steps[0].setCanaryScale",
     "setCanaryScale requires trafficRouting"),
    (spec({"steps": [{"setHeaderRoute": {"name": "h"}}]}), f"{C}.steps[0].setHeaderRoute",
     "setHeaderRoute requires trafficRouting"),
    (routed(ISTIO, [{"setWeight": 101}]), f"{C}.steps[0].setWeight",
     "setWeight 101 is above trafficRouting.maxTrafficWeight (100)"),
    (spec({"dynamicStableScale": True}), f"{C}.dynamicStableScale",
     "dynamicStableScale requires trafficRouting"),
    (routed(ISTIO, dynamicStableScale=True, scaleDownDelaySeconds=10),
     f"{C}.scaleDownDelaySeconds", "cannot be used with dynamicStableScale"),
    (spec({"pingPong": {"pingService": "a", "pongService": "b"},
           "trafficRouting": {"smi": {}}}),
     f"{C}.pingPong", "pingPong needs the alb router (as in Argo Rollouts) or istio (an "
     "extension of this controller); this Rollout uses smi"),
    (spec({"pingPong": {"pingService": "a", "pongService": "b"},
           "trafficRouting": {"nginx": {"stableIngress": "x"}}}),
     f"{C}.pingPong", "this Rollout uses nginx"),
    (spec({"pingPong": {"pingService": "a", "pongService": "b"},
           "trafficRouting": {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "r"}}}}),
     f"{C}.pingPong", "this Rollout uses argoproj-labs/gatewayAPI"),
    (spec({"pingPong": {"pingService": "a", "pongService": "b"}}),
     f"{C}.pingPong", "pingPong requires trafficRouting"),
    (routed(ISTIO, pingPong={"pingService": "a", "pongService": "a"}),
     f"{C}.pingPong", "pingService and pongService must be different Services"),
    (spec({"pingPong": {"pingService": "a", "pongService": "b"},
           "trafficRouting": {"alb": {"ingress": "web", "servicePort": 80}}}),
     f"{C}.trafficRouting.alb.rootService", "rootService is required with pingPong"),
    (routed({**ISTIO, "managedRoutes": [{"name": "h"}, {"name": "h"}]}),
     f"{C}.trafficRouting", "managedRoutes lists h more than once"),
    (routed({"plugins": {"argoproj-labs/gatewayAPI": {}}}),
     f"{C}.trafficRouting.plugins.argoproj-labs/gatewayAPI", "needs one of httpRoute"),
    (routed({"alb": {"ingress": "x", "servicePort": 80}, "managedRoutes": [{"name": "h"}]},
            [{"setHeaderRoute": {"name": "h", "match": [
                {"headerName": "x", "headerValue": {"regex": "a.*"}}]}}]),
     f"{C}.steps[0].setHeaderRoute.match[0].headerValue.regex", "not by regex"),
    (routed({"nginx": {"stableIngress": "x"}, "managedRoutes": [{"name": "h"}]},
            [{"setHeaderRoute": {"name": "h", "match": [
                {"headerName": "x", "headerValue": {"exact": "a"}},
                {"headerName": "y", "headerValue": {"exact": "b"}}]}}]),
     f"{C}.steps[0].setHeaderRoute.match", "nginx has one header canary per Ingress"),
    (routed(ISTIO, [{"setMirrorRoute": {"name": "m", "percentage": 101}}]),
     f"{C}.steps[0].setMirrorRoute.percentage", "less than or equal to 100"),
    (routed(ISTIO, [{"setHeaderRoute": {"name": "h", "match": [
        {"headerName": "x", "headerValue": {"exact": "a", "regex": "b"}}]}}]),
     f"{C}.steps[0].setHeaderRoute.match[0].headerValue", "needs exactly one of exact, prefix"),
]


@pytest.mark.parametrize(("body", "path", "message"), REFUSED)
def test_refused_naming_the_field(body: dict[str, Any], path: str, message: str) -> None:
    errors = rollout_manifest_errors(body, refuse_not_run=False)
    assert any(p == path and message in m for p, m in errors), errors


def test_the_controller_refuses_what_it_does_not_run_yet() -> None:
    """The routers, pingPong and pod metadata run: nothing accepted is refused as not run
    yet."""
    assert rollout_manifest_errors(ACCEPTED[1]) == []  # canaryMetadata / stableMetadata run
    assert rollout_manifest_errors(ACCEPTED[2]) == []  # pingPong runs
    assert rollout_manifest_errors(ACCEPTED[0]) == []  # istio, header and mirror routes run
    assert rollout_manifest_errors(spec({"steps": [{"setWeight": 5}]})) == []


def test_the_planner_plans_router_steps_once_the_objects_exist() -> None:
    """trafficRouting is no longer refused: what is missing is named (the Services here)."""
    from tests.unit.world import World, canary_spec
    result = World(canary_spec(
        [{"setCanaryScale": {"replicas": 1}}, {"setHeaderRoute": {"name": "h"}}],
        canaryService="c", stableService="s",
        trafficRouting={**ISTIO, "managedRoutes": [{"name": "h"}]})).step()
    assert result.status.phase == "Degraded"
    assert "spec.strategy.canary.trafficRouting" not in result.status.message
    assert 'spec.strategy.canary.canaryService: Service "c" not found' in result.status.message
    assert result.actions == ()
