"""Which status writes may wait a moment for the next one (issue 11: writes per step).

A canary step costs one status write for its transition, and about as many again for
states the Rollout only passes through. Two kinds of status change may wait, for at most
a few seconds from the first one held ("How long" below): written with the next write if
one comes, or on their own when the time is up (the pass asks to be woken then). Nothing
is lost, only delayed by at most that.

1. **Minor changes**: what only follows pods coming and going (replica counts, the actual
   traffic weights of a replica-weighted canary, the progress clock, the wording of the
   message), in a pass that plans no Event.
2. **Passing states** (`passing`): a Rollout Progressing on its way to the next resting
   state, waiting for pods: the "waiting for N canary pods" of a setWeight step, or the
   pods of a new revision. The next pass plans from the status held (`Pending`) as long as
   the Rollout on the server is still the one it was planned from (same resourceVersion),
   so the same transitions, Events and pause clocks follow as if it had been written. A
   controller killed during the hold plans again from the status last written: a passing
   state holds only what such a pass derives again from that status, the cluster and the
   clock (the new revision's pod hash, the steps past timed pauses that ended, the
   generation seen: a state past a step done because of the pods is written at once, as
   this pass's own actions may have moved those pods), and its actions are only those
   that find their work done when applied twice (a ReplicaSet created, a ReplicaSet
   scaled, a Service pinned).

Never held back: anything a reader acts on that the next pass cannot derive again. A
change of stable revision, abort, pause conditions started, analysis or experiment state
(the experiment templates' traffic weights, `canary.weights.additional`, included),
analysis attempt, promote-full, notifications, selector repairs, restart, blue-green
state, conditions other than Ready/Reconciling/Stalled; any Warning; a phase other than
Progressing (a Paused, Healthy or Degraded Rollout is written at once); a Rollout never
reconciled; and a pass whose Events go out now (an Event never goes out before the status
that shows its transition). The Events of a held pass wait with it
(`rollouts.planner.events`, rule 4).

3. **Due Events wait with a held status** (`with_status`). When held Events come due
   (`rollouts.planner.events`, rule 4: 3 s after the first one held) in a pass whose own
   status may wait, they all wait with that status and go out when it is written (with
   the next resting state, or when its hold is up): a status write is certain to come for
   a Rollout on its way somewhere, so posting them now costs one request more. (Round 3
   posted those a written status already showed; at 1,000 Rollouts the pass at a short
   pause's end came late, its Events were due, and one Event a Rollout went out alone:
   docs/benchmarks.md, round 4.) No Event ever precedes its status; an Event waits at most
   until the end of the status hold it joined.

**How long** (`hold_seconds`). A minor change of a Rollout at rest (Paused, Healthy: the
counts after the old pods go), and a passing state that shows a step done (the step index
moved past a timed pause: what `rollouts status` and the step-lag readers wait for), wait
at most `FOLD_SECONDS` from the first held. A Progressing status that shows no step done,
only the Rollout waiting for its pods where the status last written already has it (its
counts moving, too), or a new revision at its first step, waits at most
`PASSING_SECONDS`: it goes out
with the next resting state as long as the pods come within that. At 1,000 Rollouts on
the bench's shared machine a new revision's first step took 5-9 s, longer than 3 s, and
its waiting state was written alone with an Event in nearly every Rollout (0.5 writes a
step). A reader sees such a state at most `PASSING_SECONDS` late; a Rollout whose pods
never come still shows it then, and Degraded at its progress deadline, as before.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rollouts.models.rollout import CanaryStep, RolloutStatus
from rollouts.planner.types import Action, CreateReplicaSet, Event, PinService, ScaleReplicaSet

__all__ = ["FOLD_SECONDS", "PASSING_SECONDS", "Fold", "Pending", "fold", "hold_seconds",
           "may_wait", "minor_change", "passing", "with_status"]

FOLD_SECONDS = 3.0
# The longest a passing state that shows no step done waits for the next resting state.
PASSING_SECONDS = 10.0

# Fields whose changes alone make a status write minor.
_MINOR_FIELDS = frozenset({"replicas", "updated_replicas", "ready_replicas",
                           "available_replicas", "message", "progress_at"})
# What a passing state may change besides: what a pass derives again from the status last
# written, the cluster and the clock.
_PASSING_FIELDS = _MINOR_FIELDS | {"phase", "step", "current_step_index", "observed_pod_hash",
                                   "current_pod_hash", "observed_generation",
                                   "pause_conditions", "selector", "conditions"}
# Conditions the planner derives from phase and message alone (plan._conditions).
_PHASE_CONDITIONS = frozenset({"Ready", "Reconciling", "Stalled"})
# Actions that find their work done when applied again (a create finds the object there;
# a scale or a pin writes what is already so, or conflicts on a stale view).
_PASSING_ACTIONS = (CreateReplicaSet, ScaleReplicaSet, PinService)


@dataclass(frozen=True)
class Fold:
    """What to do with a planned status: write it now, or hold it and look again."""

    write: bool
    pending_since: dt.datetime | None  # when the held change was first planned
    requeue_after: float | None  # the plan's, shortened to the end of the hold
    until: dt.datetime | None = None  # when the hold ends (held only)


@dataclass(frozen=True)
class Pending:
    """A status held back, planned from the Rollout at `resource_version`: the next pass
    plans from it while the Rollout on the server is still that one."""

    resource_version: str
    status: RolloutStatus


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


def _not_derived(status: RolloutStatus) -> dict[str, Any]:
    """The status without what a passing state may change."""
    whole = status.model_dump(mode="json", exclude=set(_PASSING_FIELDS))
    whole["other_conditions"] = [c.model_dump(mode="json") for c in status.conditions or ()
                                 if c.type not in _PHASE_CONDITIONS]
    canary = whole.get("canary")
    if isinstance(canary, dict):  # the weights follow the step and the pods
        whole["canary"] = {k: v for k, v in canary.items()
                           if k not in ("weights", "desired_weight")}
        # except the experiment templates' (weights.additional): experiment state, which a
        # reader acts on and an experiment may end within the hold (never held)
        whole["canary"]["additional"] = (canary.get("weights") or {}).get("additional")
    return whole


def _timed_pause(step: CanaryStep) -> bool:
    return step.kinds() == ["pause"] and step.pause is not None and step.pause.duration is not None


def _walked_only_timed_pauses(old: RolloutStatus, new: RolloutStatus,
                              steps: Sequence[CanaryStep]) -> bool:
    """Whether the steps `new` is past and `old` was not (from step 0 for a new revision)
    are all timed pauses: their end is in status and the clock, so a pass planning from
    `old` walks past them again. A step done because of the pods (setWeight, ...) may not
    be done again once this pass's own actions moved the pods (a canary grown past a
    setWeight 0), so a state past one is written at once."""
    new_revision = old.observed_pod_hash != new.observed_pod_hash
    start = 0 if new_revision else (old.current_step_index or 0)
    return all(_timed_pause(step) for step in steps[start:new.current_step_index or 0])


def passing(old: RolloutStatus, new: RolloutStatus, actions: Sequence[Action],
            events: Sequence[Event], steps: Sequence[CanaryStep] = ()) -> bool:
    """Whether `new` is a state the Rollout passes through that may wait (rule 2 above):
    Progressing with no pause, no Warning, only repeatable actions, past no step but timed
    pauses since `old` (the status on the server; `steps` the canary's), and nothing else
    changed since that a pass would not derive again from it."""
    if old.phase is None or old == new or new.phase != "Progressing":
        return False
    if new.pause_conditions or new.abort or any(e.type == "Warning" for e in events):
        return False
    if not all(isinstance(action, _PASSING_ACTIONS) for action in actions):
        return False
    if not _walked_only_timed_pauses(old, new, steps):
        return False
    return _not_derived(old) == _not_derived(new)


def hold_seconds(old: RolloutStatus, new: RolloutStatus) -> float:
    """How long `new`, a status that may wait, may be held (see "How long" above): a
    Progressing Rollout that shows no step done beyond `old` (the status written), or a new
    revision at its first step, `PASSING_SECONDS`; anything else `FOLD_SECONDS`."""
    if new.phase != "Progressing":
        return FOLD_SECONDS
    new_revision = old.observed_pod_hash != new.observed_pod_hash
    start = 0 if new_revision else (old.current_step_index or 0)
    return FOLD_SECONDS if (new.current_step_index or 0) > start else PASSING_SECONDS


def fold(old: RolloutStatus, new: RolloutStatus, *, may_wait: bool,
         pending_since: dt.datetime | None, requeue_after: float | None,
         now: dt.datetime, seconds: float = FOLD_SECONDS) -> Fold:
    """Hold a change that `may_wait` (minor, or passing, with no Event going out now) up to
    `seconds` (`hold_seconds`) from when a change was first held; anything else is written
    at once. `pending_since` is what the previous pass returned."""
    if not may_wait or old == new:
        return Fold(True, None, requeue_after)
    since = pending_since if pending_since is not None else now
    until = since + dt.timedelta(seconds=seconds)
    left = (until - now).total_seconds()
    if left <= 0:
        return Fold(True, None, requeue_after)
    wake = left if requeue_after is None else min(requeue_after, left)
    return Fold(False, since, wake, until)


def may_wait(old: RolloutStatus, new: RolloutStatus, actions: Sequence[Action],
             events: Sequence[Event], *, posting_events: bool,
             steps: Sequence[CanaryStep] = ()) -> bool:
    """Whether the status `new` may wait: a minor change in a pass with no Event, or a
    passing state, and no Event going out in this pass."""
    if posting_events:
        return False
    return ((not events and minor_change(old, new))
            or passing(old, new, actions, events, steps))


def with_status(due: Sequence[Event], *,
                status_may_wait: bool) -> tuple[tuple[Event, ...], tuple[Event, ...]]:
    """Rule 3: (the Events to post now, those to hold with this pass's status) when `due`
    must go out. Only when the status may wait (minor or passing: never a Warning, never
    at rest) are they held, all of them; else all go out now, with the status written."""
    if not status_may_wait:
        return tuple(due), ()
    return (), tuple(due)
