"""Canary `plugin` steps: run / terminate / abort hooks of a registered step plugin, the
record in status.canary.stepPluginStatuses, and registration through entry points."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import pytest

from rollouts.planner.step_plugins import ENTRY_POINT_GROUP, load_step_plugins
from rollouts.planner.types import Observed
from tests.unit.example_step_plugin import CountingPlugin
from tests.unit.world import World, canary_spec


@dataclasses.dataclass
class PluginWorld(World):
    plugins: dict[str, Any] = dataclasses.field(default_factory=dict)

    def observed(self) -> Observed:
        return dataclasses.replace(super().observed(), step_plugins=dict(self.plugins))


def world(*steps: dict[str, Any]) -> tuple[PluginWorld, CountingPlugin]:
    plugin = CountingPlugin()
    w = PluginWorld(canary_spec(list(steps)), plugins={"example": plugin})
    w.run()
    assert w.status.phase == "Healthy"
    return w, plugin


def plugin_step(**config: Any) -> dict[str, Any]:
    return {"plugin": {"name": "example", "config": config}}


def test_a_plugin_step_waits_as_told_then_advances_with_its_state_kept_in_status() -> None:
    w, plugin = world(plugin_step(checks=2, interval=10), {"pause": {}})
    w.set_image("app:2")
    w.run()
    assert w.status.phase == "Progressing" and w.status.current_step_index == 0
    assert "plugin example: 1 of 2 checks passed" in w.status.message
    assert plugin.calls == [("run", 0)]
    (record,) = w.status.canary.step_plugin_statuses
    assert (record.phase, record.executions, record.status) == ("Running", 1, {"checks": 1})
    assert w.history[-1].requeue_after == 10
    w.run()  # not due yet: not called again, nothing written
    assert plugin.calls == [("run", 0)] and not w.history[-1].actions
    w.advance(10)
    w.run()
    assert w.status.phase == "Paused" and w.status.current_step_index == 1
    (record,) = w.status.canary.step_plugin_statuses
    assert (record.phase, record.executions, record.status) == ("Successful", 2, {"checks": 2})
    assert plugin.calls == [("run", 0), ("run", 0)]


def test_a_failing_plugin_aborts_and_every_plugin_step_that_ran_is_told() -> None:
    w, plugin = world(plugin_step(), plugin_step(fail=True))
    w.set_image("app:2")
    w.run()
    assert w.status.abort and w.status.phase == "Degraded"
    assert "plugin example: the check failed" in (w.status.abort_message or "")
    assert sorted(plugin.calls) == [("abort", 0), ("abort", 1), ("run", 0), ("run", 1)]
    assert [r.phase for r in w.status.canary.step_plugin_statuses] == ["Aborted", "Aborted"]


def test_a_running_plugin_step_left_by_a_full_promotion_is_terminated() -> None:
    w, plugin = world(plugin_step(checks=5))
    w.set_image("app:2")
    w.run()
    w.edit_status(promote_full=True)
    w.run()
    assert w.status.phase == "Healthy"
    assert ("terminate", 0) in plugin.calls
    assert [r.phase for r in w.status.canary.step_plugin_statuses] == ["Terminated"]


def test_an_unknown_plugin_is_invalid_spec_naming_it() -> None:
    w = PluginWorld(canary_spec([{"plugin": {"name": "nope"}}]), plugins={})
    result = w.plan()
    assert result.status.phase == "Degraded"
    assert ('spec.strategy.canary.steps[0].plugin.name: step plugin "nope" is not registered'
            in result.status.message)


def test_a_plugin_that_raises_makes_the_step_wait_and_never_crashes_the_planner() -> None:
    class Broken(CountingPlugin):
        def run(self, context: Any, config: Any) -> Any:
            raise RuntimeError("boom")

    w = PluginWorld(canary_spec([plugin_step()]), plugins={"example": Broken()})
    w.run()
    w.set_image("app:2")
    w.run()
    assert w.status.phase == "Progressing"
    assert "plugin error in run: RuntimeError: boom" in w.status.message


def test_plugins_are_registered_through_the_entry_point_group(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "example_step_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: example-step-plugin\n"
                                   "Version: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nexample = tests.unit.example_step_plugin:CountingPlugin\n"
        "broken = tests.unit.no_such_module:Plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = load_step_plugins()
    assert isinstance(plugins["example"], CountingPlugin)
    assert "broken" not in plugins  # logged and left out; its steps are InvalidSpec
