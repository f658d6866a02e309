"""Who owns a field of an object, read from its `metadata.managedFields` (FieldsV1).

The controller names the field manager that took a Service's selector away: the entry whose
FieldsV1 trie holds the field's path (`f:spec` -> `f:selector`). Pure; a malformed entry is
skipped, never an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# A Service's selector, as FieldsV1 path elements.
SELECTOR_FIELD = ("f:spec", "f:selector")


def field_owner(body: Mapping[str, Any], path: Sequence[str]) -> str:
    """The first field manager whose managedFields entry holds `path` (FieldsV1 elements,
    e.g. ("f:spec", "f:selector")); "" when no entry does."""
    metadata = body.get("metadata")
    entries = metadata.get("managedFields") if isinstance(metadata, Mapping) else None
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, Mapping):
            continue
        node: Any = entry.get("fieldsV1")
        for element in path:
            node = node.get(element) if isinstance(node, Mapping) else None
        if node is not None:
            return str(entry.get("manager") or "")
    return ""


def owner_entry(manager: str, path: Sequence[str]) -> dict[str, Any]:
    """A managedFields entry that says only that `manager` owns `path` (for trimmed caches)."""
    fields: dict[str, Any] = {}
    for element in reversed(path):
        fields = {element: fields}
    return {"manager": manager, "fieldsType": "FieldsV1", "fieldsV1": fields}
