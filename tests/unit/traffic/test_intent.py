"""managed_routes_at: the header and mirror routes in force after the steps run so far."""

from __future__ import annotations

from rollouts.models.rollout import CanaryStrategy
from rollouts.planner.routing import (
    HeaderMatch,
    HeaderRoute,
    MirrorRoute,
    RequestMatch,
    managed_routes_at,
)

STRATEGY = CanaryStrategy.model_validate({
    "canaryService": "c", "stableService": "s",
    "trafficRouting": {"istio": {"virtualService": {"name": "vs"}},
                       "managedRoutes": [{"name": "mirror"}, {"name": "beta"}, {"name": "qa"}]},
    "steps": [
        {"setWeight": 10},
        {"setHeaderRoute": {"name": "qa", "match": [
            {"headerName": "x-qa", "headerValue": {"regex": "^team-"}}]}},
        {"setHeaderRoute": {"name": "beta", "match": [
            {"headerName": "x-beta", "headerValue": {"exact": "1"}},
            {"headerName": "x-os", "headerValue": {"prefix": "linux"}}]}},
        {"setMirrorRoute": {"name": "mirror", "match": [
            {"method": {"exact": "POST"}, "path": {"regex": "/api/.*"},
             "headers": {"x-shadow": {"exact": "yes"}}}, {}]}},
        {"pause": {}},
        {"setHeaderRoute": {"name": "qa"}},
        {"setMirrorRoute": {"name": "mirror", "percentage": 30, "match": [
            {"path": {"prefix": "/"}}]}},
    ]})

QA = HeaderRoute("qa", (HeaderMatch("x-qa", "^team-", "regex"),))
BETA = HeaderRoute("beta", (HeaderMatch("x-beta", "1"), HeaderMatch("x-os", "linux", "prefix")))
MIRROR = MirrorRoute("mirror", 100, (
    RequestMatch(method="POST", path="/api/.*", path_match="regex",
                 headers=(HeaderMatch("x-shadow", "yes"),)),
    RequestMatch()))


def test_nothing_before_the_first_route_step() -> None:
    assert managed_routes_at(STRATEGY, 0) == ((), ())
    assert managed_routes_at(STRATEGY, 1) == ((), ())


def test_routes_accumulate_in_managed_routes_order() -> None:
    assert managed_routes_at(STRATEGY, 2) == ((QA,), ())
    assert managed_routes_at(STRATEGY, 3) == ((BETA, QA), ())
    assert managed_routes_at(STRATEGY, 5) == ((BETA, QA), (MIRROR,))


def test_a_step_without_match_removes_and_a_later_one_replaces() -> None:
    assert managed_routes_at(STRATEGY, 6) == ((BETA,), (MIRROR,))
    replaced = MirrorRoute("mirror", 30, (RequestMatch(path="/", path_match="prefix"),))
    assert managed_routes_at(STRATEGY, 7) == ((BETA,), (replaced,))
    assert managed_routes_at(STRATEGY, 99) == managed_routes_at(STRATEGY, 7)


def test_no_traffic_routing_no_routes() -> None:
    assert managed_routes_at(CanaryStrategy(steps=[{"setWeight": 5}]), 1) == ((), ())
