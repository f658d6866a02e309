"""The Events of one Rollout waiting for its next transition (`rollouts.planner.events`,
rule 4), and the timer that posts them when the hold is up.

The timer posts without a pass: waking the Rollout for it cost a whole observe -> plan pass
per expired hold (~10 % more controller CPU at 1,000 Rollouts, where pods often take longer
than the hold). A pass and the timer never both post the same Events: the timer does nothing
while a pass runs (the pass takes what is held into its own decision and arms the timer
again when it ends), and it empties the hold before it awaits anything.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Sequence

from rollouts.clock import Clock
from rollouts.kube.client import KubeClient
from rollouts.kube.events import EventMemory
from rollouts.kube.execute import post_events
from rollouts.models.rollout import ObjectMeta
from rollouts.planner.events import Held, hold
from rollouts.planner.types import Event

log = logging.getLogger("rollouts.operator")


class HeldEvents:
    def __init__(self, client: KubeClient, memory: EventMemory, clock: Clock) -> None:
        self._client = client
        self._memory = memory
        self._clock = clock
        self.held = Held()
        self._metadata: ObjectMeta | None = None  # the Rollout's, as the last pass saw it
        self._in_pass = False
        self._timer: asyncio.TimerHandle | None = None
        self._posting: asyncio.Future[None] | None = None

    def begin_pass(self) -> None:
        self._in_pass = True

    def decide(self, events: Sequence[Event], *, resting: bool,
               now: dt.datetime) -> tuple[tuple[Event, ...], Held]:
        """(the Events this pass posts, what stays held once its writes succeed)."""
        return hold(self.held, events, resting=resting, now=now)

    def keep(self, held: Held, metadata: ObjectMeta) -> None:
        """After the pass's writes succeeded: what stays held, and whose it is."""
        self.held, self._metadata = held, metadata

    def end_pass(self) -> None:
        """The pass is over (written or not): the timer watches what is held."""
        self._in_pass = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = self.held.due_in(self._clock.now())
        if due is not None and self._metadata is not None:
            self._timer = asyncio.get_running_loop().call_later(due, self._due)

    def _due(self) -> None:
        self._timer = None
        if self._in_pass or not self.held.events or self._metadata is None:
            return  # a running pass decides, and arms the timer again
        events, self.held = self.held.events, Held()
        self._posting = asyncio.ensure_future(self._post(events, self._metadata))

    async def _post(self, events: tuple[Event, ...], metadata: ObjectMeta) -> None:
        try:
            await post_events(self._client, metadata, events, self._clock.now(), self._memory)
        except Exception as exc:  # best effort, as every Event (kube.execute.post_events)
            log.warning("events not posted", extra={
                "rollout": f"{metadata.namespace}/{metadata.name}", "error": str(exc)})

    async def flush(self, metadata: ObjectMeta) -> None:
        """Post what is held now (the daemon is stopping)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.held.events:
            events, self.held = self.held.events, Held()
            await self._post(events, metadata)
        if self._posting is not None:
            await self._posting
