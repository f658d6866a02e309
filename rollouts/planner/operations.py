"""What `promote`, `abort`, `retry`, `pause` and `resume` write, decided without I/O.

Each function takes the Rollout as validated (and the clock) and returns the typed status
changes to write (`StatusChanges.wire_patch` gives the merge patch). Operations live in
`status` (as in Argo Rollouts) so they never show as drift against Git and never bump
`generation`. A request that makes no sense in the Rollout's state raises OperationError
saying why, so the CLI never writes a no-op or a contradiction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from rollouts.errors import OperationError
from rollouts.models.rollout import (
    InvalidRollout,
    PauseCondition,
    Rollout,
    ValidRollout,
    parse_rollout,
)
from rollouts.models.wire import BLUE_GREEN_PAUSE, USER_PAUSE, whole_seconds
from rollouts.planner.status import StatusChanges

ABORT_MESSAGE = "Rollout aborted by user"


def _valid(rollout: ValidRollout | InvalidRollout) -> ValidRollout:
    if isinstance(rollout, InvalidRollout):
        where, what = rollout.errors[0]
        raise OperationError(
            f"rollout {rollout.metadata.name} has an invalid spec ({where}: {what}); "
            "fix the manifest first"
        )
    return rollout


def _name(rollout: ValidRollout | InvalidRollout) -> str:
    return f"rollout {rollout.metadata.name}"


def in_flight(rollout: ValidRollout | InvalidRollout) -> bool:
    """A revision other than the stable one is being rolled out."""
    status = rollout.status
    return status.current_pod_hash is not None and status.current_pod_hash != status.stable_rs


def _require_in_flight(rollout: ValidRollout | InvalidRollout, verb: str) -> None:
    status = rollout.status
    if status.abort:
        raise OperationError(
            f"cannot {verb} {_name(rollout)}: it is aborted"
            f" ({status.abort_message or 'no reason recorded'}); use retry to start over"
        )
    if not in_flight(rollout):
        stable = status.stable_rs or status.current_pod_hash
        detail = f"revision {stable} is already stable" if stable else "no revision yet"
        raise OperationError(
            f"cannot {verb} {_name(rollout)}: no update in progress ({detail})"
        )


def promote(rollout: ValidRollout | InvalidRollout, *, full: bool = False) -> StatusChanges:
    """Canary: skip the current step (Argo's promote); blue-green: lift the pause.

    `full` skips every remaining step, pause and analysis and goes straight to the new
    revision at full size.
    """
    spec = _valid(rollout).spec
    _require_in_flight(rollout, "promote")
    status = rollout.status
    if full:
        if status.promote_full:
            raise OperationError(f"{_name(rollout)} is already being promoted fully")
        return StatusChanges(promote_full=True, pause_conditions=None)
    if spec.strategy.canary is not None:
        steps = spec.strategy.canary.steps or []
        index = max(status.current_step_index or 0, 0)
        if index >= len(steps):
            raise OperationError(
                f"cannot promote {_name(rollout)}: already past the last step "
                f"({len(steps)} steps); the new revision is scaling to all pods"
            )
        return StatusChanges(current_step_index=index + 1, pause_conditions=None)
    # Blue-green: with BlueGreenPause lifted and controllerPause true, the planner switches.
    waiting = status.paused_for(BLUE_GREEN_PAUSE) is not None
    if not status.pause_conditions and not status.controller_pause:
        raise OperationError(
            f"cannot promote {_name(rollout)}: it is not paused (the preview may still be "
            "coming up); use --full to switch as soon as it is available"
        )
    changes = StatusChanges(pause_conditions=None)
    if waiting:
        changes.controller_pause = True
    return changes


def abort(rollout: ValidRollout | InvalidRollout, now: dt.datetime) -> StatusChanges:
    """Send all traffic back to stable; the new revision stays Degraded until retry/commit."""
    _require_in_flight(rollout, "abort")
    return StatusChanges(abort=True, aborted_at=whole_seconds(now), abort_message=ABORT_MESSAGE)


def retry(rollout: ValidRollout | InvalidRollout) -> StatusChanges:
    """Start an aborted revision over from the first step."""
    if not rollout.status.abort:
        raise OperationError(f"cannot retry {_name(rollout)}: it is not aborted")
    return StatusChanges(abort=None, aborted_at=None, abort_message=None, current_step_index=0,
                         pause_conditions=None)


def pause(rollout: ValidRollout | InvalidRollout, now: dt.datetime) -> StatusChanges:
    """Hold the rollout where it is until `resume` (or `promote`)."""
    status = rollout.status
    if status.paused_for(USER_PAUSE) is not None:
        raise OperationError(f"{_name(rollout)} is already paused by a user")
    # Without an update in flight there is nothing to hold, and the planner drops the
    # condition when the next revision starts; refusing beats a pause that silently vanishes.
    _require_in_flight(rollout, "pause")
    conditions = [*(status.pause_conditions or ()),
                  PauseCondition(reason=USER_PAUSE, start_time=whole_seconds(now))]
    return StatusChanges(pause_conditions=conditions)


def resume(rollout: ValidRollout | InvalidRollout) -> StatusChanges:
    """Lift a user's pause (other pauses stay; `promote` lifts those)."""
    status = rollout.status
    if status.paused_for(USER_PAUSE) is None:
        hint = ""
        if isinstance(rollout, ValidRollout) and rollout.spec.paused:
            hint = "; spec.paused is true in the manifest: change it in Git"
        elif status.pause_conditions:
            hint = "; it is waiting at a pause step: use promote"
        raise OperationError(f"cannot resume {_name(rollout)}: it is not paused by a user{hint}")
    remaining = [p for p in status.pause_conditions or () if p.reason != USER_PAUSE]
    return StatusChanges(pause_conditions=remaining or None)


OPERATIONS = ("promote", "abort", "retry", "pause", "resume")


def decide_changes(operation: str, rollout: ValidRollout | InvalidRollout, now: dt.datetime, *,
                   full: bool = False) -> StatusChanges:
    """Dispatch by name (the CLI re-decides with this after a conflict)."""
    if operation == "promote":
        return promote(rollout, full=full)
    if operation == "abort":
        return abort(rollout, now)
    if operation == "retry":
        return retry(rollout)
    if operation == "pause":
        return pause(rollout, now)
    if operation == "resume":
        return resume(rollout)
    raise ValueError(f"unknown operation {operation!r}")


def decide(operation: str, rollout: Rollout, now: dt.datetime, *,
           full: bool = False) -> dict[str, Any]:
    """The operation as the status merge patch to write (camelCase, None deletes a field),
    decided on the Rollout parsed once."""
    return decide_changes(operation, parse_rollout(rollout), now, full=full).wire_patch()
