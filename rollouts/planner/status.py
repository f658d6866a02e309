"""Typed changes to a Rollout's status: what the planner and the operations decide.

Every field of `RolloutStatus` has a typed slot here that starts as `KEEP`; a decision sets
the slots it changes (None deletes the field). Assigning a field that does not exist, or a
value of the wrong type, fails `mypy --strict`; `applied_to` validates the result, so a bad
phase fails at once instead of reaching the wire. (A test keeps the slots and the model's
fields the same.)
"""

from __future__ import annotations

import datetime as dt
import enum
import operator
from dataclasses import dataclass, fields
from typing import Any

from rollouts.models.rollout import (
    BlueGreenStatus,
    CanaryStatus,
    Condition,
    NotificationRecord,
    PauseCondition,
    Phase,
    RolloutStatus,
    SelectorRepair,
)


class Keep(enum.Enum):
    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(slots=True)
class StatusChanges:
    phase: Phase | Keep | None = KEEP
    message: str | Keep = KEEP
    observed_generation: int | Keep | None = KEEP
    replicas: int | Keep = KEEP
    updated_replicas: int | Keep = KEEP
    ready_replicas: int | Keep = KEEP
    available_replicas: int | Keep = KEEP
    current_pod_hash: str | Keep | None = KEEP
    stable_rs: str | Keep | None = KEEP
    current_step_index: int | Keep | None = KEEP
    step: str | Keep | None = KEEP
    pause_conditions: list[PauseCondition] | Keep | None = KEEP
    controller_pause: bool | Keep | None = KEEP
    abort: bool | Keep | None = KEEP
    aborted_at: dt.datetime | Keep | None = KEEP
    abort_message: str | Keep | None = KEEP
    analysis_attempt: int | Keep | None = KEEP
    promote_full: bool | Keep | None = KEEP
    observed_pod_hash: str | Keep | None = KEEP
    progress_at: dt.datetime | Keep | None = KEEP
    preview_ready_at: dt.datetime | Keep | None = KEEP
    canary: CanaryStatus | Keep | None = KEEP
    blue_green: BlueGreenStatus | Keep | None = KEEP
    selector: str | Keep | None = KEEP
    conditions: list[Condition] | Keep | None = KEEP
    selector_repairs: list[SelectorRepair] | Keep | None = KEEP
    # Never set by the planner: the operator's notification hook owns it (kept as is).
    notifications: list[NotificationRecord] | Keep | None = KEEP
    restarted_at: dt.datetime | Keep | None = KEEP

    def changed(self) -> dict[str, Any]:
        """The slots that were set, by field name."""
        return {name: value for name, value in zip(_SLOTS, _VALUES(self), strict=True)
                if value is not KEEP}

    def merge(self, later: StatusChanges) -> None:
        """Take every slot `later` sets (a later decision wins)."""
        for name, value in later.changed().items():
            setattr(self, name, value)

    def applied_to(self, status: RolloutStatus) -> RolloutStatus:
        """The status with these changes, validated as a whole."""
        return RolloutStatus.model_validate({**dict(status), **self.changed()})

    def wire_patch(self) -> dict[str, Any]:
        """The changes as a status merge patch: camelCase names, None deletes the field."""
        whole = self.applied_to(RolloutStatus()).model_dump(by_alias=True, mode="json")
        return {
            RolloutStatus.model_fields[name].alias or name: whole[
                RolloutStatus.model_fields[name].alias or name]
            for name in self.changed()
        }


# The slot names, read once, and all their values in one call: `dataclasses.fields` and a
# getattr per slot on every call were a tenth of a pass's planning (bench/pass_cost.py).
_SLOTS: tuple[str, ...] = tuple(f.name for f in fields(StatusChanges))
_VALUES = operator.attrgetter(*_SLOTS)
