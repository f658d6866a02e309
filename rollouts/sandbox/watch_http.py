"""Watch over HTTP, as kube-apiserver streams it: the initial ADDED events (or a replay
from ``resourceVersion`` inside the history window, 410 Expired beyond it), then one JSON line
per write, ``timeoutSeconds``, and BOOKMARK events with ``allowWatchBookmarks`` (also the
``k8s.io/initial-events-end`` one after ``sendInitialEvents``).

Also the parsing of the query parameters that watch and list share.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from rollouts.sandbox import apierrors
from rollouts.sandbox.apierrors import ApiError
from rollouts.sandbox.resources import ResourceInfo
from rollouts.sandbox.selectors import (
    FieldSelector,
    LabelSelector,
)
from rollouts.sandbox.store import ObjectStore
from rollouts.sandbox.watch import Watcher, WatchEvent

Obj = dict[str, Any]

TRUE_VALUES = ("true", "1", "True", "yes")


def int_param(value: str | None, name: str) -> int | None:
    """An integer query parameter; 400 Bad Request when it is not one."""
    if value in (None, ""):
        return None
    try:
        return int(str(value))
    except ValueError:
        raise apierrors.bad_request(f"invalid {name}: {value!r}") from None


class WatchStreams(ObjectStore):
    """The watch verb over HTTP, served from the store's history and watchers."""

    bookmark_interval: float  # seconds between bookmarks on a quiet stream
    _stopping: asyncio.Event | None  # set when the server stops: streams end

    async def _watch(
        self,
        request: web.Request,
        info: ResourceInfo,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
    ) -> web.StreamResponse:
        q = request.query
        timeout = int_param(q.get("timeoutSeconds"), "timeoutSeconds")
        bookmarks = q.get("allowWatchBookmarks") in TRUE_VALUES
        send_initial = q.get("sendInitialEvents") in TRUE_VALUES
        rv_text = q.get("resourceVersion") or ""
        since = int_param(rv_text, "resourceVersion")
        watcher = Watcher(
            info.key,
            namespace,
            LabelSelector.parse(label_selector),
            FieldSelector.parse(field_selector),
            asyncio.get_running_loop(),
        )
        initial: list[Obj] = []
        expired = False
        # No await between the snapshot/replay and the registration: nothing can slip between.
        if since is None or since == 0 or send_initial:
            for obj in self._select(info, namespace, label_selector, field_selector):
                initial.append({"type": "ADDED", "object": self._wire(info, obj)})
        elif since < self._history_floor:
            expired = True
        else:
            for item in self._history:
                if item.rv > since and item.key == info.key:
                    seen = watcher.translate(item.event)
                    if seen is not None:
                        initial.append(self._event_json(info, seen))
        if not expired:
            self._watchers[info.key].add(watcher)

        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            if expired:
                status = ApiError(
                    410, "Expired", f"too old resource version: {since} ({self._history_floor + 1})"
                )
                await self._send(response, {"type": "ERROR", "object": status.status()})
                return response
            for event in initial:
                await self._send(response, event)
            if bookmarks:
                annotations = {"k8s.io/initial-events-end": "true"} if send_initial else None
                await self._send(response, self._bookmark(info, annotations))
            await self._stream(request, response, info, watcher, timeout, bookmarks)
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self._watchers[info.key].discard(watcher)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
        return response

    async def _stream(
        self,
        request: web.Request,
        response: web.StreamResponse,
        info: ResourceInfo,
        watcher: Watcher,
        timeout: int | None,
        bookmarks: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout is not None else None
        next_bookmark = loop.time() + self.bookmark_interval
        while True:
            now = loop.time()
            if deadline is not None and now >= deadline:
                if bookmarks:
                    await self._send(response, self._bookmark(info))
                return
            if self._stopping is not None and self._stopping.is_set():
                return
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            wake = min(
                x
                for x in (deadline, next_bookmark if bookmarks else None, now + 1.0)
                if x is not None
            )
            if bookmarks and now >= next_bookmark:
                # Due bookmarks go out even while events are queued: a busy stream must not
                # starve them (and they carry the current resourceVersion anyway).
                await self._send(response, self._bookmark(info))
                next_bookmark = loop.time() + self.bookmark_interval
                continue
            try:
                # Take what is already queued without waiting: on Python 3.11 a zero
                # timeout cancels queue.get() before it runs, even with items waiting.
                event = watcher.queue.get_nowait()
            except asyncio.QueueEmpty:
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), max(0.0, wake - now))
                except TimeoutError:
                    continue
            if event is None:
                return
            await self._send(response, self._event_json(info, event))

    def _event_json(self, info: ResourceInfo, event: WatchEvent) -> Obj:
        # Events are never changed once made: serialise without copying.
        return {"type": event.type, "object": self._wire(info, event.object)}

    def _bookmark(self, info: ResourceInfo, annotations: dict[str, str] | None = None) -> Obj:
        meta: Obj = {"resourceVersion": str(self._rv)}
        if annotations:
            meta["annotations"] = annotations
        return {
            "type": "BOOKMARK",
            "object": {"kind": info.kind, "apiVersion": info.api_version, "metadata": meta},
        }

    @staticmethod
    async def _send(response: web.StreamResponse, event: Obj) -> None:
        await response.write(json.dumps(event).encode() + b"\n")
