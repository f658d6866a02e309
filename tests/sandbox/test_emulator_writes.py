"""bench/emulator_writes.py, the hook write_census.py and trace_writes.py share: every
write the emulator answers is noted with its body and code, reads are not, and the
bench's counter resets are timed."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from rollouts.sandbox import apiserver
from rollouts.sandbox.apiserver import ApiEmulator

HOOK = Path(__file__).resolve().parents[2] / "bench" / "emulator_writes.py"


def hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("emulator_writes", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_writes_and_their_answers_are_noted_reads_are_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("_handle", "reset_counters"):  # put back after the test
        monkeypatch.setattr(apiserver.ApiEmulator, name, getattr(apiserver.ApiEmulator, name))
    writes, resets = hook().note_writes()
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "app-00007-stable"},
               "spec": {"selector": {"app": "a"}, "ports": [{"port": 80}]}}
    async with ApiEmulator() as emu, httpx.AsyncClient(
            base_url=emu.url, timeout=10, headers={"Authorization": "Bearer x"}) as client:
        emu.reset_counters()
        collection = "/api/v1/namespaces/default/services"
        assert (await client.post(collection, json=service)).status_code == 201
        assert (await client.get(f"{collection}/app-00007-stable")).status_code == 200
        assert (await client.post(collection, json=service)).status_code == 409
        assert (await client.delete(f"{collection}/app-00007-stable")).status_code == 200
    assert [(w.method, w.path, w.status) for w in writes] == [
        ("POST", collection, 201), ("POST", collection, 409),
        ("DELETE", f"{collection}/app-00007-stable", 200)]
    assert "app-00007-stable" in writes[0].text
    assert len(resets) == 1 and resets[0] <= writes[0].at <= writes[-1].at
