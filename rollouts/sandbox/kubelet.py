"""A kubelet and ReplicaSet controller in miniature, for the sandbox and the tests.

It runs in-process against an :class:`~rollouts.sandbox.apiserver.ApiEmulator` and behaves like
the pieces of a real cluster a rollout controller depends on:

* the ReplicaSet controller: each ReplicaSet gets ``spec.replicas`` Pods named
  ``<rs-name>-<5 random chars>`` from its template, owned by it (``controller: true``); surplus
  Pods go not-ready first, then newest first; the status carries ``replicas``,
  ``fullyLabeledReplicas``, ``readyReplicas``, ``availableReplicas`` (Ready for at least
  ``spec.minReadySeconds``) and ``observedGeneration``;
* the kubelet: a Pod becomes Running and Ready ``ready_delay`` seconds after it appears, unless
  ``never_ready(pod)`` says it cannot (it then stays Running, not Ready, in CrashLoopBackOff).

It is event driven (in-process watch subscriptions); the only timers are the readiness delay
and the wake-up for ``minReadySeconds``. Time stamps and availability use the injected ``now``
clock; when a test moves a manual clock it calls :meth:`KubeletSimulator.resync`.

Simplifications: Pods are deleted at once (no graceful termination), orphan Pods are not
adopted, and there are no Deployment, Job, Service endpoint or node controllers.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import ipaddress
import itertools
import logging
from collections.abc import Callable
from typing import Any

from rollouts.sandbox import apierrors
from rollouts.sandbox.apiserver import ApiEmulator, ApiError, LabelSelector, Subscription

__all__ = ["KubeletSimulator", "is_pod_ready", "never_ready_if_image_contains"]

Obj = dict[str, Any]
_LOG = logging.getLogger(__name__)
_RS = ("apps", "v1", "replicasets")
_PODS = ("", "v1", "pods")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _fmt(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _ready_condition(pod: Obj) -> Obj | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return dict(cond)
    return None


def is_pod_ready(pod: Obj) -> bool:
    cond = _ready_condition(pod)
    return cond is not None and cond.get("status") == "True"


def never_ready_if_image_contains(marker: str = "crashloop") -> Callable[[Obj], bool]:
    """A ``never_ready`` predicate: any container image containing ``marker``."""

    def predicate(pod: Obj) -> bool:
        containers = (pod.get("spec") or {}).get("containers") or []
        return any(marker in str(c.get("image", "")) for c in containers)

    return predicate


def _controller_uid(pod: Obj) -> str | None:
    for ref in pod.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "ReplicaSet":
            return str(ref.get("uid"))
    return None


def _controller_name(pod: Obj) -> str | None:
    for ref in pod.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "ReplicaSet":
            return str(ref.get("name"))
    return None


class KubeletSimulator:
    """Keeps ReplicaSets' Pods in line and makes Pods ready, in-process."""

    def __init__(
        self,
        emulator: ApiEmulator,
        *,
        ready_delay: float = 1.0,
        never_ready: Callable[[Obj], bool] | None = None,
        now: Callable[[], dt.datetime] | None = None,
        namespace: str | None = None,
    ) -> None:
        self.emulator = emulator
        self.ready_delay = ready_delay
        self.never_ready = never_ready or (lambda pod: False)
        self.now = now or _utcnow
        self.namespace = namespace
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._subs: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._ready_timers: dict[str, asyncio.Task[None]] = {}  # pod uid -> timer
        self._wakeups: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._sequence = itertools.count()
        self._created_order: dict[str, int] = {}  # pod uid -> creation order, for tie-breaks
        self._next_ip = int(ipaddress.IPv4Address("10.244.0.10"))
        self._idle = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._idle = asyncio.Event()
        rs_sub = self.emulator.subscribe(*_RS, namespace=self.namespace, initial=True)
        pod_sub = self.emulator.subscribe(*_PODS, namespace=self.namespace, initial=True)
        self._subs = [rs_sub, pod_sub]
        self._tasks = [
            asyncio.create_task(self._pump("rs", rs_sub), name="kubelet-rs-pump"),
            asyncio.create_task(self._pump("pod", pod_sub), name="kubelet-pod-pump"),
            asyncio.create_task(self._run(), name="kubelet-loop"),
        ]

    async def stop(self) -> None:
        for sub in self._subs:
            sub.close()
        tasks = [*self._tasks, *self._ready_timers.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for handle in self._wakeups.values():
            handle.cancel()
        self._tasks, self._subs = [], []
        self._ready_timers.clear()
        self._wakeups.clear()

    async def __aenter__(self) -> KubeletSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def resync(self) -> None:
        """Re-evaluate every ReplicaSet now (call after moving an injected clock)."""
        self._queue.put_nowait(("all", None))
        await self.settle()

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until the queued work is processed (not the readiness delays)."""
        self._idle.clear()
        self._queue.put_nowait(("noop", None))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)

    # ------------------------------------------------------------------ manual controls

    def set_pod_ready(self, namespace: str, name: str, ready: bool = True) -> Obj:
        """Force a Pod's readiness (e.g. to simulate a failing probe)."""
        pod = self.emulator.get_object(*_PODS, namespace, name)
        if pod is None:
            raise apierrors.not_found("", "pods", name)
        return self._write_pod_status(pod, ready=ready)

    # ------------------------------------------------------------------ event loop

    async def _pump(self, kind: str, sub: Subscription) -> None:
        async for event in sub:
            self._queue.put_nowait((kind, event))

    async def _run(self) -> None:
        while True:
            items = [await self._queue.get()]
            while not self._queue.empty():
                items.append(self._queue.get_nowait())
            dirty: set[tuple[str, str]] = set()
            for kind, event in items:
                if kind == "all":
                    dirty.update(self._all_replicasets())
                elif kind == "rs":
                    meta = event.object["metadata"]
                    key = (meta["namespace"], meta["name"])
                    if event.type == "DELETED":
                        self._forget_rs(key)
                    else:
                        dirty.add(key)
                elif kind == "pod":
                    self._on_pod(event.type, event.object)
                    owner = _controller_name(event.object)
                    if owner:
                        dirty.add((event.object["metadata"]["namespace"], owner))
                elif kind == "rs-key":
                    dirty.add(event)
            for key in sorted(dirty):
                try:
                    self._reconcile(*key)
                except ApiError as e:
                    if e.code == 409:
                        # A write raced with someone else's; look again at the fresh object.
                        self._queue.put_nowait(("rs-key", key))
                    else:
                        _LOG.warning("replicaset %s/%s: %s", key[0], key[1], e)
                except Exception:  # one broken object must not stop the simulator
                    _LOG.exception("replicaset %s/%s: reconcile failed", key[0], key[1])
            if self._queue.empty():
                self._idle.set()

    def _all_replicasets(self) -> set[tuple[str, str]]:
        return {
            (rs["metadata"]["namespace"], rs["metadata"]["name"])
            for rs in self.emulator.list_objects(*_RS, namespace=self.namespace)
        }

    def _forget_rs(self, key: tuple[str, str]) -> None:
        handle = self._wakeups.pop(key, None)
        if handle is not None:
            handle.cancel()

    # ------------------------------------------------------------------ kubelet: pods

    def _on_pod(self, event_type: str, pod: Obj) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        if event_type == "DELETED" or meta.get("deletionTimestamp"):
            timer = self._ready_timers.pop(uid, None)
            if timer is not None:
                timer.cancel()
            if event_type == "DELETED":
                self._created_order.pop(uid, None)
            return
        self._created_order.setdefault(uid, next(self._sequence))
        status = pod.get("status") or {}
        if status.get("phase") in (None, "Pending") and uid not in self._ready_timers:
            self._ready_timers[uid] = asyncio.create_task(
                self._become_ready(meta["namespace"], meta["name"], uid),
                name=f"kubelet-ready-{meta['name']}",
            )

    async def _become_ready(self, namespace: str, name: str, uid: str) -> None:
        if self.ready_delay > 0:
            await asyncio.sleep(self.ready_delay)
        pod = self.emulator.get_object(*_PODS, namespace, name)
        if pod is None or pod["metadata"]["uid"] != uid or pod["metadata"].get("deletionTimestamp"):
            return
        with contextlib.suppress(ApiError):
            self._write_pod_status(pod, ready=not self.never_ready(pod))

    def _write_pod_status(self, pod: Obj, *, ready: bool) -> Obj:
        now = _fmt(self.now())
        status = copy.deepcopy(pod.get("status") or {})
        old_ready = _ready_condition(pod)
        transition = now
        if old_ready is not None and (old_ready.get("status") == "True") == ready:
            transition = old_ready.get("lastTransitionTime") or now
        flag = "True" if ready else "False"
        conditions = [
            {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": flag, "lastTransitionTime": transition},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": transition},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        ]
        if not ready:
            for cond in conditions[2:4]:
                cond["reason"] = "ContainersNotReady"
        containers = []
        for i, c in enumerate((pod.get("spec") or {}).get("containers") or []):
            state: Obj = {"running": {"startedAt": now}}
            if not ready and self.never_ready(pod):
                state = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": "back-off restarting failed container",
                    }
                }
            containers.append(
                {
                    "name": c.get("name", f"c{i}"),
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": ready,
                    "started": "running" in state,
                    "restartCount": 0 if ready else 1,
                    "state": state,
                }
            )
        if "podIP" not in status:
            ip = str(ipaddress.IPv4Address(self._next_ip))
            self._next_ip += 1
            status.update({"podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "10.0.0.1"})
        status.setdefault("startTime", now)
        status.update({"phase": "Running", "conditions": conditions})
        status["containerStatuses"] = containers
        meta = pod["metadata"]
        return self.emulator.patch_object(
            *_PODS, meta["namespace"], meta["name"], {"status": status}, subresource="status"
        )

    # ------------------------------------------------------------------ ReplicaSet controller

    def _reconcile(self, namespace: str, name: str) -> None:
        rs = self.emulator.get_object(*_RS, namespace, name)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        uid = rs["metadata"]["uid"]
        spec = rs.get("spec") or {}
        want = int(spec.get("replicas", 1))
        # Narrow by the ReplicaSet's own labels first: listing (and copying) every pod of
        # the namespace on each event made the simulator quadratic in the number of pods.
        match = (spec.get("selector") or {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(match.items())) or None
        pods = [
            p
            for p in self.emulator.list_objects(*_PODS, namespace=namespace,
                                                label_selector=selector)
            if _controller_uid(p) == uid and not p["metadata"].get("deletionTimestamp")
        ]
        if len(pods) < want:
            for _ in range(want - len(pods)):
                pods.append(self._create_pod(rs))
        elif len(pods) > want:
            # Like the ReplicaSet controller: not-ready pods go first, then the newest.
            ranked = sorted(
                pods,
                key=lambda p: (
                    is_pod_ready(p),
                    -self._created_order.get(p["metadata"]["uid"], 0),
                    p["metadata"].get("creationTimestamp", ""),
                ),
            )
            surplus = ranked[: len(pods) - want]
            for pod in surplus:
                with contextlib.suppress(ApiError):
                    self.emulator.delete_object(*_PODS, namespace, pod["metadata"]["name"])
            gone = {p["metadata"]["uid"] for p in surplus}
            pods = [p for p in pods if p["metadata"]["uid"] not in gone]
        self._write_rs_status(rs, pods)

    def _create_pod(self, rs: Obj) -> Obj:
        meta = rs["metadata"]
        template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
        tmeta = template.get("metadata") or {}
        pod_meta: Obj = {
            "generateName": f"{meta['name']}-",
            "namespace": meta["namespace"],
            "labels": dict(tmeta.get("labels") or {}),
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }
        if tmeta.get("annotations"):
            pod_meta["annotations"] = dict(tmeta["annotations"])
        if tmeta.get("finalizers"):
            pod_meta["finalizers"] = list(tmeta["finalizers"])
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": pod_meta,
            "spec": template.get("spec") or {"containers": []},
        }
        created = self.emulator.create_object(*_PODS, meta["namespace"], pod)
        self._created_order.setdefault(created["metadata"]["uid"], next(self._sequence))
        return created

    def _write_rs_status(self, rs: Obj, pods: list[Obj]) -> None:
        spec = rs.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        labelled = LabelSelector.parse(
            ",".join(f"{k}={v}" for k, v in sorted(template_labels.items()))
        )
        now = self.now()
        ready = available = 0
        next_wake: float | None = None
        for pod in pods:
            if not is_pod_ready(pod):
                continue
            ready += 1
            since = _parse((_ready_condition(pod) or {}).get("lastTransitionTime"))
            waited = (now - since).total_seconds() if since else float(min_ready)
            if min_ready == 0 or waited >= min_ready:
                available += 1
            else:
                remaining = min_ready - waited
                next_wake = remaining if next_wake is None else min(next_wake, remaining)
        status = dict(rs.get("status") or {})
        status.update(
            {
                "replicas": len(pods),
                "fullyLabeledReplicas": sum(
                    1 for p in pods if labelled.matches(p["metadata"].get("labels"))
                ),
                "readyReplicas": ready,
                "availableReplicas": available,
                "observedGeneration": rs["metadata"].get("generation", 1),
            }
        )
        meta = rs["metadata"]
        key = (meta["namespace"], meta["name"])
        self._forget_rs(key)
        if next_wake is not None:
            loop = asyncio.get_running_loop()
            self._wakeups[key] = loop.call_later(
                max(0.05, next_wake), self._queue.put_nowait, ("rs-key", key)
            )
        if status != (rs.get("status") or {}):
            self.emulator.patch_object(
                *_RS,
                meta["namespace"],
                meta["name"],
                {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status},
                subresource="status",
            )
