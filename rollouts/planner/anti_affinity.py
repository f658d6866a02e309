"""antiAffinity: keep a new revision's pods off the nodes of the stable revision's pods.

A pure builder. The rule is added to the pod template of the ReplicaSet created for a new
revision while another revision is stable (as Argo Rollouts does); the user's own affinity
rules are kept as written, and the pod-template hash is taken from the template as written,
so the injected rule never makes a new revision.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from rollouts.models.pods import AntiAffinity
from rollouts.models.wire import POD_TEMPLATE_HASH_LABEL

# One node is the unit a cluster autoscaler removes.
TOPOLOGY_KEY = "kubernetes.io/hostname"


def anti_affinity_term(stable_hash: str) -> dict[str, Any]:
    """The pod affinity term that matches the stable revision's pods on the same node."""
    return {
        "labelSelector": {"matchExpressions": [
            {"key": POD_TEMPLATE_HASH_LABEL, "operator": "In", "values": [stable_hash]}]},
        "topologyKey": TOPOLOGY_KEY,
    }


def with_anti_affinity(pod_spec: Mapping[str, Any], rule: AntiAffinity | None,
                       stable_hash: str | None, pod_hash: str) -> dict[str, Any]:
    """`pod_spec` with the anti-affinity to the stable revision added (a copy).

    Unchanged without a rule, without a stable revision (the first one), or when `pod_hash`
    is the stable revision itself. Example: required, stable "abc" -> podAntiAffinity
    .requiredDuringSchedulingIgnoredDuringExecution gets one more term matching
    rollouts-pod-template-hash In [abc] on kubernetes.io/hostname.
    """
    spec = copy.deepcopy(dict(pod_spec))
    if rule is None or not stable_hash or stable_hash == pod_hash:
        return spec
    term = anti_affinity_term(stable_hash)
    affinity = spec.setdefault("affinity", {})
    anti = affinity.setdefault("podAntiAffinity", {})
    preferred = rule.preferred_during_scheduling_ignored_during_execution
    if preferred is not None:
        terms = anti.setdefault("preferredDuringSchedulingIgnoredDuringExecution", [])
        entry: dict[str, Any] = {"weight": preferred.weight, "podAffinityTerm": term}
    else:
        terms = anti.setdefault("requiredDuringSchedulingIgnoredDuringExecution", [])
        entry = term
    if entry not in terms:
        terms.append(entry)
    return spec
