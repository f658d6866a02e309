"""A canary step of several fields, end to end through the real controller: one step sets
the canary's size, a header route for testers and pauses (the shape of Argo Rollouts' own
test/e2e/apisix/rollout-apisix-canary-set-header.yaml), then the walk goes on to the end.
Checked on the raw route objects of two routers that can express header routes."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from rollouts.cli.main import app as cli
from rollouts.models.wire import CANARY_PAUSE
from rollouts.sandbox.history import WriteHistory
from rollouts.sandbox.invariants import check_rollout
from tests.e2e.conftest import CountingSandbox
from tests.e2e.dsl import (
    Check,
    Obj,
    canary,
    healthy,
    image,
    pause,
    paused,
    promote,
    rollout,
    scenario,
    set_weight,
    sizes,
)
from tests.e2e.test_router_scenarios import CASES as FIRST_CASES
from tests.e2e.test_router_scenarios import HEADER, NAME, RouterCase, managed_routes, route_weight
from tests.e2e.test_router_scenarios_more import CASES as MORE_CASES

pytestmark = pytest.mark.e2e

ROUTERS = [c for c in (*FIRST_CASES, *MORE_CASES) if c.name in ("apisix", "istio")]
COMBINED: Obj = {"setCanaryScale": {"replicas": 1}, **HEADER, "pause": {}}


def pause_after_canary_available(sb: CountingSandbox) -> Check:
    """The pause condition exists, and the canary has its one pod available."""
    def test(_: CountingSandbox, w: Any) -> str | None:
        conditions = [p for p in w.status.get("pauseConditions") or ()
                      if p.get("reason") == CANARY_PAUSE]
        canary_rs = [rs for h, rs in sb.replica_sets(NAME).items()
                     if h == w.status.get("currentPodHash")]
        available = (canary_rs[0].get("status") or {}).get("availableReplicas") if (
            canary_rs) else None
        if not conditions or available != 1:
            return f"pause conditions {conditions}, canary available {available}"
        return None
    return Check("paused with the canary's pod available", test)


@pytest.mark.parametrize("case", ROUTERS, ids=[c.name for c in ROUTERS])
def test_scale_header_route_and_pause_in_one_step_then_promote_to_the_end(
        cluster: CountingSandbox, case: RouterCase) -> None:
    sb = cluster
    history = WriteHistory(sb.emulator, sb.namespace).start()
    sb.apply(case.objects)
    routing = {**case.routing, "managedRoutes": [{"name": "testers"}]}
    steps = [COMBINED, set_weight(50), pause()]
    s = scenario(sb).given(rollout(NAME, canary(*steps, trafficRouting=routing)))
    s.then(route_weight(case, 0), managed_routes(case))
    # Step 1: one canary pod (not a share of the weight), the testers' route, weight 0.
    s.when(image(f"{NAME}:2")).then(paused(at_step=0), pause_after_canary_available(sb),
                                     route_weight(case, 0), managed_routes(case, "testers"),
                                     sizes(canary=1, stable=4))
    shown = CliRunner().invoke(cli, ["--kubeconfig", str(sb.kubeconfig), "get", NAME])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.replace("│", " ").split())  # the tree wraps at 80 columns
    assert ("▶ setCanaryScale: replicas=1 + setHeaderRoute: testers (x-tester=yes) + "
            "pause (until promoted)") in text, shown.output
    # setWeight 50: the scale stays in force (one pod serves the half), the route too.
    promotions = [sb.emulator.resource_version]
    s.when(promote()).then(paused(at_step=2), route_weight(case, 50),
                           managed_routes(case, "testers"), sizes(canary=1, stable=4))
    # Past the last step: the canary grows to every replica, then is promoted; the routes
    # go back to all-stable with no managed route.
    promotions.append(sb.emulator.resource_version)
    s.when(promote()).then(healthy(), route_weight(case, 0), managed_routes(case),
                           timeout=60)
    status = sb.status(NAME)
    assert status["stableRS"] == status["currentPodHash"]
    assert sb.replica_sets(NAME)[status["stableRS"]]["spec"]["replicas"] == 4
    try:  # DESIGN.md's invariants over the API server's writes
        writes = history.settle()
        rollout_writes = [w.rv for w in writes if w.resource == "rollout"]
        operations = {next(rv for rv in rollout_writes if rv > before): "promote"
                      for before in promotions}
        assert check_rollout(writes, NAME, operations) == []
    finally:
        history.stop()
