"""Our own list-and-watch of one kind into an in-memory cache (client-go calls it a reflector).

Why not kopf's `@kopf.index`: kopf hands every object of a watched kind to a per-object worker
(its body, queue, logger and toggle kept alive while the worker lives) and decodes its initial
listing at once; at 1,000 Rollouts that was ~4,000 workers and a 16 MiB burst for objects the
controller only reads (docs/benchmarks.md, "Memory at 1,000 Rollouts"). Here each event is
decoded, trimmed at once and filed in plain dicts; nothing else is kept per object.

Semantics, as client-go's reflector has them:

* List (in pages of `page_size`, each trimmed before the next is asked for), then watch from
  the list's resourceVersion with `allowWatchBookmarks`; a BOOKMARK only moves the version.
* A watch that ends (its `timeoutSeconds`, a cut connection, a transport error) is made again
  from the last version seen, after a backoff when it failed.
* 410 Gone / Expired (the version left the server's window; an ERROR event or an answer)
  lists again and replaces this scope's part of the cache: objects missing from the new
  list are removed as if deleted, changed ones as modified.
* `synced` is set once every scope (the whole cluster, or each namespace) has been listed.

Every change calls `on_change(type, body)` with the trimmed body (the last one kept, for a
deletion), type "ADDED", "MODIFIED" or "DELETED"; an object listed again unchanged (same
resourceVersion) calls nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import httpx

from rollouts.errors import KubeError
from rollouts.kube.client import KubeClient

__all__ = ["Backoff", "Index", "Informer", "Kind"]

log = logging.getLogger("rollouts.informer")

Key = tuple[str, str]  # (namespace, name)
Body = dict[str, Any]

GONE = 410


def object_key(body: Mapping[str, Any]) -> Key:
    metadata = body.get("metadata") or {}
    return (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))


def _version(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("resourceVersion") or "")


class Index(Mapping[Key, tuple[Body, ...]]):
    """Cached bodies filed under a key of `key_of`'s choosing (their owner, or themselves;
    None: not filed). Read like kopf's index: `index.get(key, ())` is the bodies under `key`."""

    def __init__(self, key_of: Callable[[Mapping[str, Any]], Key | None]) -> None:
        self._key_of = key_of
        self._entries: dict[Key, dict[Key, Body]] = {}
        self._filed: dict[Key, Key] = {}  # object -> the key it is filed under

    def __getitem__(self, key: Key) -> tuple[Body, ...]:
        return tuple(self._entries[key].values())

    def __iter__(self) -> Iterator[Key]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, ref: Key, body: Body) -> None:
        key = self._key_of(body)
        if self._filed.get(ref) not in (None, key):
            self.remove(ref)
        if key is not None:
            self._entries.setdefault(key, {})[ref] = body
            self._filed[ref] = key

    def remove(self, ref: Key) -> None:
        key = self._filed.pop(ref, None)
        if key is None:
            return
        entries = self._entries.get(key)
        if entries is not None:
            entries.pop(ref, None)
            if not entries:
                del self._entries[key]


@dataclass(frozen=True)
class Kind:
    """What to list and watch: (group, version, plural), and a label selector."""

    group: str
    version: str
    plural: str
    label_selector: str | None = None


@dataclass
class Backoff:
    """Exponential delays with jitter between failed attempts, reset by a success."""

    initial: float = 0.5
    ceiling: float = 30.0
    failures: int = 0

    def next(self) -> float:
        delay = min(self.ceiling, self.initial * 2.0 ** self.failures)
        self.failures += 1
        jitter: float = random.uniform(0.8, 1.0)
        return delay * jitter

    def reset(self) -> None:
        self.failures = 0


class Informer:
    """The cache of one kind, kept by one list+watch per scope; `start()` on the loop,
    `await stop()` to end the watches. `objects` holds every cached body by (namespace,
    name); `indexes` file them by other keys as well."""

    def __init__(
        self,
        client: KubeClient,
        kind: Kind,
        *,
        trim: Callable[[Mapping[str, Any]], Body],
        namespaces: Sequence[str] | None = None,
        indexes: Sequence[Index] = (),
        keep: Callable[[Mapping[str, Any]], bool] | None = None,
        on_change: Callable[[str, Body], None] | None = None,
        page_size: int = 500,
        watch_timeout: tuple[float, float] = (300.0, 600.0),
        backoff: Callable[[], Backoff] = Backoff,
    ) -> None:
        """`namespaces`: one list+watch per namespace; None: one for the whole cluster.
        `watch_timeout`: each watch asks the server to end it after a random time in this
        range (as client-go does), so that connections are renewed and spread. `keep`: which
        objects (as decoded) to cache; another is dropped (and deleted, if it was cached)."""
        self.client = client
        self.kind = kind
        self.objects: dict[Key, Body] = {}
        self.indexes = tuple(indexes)
        self.synced = asyncio.Event()
        self._trim = trim
        self._keep = keep
        self._scopes: tuple[str | None, ...] = (None,) if namespaces is None else tuple(
            dict.fromkeys(namespaces))
        self._listed: set[str | None] = set()
        self._on_change = on_change
        self._page_size = page_size
        self._watch_timeout = watch_timeout
        self._backoff = backoff
        self._tasks: list[asyncio.Task[None]] = []
        # The last resourceVersion seen per scope, to watch from (None: list first).
        self.versions: dict[str | None, str | None] = {}

    def __repr__(self) -> str:
        return f"Informer({self.kind.plural}, {len(self.objects)} objects)"

    # --- running ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._tasks:
            return
        for scope in self._scopes:
            self._tasks.append(asyncio.create_task(
                self._reflect(scope), name=f"watch {self.kind.plural} in {scope or 'cluster'}"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _reflect(self, scope: str | None) -> None:
        backoff = self._backoff()
        while True:
            version = self.versions.get(scope)
            try:
                if version is None:
                    self.versions[scope] = await self._relist(scope)
                    backoff.reset()
                    continue
                if await self._watch(scope, version, backoff):
                    continue
            except asyncio.CancelledError:
                raise
            except KubeError as exc:
                if exc.status == GONE:
                    self.versions[scope] = None  # list again
                    if version is not None:
                        log.info("%s: resourceVersion %s expired, listing again",
                                 self._name(scope), version)
                        continue  # at once: nothing is wrong, the window moved on
                log.warning("%s: %s %s (retrying)", self._name(scope), exc.status, exc.reason)
            except (httpx.TransportError, ValueError) as exc:
                # A cut stream or a refused connection: again from the last version seen.
                log.info("%s: %s (retrying)", self._name(scope),
                         str(exc) or type(exc).__name__)
            except Exception:
                log.exception("%s: failed (retrying)", self._name(scope))
            await asyncio.sleep(backoff.next())

    def _name(self, scope: str | None) -> str:
        return f"{self.kind.plural} in {scope or 'all namespaces'}"

    async def _relist(self, scope: str | None) -> str:
        """List the scope page by page into the cache; what the list lacks is deleted."""
        listed: set[Key] = set()
        version = ""
        token: str | None = None
        while True:
            items, page_version, token = await self.client.list_page(
                self.kind.group, self.kind.version, self.kind.plural, scope,
                label_selector=self.kind.label_selector, limit=self._page_size,
                continue_token=token)
            # The first page's version: a watch from it replays what changed while the
            # later pages were read (a real server serves every page from that snapshot).
            version = version or page_version
            for item in items:
                listed.add(self._put(item))
            items.clear()  # each body can go before the next page comes
            if token is None:
                break
        for ref in [ref for ref in self.objects
                    if (scope is None or ref[0] == scope) and ref not in listed]:
            self._delete(ref)
        if scope not in self._listed:
            self._listed.add(scope)
            if len(self._listed) == len(self._scopes):
                self.synced.set()
        return version

    async def _watch(self, scope: str | None, version: str, backoff: Backoff) -> bool:
        """Apply the events of one watch, keeping the last version seen in `versions`;
        whether any event came (a stream that ends empty is made again after a backoff)."""
        seen = False
        timeout = random.uniform(*self._watch_timeout)
        events = cast(AsyncGenerator[tuple[str, Body], None], self.client.watch(
            self.kind.group, self.kind.version, self.kind.plural, scope,
            resource_version=version, label_selector=self.kind.label_selector,
            timeout=timeout))
        try:
            async for kind, obj in events:
                seen = True
                backoff.reset()
                if kind == "BOOKMARK":
                    self.versions[scope] = version = _version(obj) or version
                    continue
                if kind == "DELETED":
                    kept = self._keep is None or self._keep(obj)
                    self._delete(object_key(obj), self._trim(obj) if kept else None)
                elif kind in ("ADDED", "MODIFIED"):
                    self._put(obj)
                self.versions[scope] = version = _version(obj) or version
        finally:
            await events.aclose()
        return seen

    # --- the cache -------------------------------------------------------------------------

    def _put(self, obj: Mapping[str, Any]) -> Key:
        """Cache `obj` (as decoded) trimmed, unless `keep` refuses it."""
        ref = object_key(obj)
        if self._keep is not None and not self._keep(obj):
            if ref in self.objects:
                self._delete(ref)
            return ref
        body = self._trim(obj)
        old = self.objects.get(ref)
        if old is not None and _version(old) == _version(body) and _version(body):
            return ref
        self.objects[ref] = body
        for index in self.indexes:
            index.put(ref, body)
        self._notify("ADDED" if old is None else "MODIFIED", body)
        return ref

    def _delete(self, ref: Key, body: Body | None = None) -> None:
        old = self.objects.pop(ref, None)
        for index in self.indexes:
            index.remove(ref)
        last = body if body is not None else old
        if last is not None:
            self._notify("DELETED", last)

    def _notify(self, kind: str, body: Body) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(kind, body)
        except Exception:  # a wake-up's failure must not stop the watch
            log.exception("%s: handling a %s event failed", self.kind.plural, kind)


async def wait_synced(informers: Sequence[Informer]) -> None:
    """Until every informer's first list is in its cache."""
    for informer in informers:
        await informer.synced.wait()
