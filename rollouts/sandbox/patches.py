"""Patches as kube-apiserver applies them: JSON merge patch (RFC 7386), the common rules of
strategic merge patch, and JSON patch (RFC 6902, through the `jsonpatch` library).
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


_SMP_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "ownerReferences": "uid",
    "conditions": "type",
}


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A strategic merge patch for the common list fields of built-in kinds.

    Lists named in ``_SMP_KEYS`` (and ``ports``) merge item by item on their merge key and
    honour ``$patch: delete``; a ``$patch: replace`` map replaces; other lists are replaced.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            merge_key = _SMP_KEYS.get(key)
            if key == "ports":
                merge_key = (
                    "containerPort"
                    if any(isinstance(i, dict) and "containerPort" in i for i in value)
                    else "port"
                )
            result[key] = _smp_list(result[key], value, merge_key)
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _smp_list(current: list[Any], patch: list[Any], merge_key: str | None) -> list[Any]:
    if merge_key is None or not all(isinstance(i, dict) and merge_key in i for i in patch):
        return copy.deepcopy(patch)
    out = [copy.deepcopy(i) for i in current]
    for item in patch:
        idx = next(
            (
                n
                for n, i in enumerate(out)
                if isinstance(i, dict) and i.get(merge_key) == item[merge_key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
        elif idx is None:
            out.append(strategic_merge_patch({}, item))
        else:
            out[idx] = strategic_merge_patch(out[idx], item)
    return out


class PatchFailed(Exception):
    """A patch that does not apply (a failed `test`, a missing path...): kube-apiserver answers
    every such failure with the same generic 422, whatever the cause."""


def json_patch(doc: Any, ops: list[Any]) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test) applied to a copy of doc."""
    try:
        return jsonpatch.JsonPatch(ops).apply(copy.deepcopy(doc))
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException,
            KeyError, IndexError, TypeError, ValueError) as e:
        raise PatchFailed(str(e)) from e
