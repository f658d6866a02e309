"""The Gateway API act of `rollouts demo`: weights on an HTTPRoute, a header route for
testers, and a bad release rolled back by its analysis with weight 0 before scale-down.

Runs after the analysis acts (it measures through the same Prometheus and reuses their
`demo-success-rate` AnalysisTemplate). What it checks is read from the HTTPRoute itself and,
for the order of the rollback, from the API server's own write history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rollouts.sandbox.cluster import EXAMPLES_DIR

if TYPE_CHECKING:
    from rollouts.sandbox.demo import Demo

NAME = "shop"
MANIFEST = EXAMPLES_DIR / "gatewayapi-canary.yaml"
ROUTE = "shop-route"
CANARY_SERVICE = "shop-canary"
HEADER_ROUTE = "testers"
FIRST_IMAGE = "example/shop:1.0"
GOOD_IMAGE = "example/shop:2.0"
BAD_IMAGE = "example/shop:3.0-bad"
HTTP_ROUTES = ("gateway.networking.k8s.io", "v1", "httproutes")


def route(demo: Demo) -> dict[str, Any]:
    sb = demo.sandbox
    return sb.emulator.get_object(*HTTP_ROUTES, sb.namespace, ROUTE) or {}


def route_weight(body: dict[str, Any]) -> int | None:
    """The canary backendRef's weight in the HTTPRoute's weighted (unnamed) rule."""
    for rule in (body.get("spec") or {}).get("rules") or []:
        for ref in rule.get("backendRefs") or []:
            if not rule.get("name") and ref.get("name") == CANARY_SERVICE:
                return int(ref.get("weight", 1))
    return None


def managed_rules(body: dict[str, Any]) -> list[str]:
    return [str(r["name"]) for r in (body.get("spec") or {}).get("rules") or []
            if r.get("name")]


def gateway_act(demo: Demo, number: int) -> None:
    demo.name = NAME
    demo.act(f"{number}. Install {MANIFEST.parent.name}/{MANIFEST.name}: Gateway API")
    demo.say(f"A Rollout {NAME} of 4 {FIRST_IMAGE} pods behind HTTPRoute {ROUTE}.")
    demo.say("Steps: setWeight 5, header route for testers, pause 2s, setWeight 25,")
    demo.say("analysis, setWeight 50, pause 2s. The route's weights, not the pod counts,")
    demo.say("split the requests: exactly 5% with 1 canary pod beside 4 stable ones.")
    demo.sandbox.apply(MANIFEST)
    first = demo.wait_first_revision(f"{NAME}'s first revision")
    demo.expect(f"Healthy: 4/4 pods of {FIRST_IMAGE}; {ROUTE} sends the canary 0%",
                (FIRST_IMAGE, 4, 4, 0),
                (*demo._rs_summary(first, first.stable_hash), route_weight(route(demo))))
    demo.breathe()

    demo.act(f"{number + 1}. Release {GOOD_IMAGE} through the HTTPRoute")
    demo.sandbox.set_image(NAME, GOOD_IMAGE)
    five = demo.wait("5% with the testers' header route (the timed pause)",
                     lambda s: s.up_to_date and s.phase == "Paused" and s.step == 2)
    new, old = str(five.current_hash), str(five.stable_hash)
    body = route(demo)
    demo.expect("5%: the HTTPRoute holds 5/95, 1 canary pod beside 4 stable",
                (5, (1, 1), (4, 4)), (route_weight(body), five.sizes(new), five.sizes(old)))
    demo.expect(f'header route "{HEADER_ROUTE}": x-tester: yes goes to the canary',
                [HEADER_ROUTE], managed_rules(body))
    demo.show(five)
    quarter = demo.wait("25% with its AnalysisRun under way",
                        lambda s: s.step == 4 and s.run is not None and not s.run.done)
    demo.expect("25%: the HTTPRoute holds 25/75, still 1 canary pod",
                (25, (1, 1)), (route_weight(route(demo)), quarter.sizes(new)))
    done = demo.wait(f"{GOOD_IMAGE} to be Healthy and stable",
                     lambda s: s.phase == "Healthy" and s.stable_hash == new
                     and s.sizes(old) == (0, 0))
    body = route(demo)
    demo.expect("promoted: the route back to 0/100 (all on the new stable), no header route",
                (0, []), (route_weight(body), managed_rules(body)))
    demo.show(done)
    demo.breathe()

    demo.act(f"{number + 2}. Release {BAD_IMAGE}: rolled back, weight 0 first")
    demo.say("Its pods answer 30% of requests with a 5xx; Prometheus sees them in the 25%")
    demo.say("of the requests the HTTPRoute sends to shop-canary.")
    demo.sandbox.set_image(NAME, BAD_IMAGE)
    demo.wait("25% with its AnalysisRun under way",
              lambda s: s.up_to_date and s.step == 4 and s.run is not None)
    bad, stable = demo._hashes()
    canary_rs = _rs_name(demo, bad)
    aborted = demo.wait("Degraded with the canary at 0",
                        lambda s: s.phase == "Degraded" and s.aborted
                        and s.sizes(bad) == (0, 0) and s.sizes(stable) == (4, 4))
    body = route(demo)
    demo.expect("rolled back by its analysis: the route at 0/100, no header route",
                ("Failed", 0, []),
                (aborted.run.phase if aborted.run else "no run", route_weight(body),
                 managed_rules(body)))
    zeroed, scaled = _order(demo, canary_rs)
    demo.expect_that("the API server applied weight 0 before the canary's scale-down",
                     zeroed is not None and scaled is not None and zeroed < scaled,
                     "the route's weight-0 write first",
                     f"route at resourceVersion {zeroed}, canary at 0 at {scaled}")
    demo.show(aborted)


def _rs_name(demo: Demo, pod_hash: str) -> str:
    sets = demo.sandbox.replica_sets(NAME)
    return str(sets[pod_hash]["metadata"]["name"]) if pod_hash in sets else ""


def _order(demo: Demo, canary_rs: str) -> tuple[int | None, int | None]:
    """(resourceVersion of the HTTPRoute write that took the canary's weight back to 0,
    of the canary ReplicaSet's scale to 0), in the server's write order."""
    zeroed = scaled = None
    for rv, plural, _, body in demo.sandbox.emulator.write_history():
        if plural == "replicasets" and body["metadata"]["name"] == canary_rs \
                and (body.get("spec") or {}).get("replicas") == 0:
            scaled = rv
            break
        if plural == HTTP_ROUTES[2] and body["metadata"]["name"] == ROUTE:
            weight = route_weight(body)
            if weight:
                zeroed = None  # raised (again): only a later 0 counts
            elif zeroed is None:
                zeroed = rv
    return zeroed, scaled
