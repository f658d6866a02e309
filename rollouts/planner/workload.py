"""spec.workloadRef: scaling the referenced Deployment down as the Rollout takes over.

The Rollout runs the Deployment's pod template in its own ReplicaSets; the Deployment's pods
keep serving until the Rollout's can. `scaleDown` says when the Deployment gives them up:

- `never`: the Deployment is left as it is (its owners scale it down when they choose);
- `onsuccess`: to 0 once the Rollout is Healthy (every pod of its stable revision available);
- `progressively`: one Deployment pod fewer for each Rollout pod available, so the two
  together always have the desired number available. E.g. 4 replicas, the Rollout has 1
  available -> the Deployment goes to 3; 4 available -> 0. It is never scaled up again,
  except while the migration is unfinished and the Rollout is Degraded (its pods do not
  come up): the Deployment then gets back the pods the Rollout lacks.
"""

from __future__ import annotations

from rollouts.planner.context import Context, Draft
from rollouts.planner.types import PinService, ScaleDeployment


def scale_down(ctx: Context, draft: Draft, *, degraded: bool) -> None:
    """Append the Deployment's next size when it changes (nothing without a workloadRef)."""
    ref = ctx.spec.workload_ref
    deployment = ctx.observed.workload
    if ref is None or deployment is None or ref.scale_down == "never":
        return
    current = deployment.spec_replicas
    target = current
    if ref.scale_down == "onsuccess":
        if draft.phase == "Healthy" and not degraded:
            target = 0
    else:
        lacking = max(0, ctx.replicas - rollout_available(ctx))
        target = lacking if degraded and current > 0 else min(current, lacking)
    if target != current:
        draft.actions.append(ScaleDeployment(deployment.name, target,
                                             deployment.resource_version))


def rollout_available(ctx: Context) -> int:
    """The Rollout's available pods, all revisions (at most spec.replicas count)."""
    return min(ctx.replicas, sum(rs.available for rs in ctx.observed.replica_sets))


def hold_services(ctx: Context, draft: Draft) -> None:
    """While the Deployment still has pods and the Rollout's first revision does not yet have
    all of its own available, the Services keep selecting the Deployment's pods too: pinning
    one to the Rollout's revision then (e.g. a stableService that the Deployment's clients
    use) would send its traffic to pods that are not ready (invariant 1)."""
    deployment = ctx.observed.workload
    if ctx.spec.workload_ref is None or deployment is None or deployment.spec_replicas == 0:
        return
    if len(ctx.observed.replica_sets) > 1 or rollout_available(ctx) >= ctx.replicas:
        return
    draft.actions[:] = [a for a in draft.actions if not isinstance(a, PinService)]
