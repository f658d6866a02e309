"""Issue 8/11: a quiet controller logs nothing per quiet object, and its lines are JSON.

Three Rollouts (each with a canary and a stable Service) become Healthy; the controller is
restarted, so that its watches list every object again (what made kopf log a "Handler ...
succeeded" line per object and per handler). Then one Rollout gets a new image: its lines
are there, naming it; none names the two quiet Rollouts or their objects. With --verbose the
same restart does log per object: the quiet run had the time to log them, had it wanted to.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from rollouts import logs
from tests.e2e.conftest import CountingSandbox

pytestmark = pytest.mark.e2e

NAMES = ("web-0", "web-1", "web-2")
QUIET = NAMES[1:]


def manifests(name: str) -> list[dict[str, Any]]:
    labels = {"app": name}
    services = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"{name}-{role}"},
                 "spec": {"selector": dict(labels), "ports": [{"port": 80}]}}
                for role in ("canary", "stable")]
    rollout = {
        "apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "app", "image": "app:1"}]}},
            "strategy": {"canary": {"canaryService": f"{name}-canary",
                                    "stableService": f"{name}-stable",
                                    "steps": [{"setWeight": 50}]}},
        },
    }
    return [*services, rollout]


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in logs.CHATTY_LOGGERS}
    yield io.StringIO()
    root.handlers[:], root.level = saved
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def records(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def about_quiet(record: dict[str, Any]) -> bool:
    return any(name in json.dumps(record) for name in QUIET)


def restart(sandbox: CountingSandbox, out: io.StringIO, *, verbose: bool) -> None:
    sandbox.stop_controller()
    logs.configure("json", verbose=verbose, stream=out)
    sandbox.start_controller()
    sandbox.wait_for("the controller to start its reconciles", lambda: any(
        r["message"] == "reconciling Rollouts" for r in records(out)))
    sandbox.set_image("web-0", f"app:{2 if not verbose else 3}")
    sandbox.wait_phase("web-0", "Healthy", timeout=30)
    sandbox.wait_for("web-0 on its new revision", lambda: (
        sandbox.status("web-0").get("stableRS") == sandbox.status("web-0").get("currentPodHash")
        and any(r.get("rollout") == "default/web-0" for r in records(out))))


def test_a_quiet_controller_logs_nothing_per_quiet_object(
        sandbox: CountingSandbox, captured: io.StringIO) -> None:
    for name in NAMES:
        sandbox.apply(manifests(name))
    sandbox.start_controller()
    for name in NAMES:
        sandbox.wait_phase(name, "Healthy", timeout=30)

    restart(sandbox, captured, verbose=False)
    lines = records(captured)
    # Every line is a JSON object with the common fields; the busy Rollout's name them.
    assert all({"time", "level", "logger", "message"} <= set(r) for r in lines)
    busy = [r for r in lines if r.get("rollout") == "default/web-0"]
    assert any(r["message"] == "reconciled" and r.get("phase") and r.get("step") for r in busy)
    assert [r for r in lines if about_quiet(r)] == []
    assert not any("succeeded" in r["message"] and ("rollout" in r or "object" in r)
                   for r in lines)

    verbose = io.StringIO()
    restart(sandbox, verbose, verbose=True)
    assert any(about_quiet(r) for r in records(verbose))
