"""Pure builders for the objects the controller creates, and the pod-template hash."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from rollouts.models.rollout import LabelSelector, RolloutSpec, ValidRollout
from rollouts.models.wire import (
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
    rollout_owner_reference,
)

# Characters Kubernetes uses for generated suffixes: no vowels, no look-alikes.
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def pod_template_hash(template: Mapping[str, Any]) -> str:
    """A short stable hash of a pod template, used in names, labels and selectors.

    Any change to the template (image, env, labels, ...) gives a new hash; the same template
    always gives the same hash, which is what makes a git revert land on the old ReplicaSet.
    """
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"))
    number = int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:8], "big")
    chars = []
    for _ in range(10):
        number, index = divmod(number, len(_SAFE_ALPHABET))
        chars.append(_SAFE_ALPHABET[index])
    return "".join(chars)


def desired_hash(rollout: ValidRollout) -> str:
    """`pod_template_hash` of the Rollout's template, kept in its memo while the template
    is the same object (parsed once, shared by the versions that echo it): a JSON dump and
    a sha256 of the template on every pass were 8 % of planning (docs/benchmarks.md, "CPU
    per pass, round 4")."""
    kept = rollout.memo.get("pod_template_hash")
    if kept is not None and kept[0] is rollout.template:
        return str(kept[1])
    found = pod_template_hash(rollout.template)
    rollout.memo["pod_template_hash"] = (rollout.template, found)
    return found


def replica_set_name(rollout_name: str, pod_hash: str) -> str:
    return f"{rollout_name}-{pod_hash}"


def replica_set_manifest(rollout: ValidRollout, *, pod_hash: str, replicas: int,
                         revision: int) -> dict[str, Any]:
    """The ReplicaSet for one revision, owned by the Rollout: the pod template as written,
    with the pod-template-hash label added to its labels and to the selector."""
    # A workloadRef's selector is filled in from the Deployment before planning.
    pod_template, selector = hashed(rollout.template, rollout.spec.selector or LabelSelector(),
                                    pod_hash)
    labels = pod_template["metadata"]["labels"]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": replica_set_name(rollout.metadata.name, pod_hash),
            "namespace": rollout.metadata.namespace,
            "labels": labels,
            "annotations": {REVISION_ANNOTATION: str(revision)},
            "ownerReferences": [
                rollout_owner_reference(rollout.metadata.name, rollout.metadata.uid)],
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": rollout.spec.min_ready_seconds,
            "selector": selector,
            "template": pod_template,
        },
    }


def hashed(template: Mapping[str, Any], selector: LabelSelector, pod_hash: str,
           extra_labels: Mapping[str, str] | None = None
           ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod template, selector) of a ReplicaSet: the template as written with the
    pod-template-hash label (and `extra_labels`) added to its labels, and the hash added to
    the selector's matchLabels."""
    pod_template = copy.deepcopy(dict(template))
    metadata = pod_template.setdefault("metadata", {})
    metadata["labels"] = {**(metadata.get("labels") or {}), POD_TEMPLATE_HASH_LABEL: pod_hash,
                          **(extra_labels or {})}
    wire = selector.to_wire()
    wire["matchLabels"] = {**(wire.get("matchLabels") or {}), POD_TEMPLATE_HASH_LABEL: pod_hash}
    return pod_template, wire


def selector_string(spec: RolloutSpec) -> str:
    """The label selector as a string, for status.selector (the scale subresource)."""
    selector = spec.selector or LabelSelector()
    parts = [f"{k}={v}" for k, v in sorted((selector.match_labels or {}).items())]
    for req in selector.match_expressions or ():
        values = ",".join(req.values or ())
        if req.operator == "In":
            parts.append(f"{req.key} in ({values})")
        elif req.operator == "NotIn":
            parts.append(f"{req.key} notin ({values})")
        elif req.operator == "Exists":
            parts.append(req.key)
        else:
            parts.append(f"!{req.key}")
    return ",".join(parts)
