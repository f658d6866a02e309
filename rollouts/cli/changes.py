"""What an operation (`promote`, `abort`, ...) did, in the words the CLI and the dashboard
print: "rollout web promoted (namespace shop)" and one "field: old -> new" line per change."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rollouts.models.rollout import Rollout

_DONE = {
    "promote": "promoted",
    "abort": "aborted",
    "retry": "restarted (retry)",
    "pause": "paused",
    "resume": "resumed",
}


def operation_done(name: str, namespace: str, operation: str, *, full: bool = False) -> str:
    what = "promoted fully" if full and operation == "promote" else _DONE[operation]
    return f"rollout {name} {what} (namespace {namespace})"


def _show(value: Any) -> str:
    if value is None:
        return "<unset>"
    if isinstance(value, list):
        reasons = [str(v.get("reason")) if isinstance(v, dict) else str(v) for v in value]
        return "[" + ", ".join(reasons) + "]"
    return json.dumps(value)


def describe_changes(before: Mapping[str, Any], updates: Mapping[str, Any]) -> list[str]:
    """"field: old -> new" for every status field the operation changed."""
    lines = []
    for field, new in updates.items():
        old = before.get(field)
        if old == new or (new is None and field not in before):
            continue
        lines.append(f"{field}: {_show(old)} -> {_show(new)}")
    return lines


def operation_changes(before: Rollout, updates: Mapping[str, Any]) -> list[str]:
    """describe_changes against the Rollout's status as it was read before the write."""
    status = before.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    return describe_changes(status, updates)
