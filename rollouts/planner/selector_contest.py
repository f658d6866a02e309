"""Noticing that something keeps taking a Service's selector away from the controller.

`Service.spec.selector` is an atomic map: a GitOps tool that applies a Service whose manifest
declares a selector, by server-side apply with force (Flux's kustomize-controller does), takes
the whole selector and drops the `rollouts-pod-template-hash` key; for a moment the Service
selects the pods of every revision. The controller puts the key back at once (the planner pins
the Service again). This module counts those repairs and, past a threshold, says so: a
condition on the Rollout and a Warning Event naming the field manager that took the selector
and the fix (declare the Service in Git without `spec.selector`; see docs/gitops.md).

Pure: the repairs are kept in `status.selectorRepairs` (so a restarted controller keeps
counting), one per observed Service change, so planning the same inputs twice counts once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rollouts.models.rollout import Condition, RolloutStatus, SelectorRepair
from rollouts.models.wire import POD_TEMPLATE_HASH_LABEL, whole_seconds
from rollouts.planner.types import Action, Event, Observed, PinService

# The field manager the controller writes Service selectors under (server-side apply).
FIELD_MANAGER = "rollouts-controller"
CONDITION = "ServiceSelectorContested"
CONTESTED_REASON = "SelectorTakenRepeatedly"
SETTLED_REASON = "SelectorKept"
# This many repairs within the window make a contest (a single sync or a manual edit is not).
THRESHOLD = 3
WINDOW = dt.timedelta(minutes=5)
_KEPT = 20  # records kept at most, newest first


@dataclass(frozen=True)
class Contest:
    """What this pass adds to the status and the Events."""

    repairs: list[SelectorRepair] | None
    conditions: tuple[Condition, ...]
    events: tuple[Event, ...]


def repairs_of(old: RolloutStatus, actions: Iterable[Action], observed: Observed,
               now: dt.datetime) -> list[SelectorRepair]:
    """The repair records after this pass: earlier ones inside the window, plus one per pin
    of a Service found without the hash key once the Rollout has pinned its Services (it
    has a stable revision). A first pin of a fresh Service is not a repair.

    E.g. stable "aaa", Service "web" observed at resourceVersion "41" with selector
    {app: web} owned by "kustomize-controller": a PinService("web", "aaa") records
    SelectorRepair(service="web", manager="kustomize-controller", resource_version="41").
    """
    kept = [r for r in old.selector_repairs or () if now - r.time < WINDOW]
    seen = {(r.service, r.resource_version) for r in kept}
    if old.stable_rs:
        for action in actions:
            if not isinstance(action, PinService):
                continue
            view = observed.services.get(action.service)
            if view is None or POD_TEMPLATE_HASH_LABEL in view.selector:
                continue
            if (view.name, view.resource_version) in seen:
                continue
            seen.add((view.name, view.resource_version))
            kept.append(SelectorRepair(service=view.name, manager=view.selector_manager,
                                       resource_version=view.resource_version,
                                       time=whole_seconds(now)))
    return sorted(kept, key=lambda r: r.time, reverse=True)[:_KEPT]


def contest_message(repairs: Sequence[SelectorRepair]) -> str:
    """Who took which selector, how often, and the fix."""
    managers = sorted({r.manager or "an unknown field manager" for r in repairs})
    services = sorted({r.service for r in repairs})
    who = ", ".join(f'"{m}"' if not m.startswith("an unknown") else m for m in managers)
    return (
        f"field manager {who} removed {POD_TEMPLATE_HASH_LABEL} from spec.selector of "
        f"Service {', '.join(services)} {len(repairs)} times in the last "
        f"{int(WINDOW.total_seconds() // 60)} minutes; the controller puts it back each time, "
        "but until it does the Service selects every revision. Fix: declare the Service "
        "without spec.selector in Git (the controller owns the whole selector), see "
        "docs/gitops.md"
    )


def assess(old: RolloutStatus, actions: Iterable[Action], observed: Observed,
           now: dt.datetime) -> Contest:
    """The repairs to record, the condition to show and the Event to post."""
    repairs = repairs_of(old, actions, observed, now)
    before = old.condition(CONDITION)
    contested = len(repairs) >= THRESHOLD
    if contested:
        message = contest_message(repairs)
        stamp = (before.last_transition_time if before is not None and before.status == "True"
                 else whole_seconds(now))
        condition = Condition(type=CONDITION, status="True", reason=CONTESTED_REASON,
                              message=message, last_transition_time=stamp)
        newly = before is None or before.status != "True"
        events = (Event("Warning", CONDITION, message),) if newly else ()
        return Contest(repairs, (condition,), events)
    if before is None:  # never contested: no condition at all
        return Contest(repairs or None, (), ())
    stamp = (before.last_transition_time if before.status == "False"
             else whole_seconds(now))
    settled = Condition(type=CONDITION, status="False", reason=SETTLED_REASON,
                        message="", last_transition_time=stamp)
    return Contest(repairs or None, (settled,), ())
