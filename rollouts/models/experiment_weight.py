"""An experiment template's `weight` (Argo Rollouts v1alpha1): which canaries may use it.

The router sends that share of traffic to the template's Service while its Experiment runs
(rollouts/planner/experiment_traffic.py), so it needs trafficRouting (as Argo) with routers
that can all send weight to a destination besides the canary and the stable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from rollouts.models.traffic import GATEWAY_API_PLUGIN

if TYPE_CHECKING:
    from rollouts.models.rollout import CanaryStrategy

# Routers that can send a share of traffic to an experiment template's Service (Argo's
# additional WeightDestinations), as `RolloutTrafficRouting.routers()` names them.
EXPERIMENT_WEIGHT_ROUTERS: Final = ("istio", "alb", "smi", GATEWAY_API_PLUGIN)


def experiment_weight_errors(canary: CanaryStrategy) -> list[tuple[str, str]]:
    """An experiment template's `weight` sends traffic to its pods through the router: it
    needs trafficRouting (as Argo) with routers that can all do it, and the templates of a
    step cannot ask for more than maxTrafficWeight together."""
    found = []
    routing = canary.traffic_routing
    unable = [] if routing is None else [
        r for r in routing.routers() if r not in EXPERIMENT_WEIGHT_ROUTERS]
    for i, step in enumerate(canary.steps or ()):
        templates = step.experiment.templates if step.experiment else []
        path = f"spec.strategy.canary.steps[{i}].experiment.templates"
        for j, template in enumerate(templates):
            if template.weight is None:
                continue
            if routing is None:  # Argo refuses this too: an invalid value, not a refusal
                found.append((f"{path}[{j}].weight",
                              "an experiment template's weight needs "
                              "spec.strategy.canary.trafficRouting (the router sends it "
                              "that share); remove weight or add a traffic router"))
            elif unable:
                found.append((f"{path}[{j}].weight",
                              f"traffic router {', '.join(unable)} cannot send weight to "
                              "an experiment template's Service: it needs a router that "
                              f"supports it ({', '.join(EXPERIMENT_WEIGHT_ROUTERS)}); "
                              "remove weight"))
        total = sum(t.weight or 0 for t in templates)
        if routing is not None and total > routing.max_traffic_weight:
            found.append((path, f"template weights add up to {total}, more than "
                          f"maxTrafficWeight {routing.max_traffic_weight}"))
    return found
