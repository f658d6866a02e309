"""What `promote`, `abort`, `retry`, `pause` and `resume` write, decided without I/O.

Each function takes the Rollout as read (and the clock) and returns the status fields to
write, camelCase as on the wire, with None meaning "delete the field". Operations live in
`status` (as in Argo Rollouts) so they never show as drift against Git and never bump
`generation`. A request that makes no sense in the Rollout's state raises OperationError
saying why, so the CLI never writes a no-op or a contradiction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import ValidationError

from rollouts.errors import OperationError
from rollouts.models.rollout import Rollout, RolloutSpec, parse_spec
from rollouts.planner.bluegreen import BLUE_GREEN_PAUSE
from rollouts.planner.canary import USER_PAUSE
from rollouts.planner.context import iso

ABORT_MESSAGE = "Rollout aborted by user"

Updates = dict[str, Any]


def _spec(rollout: Rollout) -> RolloutSpec:
    try:
        return parse_spec(rollout.spec)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise OperationError(
            f"rollout {rollout.metadata.name} has an invalid spec ({where}: "
            f"{first['msg']}); fix the manifest first"
        ) from exc


def _name(rollout: Rollout) -> str:
    return f"rollout {rollout.metadata.name}"


def in_flight(rollout: Rollout) -> bool:
    """A revision other than the stable one is being rolled out."""
    status = rollout.status
    return status.current_pod_hash is not None and status.current_pod_hash != status.stable_rs


def _require_in_flight(rollout: Rollout, verb: str) -> None:
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


def promote(rollout: Rollout, now: dt.datetime, *, full: bool = False) -> Updates:
    """Canary: skip the current step (Argo's promote); blue-green: lift the pause.

    `full` skips every remaining step, pause and analysis and goes straight to the new
    revision at full size.
    """
    del now  # promotion records no time; kept for a uniform signature
    spec = _spec(rollout)
    _require_in_flight(rollout, "promote")
    status = rollout.status
    if full:
        if status.promote_full:
            raise OperationError(f"{_name(rollout)} is already being promoted fully")
        return {"promoteFull": True, "pauseConditions": None}
    if spec.strategy.canary is not None:
        steps = spec.strategy.canary.steps or []
        index = max(status.current_step_index or 0, 0)
        if index >= len(steps):
            raise OperationError(
                f"cannot promote {_name(rollout)}: already past the last step "
                f"({len(steps)} steps); the new revision is scaling to all pods"
            )
        return {"currentStepIndex": index + 1, "pauseConditions": None}
    # Blue-green: with BlueGreenPause lifted and controllerPause true, the planner switches.
    waiting = status.paused_for(BLUE_GREEN_PAUSE) is not None
    if not status.pause_conditions and not status.controller_pause:
        raise OperationError(
            f"cannot promote {_name(rollout)}: it is not paused (the preview may still be "
            "coming up); use --full to switch as soon as it is available"
        )
    updates: Updates = {"pauseConditions": None}
    if waiting:
        updates["controllerPause"] = True
    return updates


def abort(rollout: Rollout, now: dt.datetime) -> Updates:
    """Send all traffic back to stable; the new revision stays Degraded until retry/commit."""
    _require_in_flight(rollout, "abort")
    return {"abort": True, "abortedAt": iso(now), "abortMessage": ABORT_MESSAGE}


def retry(rollout: Rollout, now: dt.datetime) -> Updates:
    """Start an aborted revision over from the first step."""
    del now
    if not rollout.status.abort:
        raise OperationError(f"cannot retry {_name(rollout)}: it is not aborted")
    return {
        "abort": None,
        "abortedAt": None,
        "abortMessage": None,
        "currentStepIndex": 0,
        "pauseConditions": None,
    }


def pause(rollout: Rollout, now: dt.datetime) -> Updates:
    """Hold the rollout where it is until `resume` (or `promote`)."""
    status = rollout.status
    if status.paused_for(USER_PAUSE) is not None:
        raise OperationError(f"{_name(rollout)} is already paused by a user")
    # Without an update in flight there is nothing to hold, and the planner drops the
    # condition when the next revision starts; refusing beats a pause that silently vanishes.
    _require_in_flight(rollout, "pause")
    conditions = [p.to_wire() for p in status.pause_conditions or ()]
    conditions.append({"reason": USER_PAUSE, "startTime": iso(now)})
    return {"pauseConditions": conditions}


def resume(rollout: Rollout, now: dt.datetime) -> Updates:
    """Lift a user's pause (other pauses stay; `promote` lifts those)."""
    del now
    status = rollout.status
    if status.paused_for(USER_PAUSE) is None:
        hint = ""
        if rollout.spec.get("paused") is True:
            hint = "; spec.paused is true in the manifest: change it in Git"
        elif status.pause_conditions:
            hint = "; it is waiting at a pause step: use promote"
        raise OperationError(f"cannot resume {_name(rollout)}: it is not paused by a user{hint}")
    remaining = [p.to_wire() for p in status.pause_conditions or () if p.reason != USER_PAUSE]
    return {"pauseConditions": remaining or None}


OPERATIONS = ("promote", "abort", "retry", "pause", "resume")


def decide(operation: str, rollout: Rollout, now: dt.datetime, *, full: bool = False) -> Updates:
    """Dispatch by name (the CLI re-decides with this after a conflict)."""
    if operation == "promote":
        return promote(rollout, now, full=full)
    if operation == "abort":
        return abort(rollout, now)
    if operation == "retry":
        return retry(rollout, now)
    if operation == "pause":
        return pause(rollout, now)
    if operation == "resume":
        return resume(rollout, now)
    raise ValueError(f"unknown operation {operation!r}")
