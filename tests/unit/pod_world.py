"""`World` with pods: the pure planner driven over ReplicaSets that have pods, so the
pod-level work (role metadata, restarts) can be followed pod by pod."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

from rollouts.models.rollout import POD_TEMPLATE_HASH_LABEL, ValidRollout, parse_rollout
from rollouts.planner.pod_metadata import (
    PODS_METADATA_ANNOTATION,
    TEMPLATE_METADATA_ANNOTATION,
    decode,
)
from rollouts.planner.pods import pods_needed
from rollouts.planner.types import (
    CreateReplicaSet,
    EvictPod,
    Observed,
    PatchPodMetadata,
    PatchReplicaSetPodMetadata,
    Plan,
    PodView,
)
from tests.unit.world import World


def merged(current: dict[str, str], patch: Any) -> dict[str, str]:
    out = dict(current)
    for key, value in dict(patch).items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@dataclass
class PodWorld(World):
    pods: dict[str, PodView] = field(default_factory=dict)
    # pod-template hash -> (labels, annotations) of its ReplicaSet's pod template
    templates: dict[str, tuple[dict[str, str], dict[str, str]]] = field(default_factory=dict)
    evicted: list[str] = field(default_factory=list)
    pod_lists: int = 0  # passes that listed pods
    _names: Any = field(default_factory=itertools.count)

    def observed(self) -> Observed:
        base = super().observed()
        parsed = parse_rollout(self.rollout())
        listed = isinstance(parsed, ValidRollout) and pods_needed(
            parsed, base.replica_sets, self.now)
        self.pod_lists += listed
        return replace(base, pods=tuple(self.pods.values()) if listed else None)

    def apply(self, result: Plan) -> None:
        super().apply(result)
        for action in result.actions:
            if isinstance(action, CreateReplicaSet):
                meta = action.manifest["spec"]["template"]["metadata"]
                self.templates[action.pod_hash] = (dict(meta.get("labels") or {}),
                                                   dict(meta.get("annotations") or {}))
                notes = action.manifest["metadata"]["annotations"]
                self.replica_sets[action.pod_hash] = replace(
                    self.replica_sets[action.pod_hash],
                    template_metadata=decode(notes.get(TEMPLATE_METADATA_ANNOTATION)),
                    pods_metadata=decode(notes.get(PODS_METADATA_ANNOTATION)))
            elif isinstance(action, PatchReplicaSetPodMetadata):
                rs = self._by_name(action.name)
                assert action.resource_version == rs.resource_version
                labels, annotations = self.templates[rs.pod_hash]
                self.templates[rs.pod_hash] = (merged(labels, action.labels),
                                               merged(annotations, action.annotations))
                record = action.record
                self.replica_sets[rs.pod_hash] = replace(
                    rs,
                    template_metadata=decode(record[TEMPLATE_METADATA_ANNOTATION])
                    if TEMPLATE_METADATA_ANNOTATION in record else rs.template_metadata,
                    pods_metadata=decode(record[PODS_METADATA_ANNOTATION])
                    if PODS_METADATA_ANNOTATION in record else rs.pods_metadata)
            elif isinstance(action, PatchPodMetadata):
                pod = self.pods[action.name]
                self.pods[action.name] = replace(
                    pod, labels=merged(dict(pod.labels), action.labels),
                    annotations=merged(dict(pod.annotations), action.annotations))
            elif isinstance(action, EvictPod):
                pod = self.pods.get(action.name)
                if pod is not None and pod.uid == action.uid:
                    del self.pods[action.name]
                    self.evicted.append(action.name)
                    rs = self.replica_sets[pod.pod_hash]
                    self.replica_sets[pod.pod_hash] = replace(
                        rs, replicas=rs.replicas - 1, ready=max(0, rs.ready - 1),
                        available=max(0, rs.available - 1))

    def settle(self, *, available: dict[str, int] | None = None) -> None:
        """The ReplicaSet controller: each revision gets spec.replicas pods from its template
        (new pods are created now); then availability as in World."""
        for pod_hash, rs in self.replica_sets.items():
            mine = sorted((p for p in self.pods.values() if p.pod_hash == pod_hash),
                          key=lambda p: p.name)
            for extra in mine[rs.spec_replicas:]:
                del self.pods[extra.name]
            labels, annotations = self.templates.get(pod_hash, ({}, {}))
            for _ in range(rs.spec_replicas - len(mine)):
                number = next(self._names)
                name = f"{rs.name}-{number:05d}"
                self.pods[name] = PodView(
                    name=name, uid=f"uid-{number}", pod_hash=pod_hash, created=self.now,
                    ready=True, labels={**labels, POD_TEMPLATE_HASH_LABEL: pod_hash},
                    annotations=dict(annotations))
        super().settle(available=available)

    def pods_of(self, pod_hash: str | None) -> list[PodView]:
        return [p for p in self.pods.values() if p.pod_hash == pod_hash]
