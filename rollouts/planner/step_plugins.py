"""Step plugins: canary steps (`plugin: {name, config}`) run by code registered from outside.

A plugin is any object with the three methods of `StepPlugin`, the hooks of Argo Rollouts'
step-plugin RPC: `run` while the step is current, `terminate` when the step is left before
it finished (a full promotion, a new revision), `abort` when the Rollout is aborted after the
step ran (to undo what it did). Each gets a `StepContext` (the revision, the step, the state
the plugin returned last time) and the step's `config` as written, and answers a
`StepResult`. The planner calls them while planning, so a plugin should be pure over its
inputs where it can: what it must remember goes in `StepResult.state` (kept in the Rollout's
status, handed back on the next call), and a call that must wait asks to be called again
(`requeue_after`) rather than blocking.

Plugins are registered as Python entry points in the group `rollouts.step_plugins`; the entry
point's name is the name steps use. It loads either a plugin object or a class / factory
taking no arguments.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any, Literal, Protocol, runtime_checkable

ENTRY_POINT_GROUP = "rollouts.step_plugins"
DEFAULT_REQUEUE_SECONDS = 10.0

log = logging.getLogger("rollouts.planner.step_plugins")


@dataclass(frozen=True)
class StepContext:
    """What a plugin call knows about the Rollout and its own earlier calls."""

    namespace: str
    rollout: str
    step_index: int
    pod_hash: str  # the revision being rolled out
    stable_hash: str | None
    now: dt.datetime
    # What this plugin returned as `state` last time for this step (None on the first call).
    state: Mapping[str, Any] | None = None
    executions: int = 0  # how many times `run` was called before for this step


@dataclass(frozen=True)
class StepResult:
    """`advance`: the step is done; `wait`: call `run` again after `requeue_after` seconds;
    `abort`: the step failed and the Rollout is aborted (with `message`)."""

    outcome: Literal["advance", "wait", "abort"]
    message: str = ""
    requeue_after: float | None = None
    state: Mapping[str, Any] | None = field(default=None)


@runtime_checkable
class StepPlugin(Protocol):
    def run(self, context: StepContext, config: Mapping[str, Any]) -> StepResult: ...

    def terminate(self, context: StepContext, config: Mapping[str, Any]) -> StepResult: ...

    def abort(self, context: StepContext, config: Mapping[str, Any]) -> StepResult: ...


def load_step_plugins(group: str = ENTRY_POINT_GROUP) -> Mapping[str, StepPlugin]:
    """Every plugin registered in the entry-point group, by name.

    A plugin that fails to load is logged and left out: the steps that name it are then
    InvalidSpec ("not registered") and every other Rollout keeps being served.
    """
    found: dict[str, StepPlugin] = {}
    for point in entry_points(group=group):
        try:
            loaded = point.load()
            plugin = loaded() if isinstance(loaded, type) or not isinstance(
                loaded, StepPlugin) else loaded
        except Exception as exc:  # a broken plugin must not stop the controller
            log.error("step plugin not loaded", extra={"plugin": point.name, "error": str(exc)})
            continue
        if not isinstance(plugin, StepPlugin):
            log.error("step plugin not loaded", extra={
                "plugin": point.name, "error": "it has no run/terminate/abort methods"})
            continue
        found[point.name] = plugin
    return MappingProxyType(found)
