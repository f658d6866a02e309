"""What the dashboard knows: objects kept current by one list+watch per kind, shared by
every browser.

`Store` is a plain data structure (no I/O): `apply` takes one watch event and answers which
Rollouts it touched; subscribers (one per open page) collect those keys until their page
is redrawn. `feed` is the I/O half: it runs the watches (`rollouts.cli.cluster.follow`,
the same list-then-watch loop as `rollouts get --watch`) and applies what they deliver.
A kind the user may not read (RBAC) or that is not installed is reported, not fatal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rollouts.cli.cluster import follow, merged
from rollouts.cli.kubeopts import GROUP, VERSION, CliError
from rollouts.kube.client import Body, KubeClient

Key = tuple[str, str]  # (namespace, name)

ROLLOUTS = "rollouts"
REPLICA_SETS = "replicasets"
ANALYSIS_RUNS = "analysisruns"
PODS = "pods"
EVENTS = "events"
# (group, version, plural) of everything the dashboard follows.
KINDS = (
    (GROUP, VERSION, ROLLOUTS),
    ("apps", "v1", REPLICA_SETS),
    (GROUP, VERSION, ANALYSIS_RUNS),
    ("", "v1", PODS),
    ("", "v1", EVENTS),
)
EVENTS_KEPT = 50


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = _dict(obj.get("metadata"))
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def owner_name(obj: Mapping[str, Any], kind: str) -> str | None:
    """The name of the object's controlling owner of `kind` (else its first such owner)."""
    owners = [o for o in _dict(obj.get("metadata")).get("ownerReferences") or ()
              if isinstance(o, Mapping) and o.get("kind") == kind]
    chosen = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
    return str(chosen["name"]) if chosen and chosen.get("name") else None


@dataclass(eq=False)  # identity: each open page is its own subscriber
class Subscription:
    """One open page: the Rollouts changed since it was last sent, and a bell to ring."""

    wants: Callable[[Key], bool]
    dirty: set[Key] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def take(self) -> set[Key]:
        keys, self.dirty = self.dirty, set()
        self.wake.clear()
        return keys


class Store:
    """Rollouts and what they own, indexed by owner so a page never scans everything."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[Key, Body]] = {plural: {} for _, _, plural in KINDS}
        # plural -> rollout key -> names of the owned objects (ReplicaSets, AnalysisRuns).
        self._owned: dict[str, dict[Key, set[str]]] = {REPLICA_SETS: {}, ANALYSIS_RUNS: {}}
        self._pods: dict[Key, set[str]] = {}  # ReplicaSet key -> pod names
        self._events: dict[Key, set[str]] = {}  # Rollout key -> event names
        self.synced: set[str] = set()
        # Every applied change gets a sequence number, so a page rendered at `seq` can ask
        # for exactly what changed between its rendering and its stream connecting.
        self.seq = 0
        self._changed: dict[Key, int] = {}
        self.closed = False
        self.problems: dict[str, str] = {}  # plural -> why it cannot be shown
        self._subscribers: set[Subscription] = set()

    # --- reading ---------------------------------------------------------------------------
    def rollouts(self) -> list[Body]:
        return [self.objects[ROLLOUTS][k] for k in sorted(self.objects[ROLLOUTS])]

    def rollout(self, key: Key) -> Body | None:
        return self.objects[ROLLOUTS].get(key)

    def namespaces(self) -> list[str]:
        return sorted({ns for ns, _ in self.objects[ROLLOUTS]})

    def owned(self, plural: str, key: Key) -> list[Body]:
        store = self.objects[plural]
        names = self._owned[plural].get(key, set())
        return [store[(key[0], n)] for n in sorted(names) if (key[0], n) in store]

    def pods_of(self, namespace: str, replica_set: str) -> list[Body]:
        store = self.objects[PODS]
        names = self._pods.get((namespace, replica_set), set())
        return [store[(namespace, n)] for n in sorted(names) if (namespace, n) in store]

    def events_of(self, key: Key) -> list[Body]:
        store = self.objects[EVENTS]
        found = [store[(key[0], n)] for n in self._events.get(key, set())
                 if (key[0], n) in store]
        found.sort(key=_event_time)
        return found[-EVENTS_KEPT:]

    def changed_since(self, seq: int) -> set[Key]:
        return {k for k, at in self._changed.items() if at > seq}

    # --- writing ---------------------------------------------------------------------------
    def apply(self, plural: str, kind: str, obj: Body) -> set[Key]:
        """Record one event ("ADDED", "MODIFIED", "DELETED", "SYNCED"); the Rollouts it
        touched are returned and marked dirty for every subscriber that wants them."""
        if kind == "SYNCED":
            self.synced.add(plural)
            return set()
        key = key_of(obj)
        if not key[1]:
            return set()
        store = self.objects[plural]
        old = store.get(key)
        if kind == "DELETED":
            store.pop(key, None)
        else:
            store[key] = obj
        touched: set[Key] = set()
        for body in (old, None if kind == "DELETED" else obj):
            if body is not None:
                touched |= self._index(plural, key, body, add=body is obj)
        self._notify(touched)
        return touched

    def _index(self, plural: str, key: Key, body: Body, *, add: bool) -> set[Key]:
        namespace, name = key

        def link(index: dict[Key, set[str]], at: Key) -> None:
            names = index.setdefault(at, set())
            if add:
                names.add(name)
            else:
                names.discard(name)
                if not names:
                    index.pop(at, None)

        if plural == ROLLOUTS:
            return {key}
        if plural in self._owned:
            owner = owner_name(body, "Rollout")
            if owner is None:
                return set()
            link(self._owned[plural], (namespace, owner))
            return {(namespace, owner)}
        if plural == PODS:
            rs_name = owner_name(body, "ReplicaSet")
            if rs_name is None:
                return set()
            link(self._pods, (namespace, rs_name))
            rs = self.objects[REPLICA_SETS].get((namespace, rs_name))
            owner = owner_name(rs, "Rollout") if rs is not None else None
            return {(namespace, owner)} if owner else set()
        if plural == EVENTS:
            involved = _dict(body.get("involvedObject"))
            if involved.get("kind") != "Rollout" or not involved.get("name"):
                return set()
            at = (str(involved.get("namespace") or namespace), str(involved["name"]))
            link(self._events, at)
            return {at}
        return set()

    # --- subscribers -----------------------------------------------------------------------
    def subscribe(self, wants: Callable[[Key], bool]) -> Subscription:
        subscription = Subscription(wants)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def close(self) -> None:
        """Wake every subscriber for the last time (the server is stopping)."""
        self.closed = True
        for subscription in self._subscribers:
            subscription.wake.set()

    def _notify(self, keys: Iterable[Key]) -> None:
        keys = set(keys)
        if not keys:
            return
        self.seq += 1
        for key in keys:
            self._changed[key] = self.seq
        for subscription in self._subscribers:
            wanted = {k for k in keys if subscription.wants(k)}
            if wanted:
                subscription.dirty |= wanted
                subscription.wake.set()


def _event_time(event: Mapping[str, Any]) -> tuple[str, int]:
    """When it last happened; ties (same second) in the order the API server stored them."""
    meta = _dict(event.get("metadata"))
    version = str(meta.get("resourceVersion") or "")
    return (str(event.get("lastTimestamp") or event.get("eventTime")
                or meta.get("creationTimestamp") or ""),
            int(version) if version.isdigit() else 0)


async def feed(store: Store, client: KubeClient, namespace: str | None,
               synced: asyncio.Event) -> None:
    """Keep `store` current until cancelled; `synced` is set once every kind was listed.

    A kind that cannot be followed (forbidden, not installed, the watch failed) is noted
    in `store.problems` and counted as synced, so the rest of the page still works; the
    Rollouts themselves are the exception: without them there is nothing to show.
    """
    queue: asyncio.Queue[tuple[str, str, Body]] = asyncio.Queue()

    async def one(group: str, version: str, plural: str) -> None:
        try:
            await follow(client, group, version, plural, namespace, queue)
        except CliError as exc:
            if plural == ROLLOUTS:
                raise
            store.problems[plural] = exc.message
            await queue.put((plural, "SYNCED", {}))

    tasks = [asyncio.create_task(one(g, v, p)) for g, v, p in KINDS]
    async for plural, kind, obj in merged(queue, tasks):
        store.apply(plural, kind, obj)
        if len(store.synced) == len(KINDS):
            synced.set()
