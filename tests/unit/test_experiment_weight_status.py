"""status.canary.weights while experiment templates have weight, and the Rollout's deletion.

Whatever ends the step (the Rollout aborted, the template reverted to the stable's, the
Experiment ended), the status shows the templates' shares (`additional`, taken out of the
stable's) for as long as the routes read them back, and stops once they read 0. Deleting
the Rollout right after a pass wrote those shares (before any status shows them) leaves no
route naming the templates' Services: finalize takes them from the Experiments.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from rollouts.kube.observe import experiment_services
from rollouts.models.rollout import ValidRollout, parse_rollout
from rollouts.models.wire import rollout_owner_reference
from rollouts.planner.types import ApplyRouteWrite, Plan
from rollouts.traffic import rollout_router
from tests.unit.test_router_properties import RouterWorld
from tests.unit.traffic.cases import BY_NAME, CANARY, STABLE, Store
from tests.unit.world import canary_spec

STEPS = [{"setWeight": 20},
         {"experiment": {"templates": [  # open-ended: runs on beside the pause
             {"name": "baseline", "specRef": "stable", "weight": 5},
             {"name": "canary", "specRef": "canary", "weight": 10}]}},
         {"pause": {}}]


def world(router: str) -> RouterWorld:
    case = BY_NAME[router]
    spec = canary_spec(STEPS, canaryService=CANARY, stableService=STABLE,
                       trafficRouting=case.routing, abortScaleDownDelaySeconds=0)
    w = RouterWorld(spec, case=case, store=Store.of(case.objects))
    w.run()
    w.set_image("app:2")
    return w


def until_written(w: RouterWorld) -> Plan:
    """Passes (pods and Experiments ready) until one writes the templates' weights; that
    pass applied, the routes hold them and no status shows them yet."""
    for _ in range(10):
        w.experiments.ready()
        result = w.step()
        if any(w.extra_weight(s) for s in w.experiments.services()):
            return result
    raise AssertionError("the templates never got weight")


def additional(result: Plan) -> dict[str, int]:
    weights = result.status.canary.weights if result.status.canary else None
    assert weights is not None
    assert weights.canary.weight + weights.stable.weight + sum(
        d.weight for d in weights.additional or ()) == 100, weights
    return {d.service_name or "": d.weight for d in weights.additional or ()}


def shares(w: RouterWorld) -> dict[str, int]:
    baseline, canary = w.experiments.services()
    return {baseline: 5, canary: 10}


def abort(w: RouterWorld) -> None:
    w.edit_status(abort=True, abort_message="aborted by test")


def revert(w: RouterWorld) -> None:
    w.set_image("app:1")  # the stable's template again: the steps are skipped


def ended(w: RouterWorld) -> None:
    w.experiments.end("Successful")


@pytest.mark.parametrize("router", ["smi", "gatewayapi", "istio-host", "alb"])
@pytest.mark.parametrize(("ending", "phase"), [
    (abort, "Degraded"), (revert, "Healthy"), (ended, "Paused")])
def test_the_status_shows_the_templates_shares_until_the_routes_drop_them(
        router: str, ending: Callable[[RouterWorld], None], phase: str) -> None:
    w = world(router)
    written = until_written(w)
    assert additional(written) == {}  # read back on the next pass
    assert additional(w.step()) == shares(w)
    ending(w)
    # The pass that takes the weight off still reads it back; if its route write is lost
    # (a 409), the next one too.
    first = w.plan()
    assert additional(first) == shares(w)
    assert any(isinstance(a, ApplyRouteWrite) for a in first.actions)
    w.apply(Plan(actions=tuple(a for a in first.actions
                               if not isinstance(a, ApplyRouteWrite)), status=first.status))
    assert additional(w.step()) == shares(w)
    assert not any(w.extra_weight(s) for s in w.experiments.services())
    last = w.step()
    assert additional(last) == {}
    assert last.status.phase == phase, last.status.message
    weights = last.status.canary.weights if last.status.canary else None
    assert weights is not None and weights.stable.weight == 100 - weights.canary.weight


@pytest.mark.parametrize("router", ["smi", "gatewayapi", "istio-host", "istio-subset", "alb"])
def test_deleting_the_rollout_right_after_the_weights_are_written(router: str) -> None:
    w = world(router)
    until_written(w)
    assert additional(Plan(actions=(), status=w.status)) == {}  # status lags a pass
    services = w.experiments.services()
    parsed = parse_rollout(w.rollout())
    assert isinstance(parsed, ValidRollout)
    # From status alone the destinations would stay (the gap this closes) ...
    stale = rollout_router(parsed)
    assert stale is not None
    lagging = Store.of(w.store.objects.values())
    for _ in range(3):
        lagging.apply(stale.finalize(lagging.observe(stale)))
    # (The SMI TrafficSplit is ours, deleted whatever it holds, and the ALB action is
    # rebuilt whole: only routes that keep entries they do not know keep them.)
    if router in ("gatewayapi", "istio-host", "istio-subset"):
        assert any(s in json.dumps(list(lagging.objects.values())) for s in services)
    # ... with the Experiments' Services, as the reconciler builds it, they go.
    final = rollout_router(parsed, services)
    assert final is not None
    for _ in range(3):
        w.store.apply(final.finalize(w.routes()))
    assert not final.finalize(w.routes())
    left = json.dumps(list(w.store.objects.values()))
    assert not [s for s in services if s in left], left
    assert final.verified_weight(w.routes()) in (0, None)


def test_the_finalizer_reads_the_services_from_the_rollouts_experiments() -> None:
    def body(name: str, uid: str, services: list[str | None]) -> dict[str, object]:
        return {"metadata": {"name": name, "ownerReferences": [
                    rollout_owner_reference("demo", uid)]},
                "status": {"templateStatuses": [
                    {"name": f"t{i}", **({"serviceName": s} if s else {})}
                    for i, s in enumerate(services)]}}
    bodies = [body("e1", "uid-1", ["e1-baseline", None]),
              body("e2", "uid-1", ["e2-canary", "e1-baseline"]),
              body("old", "uid-0", ["old-canary"])]  # a predecessor of the same name
    assert experiment_services(bodies, "uid-1") == ("e1-baseline", "e2-canary")
