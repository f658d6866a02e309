"""The pod reads and writes of a pass: list a Rollout's pods when the planner needs them,
patch their metadata in place, evict them for a restart.

Fields written (invariant 5): on pods of the Rollout's ReplicaSets, only the role labels
and annotations of canaryMetadata / stableMetadata / activeMetadata / previewMetadata; on its
ReplicaSets, those keys in `spec.template.metadata` and the `rollouts.dev/ephemeral-metadata*`
annotations. A restart evicts pods through the policy/v1 Eviction subresource, so
PodDisruptionBudgets are honoured (a refused eviction, 429, is tried again on a later pass).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from rollouts.errors import ConflictError, KubeError, NotFoundError
from rollouts.kube.client import KubeClient
from rollouts.kube.observe import owned_replica_sets
from rollouts.models.rollout import ValidRollout
from rollouts.planner.manifests import selector_string
from rollouts.planner.pods import pods_needed
from rollouts.planner.types import EvictPod, PatchPodMetadata, PatchReplicaSetPodMetadata

# The API server's answer when a PodDisruptionBudget does not allow the eviction now.
TOO_MANY_REQUESTS = 429


async def read_pods(client: KubeClient, rollout: ValidRollout,
                    replica_sets: Iterable[Mapping[str, Any]], now: dt.datetime
                    ) -> list[dict[str, Any]] | None:
    """The pods of the Rollout's selector, listed only when this pass needs them (a restart
    is due, or a revision's pods must take new role metadata); None otherwise."""
    if not pods_needed(rollout, owned_replica_sets(rollout, replica_sets), now):
        return None
    items, _ = await client.list("", "v1", "pods", rollout.metadata.namespace,
                                 label_selector=selector_string(rollout.spec) or None)
    return items


def metadata_patch(labels: Mapping[str, str | None],
                   annotations: Mapping[str, str | None]) -> dict[str, Any]:
    """A merge patch of labels and annotations (None removes a key); empty maps left out."""
    metadata: dict[str, Any] = {}
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    return metadata


def replica_set_metadata_patch(action: PatchReplicaSetPodMetadata) -> dict[str, Any]:
    metadata: dict[str, Any] = {"annotations": dict(action.record)}
    if action.resource_version:
        metadata["resourceVersion"] = action.resource_version
    patch: dict[str, Any] = {"metadata": metadata}
    template = metadata_patch(action.labels, action.annotations)
    if template:
        patch["spec"] = {"template": {"metadata": template}}
    return patch


def eviction(namespace: str, action: EvictPod) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "policy/v1", "kind": "Eviction",
                            "metadata": {"name": action.name, "namespace": namespace}}
    if action.uid:
        body["deleteOptions"] = {"preconditions": {"uid": action.uid}}
    return body


async def apply_pod_action(client: KubeClient, namespace: str,
                           action: PatchReplicaSetPodMetadata | PatchPodMetadata | EvictPod
                           ) -> bool:
    """Apply one pod-level action; False when there was nothing to do (the pod is gone, or
    a PodDisruptionBudget refused the eviction for now)."""
    match action:
        case PatchReplicaSetPodMetadata():
            await client.patch_merge("apps", "v1", "replicasets", namespace, action.name,
                                     replica_set_metadata_patch(action))
            return True
        case PatchPodMetadata():
            try:
                await client.patch_merge("", "v1", "pods", namespace, action.name,
                                         {"metadata": metadata_patch(action.labels,
                                                                     action.annotations)})
            except NotFoundError:
                return False
            return True
        case EvictPod():
            try:
                await client.create("", "v1", "pods", namespace, eviction(namespace, action),
                                    name=action.name, subresource="eviction")
            except (NotFoundError, ConflictError):
                return False  # gone, or replaced by a pod of the same name
            except KubeError as exc:
                if exc.status != TOO_MANY_REQUESTS:
                    raise
                return False
            return True
