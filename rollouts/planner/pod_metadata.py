"""Role metadata on pods: canaryMetadata / stableMetadata (canary), activeMetadata /
previewMetadata (blue-green), as in Argo Rollouts v1alpha1.

Each revision has a role (stable or canary; active or preview) decided by the status; its
role's labels and annotations go into its ReplicaSet's pod template (for pods created from
now on) and onto its running pods, changed in place by a patch (the pods are not
restarted). When a revision changes role (promotion), its pods follow.

Pods are not watched: they are listed only on a pass that needs them. Two annotations on the
ReplicaSet say what is done, so a quiet Rollout lists nothing:
- `rollouts.dev/ephemeral-metadata`: the role metadata in its pod template;
- `rollouts.dev/ephemeral-metadata-pods`: the role metadata every pod was seen to carry.
A change of role first rewrites the template (one pass), then, on a pass that observed the
new template, lists the pods, patches those that differ and records the second annotation.
Listing the pods only after the template change is seen means that a pod created from the
old template just before it is in the list, so none is left behind.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rollouts.models.rollout import RolloutSpec, RolloutStatus
from rollouts.models.traffic import PodMetadata
from rollouts.models.wire import POD_TEMPLATE_HASH_LABEL
from rollouts.planner.types import (
    Action,
    Observed,
    PatchPodMetadata,
    PatchReplicaSetPodMetadata,
    PodMetadataView,
    ReplicaSetView,
)

TEMPLATE_METADATA_ANNOTATION = "rollouts.dev/ephemeral-metadata"
PODS_METADATA_ANNOTATION = "rollouts.dev/ephemeral-metadata-pods"

NO_METADATA = PodMetadataView()


def metadata_view(metadata: PodMetadata | Mapping[str, Any] | None) -> PodMetadataView:
    """The sorted form of a role's metadata; anything unreadable is no metadata."""
    if isinstance(metadata, PodMetadata):
        labels: Any = metadata.labels
        annotations: Any = metadata.annotations
    elif isinstance(metadata, Mapping):
        labels, annotations = metadata.get("labels"), metadata.get("annotations")
    else:
        return NO_METADATA
    return PodMetadataView(_pairs(labels), _pairs(annotations))


def _pairs(values: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(values, Mapping):
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in values.items()))


def encode(view: PodMetadataView) -> str:
    """The annotation value recording `view` (canonical JSON)."""
    return json.dumps({"labels": dict(view.labels), "annotations": dict(view.annotations)},
                      sort_keys=True, separators=(",", ":"))


def decode(text: object) -> PodMetadataView:
    """An annotation value read back; absent or unreadable is no metadata."""
    if not isinstance(text, str) or not text:
        return NO_METADATA
    try:
        return metadata_view(json.loads(text))
    except ValueError:
        return NO_METADATA


def roles(spec: RolloutSpec, status: RolloutStatus) -> dict[str, PodMetadataView]:
    """pod-template hash -> the metadata its role asks for, for every revision with a role.

    Example (canary): stableRS "a", currentPodHash "b" -> {"a": stableMetadata,
    "b": canaryMetadata}; after the promotion (stableRS "b") -> {"b": stableMetadata}.
    Revisions with no role (older ones) are left as they are.
    """
    desired = status.current_pod_hash
    canary, blue_green = spec.strategy.canary, spec.strategy.blue_green
    if canary is not None:
        settled, pair = status.stable_rs, (canary.stable_metadata, canary.canary_metadata)
    elif blue_green is not None:
        active = status.blue_green.active_selector if status.blue_green else None
        settled = active or status.stable_rs
        pair = (blue_green.active_metadata, blue_green.preview_metadata)
    else:
        return {}
    found: dict[str, PodMetadataView] = {}
    if settled:
        found[settled] = metadata_view(pair[0])
    if desired and desired != settled:
        found[desired] = metadata_view(pair[1])
    return found


def key_changes(before: PodMetadataView, after: PodMetadataView, *, current: Mapping[str, str],
                keep: frozenset[str], kind: str) -> dict[str, str | None]:
    """The merge-patch map that takes `current` (labels or annotations, by `kind`) from role
    metadata `before` to `after`: keys of `after` that differ are set, keys only `before` set
    are removed. Keys of the pod template itself (`keep`, and the pod-template hash) are
    never touched: the template's own labels win, so the selector keeps matching.

    Example: before {tier: canary}, after {tier: stable, role: live}, current {app: x,
    tier: canary} -> {tier: stable, role: live}; before {extra: 1}, after {} -> {extra: None}.
    """
    old = dict(getattr(before, kind))
    new = dict(getattr(after, kind))
    changes: dict[str, str | None] = {k: v for k, v in new.items()
                                      if k not in keep and current.get(k) != v}
    # In `before`'s order (sorted pairs), not set order: the patch is the same bytes in
    # every process.
    for key in old:
        if key not in new and key not in keep and key in current:
            changes[key] = None
    return changes


def _template_keys(template: Mapping[str, Any], kind: str) -> frozenset[str]:
    metadata = template.get("metadata") or {}
    values = metadata.get(kind) if isinstance(metadata, Mapping) else None
    keys = frozenset(values) if isinstance(values, Mapping) else frozenset()
    return keys | {POD_TEMPLATE_HASH_LABEL} if kind == "labels" else keys


def pods_needed(spec: RolloutSpec, status: RolloutStatus,
                replica_sets: tuple[ReplicaSetView, ...]) -> bool:
    """Whether a pass needs the pods: a revision's template has its role's metadata but its
    pods were not yet seen to carry it."""
    wanted = roles(spec, status)
    return any(rs.pod_hash in wanted and rs.template_metadata == wanted[rs.pod_hash]
               and rs.pods_metadata != wanted[rs.pod_hash] for rs in replica_sets)


def metadata_actions(spec: RolloutSpec, template: Mapping[str, Any], status: RolloutStatus,
                     observed: Observed, busy: frozenset[str] = frozenset()
                     ) -> tuple[list[Action], bool]:
    """The writes that bring each revision's template and pods to its role's metadata, and
    whether pods were needed but not listed on this pass (look again soon).

    ReplicaSets named in `busy` are written by another action of this pass (a scale): their
    metadata waits for the next pass, which that write's watch event brings, rather than
    meeting a 409 on the resourceVersion the other write moved."""
    wanted = roles(spec, status)
    keep = {kind: _template_keys(template, kind) for kind in ("labels", "annotations")}
    actions: list[Action] = []
    missing_pods = False
    for rs in observed.replica_sets:
        want = wanted.get(rs.pod_hash)
        if want is None or rs.name in busy:
            continue
        if rs.template_metadata != want:
            current = {kind: dict(getattr(rs.template_metadata, kind))
                       for kind in ("labels", "annotations")}
            labels, annotations = (
                key_changes(rs.template_metadata, want, current=current[kind], keep=keep[kind],
                            kind=kind) for kind in ("labels", "annotations"))
            actions.append(PatchReplicaSetPodMetadata(
                rs.name, labels, annotations,
                record={TEMPLATE_METADATA_ANNOTATION: encode(want)},
                resource_version=rs.resource_version))
        elif rs.pods_metadata != want:
            if observed.pods is None:
                missing_pods = True
                continue
            for pod in observed.pods:
                if pod.pod_hash != rs.pod_hash or pod.deleting:
                    continue
                labels, annotations = (
                    key_changes(rs.pods_metadata, want, current=current, keep=keep[kind],
                                kind=kind)
                    for kind, current in (("labels", pod.labels),
                                          ("annotations", pod.annotations)))
                if labels or annotations:
                    actions.append(PatchPodMetadata(pod.name, labels, annotations))
            actions.append(PatchReplicaSetPodMetadata(
                rs.name, {}, {}, record={PODS_METADATA_ANNOTATION: encode(want)},
                resource_version=rs.resource_version))
    return actions, missing_pods


def with_role_metadata(manifest: Mapping[str, Any], want: PodMetadataView) -> dict[str, Any]:
    """A new ReplicaSet's manifest with its role's metadata in the pod template, recorded as
    done for the template and for its pods (it has none yet)."""
    result = dict(manifest)
    metadata = dict(result.get("metadata") or {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}),
                               TEMPLATE_METADATA_ANNOTATION: encode(want),
                               PODS_METADATA_ANNOTATION: encode(want)}
    result["metadata"] = metadata
    spec = dict(result.get("spec") or {})
    template = dict(spec.get("template") or {})
    pod_meta = dict(template.get("metadata") or {})
    # The template's own keys win over role keys (the selector must keep matching).
    pod_meta["labels"] = {**dict(want.labels), **(pod_meta.get("labels") or {})}
    if want.annotations or pod_meta.get("annotations"):
        pod_meta["annotations"] = {**dict(want.annotations),
                                   **(pod_meta.get("annotations") or {})}
    template["metadata"] = pod_meta
    spec["template"] = template
    result["spec"] = spec
    return result
