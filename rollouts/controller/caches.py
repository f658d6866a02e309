"""The ReplicaSet, Service and Deployment caches, kept by our own list-and-watch
(`rollouts.kube.informer`), and the Rollouts (and Experiments) their changes wake.

Filed as kopf's indexes were, so a pass reads them the same way (`index.get(key, ())`):
ReplicaSets by the Rollout that controls them (and, for an Experiment's, by the Experiment),
Services and Deployments by their own (namespace, name).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rollouts.controller.runtime import (
    Key,
    Runtime,
    deployment_key,
    experiment_owner_key,
    is_experiment_owned,
    is_owned,
    owner_key,
)
from rollouts.kube.cache import trim_replica_set, trim_service
from rollouts.kube.client import KubeClient
from rollouts.kube.informer import Index, Informer, Kind, object_key
from rollouts.kube.workload import trim_deployment
from rollouts.models.wire import POD_TEMPLATE_HASH_LABEL

__all__ = ["WatchedCaches"]

# Only the ReplicaSets this controller makes carry the hash label: watch just those (a
# Deployment's carry it too; those are dropped as they come, being owned by no Rollout).
REPLICA_SETS = Kind("apps", "v1", "replicasets", label_selector=POD_TEMPLATE_HASH_LABEL)
SERVICES = Kind("", "v1", "services")
DEPLOYMENTS = Kind("apps", "v1", "deployments")


def _rollout_of(body: Mapping[str, Any]) -> Key | None:
    return owner_key(body, object_key(body)[0])


def _experiment_of(body: Mapping[str, Any]) -> Key | None:
    return experiment_owner_key(body, object_key(body)[0])


@dataclass
class WatchedCaches:
    """The three informers and their indexes; `start()` on the loop, `await stop()`."""

    replica_sets: Informer
    services: Informer
    deployments: Informer
    rollout_replicasets: Index
    experiment_replicasets: Index
    services_by_name: Index
    deployments_by_name: Index

    @classmethod
    def build(cls, client: KubeClient, runtime: Runtime, namespaces: tuple[str, ...] | None,
              *, on_synced: Callable[[], None] = lambda: None) -> WatchedCaches:
        """`namespaces`: one watch per kind and namespace; None: cluster-wide.
        `on_synced`: told once, when the three first lists are in."""
        rollout_replicasets, experiment_replicasets = Index(_rollout_of), Index(_experiment_of)
        services_by_name, deployments_by_name = Index(object_key), Index(object_key)
        # One managedFields entry per owner of a selector, for all the cached Services.
        selector_owners: dict[str, dict[str, Any]] = {}

        def replica_set_changed(_: str, body: dict[str, Any]) -> None:
            for key in (_rollout_of(body), _experiment_of(body)):
                if key is not None:
                    runtime.wake(key)

        def service_changed(_: str, body: dict[str, Any]) -> None:
            for key in list(runtime.service_users.get(object_key(body), ())):
                runtime.wake(key)

        def deployment_changed(_: str, body: dict[str, Any]) -> None:
            namespace, name = object_key(body)  # the Rollouts whose workloadRef names it
            for key in list(runtime.service_users.get((namespace, deployment_key(name)), ())):
                runtime.wake(key)

        return cls(
            replica_sets=Informer(
                client, REPLICA_SETS, trim=trim_replica_set, namespaces=namespaces,
                indexes=(rollout_replicasets, experiment_replicasets),
                keep=lambda body: is_owned(body) or is_experiment_owned(body),
                on_change=replica_set_changed),
            services=Informer(client, SERVICES, namespaces=namespaces,
                              trim=functools.partial(trim_service, owner_entries=selector_owners),
                              indexes=(services_by_name,), on_change=service_changed),
            deployments=Informer(client, DEPLOYMENTS, trim=trim_deployment,
                                 namespaces=namespaces, indexes=(deployments_by_name,),
                                 on_change=deployment_changed),
            rollout_replicasets=rollout_replicasets,
            experiment_replicasets=experiment_replicasets,
            services_by_name=services_by_name,
            deployments_by_name=deployments_by_name,
            on_synced=on_synced,
        )

    on_synced: Callable[[], None] = lambda: None
    _told: asyncio.Task[None] | None = field(default=None, init=False)

    @property
    def informers(self) -> tuple[Informer, ...]:
        return (self.replica_sets, self.services, self.deployments)

    @property
    def synced(self) -> bool:
        return all(informer.synced.is_set() for informer in self.informers)

    async def wait_synced(self) -> None:
        """Until the three first lists are in the caches (kopf waited for its indexes
        before any daemon ran; a pass on a half-filled cache would see objects missing)."""
        for informer in self.informers:
            await informer.synced.wait()

    def start(self) -> None:
        for informer in self.informers:
            informer.start()
        if self._told is None:
            self._told = asyncio.create_task(self._tell_synced(), name="caches synced")

    async def _tell_synced(self) -> None:
        await self.wait_synced()
        self.on_synced()

    async def stop(self) -> None:
        if self._told is not None:
            self._told.cancel()
        for informer in self.informers:
            await informer.stop()
