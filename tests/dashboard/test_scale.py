"""500 Rollouts in one namespace: the list renders them all, and a burst of 500 status
changes reaches the open page (one batch per flush, not one request per row).

No wall-clock assertion: generous timeouts only; the figures are printed (run with -s).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from rollouts.sandbox.cluster import Sandbox
from tests.dashboard.conftest import start_dashboard

pytestmark = pytest.mark.e2e

COUNT = 500
GROUP, VERSION = "rollouts.dev", "v1alpha1"


def status(phase: str, step: int) -> dict[str, Any]:
    return {"phase": phase, "observedGeneration": 1, "message": f"Step {step + 1}/4",
            "currentPodHash": "new", "stableRS": "old", "currentStepIndex": step,
            "canary": {"desiredWeight": 25}}


@pytest.fixture
def crowded() -> Iterator[Sandbox]:
    with Sandbox(ready_delay=0.1) as sb:  # no controller: the test writes every status
        for i in range(COUNT):
            name = f"svc-{i:03d}"
            sb.emulator.apply_manifest({
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "Rollout",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}},
                                      "spec": {"containers": [{"name": "a", "image": "x:1"}]}},
                         "strategy": {"canary": {"steps": [
                             {"setWeight": 25}, {"pause": {}}, {"setWeight": 50},
                             {"pause": {}}]}}}})
            sb.emulator.patch_object(GROUP, VERSION, "rollouts", "default", name,
                                     {"status": status("Paused", 1)}, subresource="status")
        yield sb


def test_five_hundred_rollouts(crowded: Sandbox, browser: Any) -> None:
    started = time.monotonic()
    dashboard = start_dashboard(crowded.kubeconfig, "default")
    try:
        synced = time.monotonic()
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(dashboard.url)
        page.wait_for_selector("#live-state:text('live')")
        assert page.locator("#rows tr").count() == COUNT
        assert page.locator("#rows .phase-paused").count() == COUNT
        rendered = time.monotonic()

        for i in range(COUNT):
            crowded.emulator.patch_object(GROUP, VERSION, "rollouts", "default",
                                          f"svc-{i:03d}", {"status": status("Degraded", 0)},
                                          subresource="status")
        written = time.monotonic()
        page.wait_for_function(
            f"document.querySelectorAll('#rows .phase-degraded').length === {COUNT}",
            timeout=120_000)
        arrived = time.monotonic()
        assert page.locator("#rows tr").count() == COUNT
        updates = int(page.evaluate("document.body.dataset.updates"))
        print(f"\n{COUNT} rollouts: dashboard synced in {synced - started:.2f}s, list "
              f"rendered in {rendered - synced:.2f}s; {COUNT} status writes took "
              f"{written - rendered:.2f}s, all shown {arrived - written:.2f}s after the last "
              f"write, in {updates - 1} batch(es)")
        # Batched: far fewer flushes than changes.
        assert updates - 1 < COUNT
        page.close()
    finally:
        dashboard.stop()
