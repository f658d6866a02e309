"""Traffic to experiment templates with a `weight` (Argo Rollouts' WeightDestination).

While the Experiment of the latest experiment step at or before the current one is Running,
each of its templates with a `weight` is an extra destination of the routes: its Service
gets that share, taken out of the stable's (canary 20, templates 5 + 5 -> stable 70).
Anything else (the Experiment ended, was terminated, the Rollout aborted, was promoted or
moved past its last step) and the routes send it nothing.

Traffic leaves before the pods do: such an Experiment is created held
(TRAFFIC_HOLD_ANNOTATION), so that when it ends its ReplicaSets and Services stay; the
Rollout lets go (removes the annotation) once the Experiment has ended and the routes read
back no weight for any of its Services. Pure: decides the destinations and the write that
lets go, writes nothing.
"""

from __future__ import annotations

import datetime as dt

from rollouts.models.experiment import COMPLETED_EXPERIMENT_PHASES, TRAFFIC_HOLD_ANNOTATION
from rollouts.models.rollout import TrafficWeights, WeightDestination
from rollouts.models.wire import API_VERSION
from rollouts.planner.context import Context, Draft
from rollouts.planner.router_traffic import RouterTraffic
from rollouts.planner.routing import ExtraDestination, ObjectKey, RouteWrite
from rollouts.planner.steps import Walk
from rollouts.planner.steps.experiment import current_experiment
from rollouts.planner.traffic import TrafficModel
from rollouts.planner.types import ApplyRouteWrite, ExperimentView


def experiment_destinations(ctx: Context, walk: Walk) -> tuple[ExtraDestination, ...]:
    """The extra destinations in force at the walk's step: the weighted templates of the
    latest experiment step at or before it, while that step's Experiment is Running.
    None past the last step (the canary then takes everything)."""
    if walk.index >= len(walk.steps):
        return ()
    index = next((i for i in range(walk.index, -1, -1)
                  if walk.steps[i].experiment is not None), None)
    if index is None:
        return ()
    step = walk.steps[index].experiment
    assert step is not None
    weights = {t.name: t.weight for t in step.templates if t.weight is not None}
    found = current_experiment(ctx, index) if weights else None
    if found is None or found.phase != "Running" or found.terminating:
        return ()
    return tuple(ExtraDestination(t.service_name, weights[t.name]) for t in found.templates
                 if t.name in weights and t.service_name)


def experiment_services(ctx: Context) -> tuple[str, ...]:
    """The Services of every held Experiment of the Rollout: destinations to them that are
    not in force any more are removed from the routes."""
    return tuple(dict.fromkeys(t.service_name for e in ctx.observed.experiments
                               if e.traffic_held for t in e.templates if t.service_name))


def with_experiment_traffic(ctx: Context, walk: Walk, traffic: TrafficModel) -> TrafficModel:
    """`traffic` with the experiment destinations of the walk's step (a router only)."""
    if not isinstance(traffic, RouterTraffic):
        return traffic
    return traffic.with_experiments(experiment_destinations(ctx, walk))


def release_experiments(ctx: Context, draft: Draft, traffic: TrafficModel) -> None:
    """Let go of held Experiments that have ended and to whose Services the routes, as read
    back, send nothing (with no router any more: at once). While the routes still send one
    some, look again soon: route objects are read, not watched."""
    wanted = {d.service for d in traffic.extra} if isinstance(traffic, RouterTraffic) else set()
    router, routes = ctx.observed.router, ctx.observed.routes
    for experiment in ctx.observed.experiments:
        if not experiment.traffic_held or experiment.phase not in COMPLETED_EXPERIMENT_PHASES:
            continue
        services = [t.service_name for t in experiment.templates if t.service_name]
        if wanted.intersection(services):
            continue
        if router is None or all(router.extra_weight(routes, s) == 0 for s in services):
            draft.actions.append(ApplyRouteWrite(
                _let_go(ctx.rollout.metadata.namespace, experiment)))
        else:
            recheck = traffic.recheck_seconds if isinstance(traffic, RouterTraffic) else 2.0
            draft.wake(ctx.now + dt.timedelta(seconds=recheck))


def with_experiment_weights(ctx: Context, weights: TrafficWeights) -> TrafficWeights:
    """`status.canary.weights` with the experiment templates' shares the routes hold, as read
    back (Argo's `additional`), taken out of the stable's."""
    router = ctx.observed.router
    if router is None:
        return weights
    additional = []
    for experiment in ctx.observed.experiments:
        for template in experiment.templates if experiment.traffic_held else ():
            if template.service_name:
                weight = router.extra_weight(ctx.observed.routes, template.service_name)
                if weight:
                    additional.append(WeightDestination(
                        pod_template_hash=template.pod_hash, weight=weight,
                        service_name=template.service_name))
    if not additional:
        return weights
    stable = weights.stable.model_copy(update={
        "weight": max(0, weights.stable.weight - sum(d.weight for d in additional))})
    return weights.model_copy(update={"stable": stable, "additional": additional})


def _let_go(namespace: str, experiment: ExperimentView) -> RouteWrite:
    """Remove the hold annotation, guarded by the observed resourceVersion (409 if stale)."""
    pointer = "/metadata/annotations/" + TRAFFIC_HOLD_ANNOTATION.replace("~", "~0").replace(
        "/", "~1")
    return RouteWrite(ObjectKey(API_VERSION, "Experiment", experiment.name, namespace), "patch",
                      patch=({"op": "replace", "path": "/metadata/resourceVersion",
                              "value": experiment.resource_version},
                             {"op": "remove", "path": pointer}))
