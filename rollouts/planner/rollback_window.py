"""spec.rollbackWindow: going back to a recent revision skips the steps.

Moving back to a revision within the last `revisions` ones (its ReplicaSet still exists and is
older than the stable one) is promoted at once, as a full promotion is: no steps, no
pre-promotion or step analysis. E.g. revisions 1..5 with 5 stable and a window of 3: going
back to 4 or 3 is fast-tracked (1 or 2 revisions newer than the target), back to 2 is not
(3 newer: 3, 4 and 5).
"""

from __future__ import annotations

from rollouts.models.rollout import RolloutSpec, RolloutStatus
from rollouts.planner.status import StatusChanges
from rollouts.planner.types import Observed


def within_window(spec: RolloutSpec, observed: Observed, status: RolloutStatus,
                  desired_hash: str) -> bool:
    window = spec.rollback_window
    if window is None or window.revisions == 0 or status.abort:
        return False
    sets = {rs.pod_hash: rs for rs in observed.replica_sets}
    target = sets.get(desired_hash)
    stable = sets.get(status.stable_rs or "")
    if target is None or stable is None or target is stable or (
            target.revision >= stable.revision):
        return False
    newer = sum(1 for rs in observed.replica_sets
                if target.revision < rs.revision <= stable.revision)
    return newer < window.revisions


def fast_track(spec: RolloutSpec, observed: Observed, status: RolloutStatus,
               desired_hash: str) -> RolloutStatus:
    """The status with a full promotion requested when the desired revision is a rollback
    within the window (recorded, so the decision survives a restart mid-way)."""
    if status.promote_full or not within_window(spec, observed, status, desired_hash):
        return status
    return StatusChanges(promote_full=True, pause_conditions=None).applied_to(status)
