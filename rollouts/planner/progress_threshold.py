"""spec.strategy.canary.replicaProgressThreshold: how many of the canary pods a weight asks
for must be available before the router is given that weight (a step's scale-up is done).

Without a threshold every pod the weight asks for must be available (invariant 1). With one,
the Rollout trades that margin for speed, e.g. under an HPA that keeps a pod or two pending:
traffic still only reaches ready pods (the canary Service's endpoints), but fewer of them
carry the weight until the rest come up.
"""

from __future__ import annotations

import math

from rollouts.models.workload import ReplicaProgressThreshold


def required_pods(threshold: ReplicaProgressThreshold | None, wanted: int) -> int:
    """Available canary pods needed for a weight that asks for `wanted` pods.

    E.g. 10 wanted: no threshold -> 10; Percent 80 -> 8; Percent 85 -> 9 (rounded up);
    Pod 3 -> 3; Pod 20 -> 10 (never more than wanted). A weight that asks for pods always
    needs at least one available (0% of 5 -> 1): traffic never goes to no pod at all.
    """
    if threshold is None or wanted <= 0:
        return wanted
    if threshold.type == "Percent":
        needed = math.ceil(wanted * threshold.value / 100)
    else:
        needed = min(threshold.value, wanted)
    return max(1, needed)
