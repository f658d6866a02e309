"""A Deployment controller in miniature, for the sandbox (Rollouts with a workloadRef).

Each Deployment gets one ReplicaSet per pod template, named ``<deployment>-<hash>`` and
labelled ``pod-template-hash=<hash>`` (added to its selector and its pods' labels, as the real
controller does), owned by the Deployment (``controller: true``). The ReplicaSet of the
current template runs ``spec.replicas`` pods; older ones are scaled to 0. The pods themselves
come from the ReplicaSet controller of :mod:`rollouts.sandbox.kubelet`. The Deployment's status
sums its ReplicaSets' (``replicas``, ``updatedReplicas``, ``readyReplicas``,
``availableReplicas``, ``observedGeneration``).

Simplifications: a template change replaces the pods at once (no maxSurge/maxUnavailable
rolling update), no revision history or rollback, no paused Deployments, no conditions.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import logging
from typing import Any

from rollouts.sandbox.apiserver import ApiEmulator, ApiError, Subscription

__all__ = ["ControllerGroup", "DeploymentController", "template_hash"]

Obj = dict[str, Any]
HASH_LABEL = "pod-template-hash"
_DEPLOYMENTS = ("apps", "v1", "deployments")
_RS = ("apps", "v1", "replicasets")
_LOG = logging.getLogger(__name__)


def template_hash(template: Obj) -> str:
    """A short stable hash of a pod template (the real controller's differs; only its
    stability matters here)."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


def _owner(obj: Obj) -> tuple[str, str] | None:
    """(kind, name) of an object's controller."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return str(ref.get("kind")), str(ref.get("name"))
    return None


class DeploymentController:
    """Keeps each Deployment's ReplicaSets in line with its template and replicas."""

    def __init__(self, emulator: ApiEmulator, *, namespace: str | None = None) -> None:
        self.emulator = emulator
        self.namespace = namespace
        self._queue: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()
        self._subs: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        subs = [self.emulator.subscribe(*_DEPLOYMENTS, namespace=self.namespace, initial=True),
                self.emulator.subscribe(*_RS, namespace=self.namespace, initial=True)]
        self._subs = subs
        self._tasks = [asyncio.create_task(self._pump(sub), name="deployments-pump")
                       for sub in subs]
        self._tasks.append(asyncio.create_task(self._run(), name="deployments-loop"))

    async def stop(self) -> None:
        for sub in self._subs:
            sub.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks, self._subs = [], []

    async def _pump(self, sub: Subscription) -> None:
        async for event in sub:
            obj = event.object
            meta = obj.get("metadata") or {}
            if obj.get("kind") == "Deployment":
                self._queue.put_nowait((meta.get("namespace", ""), meta.get("name", "")))
                continue
            owner = _owner(obj)
            if owner is not None and owner[0] == "Deployment":
                self._queue.put_nowait((meta.get("namespace", ""), owner[1]))

    async def _run(self) -> None:
        while True:
            keys = {await self._queue.get()}
            while not self._queue.empty():
                keys.add(self._queue.get_nowait())
            for key in sorted(k for k in keys if k is not None):
                try:
                    self._reconcile(*key)
                except ApiError as exc:
                    if exc.code == 409:  # raced with another writer: look again
                        self._queue.put_nowait(key)
                    else:
                        _LOG.warning("deployment %s/%s: %s", key[0], key[1], exc)
                except Exception:  # one broken object must not stop the controller
                    _LOG.exception("deployment %s/%s: reconcile failed", *key)

    def _reconcile(self, namespace: str, name: str) -> None:
        deployment = self.emulator.get_object(*_DEPLOYMENTS, namespace, name)
        if deployment is None or deployment["metadata"].get("deletionTimestamp"):
            return
        uid = deployment["metadata"]["uid"]
        spec = deployment.get("spec") or {}
        want = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        pod_hash = template_hash(template)
        owned = [rs for rs in self.emulator.list_objects(*_RS, namespace=namespace)
                 if any(ref.get("uid") == uid and ref.get("controller")
                        for ref in rs["metadata"].get("ownerReferences") or ())]
        current = next((rs for rs in owned
                        if (rs["metadata"].get("labels") or {}).get(HASH_LABEL) == pod_hash),
                       None)
        if current is None:
            current = self.emulator.create_object(
                *_RS, namespace, self._replica_set(deployment, pod_hash, want))
            owned.append(current)
        for rs in owned:
            size = want if rs is current else 0
            if int((rs.get("spec") or {}).get("replicas", 1)) != size:
                self.emulator.patch_object(*_RS, namespace, rs["metadata"]["name"], {
                    "metadata": {"resourceVersion": rs["metadata"]["resourceVersion"]},
                    "spec": {"replicas": size}})
        self._write_status(deployment, owned, current)

    def _replica_set(self, deployment: Obj, pod_hash: str, replicas: int) -> Obj:
        meta = deployment["metadata"]
        spec = deployment.get("spec") or {}
        template = copy.deepcopy(spec.get("template") or {})
        tmeta = template.setdefault("metadata", {})
        labels = {**(tmeta.get("labels") or {}), HASH_LABEL: pod_hash}
        tmeta["labels"] = labels
        selector = copy.deepcopy(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: pod_hash}
        return {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{meta['name']}-{pod_hash}",
                "namespace": meta["namespace"],
                "labels": labels,
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"],
                    "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": {"replicas": replicas, "minReadySeconds": spec.get("minReadySeconds", 0),
                     "selector": selector, "template": template},
        }

    def _write_status(self, deployment: Obj, owned: list[Obj], current: Obj) -> None:
        def total(field: str, sets: list[Obj]) -> int:
            return sum(int((rs.get("status") or {}).get(field) or 0) for rs in sets)

        status = dict(deployment.get("status") or {})
        status.update({
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": total("replicas", owned),
            "updatedReplicas": total("replicas", [current]),
            "readyReplicas": total("readyReplicas", owned),
            "availableReplicas": total("availableReplicas", owned),
        })
        if status != (deployment.get("status") or {}):
            meta = deployment["metadata"]
            self.emulator.patch_object(
                *_DEPLOYMENTS, meta["namespace"], meta["name"],
                {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status},
                subresource="status")


class ControllerGroup:
    """Several in-process controllers started and stopped together (the EmulatorThread's
    `kubelet` slot takes one object with start/stop)."""

    def __init__(self, *controllers: Any) -> None:
        self.controllers = controllers

    async def start(self) -> None:
        for controller in self.controllers:
            await controller.start()

    async def stop(self) -> None:
        for controller in reversed(self.controllers):
            await controller.stop()
