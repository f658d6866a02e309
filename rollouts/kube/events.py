"""What the controller remembers of the Events it wrote, to count repeats on them.

Kubernetes' event recorder keeps the same memory (an LRU cache in the process): after a
restart it is empty, and a repeat creates a new Event, as it does here. The decision of what
to write is `rollouts.planner.events.decide_writes`; the writes are in `kube.execute`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from rollouts.planner.events import EventKey, Recorded

# Events remembered per Rollout: a Rollout's recent transitions, not its history.
PER_ROLLOUT: Final = 16

_Key = tuple[str, str]  # (namespace, name)


class EventMemory:
    """The Events written lately about each Rollout (by namespace/name, for its uid)."""

    def __init__(self, per_rollout: int = PER_ROLLOUT) -> None:
        self.per_rollout = per_rollout
        self._rollouts: dict[_Key, tuple[str, dict[EventKey, Recorded]]] = {}

    def of(self, key: _Key, uid: str) -> Mapping[EventKey, Recorded]:
        """What was written about this Rollout; nothing if it was another object (uid)."""
        entry = self._rollouts.get(key)
        return entry[1] if entry is not None and entry[0] == uid else {}

    def remember(self, key: _Key, uid: str, event: EventKey, recorded: Recorded) -> None:
        entry = self._rollouts.get(key)
        if entry is None or entry[0] != uid:
            entry = self._rollouts[key] = (uid, {})
        written = entry[1]
        written.pop(event, None)  # the newest last: evicted last
        written[event] = recorded
        while len(written) > self.per_rollout:
            del written[next(iter(written))]

    def forget(self, key: _Key) -> None:
        self._rollouts.pop(key, None)

    def __len__(self) -> int:
        return len(self._rollouts)
