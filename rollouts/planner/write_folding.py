"""Which status writes may wait a moment for the next one (issue 11: writes per step).

A canary step costs one status write for its transition, and about as many again for
changes that only follow pods coming and going: replica counts, the actual traffic weights
of a replica-weighted canary, the progress clock and the wording of the message. Such a
*minor* change is usually followed within a fraction of a second by the step's next
transition, which carries it anyway. So a minor change is held back for at most
`FOLD_SECONDS`: written with the next transition if one comes, or on its own when the
time is up (the pass asks to be woken then). Nothing is lost, only delayed by at most that.

Never held back: anything a reader acts on. A change of phase, step, currentStepIndex,
pause conditions, abort, stable or current revision, observedGeneration, a condition's
status or reason, the verified flag, analysis run statuses, notifications; any change of
a Degraded Rollout; and a pass that plans Events (an Event names a transition, and the
next pass must see the transition written, or it would plan the Event again). The Event
itself may wait for the next transition (`rollouts.planner.events`, rule 4); the status
does not.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from rollouts.models.rollout import RolloutStatus

FOLD_SECONDS = 3.0

# Fields whose changes alone make a status write minor.
_MINOR_FIELDS = frozenset({"replicas", "updated_replicas", "ready_replicas",
                           "available_replicas", "message", "progress_at"})


@dataclass(frozen=True)
class Fold:
    """What to do with a planned status: write it now, or hold it and look again."""

    write: bool
    pending_since: dt.datetime | None  # when the held minor change was first planned
    requeue_after: float | None  # the plan's, shortened to the end of the hold


def _essentials(status: RolloutStatus) -> dict[str, Any]:
    """The status without what a minor change may touch."""
    whole = status.model_dump(mode="json", exclude=set(_MINOR_FIELDS))
    whole["conditions"] = [{k: v for k, v in c.items() if k != "message"}
                           for c in whole.get("conditions") or []]
    weights = (whole.get("canary") or {}).get("weights")
    if weights:
        for side in ("canary", "stable"):
            if isinstance(weights.get(side), dict):
                weights[side] = {**weights[side], "weight": None}
    return whole


def minor_change(old: RolloutStatus, new: RolloutStatus) -> bool:
    """Whether `new` differs from `old` (and does) only in what may wait: replica counts,
    actual weights, the progress clock, the message and condition messages."""
    if old == new or new.phase == "Degraded" or old.phase is None:
        return False
    return _essentials(old) == _essentials(new)


def fold(old: RolloutStatus, new: RolloutStatus, *, has_events: bool,
         pending_since: dt.datetime | None, requeue_after: float | None,
         now: dt.datetime) -> Fold:
    """Hold a minor change back (up to FOLD_SECONDS from when it was first held); anything
    else is written at once. `pending_since` is what the previous pass returned."""
    if has_events or not minor_change(old, new):
        return Fold(True, None, requeue_after)
    since = pending_since if pending_since is not None else now
    left = FOLD_SECONDS - (now - since).total_seconds()
    if left <= 0:
        return Fold(True, None, requeue_after)
    wake = left if requeue_after is None else min(requeue_after, left)
    return Fold(False, since, wake)
