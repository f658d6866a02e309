"""A tiny step plugin, the example of docs/api.md ("Step plugins"): it waits until it has
been called `config.checks` times, `config.interval` seconds apart, then lets the step
advance; `config.fail: true` makes it abort the Rollout. It remembers its count in its
state (kept in the Rollout's status), so it needs no memory of its own; it records the
hooks called on it (for the tests)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rollouts.planner.step_plugins import StepContext, StepResult


class CountingPlugin:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []  # (hook, step index)

    def run(self, context: StepContext, config: Mapping[str, Any]) -> StepResult:
        self.calls.append(("run", context.step_index))
        if config.get("fail"):
            return StepResult("abort", "the check failed")
        done = int((context.state or {}).get("checks", 0)) + 1
        if done >= int(config.get("checks", 1)):
            return StepResult("advance", f"{done} checks passed", state={"checks": done})
        return StepResult("wait", f"{done} of {config.get('checks')} checks passed",
                          requeue_after=float(config.get("interval", 10)),
                          state={"checks": done})

    def terminate(self, context: StepContext, config: Mapping[str, Any]) -> StepResult:
        self.calls.append(("terminate", context.step_index))
        return StepResult("advance", "terminated")

    def abort(self, context: StepContext, config: Mapping[str, Any]) -> StepResult:
        self.calls.append(("abort", context.step_index))
        return StepResult("advance", "undone")
