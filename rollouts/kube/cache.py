"""What the operator keeps of watched objects in its in-memory caches (kopf indexes).

Only the fields `observe` reads are kept, so the caches stay small for large pod templates
and many Rollouts.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping
from typing import Any

from rollouts.kube.fieldowners import SELECTOR_FIELD, field_owner, owner_entry
from rollouts.models.experiment import TRAFFIC_HOLD_ANNOTATION

_SCALARS = frozenset({str, int, float, bool, type(None)})


def plain_copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (mappings, lists, scalars), as decoded from the API.

    About a third of `copy.deepcopy`'s cost (no memo of shared objects, no reduce protocol):
    a pass copies the Rollout's body, and this was 4 % of the controller's CPU at 300
    Rollouts (docs/benchmarks.md, 2026-12-05). Anything else is deep-copied as before.
    """
    kind = type(value)
    if kind is dict:
        return {k: plain_copy(v) for k, v in value.items()}
    if kind is list:
        return [plain_copy(v) for v in value]
    if kind in _SCALARS:
        return value
    if isinstance(value, Mapping):  # e.g. kopf's views of a body
        return {k: plain_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_copy(v) for v in value]
    return copy.deepcopy(value)


# Strings this long or shorter are shared between cached bodies (names, labels, images...).
_SHARED_STRING = 64


def compact(value: Any) -> Any:
    """`plain_copy` for a long-lived cache: the keys and short strings interned.

    Each watch event is decoded on its own, so every cached body would keep its own copy of
    each key ("metadata", "labels", ...) and repeated value: at 1,000 Rollouts the strings of
    the ~4,000 cached ReplicaSets and Services were 5.7 MiB of the controller's heap
    (docs/benchmarks.md, "Memory at 1,000 Rollouts, round 3").
    """
    kind = type(value)
    if kind is dict:
        return {sys.intern(k) if type(k) is str else k: compact(v) for k, v in value.items()}
    if kind is list:
        return [compact(v) for v in value]
    if kind is str:
        return sys.intern(value) if len(value) <= _SHARED_STRING else value
    return plain_copy(value)


def compact_in_place(obj: dict[str, Any]) -> None:
    """`compact` for a dict that others hold (kopf's kept body): its contents are replaced by
    their compact form, the dict itself stays the same object."""
    compacted = compact(obj)
    obj.clear()
    obj.update(compacted)


def slim_kept_body(obj: Any) -> None:
    """A decoded body that will be kept (kopf's, for a daemon) made smaller, in place:
    without managedFields, its keys and short strings shared (`compact`)."""
    if isinstance(obj, dict):
        drop_managed_fields(obj)
        compact_in_place(obj)


def drop_managed_fields(obj: Any) -> None:
    """Take `metadata.managedFields` out of a decoded object, in place.

    For the bodies kopf keeps (one per Rollout, AnalysisRun and Experiment, for its daemons):
    the field-management record is about half of a Rollout's decoded body on a real server
    (and in the emulator), and nothing here reads it of these kinds (a status write is a PUT
    of the status alone, and an update without managedFields leaves the server's as they
    are). docs/benchmarks.md, "Memory at 1,000 Rollouts, round 4".
    """
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)


def trim_replica_set(body: Mapping[str, Any]) -> dict[str, Any]:
    """Only what observe() reads: keeps the cache small for large templates."""
    metadata = body.get("metadata") or {}
    spec = body.get("spec") or {}
    return {
        "metadata": {
            k: compact(metadata[k])
            for k in ("name", "namespace", "labels", "annotations", "resourceVersion",
                      "ownerReferences")
            if k in metadata
        },
        # The template too: an experiment step copies the stable revision's.
        "spec": {k: compact(spec[k]) for k in ("replicas", "selector", "template")
                 if k in spec},
        "status": compact(dict(body.get("status") or {})),
    }


def trim_service(body: Mapping[str, Any],
                 owner_entries: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Name, namespace, version, selector, and who owns the selector. `owner_entries`: one
    managedFields entry per owner, shared by every Service trimmed with the same dict (they
    are read, never written)."""
    metadata = body.get("metadata") or {}
    spec = body.get("spec") or {}
    trimmed = {
        "metadata": {k: compact(metadata[k]) for k in ("name", "namespace", "resourceVersion")
                     if k in metadata},
        "spec": {"selector": compact(dict(spec.get("selector") or {}))},
    }
    # Of managedFields, only who owns the selector (named when it is taken away).
    owner = field_owner(body, SELECTOR_FIELD)
    if owner:
        entry = None if owner_entries is None else owner_entries.get(owner)
        if entry is None:
            entry = owner_entry(owner, SELECTOR_FIELD)
            if owner_entries is not None:
                owner_entries[owner] = entry
        trimmed["metadata"]["managedFields"] = [entry]
    return trimmed


def trim_analysis_run(body: Mapping[str, Any]) -> dict[str, Any]:
    metadata = body.get("metadata") or {}
    status = body.get("status") or {}
    return {
        "metadata": {k: plain_copy(metadata[k])
                     for k in ("name", "namespace", "labels", "resourceVersion",
                               "ownerReferences", "creationTimestamp") if k in metadata},
        "status": {k: status[k] for k in ("phase", "message") if k in status},
    }


def trim_experiment(body: Mapping[str, Any]) -> dict[str, Any]:
    """An Experiment as the Rollout that made it reads it (labels, phase, terminate, and for
    template weights: the hold annotation and the templates' Services)."""
    trimmed = trim_analysis_run(body)
    trimmed["spec"] = {"terminate": bool((body.get("spec") or {}).get("terminate"))}
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    if TRAFFIC_HOLD_ANNOTATION in annotations:
        trimmed["metadata"]["annotations"] = {
            TRAFFIC_HOLD_ANNOTATION: annotations[TRAFFIC_HOLD_ANNOTATION]}
    templates = [{k: t[k] for k in ("name", "serviceName", "podTemplateHash") if k in t}
                 for t in (body.get("status") or {}).get("templateStatuses") or ()
                 if isinstance(t, Mapping) and t.get("serviceName")]
    if templates:
        trimmed["status"]["templateStatuses"] = templates
    return trimmed


def first(store: Any) -> Mapping[str, Any] | None:
    for item in store or ():
        if isinstance(item, Mapping):
            return item
    return None
