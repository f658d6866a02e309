"""The API emulator's storage: objects by resource, the resources served (built-in kinds and
those of every CustomResourceDefinition stored), one global resourceVersion, the bounded
history window of writes and the watchers; `_commit` is the one way an object is written or
removed, and tells the watchers.

The write semantics on top of it are in ``rollouts.sandbox.store`` (create, update, patch,
status and scale) and ``rollouts.sandbox.deletion`` (finalizers, garbage collection,
namespaces).
"""

from __future__ import annotations

import collections
import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

from rollouts.sandbox import apierrors
from rollouts.sandbox.indexes import StoreIndexes
from rollouts.sandbox.resources import ResourceInfo, ScaleInfo, builtin_resources
from rollouts.sandbox.selectors import (
    FieldSelector,
    LabelSelector,
)
from rollouts.sandbox.watch import HistoryItem, Watcher, WatchEvent

Obj = dict[str, Any]


def _fmt_time(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Storage:
    """Objects, the resources served, the resourceVersion, the history and the watchers."""

    def __init__(
        self,
        *,
        history_size: int = 10_000,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.history_size = history_size
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._resources: dict[tuple[str, str, str], ResourceInfo] = {}
        self._builtin_keys: set[tuple[str, str]] = set()
        self._objects: dict[tuple[str, str], dict[tuple[str, str], Obj]] = {}
        # Objects by label, uid and owner (kept by _commit; read by _select and the GC).
        self._indexes = StoreIndexes()
        self._rv = 0
        self._history: collections.deque[HistoryItem] = collections.deque()
        self._history_floor = 0  # the newest rv evicted from the history window
        self._watchers: dict[tuple[str, str], set[Watcher]] = collections.defaultdict(set)
        for info in builtin_resources():
            self._register(info)
            self._builtin_keys.add(info.key)

    @property
    def resource_version(self) -> int:
        """The current global resourceVersion."""
        return self._rv

    # ----------------------------------------------------------------- registry

    def _register(self, info: ResourceInfo) -> None:
        self._resources[(info.group, info.version, info.plural)] = info
        self._objects.setdefault(info.key, {})

    def _info(self, group: str, version: str, plural: str) -> ResourceInfo:
        info = self._resources.get((group, version, plural))
        if info is None:
            raise apierrors.generic(404)
        return info

    def _store(self, info: ResourceInfo) -> dict[tuple[str, str], Obj]:
        return self._objects.setdefault(info.key, {})

    def _any_info(self, key: tuple[str, str]) -> ResourceInfo | None:
        for info in self._resources.values():
            if info.key == key:
                return info
        return None

    def _crd_changed(self, crd: Obj | None, old: Obj | None) -> None:
        """(Re)register the resources a CRD serves."""
        if old is not None:
            spec = old.get("spec", {})
            group, plural = spec.get("group", ""), spec.get("names", {}).get("plural", "")
            for k in [k for k in self._resources if k[0] == group and k[2] == plural]:
                del self._resources[k]
        if crd is None:
            return
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        group = spec.get("group", "")
        for version in spec.get("versions", []):
            if not version.get("served", True):
                continue
            subs = version.get("subresources") or spec.get("subresources") or {}
            scale: ScaleInfo | None = None
            if "scale" in subs:
                s = subs["scale"] or {}
                scale = ScaleInfo(
                    s.get("specReplicasPath", ".spec.replicas"),
                    s.get("statusReplicasPath", ".status.replicas"),
                    s.get("labelSelectorPath"),
                )
            columns = tuple(
                (str(c.get("name")), str(c.get("jsonPath", "")))
                for c in version.get("additionalPrinterColumns") or []
            )
            self._register(
                ResourceInfo(
                    group=group,
                    version=str(version.get("name")),
                    plural=str(names.get("plural")),
                    singular=str(names.get("singular") or str(names.get("kind", "")).lower()),
                    kind=str(names.get("kind")),
                    namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                    short_names=tuple(names.get("shortNames") or ()),
                    categories=tuple(names.get("categories") or ()),
                    status="status" in subs,
                    scale=scale,
                    custom=True,
                    printer_columns=columns,
                )
            )

    # ----------------------------------------------------------------- store primitives

    def _out(self, info: ResourceInfo, obj: Obj) -> Obj:
        """A copy of a stored object for in-process callers, who may change what they get."""
        out = copy.deepcopy(obj)
        out["apiVersion"] = info.api_version
        return out

    @staticmethod
    def _wire(info: ResourceInfo, obj: Obj) -> Obj:
        """A stored object as served, for a body serialised at once: only the top level is
        new (stored objects are replaced on write, never changed in place)."""
        return {**obj, "apiVersion": info.api_version}

    def _select(
        self,
        info: ResourceInfo,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
    ) -> list[Obj]:
        """Stored objects matching, in (namespace, name) order. Only the candidates of the
        label index (and of a `metadata.name=` field term) are looked at."""
        labels = LabelSelector.parse(label_selector)
        fields = FieldSelector.parse(field_selector)
        store = self._store(info)
        keys = self._indexes.label_index(info.key).candidates(labels)
        name = fields.pinned_name()
        if name is not None and namespace is not None:
            pinned = {(namespace, name)}
            keys = pinned if keys is None else keys & pinned
        candidates = store.keys() if keys is None else [k for k in keys if k in store]
        out = []
        for key in sorted(candidates):
            if namespace is not None and key[0] != namespace:
                continue
            obj = store[key]
            if labels.matches(obj["metadata"].get("labels")) and fields.matches(obj):
                out.append(obj)
        return out

    def write_history(self) -> list[tuple[int, str, str, Obj]]:
        """(resourceVersion, resource plural, event type, object) of every write still in
        the history window, oldest first: the order in which the server applied them."""
        items = list(self._history)  # one C-level copy: safe beside the server's thread
        return [(item.rv, item.key[1], item.event.type, copy.deepcopy(item.event.object))
                for item in items]

    def _commit(self, info: ResourceInfo, kind: str, obj: Obj, old: Obj | None) -> Obj:
        """Write (or remove) one object under a new resourceVersion and tell the watchers."""
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        meta = obj["metadata"]
        key = (meta.get("namespace") or "", meta["name"])
        store = self._store(info)
        previous = store.get(key)
        if kind == "DELETED":
            store.pop(key, None)
        else:
            store[key] = obj
        self._indexes.record(info.key, key, previous, obj if kind != "DELETED" else None)
        event = WatchEvent(kind, copy.deepcopy(obj), copy.deepcopy(old) if old else None, self._rv)
        self._history.append(HistoryItem(self._rv, info.key, event))
        while len(self._history) > self.history_size:
            self._history_floor = self._history.popleft().rv
        for watcher in list(self._watchers.get(info.key, ())):
            seen = watcher.translate(event)
            if seen is not None:
                watcher.deliver(seen)
        if info.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self._crd_changed(None if kind == "DELETED" else obj, old)
            if kind == "DELETED":
                self._drop_custom_objects(obj)
        return obj

    def _now(self) -> str:
        return _fmt_time(self._clock())

    def _current(self, info: ResourceInfo, namespace: str | None, name: str) -> Obj:
        obj = self._store(info).get((namespace or "", name))
        if obj is None:
            raise apierrors.not_found(info.group, info.plural, name)
        return obj

    def _drop_custom_objects(self, crd: Obj) -> None:
        spec = crd.get("spec", {})
        key = (spec.get("group", ""), spec.get("names", {}).get("plural", ""))
        store = self._objects.pop(key, {})
        if not store:
            return
        info = ResourceInfo(key[0], "v1", key[1], "", "", True)
        self._objects[key] = store
        for obj in list(store.values()):
            self._commit(info, "DELETED", copy.deepcopy(obj), obj)
        self._objects.pop(key, None)
