"""The dashboard in a real browser against the sandbox and the real controller.

A canary paused at a step is listed, its detail page shows steps, weights and an analysis
chart, Promote advances it and Abort shows Degraded. Each page is saved as a screenshot
(`$ROLLOUTS_SCREENSHOTS`, else the test's tmp dir).
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

from rollouts.sandbox.cluster import Sandbox
from tests.dashboard.conftest import start_dashboard

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 30_000
STEPS = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]
CHART_NAMESPACE = "charts"  # no controller serves it: its status is written by the test


def rollout(name: str, namespace: str, image: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": name, "image": image}]}},
            "strategy": {"canary": {"steps": steps}},
        },
    }


def charted(sb: Sandbox) -> None:
    """A Rollout waiting at an analysis step whose run has five measurements, one failed."""
    sb.emulator.apply_manifest({"apiVersion": "v1", "kind": "Namespace",
                                "metadata": {"name": CHART_NAMESPACE}})
    created = sb.apply([rollout("checkout", CHART_NAMESPACE, "example/checkout:2",
                                [{"setWeight": 20}, {"analysis": {"templates": [
                                    {"templateName": "error-rate"}]}}])])[0]
    sb.emulator.patch_object("rollouts.dev", "v1alpha1", "rollouts", CHART_NAMESPACE,
                             "checkout", {"status": {
                                 "phase": "Progressing", "observedGeneration": 1,
                                 "message": "Step 2/2: analysis running",
                                 "currentPodHash": "new", "stableRS": "old",
                                 "currentStepIndex": 1}}, subresource="status")
    values = ["0.010", "0.012", "0.020", "0.071", "0.015"]
    measurements = [{"phase": "Failed" if float(v) > 0.05 else "Successful", "value": v,
                     "startedAt": f"2026-01-01T10:00:{i * 10:02d}Z",
                     "finishedAt": f"2026-01-01T10:00:{i * 10 + 1:02d}Z"}
                    for i, v in enumerate(values)]
    owner = {"apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout", "name": "checkout",
             "uid": created["metadata"]["uid"], "controller": True}
    sb.emulator.apply_manifest({
        "apiVersion": "rollouts.dev/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": "checkout-new-2", "namespace": CHART_NAMESPACE,
                     "ownerReferences": [owner],
                     "labels": {"rollouts-pod-template-hash": "new",
                                "rollouts.dev/analysis-kind": "step",
                                "rollouts.dev/step-index": "1"}},
        "spec": {"metrics": [{"name": "error-rate", "successCondition": "result[0] <= 0.05",
                              "provider": {"prometheus": {"address": "http://prometheus:9090",
                                                          "query": "errors"}}}]},
    })
    sb.emulator.patch_object("rollouts.dev", "v1alpha1", "analysisruns", CHART_NAMESPACE,
                             "checkout-new-2", {"status": {
                                 "phase": "Running", "metricResults": [{
                                     "name": "error-rate", "phase": "Running", "count": 5,
                                     "successful": 4, "failed": 1,
                                     "measurements": measurements}]}},
                             subresource="status")


@pytest.fixture
def world() -> Iterator[Sandbox]:
    with Sandbox(ready_delay=0.1, requeue_floor=0.2) as sb:
        sb.start_controller()
        sb.apply([rollout("web", "default", "example/web:1", STEPS)])
        sb.wait_phase("web", "Healthy")
        sb.set_image("web", "example/web:2")
        sb.wait_phase("web", "Paused", step=1)
        charted(sb)
        yield sb


def test_list_detail_promote_abort(world: Sandbox, browser: Any,
                                   screenshots: pathlib.Path) -> None:
    dashboard = start_dashboard(world.kubeconfig, None)
    try:
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(dashboard.url)
        rows = page.locator("#rows tr")
        rows.first.wait_for()
        assert sorted(rows.locator("th").all_inner_texts()) == ["checkout", "web"]
        web = page.locator("#r--default--web")
        assert "Paused" in web.inner_text() and "2/4" in web.inner_text()
        page.wait_for_selector("#live-state:text('live')")
        page.screenshot(path=str(screenshots / "dashboard-list.png"), full_page=True)

        # The detail page of the charted Rollout: steps, and the metric against its threshold.
        page.click("text=checkout")
        page.wait_for_selector("h1:has-text('checkout')")
        steps = page.locator("#steps li")
        assert steps.count() == 2
        assert "current" in (steps.nth(1).get_attribute("class") or "")
        chart = page.locator("svg.chart")
        assert chart.count() == 1
        assert chart.locator("circle").count() == 5
        assert chart.locator("circle.point-failed").count() == 1
        assert "success: result <= 0.05" in (chart.locator(".threshold-label").text_content() or "")
        page.screenshot(path=str(screenshots / "dashboard-analysis.png"), full_page=True)

        # Keyboard: an action asks first; Escape cancels, writes nothing, gives focus back.
        pause = page.locator("button[data-operation=pause]")
        pause.focus()
        page.keyboard.press("Enter")
        page.wait_for_selector("dialog#confirm[open]")
        page.keyboard.press("Escape")
        page.wait_for_selector("dialog#confirm:not([open])", state="hidden")
        assert page.evaluate("document.activeElement.dataset.operation") == "pause"
        assert page.locator("#result").inner_text() == ""
        assert "pauseConditions" not in world.emulator.get_object(
            "rollouts.dev", "v1alpha1", "rollouts", CHART_NAMESPACE, "checkout")["status"]

        # The paused canary: weights, the current step, and promote.
        page.goto(dashboard.url.rstrip("/") + "/rollouts/default/web")
        assert page.locator("#weights").inner_text().startswith("canary 25%")
        assert "current" in (page.locator("#steps li").nth(1).get_attribute("class") or "")
        page.screenshot(path=str(screenshots / "dashboard-detail.png"), full_page=True)
        page.click("button[data-operation=promote][data-full=false]")
        page.wait_for_selector("dialog#confirm[open]")
        page.keyboard.press("Enter")  # the confirm button has the focus
        page.wait_for_selector("#result.ok:has-text('promoted')")
        # Pushed by the watch: the canary moves on to 50% and waits at the last pause.
        page.wait_for_selector("#weights:has-text('canary 50%')")
        assert "current" in (page.locator("#steps li").nth(3).get_attribute("class") or "")
        assert world.status("web")["currentStepIndex"] == 3

        # Abort: confirmation, then Degraded arrives through the stream.
        page.click("button[data-operation=abort]")
        page.click("#confirm-ok")
        page.wait_for_selector("#result.ok:has-text('aborted')")
        page.wait_for_selector("#phase:has-text('Degraded')")
        page.wait_for_selector(".role-aborted")
        page.screenshot(path=str(screenshots / "dashboard-aborted.png"), full_page=True)

        # A refusal is shown as such: promoting an aborted Rollout makes no sense.
        page.click("button[data-operation=promote][data-full=false]")
        page.click("#confirm-ok")
        page.wait_for_selector("#result.error:has-text('aborted')")
        assert "409" in page.locator("#result").inner_text()
        page.close()
    finally:
        dashboard.stop()
