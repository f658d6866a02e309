"""Run Argo CD resource-customization Lua with lupa, the way Argo CD hands objects over:
`obj` is the object as a Lua table (JSON arrays as 1-based sequences)."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

lupa = pytest.importorskip("lupa")

DATA = pathlib.Path(__file__).resolve().parent / "data"


def recorded(name: str) -> dict[str, Any]:
    """A Rollout as the controller left it (recorded by tests/gitops/record.py)."""
    result: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return result


RECORDED = sorted(p.stem for p in DATA.glob("*.json"))


def run(script: str, obj: dict[str, Any], *, now: str = "2026-12-04T20:00:00Z") -> Any:
    """The script's return value, converted back to Python. `os.date` answers `now`."""
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua_globals = runtime.globals()
    lua_globals.os.date = lambda *_: now
    lua_globals.obj = _to_lua(runtime, obj)
    return _to_python(runtime.execute(script))


def _to_lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return runtime.table_from({k: _to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, v) for v in value])
    return value


def _to_python(value: Any) -> Any:
    if lupa.lua_type(value) != "table":
        return value
    items = dict(value.items())
    if items and all(isinstance(k, int) for k in items) and sorted(items) == list(
            range(1, len(items) + 1)):
        return [_to_python(items[i]) for i in range(1, len(items) + 1)]
    return {k: _to_python(v) for k, v in items.items()}
