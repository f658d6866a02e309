"""The CLI's conversations with the API server: reads, guarded status writes, watches.

Writes go to the `/status` subresource only, as a merge patch carrying the resourceVersion
the decision was made on: a 409 means someone (usually the controller) wrote in between, so
the Rollout is read again and the operation decided again, never replayed blindly.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from rollouts.cli.kubeopts import GROUP, VERSION, CliError, api_call
from rollouts.cli.render import RolloutView, build_view, parse_rollout
from rollouts.errors import ConflictError, KubeError, NotFoundError
from rollouts.kube.client import Body, KubeClient
from rollouts.models.rollout import Rollout
from rollouts.planner.operations import decide

ROLLOUTS = "rollouts"
ANALYSIS_RUNS = "analysisruns"
# (group, version, plural) of everything `get --watch` follows.
WATCHED = (
    (GROUP, VERSION, ROLLOUTS),
    ("apps", "v1", "replicasets"),
    (GROUP, VERSION, ANALYSIS_RUNS),
)
WRITE_ATTEMPTS = 3


async def get_rollout(client: KubeClient, namespace: str, name: str) -> Body:
    async with api_call("get", ROLLOUTS, namespace, name):
        return await client.get(GROUP, VERSION, ROLLOUTS, namespace, name)


async def list_rollouts(client: KubeClient, namespace: str | None) -> list[Body]:
    async with api_call("list", ROLLOUTS, namespace):
        items, _ = await client.list(GROUP, VERSION, ROLLOUTS, namespace)
    return sorted(items, key=lambda o: (o.get("metadata", {}).get("namespace", ""),
                                        o.get("metadata", {}).get("name", "")))


async def _list(client: KubeClient, group: str, version: str, plural: str,
                namespace: str) -> list[Body]:
    async with api_call("list", plural, namespace):
        items, _ = await client.list(group, version, plural, namespace)
    return items


async def fetch_view(client: KubeClient, namespace: str, name: str) -> RolloutView:
    """The Rollout and what it owns (ReplicaSets, AnalysisRuns)."""
    body = await get_rollout(client, namespace, name)
    replica_sets = await _list(client, "apps", "v1", "replicasets", namespace)
    try:
        runs = await _list(client, GROUP, VERSION, ANALYSIS_RUNS, namespace)
    except CliError:
        runs = []  # the AnalysisRun CRD may be missing or unreadable; show the rest
    return build_view(body, replica_sets, runs)


@dataclass(frozen=True)
class WriteResult:
    before: Rollout
    updates: dict[str, Any]
    after: Rollout
    attempts: int


async def write_operation(client: KubeClient, namespace: str, name: str, operation: str, *,
                          full: bool = False,
                          clock: Callable[[], dt.datetime] | None = None) -> WriteResult:
    """Read, decide, and write the status fields the operation changes.

    OperationError (the request makes no sense) propagates; a conflict re-reads and
    re-decides up to WRITE_ATTEMPTS times.
    """
    now = clock or (lambda: dt.datetime.now(dt.UTC))
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        body = await get_rollout(client, namespace, name)
        before = parse_rollout(body)
        updates = decide(operation, before, now(), full=full)
        patch = {"metadata": {"resourceVersion": before.metadata.resource_version},
                 "status": updates}
        async with api_call("patch", f"{ROLLOUTS}/status", namespace, name):
            try:
                after = await client.patch_merge(GROUP, VERSION, ROLLOUTS, namespace, name,
                                                 patch, subresource="status")
            except ConflictError:
                continue
        return WriteResult(before, updates, parse_rollout(after), attempt)
    raise CliError(
        f"rollout {name} kept changing while {operation} was being written "
        f"({WRITE_ATTEMPTS} conflicts in a row); nothing was written, try again"
    )


# --- watching --------------------------------------------------------------------------------


async def follow(client: KubeClient, group: str, version: str, plural: str,
                 namespace: str | None, queue: asyncio.Queue[tuple[str, str, Body]]) -> None:
    """List, then watch from the list's version; after the stream ends or expires, again."""
    while True:
        try:
            items, version_ = await client.list(group, version, plural, namespace)
        except NotFoundError:
            # The kind is not installed (e.g. no AnalysisRun CRD): nothing of it to show.
            await queue.put((plural, "SYNCED", {}))
            await asyncio.Event().wait()
            return
        except (KubeError, httpx.HTTPError):
            async with api_call("list", plural, namespace):
                raise
        for item in items:
            await queue.put((plural, "ADDED", item))
        await queue.put((plural, "SYNCED", {}))
        try:
            async with api_call("watch", plural, namespace):
                async for kind, obj in client.watch(group, version, plural, namespace,
                                                    resource_version=version_, timeout=300):
                    if kind == "BOOKMARK":
                        continue
                    await queue.put((plural, kind, obj))
        except CliError as exc:
            # 410 Expired: the history window moved on; list again. Anything else is real.
            cause = exc.__cause__
            if not (isinstance(cause, KubeError) and cause.status == 410):
                raise


class Cache:
    """Objects of one namespace kept current by list+watch, keyed by plural and name."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Body]] = {plural: {} for _, _, plural in WATCHED}

    def apply(self, plural: str, kind: str, obj: Body) -> None:
        name = str(obj.get("metadata", {}).get("name") or "")
        if kind == "SYNCED" or not name:
            return
        store = self.objects.setdefault(plural, {})
        if kind == "DELETED":
            store.pop(name, None)
        else:
            store[name] = obj

    def view(self, name: str) -> RolloutView | None:
        body = self.objects[ROLLOUTS].get(name)
        if body is None:
            return None
        return build_view(body, self.objects["replicasets"].values(),
                          self.objects[ANALYSIS_RUNS].values())


async def watch_views(client: KubeClient, namespace: str, name: str, *,
                      plurals: tuple[str, ...] = (ROLLOUTS, "replicasets", ANALYSIS_RUNS),
                      ) -> AsyncGenerator[RolloutView | None, None]:
    """Yield the Rollout's view after every change to it or anything it owns.

    Yields None while the Rollout does not exist (deleted, or not created yet).
    """
    queue: asyncio.Queue[tuple[str, str, Body]] = asyncio.Queue()
    cache = Cache()
    tasks = [
        asyncio.create_task(follow(client, g, v, p, namespace, queue))
        for g, v, p in WATCHED if p in plurals
    ]
    synced: set[str] = set()
    async for plural, kind, obj in merged(queue, tasks):
        cache.apply(plural, kind, obj)
        if kind == "SYNCED":
            synced.add(plural)
        if synced >= set(plurals) and queue.empty():
            yield cache.view(name)


async def merged(queue: asyncio.Queue[tuple[str, str, Body]],
                 followers: list[asyncio.Task[None]],
                 ) -> AsyncGenerator[tuple[str, str, Body], None]:
    """The events `follow` tasks put on `queue`, in order. A follower's failure is raised;
    the followers are cancelled when the consumer stops."""
    try:
        while True:
            getter = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait({getter, *followers},
                                         return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                for task in done:
                    task.result()  # a follower failed: raise its error
                continue
            yield getter.result()
    finally:
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
