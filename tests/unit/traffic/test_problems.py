"""problems(): what stops a router from acting, named by spec field; never a crash. And the
factory: combined routers, plugins from entry points, unknown plugins."""

from __future__ import annotations

import copy
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from rollouts.models.rollout import CanaryStrategy
from rollouts.models.traffic import RolloutTrafficRouting
from rollouts.planner.routing import TrafficIntent
from rollouts.traffic import ENTRY_POINT_GROUP, build_router, spec_problems
from tests.unit.traffic.cases import (
    BY_NAME,
    CASES,
    NGINX_INGRESS,
    OWNER,
    TRAEFIK_SERVICE,
    VIRTUAL_SERVICE,
    Case,
    Store,
)

R = "spec.strategy.canary.trafficRouting"


@pytest.mark.parametrize("case", [c for c in CASES if c.objects], ids=lambda c: c.name)
def test_a_missing_object_is_a_problem_not_a_crash(case: Case) -> None:
    router = case.router()
    observed = Store().observe(router)
    found = router.problems(observed)
    assert found and all(path.startswith(R) and "not found" in msg for path, msg in found)
    assert router.writes(observed, TrafficIntent(10, 90)) == ()
    assert router.verified_weight(observed) is None
    assert router.finalize(observed) == ()


def _renamed(body: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """The same object with every mention of `old` replaced (its names and references)."""
    result: dict[str, Any] = json.loads(json.dumps(body).replace(old, new))
    return result


@pytest.mark.parametrize("name", ["gatewayapi", "istio-host", "istio-subset", "traefik",
                                  "apisix", "appmesh"])
def test_a_route_without_the_canary_destination_is_named(name: str) -> None:
    case = BY_NAME[name]
    objects = [_renamed(o, "web-canary", "web-other") for o in case.objects]
    if name == "istio-subset":  # subset-level: the destinations name subsets
        objects = [_renamed(o, '"canary"', '"blue"') for o in case.objects]
    if name == "appmesh":  # the routes name virtual nodes
        objects = [_renamed(o, '"web-canary-node"}', '"web-x"}') for o in case.objects]
    router = case.router()
    observed = Store.of(objects).observe(router)
    found = router.problems(observed)
    assert found, name
    assert all(path.startswith(R) for path, _ in found)
    assert router.writes(observed, TrafficIntent(10, 90)) == ()


def test_problem_messages() -> None:
    vs = copy.deepcopy(VIRTUAL_SERVICE)
    vs["spec"]["http"][0]["name"] = "renamed"
    router = BY_NAME["istio-host"].router()
    assert router.problems(Store.of([vs]).observe(router)) == [
        (f"{R}.istio.virtualService.routes", "VirtualService web-vsvc has no http route named "
         "primary")]
    ts = copy.deepcopy(TRAEFIK_SERVICE)
    ts["spec"]["weighted"]["services"].pop(1)
    router = BY_NAME["traefik"].router()
    assert router.problems(Store.of([ts]).observe(router)) == [
        (f"{R}.traefik.weightedTraefikServiceName",
         "TraefikService web-ts has no weighted services web-canary and web-stable")]


def test_an_object_in_our_way_is_not_overwritten() -> None:
    router = BY_NAME["nginx"].router()
    squatter = copy.deepcopy(NGINX_INGRESS)
    squatter["metadata"]["name"] = "web-web-ingress-canary"
    observed = Store.of([NGINX_INGRESS, squatter]).observe(router)
    assert router.problems(observed) == [
        (f"{R}.nginx.stableIngress", "Ingress web-web-ingress-canary exists and was not created "
         "by this Rollout; rename or delete it")]
    assert router.writes(observed, TrafficIntent(10, 90)) == ()
    assert router.finalize(observed) == ()


def test_app_mesh_follows_the_virtual_service_to_its_router() -> None:
    router = BY_NAME["appmesh"].router()
    assert [k.kind for k in router.objects()] == ["VirtualService", "VirtualNode", "VirtualNode"]
    store = Store.of(BY_NAME["appmesh"].objects)
    assert "VirtualRouter" in [k.kind for k in router.objects(store.observe(router))]
    del store.objects[next(k for k in store.objects if k.kind == "VirtualRouter")]
    assert router.problems(store.observe(router)) == [
        (f"{R}.appMesh.virtualService.name",
         "VirtualRouter web-vrouter not found in namespace default")]


# --- the factory ----------------------------------------------------------------------------


def _strategy(routing: dict[str, Any]) -> CanaryStrategy:
    return CanaryStrategy.model_validate({"canaryService": "web-canary",
                                          "stableService": "web-stable",
                                          "trafficRouting": routing})


def test_no_traffic_routing_no_router() -> None:
    assert build_router(CanaryStrategy(), "default", "web", OWNER) is None


def test_several_routers_hold_the_same_weight() -> None:
    nginx, smi = BY_NAME["nginx"], BY_NAME["smi"]
    router = build_router(_strategy({**nginx.routing, **smi.routing}), "default", "web", OWNER)
    assert router is not None and router.name == "nginx+smi"
    store = Store.of(nginx.objects)
    store.apply(router.writes(store.observe(router), TrafficIntent(40, 60)))
    assert router.verified_weight(store.observe(router)) == 40
    store.apply(router.finalize(store.observe(router)))
    assert [k.kind for k in store.objects] == ["Ingress"]


def test_an_unknown_plugin_is_named() -> None:
    strategy = _strategy({"plugins": {"acme/nowhere": {"x": 1}}})
    field = f'{R}.plugins["acme/nowhere"]'
    message = ('unknown traffic router plugin "acme/nowhere": no "rollouts.traffic_routers" '
               "entry point of that name is installed")
    assert strategy.traffic_routing is not None
    assert spec_problems(strategy.traffic_routing) == [(field, message)]
    router = build_router(strategy, "default", "web", OWNER)
    assert router is not None
    assert router.problems({}) == [(field, message)]
    assert router.writes({}, TrafficIntent(1, 99)) == ()


def test_a_plugin_registered_as_an_entry_point_is_built(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "acme_router.py").write_text(textwrap.dedent("""
        from rollouts.traffic.smi import SMIRouter
        from rollouts.models.traffic import SMITrafficRouting

        def make(config, binding):
            return SMIRouter(SMITrafficRouting.model_validate(config), binding)
    """))
    info = tmp_path / "acme_router-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-router\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nacme/split = "
                                           "acme_router:make\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    strategy = _strategy({"plugins": {"acme/split": {"trafficSplitName": "acme"}}})
    assert strategy.traffic_routing is not None
    assert spec_problems(strategy.traffic_routing) == []
    router = build_router(strategy, "default", "web", OWNER)
    assert router is not None and router.name == "smi"
    store = Store()
    store.apply(router.writes(store.observe(router), TrafficIntent(5, 95)))
    assert [k.name for k in store.objects] == ["acme"]
    sys.modules.pop("acme_router", None)


def test_gateway_plugin_config_is_validated_by_name() -> None:
    from pydantic import ValidationError
    with pytest.raises(ValidationError) as info:
        RolloutTrafficRouting.model_validate({"plugins": {"argoproj-labs/gatewayAPI": {
            "httpRoute": "r", "bogus": 1}}})
    assert info.value.errors()[0]["loc"] == ("plugins", "argoproj-labs/gatewayAPI", "bogus")
