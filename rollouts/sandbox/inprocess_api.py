"""The API emulator's in-process API: ``get_object``, ``list_objects``, ``create_object``,
``patch_object``, ``apply_manifest``, ``subscribe``... for the sandbox's kubelet, the demo and
tests. Each call has the HTTP path's semantics and emits the same watch events, and may be
made from any thread: while the emulator serves on another thread's loop, the call is run on
that loop. In-process calls are not counted in ``ApiEmulator.requests``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import pathlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import yaml

from rollouts.sandbox import managedfields
from rollouts.sandbox.apierrors import ApiError
from rollouts.sandbox.resources import ResourceInfo
from rollouts.sandbox.selectors import (
    FieldSelector,
    LabelSelector,
)
from rollouts.sandbox.store import ObjectStore
from rollouts.sandbox.watch import Subscription, Watcher, WatchEvent

Obj = dict[str, Any]
T = TypeVar("T")


class InProcessApi(ObjectStore):
    """The store's operations as plain method calls, marshalled onto the serving loop."""

    # The loop the emulator serves on and its thread (None while it does not serve).
    _loop: asyncio.AbstractEventLoop | None
    _loop_thread: int | None

    def _call(self, fn: Callable[[], T]) -> T:
        loop = self._loop
        if loop is None or self._loop_thread == threading.get_ident() or loop.is_closed():
            return fn()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as e:
                future.set_exception(e)

        loop.call_soon_threadsafe(run)
        return future.result()

    # ----------------------------------------------------------------- in-process API

    def resources(self) -> list[ResourceInfo]:
        return list(self._resources.values())

    def resource_for_kind(self, api_version: str, kind: str) -> ResourceInfo:
        group, _, version = api_version.rpartition("/")
        for info in self._resources.values():
            if info.group == group and info.version == version and info.kind == kind:
                return info
        raise ApiError(404, "NotFound", f"no resource for {api_version}/{kind}")

    def get_object(
        self, group: str, version: str, plural: str, namespace: str | None, name: str
    ) -> Obj | None:
        def run() -> Obj | None:
            info = self._info(group, version, plural)
            obj = self._store(info).get((namespace or "", name))
            return self._out(info, obj) if obj is not None else None

        return self._call(run)

    def list_objects(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]:
        def run() -> list[Obj]:
            info = self._info(group, version, plural)
            return [
                self._out(info, o)
                for o in self._select(info, namespace, label_selector, field_selector)
            ]

        return self._call(run)

    def create_object(
        self, group: str, version: str, plural: str, namespace: str | None, body: Obj
    ) -> Obj:
        def run() -> Obj:
            info = self._info(group, version, plural)
            return self._out(info, self._create(info, namespace, copy.deepcopy(body)))

        return self._call(run)

    def replace_object(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        body: Obj,
        subresource: str | None = None,
    ) -> Obj:
        def run() -> Obj:
            info = self._info(group, version, plural)
            return self._out(
                info, self._replace(info, namespace, name, copy.deepcopy(body), subresource)
            )

        return self._call(run)

    def patch_object(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        patch: Obj | list[Any],
        subresource: str | None = None,
        *,
        patch_type: str = "merge",
    ) -> Obj:
        """A merge patch (or ``patch_type="json"`` with a list of operations)."""

        def run() -> Obj:
            info = self._info(group, version, plural)
            content_type = (
                "application/json-patch+json"
                if patch_type == "json"
                else "application/merge-patch+json"
            )
            result = self._patch(info, namespace, name, content_type, patch, subresource)
            return self._out(info, result)

        return self._call(run)

    def delete_object(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        *,
        propagation_policy: str = "Background",
    ) -> Obj | None:
        """Delete (or mark for deletion when finalizers remain); None if it did not exist."""

        def run() -> Obj | None:
            info = self._info(group, version, plural)
            if (namespace or "", name) not in self._store(info):
                return None
            return self._out(
                info, self._delete(info, namespace, name, {"propagationPolicy": propagation_policy})
            )

        return self._call(run)

    def apply_manifest(self, manifest: Obj) -> Obj:
        """Create the object, or merge-patch it when it exists (like a naive ``kubectl apply``)."""

        def run() -> Obj:
            body = copy.deepcopy(manifest)
            info = self.resource_for_kind(str(body.get("apiVersion", "")), str(body.get("kind")))
            meta = body.setdefault("metadata", {})
            namespace = (meta.get("namespace") or "default") if info.namespaced else None
            name = meta.get("name")
            if name and (namespace or "", name) in self._store(info):
                result = self._patch(
                    info, namespace, name, "application/merge-patch+json", body, None
                )
            else:
                result = self._create(info, namespace, body)
            return self._out(info, result)

        return self._call(run)

    def apply_server_side(self, manifest: Obj, field_manager: str, *,
                          force: bool = False) -> Obj:
        """Server-side apply of one manifest (PATCH application/apply-patch+yaml) as
        `field_manager`: creates when absent; 409 on a field conflict unless `force`."""

        def run() -> Obj:
            body = copy.deepcopy(manifest)
            info = self.resource_for_kind(str(body.get("apiVersion", "")), str(body.get("kind")))
            meta = body.setdefault("metadata", {})
            namespace = (meta.get("namespace") or "default") if info.namespaced else None
            result = self._patch(info, namespace, str(meta.get("name", "")),
                                 "application/apply-patch+yaml", body, None,
                                 writer=managedfields.Writer(field_manager, force=force))
            return self._out(info, result)

        return self._call(run)

    def apply_yaml(self, text_or_path: str | pathlib.Path) -> list[Obj]:
        """Apply every document of a YAML text or file."""
        path = text_or_path if isinstance(text_or_path, pathlib.Path) else None
        text = path.read_text() if path is not None else str(text_or_path)
        return [self.apply_manifest(doc) for doc in yaml.safe_load_all(text) if doc]

    def subscribe(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        *,
        initial: bool = False,
    ) -> Subscription:
        """Await changes in-process. Must be called with a running event loop."""
        loop = asyncio.get_running_loop()

        def run() -> Subscription:
            info = self._info(group, version, plural)
            watcher = Watcher(
                info.key,
                namespace,
                LabelSelector.parse(label_selector),
                FieldSelector.parse(None),
                loop,
            )
            if initial:
                for obj in self._select(info, namespace, label_selector, None):
                    out = self._out(info, obj)
                    watcher.deliver(WatchEvent("ADDED", out, None, self._rv))
            self._watchers[info.key].add(watcher)
            return Subscription(self._unwatch, watcher)

        return self._call(run)

    def _unwatch(self, watcher: Watcher) -> None:
        def run() -> None:
            self._watchers[watcher.key].discard(watcher)

        self._call(run)
