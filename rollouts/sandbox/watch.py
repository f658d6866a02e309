"""Watch plumbing: events, per-watch selectors and queues, and in-process subscriptions."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

from rollouts.sandbox.selectors import FieldSelector, LabelSelector

Obj = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED
    object: Obj
    old: Obj | None = None
    rv: int = 0


@dataclasses.dataclass(frozen=True)
class HistoryItem:
    rv: int
    key: tuple[str, str]
    event: WatchEvent


class Watcher:
    def __init__(
        self,
        key: tuple[str, str],
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.key = key
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
        self.loop = loop
        self.queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()
        # Events from another thread wait here and cross in batches: one loop wake-up per
        # batch rather than per event (a busy emulator wrote thousands a second).
        self._crossing: collections.deque[WatchEvent | None] = collections.deque()
        self._wake_pending = False

    def _match(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata", {})
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return self.labels.matches(meta.get("labels")) and self.fields.matches(obj)

    def translate(self, event: WatchEvent) -> WatchEvent | None:
        """The event as this watcher sees it: selector edges become ADDED / DELETED."""
        new_match = self._match(event.object)
        if event.type != "MODIFIED":
            return event if new_match else None
        old_match = self._match(event.old)
        if new_match and old_match:
            return event
        if new_match:
            return dataclasses.replace(event, type="ADDED")
        if old_match:
            return dataclasses.replace(event, type="DELETED")
        return None

    def deliver(self, event: WatchEvent | None) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.queue.put_nowait(event)
            return
        self._crossing.append(event)
        if not self._wake_pending and not self.loop.is_closed():
            self._wake_pending = True
            self.loop.call_soon_threadsafe(self._take_crossing)

    def _take_crossing(self) -> None:
        # Cleared before draining: an event appended meanwhile is either drained here or
        # schedules the next wake-up; none is left behind.
        self._wake_pending = False
        while self._crossing:
            self.queue.put_nowait(self._crossing.popleft())


class Subscription:
    """In-process watch: ``async for event in sub`` yields :class:`WatchEvent`s.

    Events are those of writes after the subscription was made (and, if ``initial`` was asked,
    an ADDED event for each matching object that existed then).
    """

    def __init__(self, unwatch: Callable[[Watcher], None], watcher: Watcher) -> None:
        self._unwatch = unwatch
        self._watcher = watcher
        self._closed = False

    def __aiter__(self) -> AsyncIterator[WatchEvent]:
        return self

    async def __anext__(self) -> WatchEvent:
        if self._closed:
            raise StopAsyncIteration
        event = await self._watcher.queue.get()
        if event is None:
            self._closed = True
            raise StopAsyncIteration
        return event

    async def get(self, timeout: float | None = None) -> WatchEvent | None:
        """The next event, or None when the subscription ends or ``timeout`` passes."""
        try:
            return await asyncio.wait_for(self.__anext__(), timeout)
        except (StopAsyncIteration, TimeoutError):
            return None

    def pending(self) -> list[WatchEvent]:
        """Events already queued, without waiting."""
        out: list[WatchEvent] = []
        while not self._watcher.queue.empty():
            event = self._watcher.queue.get_nowait()
            if event is None:
                self._closed = True
                break
            out.append(event)
        return out

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._unwatch(self._watcher)
