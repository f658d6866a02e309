"""End to end: an experiment step whose templates have a `weight`, under SMI, Istio and the
Gateway API.

While the step's Experiment runs, the route (TrafficSplit, VirtualService, HTTPRoute)
sends each template's Service its weight (taken from the stable's share), and the simulated
clients' requests reach the templates' pods in those shares; when the step ends (the
Experiment's duration passed, or the Rollout is aborted) that traffic goes back to the
stable BEFORE the Experiment's ReplicaSets are scaled down, checked in the order the API
server applied the writes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from rollouts.models.wire import GROUP, VERSION
from rollouts.sandbox.app import AppSimulator
from tests.e2e.conftest import CountingSandbox
from tests.e2e.dsl import (
    Check,
    Obj,
    abort,
    aborted,
    canary,
    image,
    pause,
    paused,
    promote,
    rollout,
    scenario,
    set_weight,
    sizes,
)
from tests.e2e.test_router_scenarios import _NoTargets, canary_share

pytestmark = pytest.mark.e2e

NAME = "exw"
TEMPLATES = ("baseline", "canary")


@dataclasses.dataclass(frozen=True)
class Router:
    name: str
    routing: Obj
    objects: list[Obj]
    resource: tuple[str, str, str]  # group, version, plural of the route object
    route: str  # its name
    # The route object's weighted destinations: Service -> weight.
    read: Callable[[Obj], dict[str, int]]


def _split_backends(split: Obj) -> dict[str, int]:
    return {b["service"]: b["weight"] for b in (split.get("spec") or {}).get("backends", [])}


def _vs_destinations(vs: Obj) -> dict[str, int]:
    primary = next((r for r in (vs.get("spec") or {}).get("http", [])
                    if r.get("name") == "primary"), {})
    return {d["destination"]["host"]: d.get("weight", 0) for d in primary.get("route", [])}


VIRTUAL_SERVICE = {
    "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
    "metadata": {"name": f"{NAME}-vsvc"},
    "spec": {"hosts": ["exw.example.com"], "http": [{"name": "primary", "route": [
        {"destination": {"host": f"{NAME}-stable"}, "weight": 100},
        {"destination": {"host": f"{NAME}-canary"}, "weight": 0}]}]},
}
HTTP_ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
    "metadata": {"name": f"{NAME}-route"},
    "spec": {"parentRefs": [{"name": "gateway"}], "rules": [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
         "backendRefs": [{"name": f"{NAME}-stable", "port": 80, "weight": 100},
                         {"name": f"{NAME}-canary", "port": 80, "weight": 0}]}]},
}


def _rule_backends(route: Obj) -> dict[str, int]:
    rules = (route.get("spec") or {}).get("rules", [])
    return {r["name"]: r.get("weight", 1) for r in (rules[0] if rules else {}).get(
        "backendRefs", [])}


ROUTERS = [
    Router("smi", {"smi": {"rootService": NAME, "trafficSplitName": f"{NAME}-split"}}, [],
           ("split.smi-spec.io", "v1alpha2", "trafficsplits"), f"{NAME}-split",
           _split_backends),
    Router("istio", {"istio": {"virtualService": {"name": f"{NAME}-vsvc",
                                                  "routes": ["primary"]}}},
           [VIRTUAL_SERVICE], ("networking.istio.io", "v1beta1", "virtualservices"),
           f"{NAME}-vsvc", _vs_destinations),
    Router("gatewayapi", {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": f"{NAME}-route"}}},
           [HTTP_ROUTE], ("gateway.networking.k8s.io", "v1", "httproutes"), f"{NAME}-route",
           _rule_backends),
]


def experiment(duration: str) -> Obj:
    return {"experiment": {"duration": duration, "templates": [
        {"name": "baseline", "specRef": "stable", "replicas": 1, "weight": 5},
        {"name": "canary", "specRef": "canary", "replicas": 1, "weight": 10}]}}


def weights(sb: CountingSandbox, router: Router) -> dict[str, int]:
    return router.read(sb.emulator.get_object(*router.resource, sb.namespace, router.route)
                       or {})


def route_is(router: Router, expected: dict[str, int]) -> Check:
    def test(sb: CountingSandbox, _: Any) -> str | None:
        got = weights(sb, router)
        return None if got == expected else f"destinations {got}"
    return Check(f"{router.name} destinations {expected}", test)


def experiments(sb: CountingSandbox) -> list[Obj]:
    return [e for e in sb.emulator.list_objects(GROUP, VERSION, "experiments", sb.namespace)
            if e["metadata"].get("labels", {}).get("rollouts.dev/rollout") == NAME]


def experiment_running(sb: CountingSandbox) -> Obj:
    return sb.wait_for("the step's Experiment to run", lambda: next(
        (e for e in experiments(sb) if (e.get("status") or {}).get("phase") == "Running"),
        None))


def services_of(made: Obj) -> dict[str, str]:
    """Template name -> its Service (from the Experiment's status)."""
    return {t["name"]: t["serviceName"] for t in made["status"]["templateStatuses"]}


def _traffic_off_before_pods(sb: CountingSandbox, router: Router, made: Obj) -> None:
    """In the server's write order: every write of the route naming the templates' Services
    came before the first write scaling one of the Experiment's ReplicaSets to 0, and one
    write without them came before it too."""
    name = made["metadata"]["name"]
    services = set(services_of(made).values())
    history = sb.emulator.write_history()
    scaled = min(rv for rv, plural, _, obj in history
                 if plural == "replicasets" and obj["metadata"]["name"] in
                 {f"{name}-{t}" for t in TEMPLATES} and obj["spec"].get("replicas") == 0)
    splits = [(rv, set(router.read(obj))) for rv, plural, kind, obj in history
              if plural == router.resource[2] and kind != "DELETED"]
    naming = [rv for rv, names in splits if names & services]
    assert naming, "the route never sent the templates any traffic"
    assert max(naming) < scaled, f"traffic to the templates at {max(naming)} > pods down {scaled}"
    assert [rv for rv, names in splits if not names & services and naming[0] < rv < scaled], (
        "no route write took the templates' weight off before their pods went")


@pytest.mark.parametrize("router", ROUTERS, ids=[r.name for r in ROUTERS])
def test_template_weights_follow_the_step_and_leave_before_the_pods(
        cluster: CountingSandbox, router: Router) -> None:
    sb = cluster
    sb.apply(router.objects)
    stable, canary_service = f"{NAME}-stable", f"{NAME}-canary"
    s = scenario(sb).given(rollout(NAME, canary(
        set_weight(20), experiment("3s"), pause(), set_weight(40), experiment("1h"), pause(),
        trafficRouting=router.routing, abortScaleDownDelaySeconds=0)))
    s.when(image(f"{NAME}:2"))
    # The step: canary 20, baseline 5, canary template 10, stable the rest (65); the
    # simulated clients' requests reach the templates' pods in those shares.
    made = experiment_running(sb)
    wanted = services_of(made)
    with AppSimulator(sb.emulator, _NoTargets(), spare_endpoints=0) as clients:
        s.then(route_is(router, {canary_service: 20, stable: 65, wanted["baseline"]: 5,
                                 wanted["canary"]: 10}),
               canary_share(clients, 5, wanted["baseline"]),
               canary_share(clients, 10, wanted["canary"]))
    # The status says so too (Argo's weights.additional), from the routes as read back.
    shown = sb.wait_for("status weights with the templates' shares", lambda: (
        w if (w := sb.status(NAME)["canary"]["weights"]).get("additional") else None))
    assert {d["serviceName"]: d["weight"] for d in shown["additional"]} == {
        wanted["baseline"]: 5, wanted["canary"]: 10}, shown
    assert (shown["canary"]["weight"], shown["stable"]["weight"]) == (20, 65), shown
    # Its duration passed: the weight goes back to the stable, then the pods go.
    s.then(paused(at_step=2), route_is(router, {canary_service: 20, stable: 80}))
    sb.wait_for("the Experiment's pods gone", lambda: all(
        (sb.emulator.get_object("apps", "v1", "replicasets", sb.namespace,
                                f"{made['metadata']['name']}-{t}") or {})
        .get("spec", {}).get("replicas") == 0 for t in TEMPLATES))
    _traffic_off_before_pods(sb, router, made)

    # The second experiment step runs for an hour: aborting ends it, traffic first.
    s.when(promote())
    second = sb.wait_for("the second Experiment to run", lambda: next(
        (e for e in experiments(sb) if e["metadata"]["name"] != made["metadata"]["name"]
         and (e.get("status") or {}).get("phase") == "Running"), None))
    wanted = services_of(second)
    s.then(route_is(router, {canary_service: 40, stable: 45, wanted["baseline"]: 5,
                     wanted["canary"]: 10}))
    s.when(abort()).then(aborted(), route_is(router, {canary_service: 0, stable: 100}),
                         sizes(canary=0, stable=4))
    sb.wait_for("the second Experiment's pods gone", lambda: all(
        (sb.emulator.get_object("apps", "v1", "replicasets", sb.namespace,
                                f"{second['metadata']['name']}-{t}") or {})
        .get("spec", {}).get("replicas") == 0 for t in TEMPLATES))
    _traffic_off_before_pods(sb, router, second)
    # Let go: the held Experiments carry no hold any more, their Services are gone.
    for e in experiments(sb):
        assert "rollouts.dev/traffic-hold" not in (e["metadata"].get("annotations") or {})
    for service in [*services_of(made).values(), *services_of(second).values()]:
        sb.wait_for(f"Service {service} deleted", lambda service=service: sb.emulator.get_object(
            "", "v1", "services", sb.namespace, service) is None)


@pytest.mark.parametrize("router", [r for r in ROUTERS if r.name != "smi"],
                         ids=[r.name for r in ROUTERS if r.name != "smi"])
def test_deleted_right_after_the_template_weights_are_written(
        cluster: CountingSandbox, router: Router) -> None:
    """The Rollout is deleted the moment the route first names the templates' Services,
    before a pass has read them back into status.canary.weights.additional: the finalizer
    still takes them out of the route (it reads them from the Experiments), and leaves
    all traffic on the stable."""
    sb = cluster
    sb.apply(router.objects)
    stable = f"{NAME}-stable"
    s = scenario(sb).given(rollout(NAME, canary(
        set_weight(20), experiment("1h"), pause(), trafficRouting=router.routing)))
    s.when(image(f"{NAME}:2"))
    made = experiment_running(sb)
    services = set(services_of(made).values())
    sb.wait_for("the route to name the templates' Services",
                lambda: services <= set(weights(sb, router)), interval=0.01)
    shown = (sb.status(NAME).get("canary") or {}).get("weights") or {}
    sb.emulator.delete_object(GROUP, VERSION, "rollouts", sb.namespace, NAME)
    sb.wait_for("the Rollout gone", lambda: sb.emulator.get_object(
        GROUP, VERSION, "rollouts", sb.namespace, NAME) is None)
    left = weights(sb, router)
    assert not services & set(left), (left, shown)
    assert left.get(stable) == 100, left
