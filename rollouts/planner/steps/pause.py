"""pause: hold Paused until the duration has passed since the pause began, or until
promoted (no duration). The start is kept in status (a pause condition), so a restarted
controller neither shortens nor restarts a pause."""

from __future__ import annotations

import datetime as dt
import math

from rollouts.models.rollout import CanaryStep, PauseCondition
from rollouts.models.wire import CANARY_PAUSE, format_time
from rollouts.planner.context import Context, Draft
from rollouts.planner.steps import Advance, Outcome, Pause, Walk


def handle(ctx: Context, draft: Draft, walk: Walk, step: CanaryStep) -> Outcome:
    assert step.pause is not None
    current = next((p for p in walk.pause_conditions if p.reason == CANARY_PAUSE), None)
    if current is None:
        current = PauseCondition(reason=CANARY_PAUSE, start_time=ctx.now)
        walk.pause_conditions.append(current)
    duration = step.pause.seconds()
    if duration is None:
        return Pause(f"{walk.label}: paused until promoted")
    resume = current.start_time + dt.timedelta(seconds=duration)
    if ctx.now >= resume:
        walk.pause_conditions[:] = [p for p in walk.pause_conditions
                                    if p.reason != CANARY_PAUSE]
        return Advance()
    draft.wake(resume)
    # A message that stays true for the whole pause (a countdown would be stale at once);
    # displays count down from the pause condition's start time.
    return Pause(f"{walk.label}: paused {duration_text(duration)}, until {format_time(resume)}")


def duration_text(seconds: float) -> str:
    whole = math.ceil(seconds)
    return f"{whole}s" if whole < 120 else f"{whole // 60}m{whole % 60:02d}s"
