"""The RFC 6902 operations that turn one JSON document into another, in a fixed order.

What `jsonpatch.make_patch` computes, without its two faults for a controller's writes:
jsonpatch 1.33 walks a mapping's keys through `set(keys)`, so the operations on sibling keys
come out in an order that changes with PYTHONHASHSEED (another patch, byte for byte, from
one process to the next); and its `move` detection can emit a `from` that earlier
operations have already shifted (python-json-patch issues #138, #179), a patch that does not
give the document wanted. Here keys are visited in document order (removed keys in the
observed order, then added keys in the desired order, then the common ones, recursively),
lists are compared index by index (the tail removed or appended), and nothing is `move`d.
tests/unit/traffic/test_patch_order.py builds patches under several seeds and checks, by
property, that the operations give the desired document.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

Operation = dict[str, Any]


def json_diff(src: Any, dst: Any) -> list[Operation]:
    """Operations (remove, add, replace) from `src` to `dst`; [] when they are equal."""
    ops: list[Operation] = []
    _compare(ops, "", src, dst)
    return ops


def _compare(ops: list[Operation], path: str, src: Any, dst: Any) -> None:
    if isinstance(src, Mapping) and isinstance(dst, Mapping):
        ops.extend({"op": "remove", "path": _join(path, key)} for key in src if key not in dst)
        ops.extend({"op": "add", "path": _join(path, key), "value": dst[key]}
                   for key in dst if key not in src)
        for key in src:
            if key in dst:
                _compare(ops, _join(path, key), src[key], dst[key])
    elif _is_list(src) and _is_list(dst):
        for index in range(min(len(src), len(dst))):
            _compare(ops, _join(path, index), src[index], dst[index])
        # Each removal shifts the rest down: the tail goes one element at a time.
        ops.extend({"op": "remove", "path": _join(path, len(dst))}
                   for _ in range(len(dst), len(src)))
        ops.extend({"op": "add", "path": _join(path, index), "value": dst[index]}
                   for index in range(len(src), len(dst)))
    elif not _same_json(src, dst):  # 1 and True are equal in Python, not in JSON
        ops.append({"op": "replace", "path": path, "value": dst})


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _same_json(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _join(path: str, key: object) -> str:
    """A JSON pointer one level down (RFC 6901: `~` is `~0`, `/` is `~1`)."""
    return path + "/" + str(key).replace("~", "~0").replace("/", "~1")
