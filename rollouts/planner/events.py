"""Which Events a pass writes, decided the way Kubernetes' event recorder decides (pure).

The planner says what happened in a pass, one `Event` per fact (a ReplicaSet created, a
Service switched, the step moved, the phase changed). Written one by one that is about three
Events per Rollout per step, most of them restating the step change. Two rules bring it to
one Event per transition, a third keeps repeats from piling up, and a fourth posts the
transitions a Rollout only passes through together with the next:

1. **One Event per transition.** The Normal events of a pass become one Event: the reason of
   the most telling of them (`LEAD_REASONS`; e.g. `RolloutStepChanged` over the phase change
   that comes with it) and their messages joined with "; ", the lead's first. The Warnings
   of a pass become one Warning the same way, never folded into a Normal Event, so that a
   `type=Warning` filter sees every alarm.
2. **Nothing new, nothing written.** A promotion completes the steps: the step change of the
   same pass is dropped (`SUBSUMED`), and so is a message already said in that pass.
3. **A repeat is counted, not created** (as `client-go`'s recorder does): an Event whose
   type, reason and message equal one this controller wrote about the same Rollout within
   `REPEAT_WINDOW` patches that Event's `count` and `lastTimestamp` instead of creating
   another object.

4. **Passing transitions wait for the next.** A Rollout on its way between two resting
   states (phase Progressing: waiting for pods between a step and the next; or Paused in
   a timed pause shorter than `EVENT_HOLD`) holds its Normal Events back, for at most
   `EVENT_HOLD` from the first one held or until the short pause's end, whichever is
   later, and they go out folded (rules 1-3) with the Events of the pass where it comes
   to rest (Paused for `EVENT_HOLD` or longer, an indefinite pause, Healthy, Degraded) or
   when the time is up. (Round 3 passed a short pause through only when it ended before
   the hold would: at 1,000 Rollouts, where a new revision's first step took longer than
   the hold, the first pause's Event went out alone: docs/benchmarks.md, round 4.) A
   held status's Events are due with it (`rollouts.planner.write_folding`, rule 3), so a
   canary of short pauses and quick pods may post one Event for all its steps, at its
   promotion. A Warning, and any Event of a resting
   Rollout, goes out at once with whatever is held. An Event never goes out before the
   status that shows its transition: a passing state's status may wait too
   (`rollouts.planner.write_folding`), and the next pass plans on from it, so no
   transition is planned twice; a pass whose Events go out writes its status. Held Events
   live in the controller's memory: a controller killed during the hold loses them, as
   Kubernetes' asynchronous event recorder may.

Worked example, a canary `setWeight 50 -> pause -> setWeight 100 -> pause` (12 Events
before, 5 now):

    pass                 planner's events                        written
    new revision         ReplicaSetCreated, ServiceSwitched,     ReplicaSetCreated
                         RolloutProgressing
    step 1 done          RolloutStepChanged, RolloutPaused       RolloutStepChanged
    pause over           RolloutStepChanged, RolloutProgressing  RolloutStepChanged
    step 3 done          RolloutStepChanged, RolloutPaused       RolloutStepChanged
    pause over           ServiceSwitched, RolloutStepChanged,    RolloutPromoted
                         RolloutPromoted

and with rule 4, when the pods come within `EVENT_HOLD`, the new revision's Event goes out
with step 1's (the Rollout rests at the pause), and the pause's end with step 3's: 3 Events.
When the pauses are shorter than `EVENT_HOLD` (2 s in bench/run_canaries.py), the first
pause is passed through too and steps 1-4 go out as one Event: 2 Events.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from rollouts.planner.types import Event

__all__ = [
    "EVENT_HOLD",
    "LEAD_REASONS",
    "REPEAT_WINDOW",
    "SUBSUMED",
    "CountEvent",
    "CreateEvent",
    "EventKey",
    "EventWrite",
    "Held",
    "Recorded",
    "decide_writes",
    "fold",
    "hold",
    "key_of",
]

# Most telling first: the reason a folded Event carries. Reasons not listed rank after these
# (in the planner's order), e.g. the phase events (RolloutPaused, RolloutProgressing, ...).
LEAD_REASONS: Final = ("RolloutAborted", "InvalidSpec", "RolloutPromoted", "RolloutStepChanged",
                       "ReplicaSetCreated", "ServiceCreated", "ServiceSwitched",
                       "RolloutRestarted", "PodEvicted")
# reason -> reasons that say nothing more when it is in the same pass.
SUBSUMED: Final[Mapping[str, frozenset[str]]] = {
    "RolloutPromoted": frozenset({"RolloutStepChanged"}),
}
# A repeat older than this is a new Event (the API server expires Events after an hour).
REPEAT_WINDOW: Final = dt.timedelta(minutes=30)
# The longest a passing transition's Event waits for the next one (rule 4).
EVENT_HOLD: Final = dt.timedelta(seconds=3)
_SEPARATOR: Final = "; "

EventKey = tuple[str, str, str]  # (type, reason, message) of one Rollout's Event


@dataclass(frozen=True)
class Recorded:
    """An Event this controller wrote about a Rollout: enough to count a repeat on it."""

    name: str
    count: int
    last_seen: dt.datetime


@dataclass(frozen=True)
class CreateEvent:
    event: Event


@dataclass(frozen=True)
class CountEvent:
    """The existing Event `name` happened again: its count becomes `count`."""

    name: str
    count: int
    event: Event


EventWrite = CreateEvent | CountEvent


def key_of(event: Event) -> EventKey:
    return (event.type, event.reason, event.message)


def _rank(reason: str) -> int:
    return LEAD_REASONS.index(reason) if reason in LEAD_REASONS else len(LEAD_REASONS)


def _fold_one(events: Sequence[Event]) -> Event | None:
    if not events:
        return None
    lead = min(events, key=lambda e: _rank(e.reason))  # first of the best rank
    messages = [lead.message]
    for event in events:
        if event.message and event.message not in messages:
            messages.append(event.message)
    return Event(lead.type, lead.reason, _SEPARATOR.join(m for m in messages if m))


def fold(events: Sequence[Event]) -> tuple[Event, ...]:
    """The Events one pass writes: at most one Warning, then at most one Normal (rules 1, 2).

    >>> [e.message for e in fold([Event("Normal", "RolloutStepChanged", "Step 1/4 -> 2/4"),
    ...                            Event("Normal", "RolloutPaused", "Step 2/4: paused")])]
    ['Step 1/4 -> 2/4; Step 2/4: paused']
    """
    reasons = {e.reason for e in events}
    dropped = set().union(*(SUBSUMED.get(r, frozenset()) for r in reasons))
    kept = [e for e in events if e.reason not in dropped]
    folded = (_fold_one([e for e in kept if e.type == "Warning"]),
              _fold_one([e for e in kept if e.type != "Warning"]))
    return tuple(e for e in folded if e is not None)


def decide_writes(events: Sequence[Event], recorded: Mapping[EventKey, Recorded],
                  now: dt.datetime) -> tuple[EventWrite, ...]:
    """What to write for one pass's events about one Rollout (rule 3 on top of `fold`):
    `recorded` is what this controller remembers writing about that Rollout."""
    writes: list[EventWrite] = []
    for event in fold(events):
        seen = recorded.get(key_of(event))
        if seen is not None and now - seen.last_seen <= REPEAT_WINDOW:
            writes.append(CountEvent(seen.name, seen.count + 1, event))
        else:
            writes.append(CreateEvent(event))
    return tuple(writes)


@dataclass(frozen=True)
class Held:
    """Events of one Rollout waiting for the next transition (rule 4), since when."""

    events: tuple[Event, ...] = ()
    since: dt.datetime | None = None

    def due_in(self, now: dt.datetime) -> float | None:
        """Seconds until the held Events must go out (None: nothing held)."""
        if self.since is None:
            return None
        return max(0.0, (self.since + EVENT_HOLD - now).total_seconds())


def hold(held: Held, events: Sequence[Event], *, resting: bool, now: dt.datetime,
         moves_in: float | None = None) -> tuple[tuple[Event, ...], Held]:
    """Rule 4: (the Events to post now, what stays held) after a pass whose planned Events
    are `events`; `resting` says the Rollout is not on its way to another state, and
    `moves_in` when it is due to move on by itself (a timed pause's end, in seconds): a
    resting state it leaves before the hold would end is passed through too."""
    pending = held.events + tuple(events)
    if not pending:
        return (), Held()
    since = held.since or now
    if resting and moves_in is not None and moves_in < EVENT_HOLD.total_seconds():
        # A timed pause shorter than the hold is passed through: what is held waits at
        # least until its end, for the step after it (rule 4).
        resting = False
        since = max(since, now + dt.timedelta(seconds=moves_in) - EVENT_HOLD)
    if (resting or any(e.type == "Warning" for e in pending)
            or now - since >= EVENT_HOLD):
        return pending, Held()
    return (), Held(pending, since)
