"""Replaying a Rollout's analysis over a past window (pure: the sampler is injected).

`replay` walks the Rollout's strategy on a virtual clock from `start` to `end`, ticking
every `step`, and runs every analysis the strategy would have run with the controller's own
pure pieces: the AnalysisRun is built by `templates.build_analysis_run` (args from the
Rollout), scheduled by `run.step_run`, each answer turned into a measurement by
`runner.to_measurement` (conditions, or `comparison.judge` for `compare` metrics), folded
in and assessed by `run.apply_measurements`. Nothing here judges a value itself.

The walk, as the controller would have gone:

- canary: steps in order. setWeight, setCanaryScale, setHeaderRoute and setMirrorRoute
  take no time; a timed pause lasts its duration; a pause without one waits for a human:
  the replay notes it and goes on as if promoted at once. An analysis step runs its
  AnalysisRun to completion: Successful goes on, Failed or Error aborts, Inconclusive
  pauses (the replay stops there: a human would have decided). Background analysis
  (`strategy.canary.analysis`) starts with step `startingStep` and runs until the last
  step is done (then it is terminated) or it fails (abort).
- blue-green: prePromotionAnalysis starts at `start`; promotion comes when it succeeded
  and `autoPromotionSeconds` passed (without auto-promotion the replay promotes as soon
  as allowed, and says so); postPromotionAnalysis then starts, and the rollout is complete
  when it succeeds, aborted when it fails.

A measurement is taken at the first tick at or after its slot and queried *at its slot*
(the moment the controller would have asked). A `step` longer than a metric's interval
skips slots, as a controller that wakes late does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from rollouts.analysis.assessment import is_completed
from rollouts.analysis.providers.base import MeasurementResult
from rollouts.analysis.run import apply_measurements, step_run
from rollouts.analysis.runner import to_measurement
from rollouts.analysis.templates import build_analysis_run
from rollouts.errors import InvalidSpecError
from rollouts.models.analysis import (
    AnalysisRun,
    AnalysisRunStatus,
    AnalysisTemplate,
    ClusterAnalysisTemplate,
    Measurement,
    Metric,
    load_analysis_run,
)
from rollouts.models.rollout import CanaryStep, RolloutSpec
from rollouts.models.rollout_analysis import RolloutAnalysis
from rollouts.planner.types import AnalysisKind

__all__ = ["Event", "Replay", "ReplayInput", "Sampler", "replay"]

Sampler = Callable[[Metric, datetime], MeasurementResult]
Outcome = Literal["promoted", "aborted", "paused", "undecided"]
EventKind = Literal["step", "note", "run-started", "measurement", "run-finished", "decision"]


@dataclass(frozen=True)
class Event:
    """One line of the replay's story."""

    at: datetime
    kind: EventKind
    message: str
    step: int | None = None  # 0-based canary step index
    analysis: str | None = None  # "step 3", "background", "prePromotion", "postPromotion"
    metric: str | None = None
    phase: str | None = None
    value: str | None = None
    evidence: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"at": self.at.isoformat(), "kind": self.kind}
        for name in ("step", "analysis", "metric", "phase", "value", "evidence"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        data["message"] = self.message
        return data


@dataclass(frozen=True)
class Replay:
    """What the strategy would have decided: `outcome` at `at` (step `step`), and why."""

    outcome: Outcome
    at: datetime | None
    step: int | None
    message: str
    events: tuple[Event, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "at": self.at.isoformat() if self.at else None,
            "step": self.step,
            "message": self.message,
            "events": [e.to_dict() for e in self.events],
        }


@dataclass(frozen=True)
class ReplayInput:
    """The Rollout (wire form, for args) and the templates its analyses reference."""

    rollout: Mapping[str, Any]
    spec: RolloutSpec
    templates: Mapping[str, AnalysisTemplate]
    cluster_templates: Mapping[str, ClusterAnalysisTemplate]
    canary_hash: str
    stable_hash: str | None


@dataclass
class _Active:
    """An AnalysisRun under way on the virtual clock."""

    label: str
    run: AnalysisRun
    step: int | None


@dataclass
class _Story:
    events: list[Event] = field(default_factory=list)

    def add(self, at: datetime, kind: EventKind, message: str, **extra: Any) -> None:
        self.events.append(Event(at, kind, message, **extra))


class _Stop(Exception):
    def __init__(self, outcome: Outcome, at: datetime, step: int | None, message: str) -> None:
        super().__init__(message)
        self.outcome: Outcome = outcome
        self.at = at
        self.step = step
        self.message = message


def _start_run(
    given: ReplayInput,
    analysis: RolloutAnalysis,
    kind: AnalysisKind,
    path: str,
    step: int | None,
    at: datetime,
    story: _Story,
) -> _Active:
    label = f"step {step}" if kind == "step" else kind
    try:
        manifest = build_analysis_run(
            given.rollout,
            analysis,
            kind=kind,
            pod_hash=given.canary_hash,
            templates=given.templates,
            cluster_templates=given.cluster_templates,
            stable_hash=given.stable_hash,
            latest_hash=given.canary_hash,
            step_index=step,
            field=path,
        )
    except InvalidSpecError as exc:
        raise _Stop("aborted", at, step, f"{label} analysis cannot start: {exc}") from None
    run = load_analysis_run(manifest).model_copy(
        update={"status": AnalysisRunStatus(phase="Running", started_at=at)}
    )
    names = ", ".join(m.name for m in run.spec.metrics)
    story.add(at, "run-started", f"{label} analysis started (metrics: {names})",
              step=step, analysis=label)  # fmt: skip
    return _Active(label, run, step)


def _measurement_event(active: _Active, metric: Metric, record: Measurement) -> Event:
    evidence = record.evidence
    detail = record.message or ""
    return Event(
        record.started_at or datetime.min,
        "measurement",
        f"{metric.name}: {record.phase} value={record.value}" + (f" ({detail})" if detail else ""),
        step=active.step,
        analysis=active.label,
        metric=metric.name,
        phase=record.phase,
        value=record.value,
        evidence=evidence.to_wire() if evidence is not None else None,
    )


def _advance(active: _Active, now: datetime, sample: Sampler, story: _Story) -> None:
    """Take every measurement of `active` due at `now` (queried at its slot) and assess."""
    decision = step_run(active.run, now)
    if not decision.due:
        return
    status = active.run.status or AnalysisRunStatus()
    results: dict[str, Measurement] = {}
    for due in decision.due:
        previous = status.result_for(due.metric.name)
        record = to_measurement(
            due.metric, sample(due.metric, due.slot), due.slot, due.slot, 0.0, previous
        )
        results[due.metric.name] = record
        story.events.append(_measurement_event(active, due.metric, record))
    new_status = apply_measurements(active.run, results, now)
    active.run = active.run.model_copy(update={"status": new_status})
    if is_completed(new_status.phase):
        story.add(now, "run-finished",
                  f"{active.label} analysis {new_status.phase}"
                  + (f": {new_status.message}" if new_status.message else ""),
                  step=active.step, analysis=active.label, phase=new_status.phase)  # fmt: skip


def _finished(active: _Active, now: datetime) -> bool:
    """True once the run succeeded; _Stop when it ended any other way."""
    status = active.run.status or AnalysisRunStatus()
    if not is_completed(status.phase):
        return False
    if status.phase == "Successful":
        return True
    why = status.message or status.phase
    if status.phase == "Inconclusive":
        raise _Stop("paused", now, active.step,
                    f"{active.label} analysis Inconclusive: the rollout pauses for a human "
                    f"({why})")  # fmt: skip
    raise _Stop("aborted", now, active.step, f"{active.label} analysis {status.phase}: {why}")


def _ticks(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    ticks = []
    now = start
    while now <= end:
        ticks.append(now)
        now += step
    return ticks


def _describe(step: CanaryStep) -> str:
    if step.set_weight is not None:
        return f"setWeight {step.set_weight}"
    if step.pause is not None:
        return f"pause {step.pause.duration}" if step.pause.duration is not None else "pause"
    if step.analysis is not None:
        return "analysis " + ", ".join(t.template_name for t in step.analysis.templates)
    if step.set_canary_scale is not None:
        return "setCanaryScale"
    return "setHeaderRoute" if step.set_header_route is not None else "setMirrorRoute"


class _Canary:
    """The canary walk: one `tick` per clock tick."""

    def __init__(self, given: ReplayInput, sample: Sampler, story: _Story) -> None:
        canary = given.spec.strategy.canary
        assert canary is not None
        self.given, self.sample, self.story = given, sample, story
        self.steps = list(canary.steps or ())
        self.background = canary.analysis
        self.index = 0
        self.entered: int | None = None  # the step whose entry was logged
        self.pause_until: datetime | None = None
        self.step_run: _Active | None = None
        self.bg_run: _Active | None = None

    def _start_background(self, now: datetime) -> None:
        bg = self.background
        if bg is None or self.bg_run is not None or self.index < (bg.starting_step or 0):
            return
        self.bg_run = _start_run(self.given, bg, "background", "spec.strategy.canary.analysis",
                                 None, now, self.story)  # fmt: skip

    def tick(self, now: datetime) -> None:
        while True:
            self._enter(now)
            self._start_background(now)
            if self.bg_run is not None:
                _advance(self.bg_run, now, self.sample, self.story)
                _finished(self.bg_run, now)  # a background run that succeeds just stops
            if self.index >= len(self.steps):
                note = " (background analysis terminated)" if self.bg_run is not None else ""
                raise _Stop("promoted", now, None, f"all {len(self.steps)} steps done{note}")
            if not self._step(now):
                return
            self.index += 1

    def _enter(self, now: datetime) -> None:
        i = self.index
        if i < len(self.steps) and self.entered != i:
            self.entered = i
            self.story.add(now, "step", f"step {i}: {_describe(self.steps[i])}", step=i)

    def _step(self, now: datetime) -> bool:
        """Run the current step at `now`; True when it is done."""
        step, i = self.steps[self.index], self.index
        if step.pause is not None:
            seconds = step.pause.seconds()
            if seconds is None:
                self.story.add(now, "note", f"step {i}: pause without duration waits for a "
                               "human; the replay goes on as if promoted now", step=i)  # fmt: skip
                return True
            if self.pause_until is None:
                self.pause_until = now + timedelta(seconds=seconds)
            if now < self.pause_until:
                return False
            self.pause_until = None
            return True
        if step.analysis is not None:
            if self.step_run is None:
                path = f"spec.strategy.canary.steps[{i}].analysis"
                self.step_run = _start_run(self.given, step.analysis, "step", path, i, now,
                                           self.story)  # fmt: skip
            _advance(self.step_run, now, self.sample, self.story)
            if not _finished(self.step_run, now):
                return False
            self.step_run = None
        return True


class _BlueGreen:
    def __init__(self, given: ReplayInput, sample: Sampler, story: _Story) -> None:
        strategy = given.spec.strategy.blue_green
        assert strategy is not None
        self.given, self.sample, self.story = given, sample, story
        self.strategy = strategy
        self.pre: _Active | None = None
        self.post: _Active | None = None
        self.started: datetime | None = None
        self.promoted = False

    def tick(self, now: datetime) -> None:
        s = self.strategy
        if self.started is None:
            self.started = now
            if not s.auto_promotion_enabled:
                self.story.add(now, "note", "autoPromotionEnabled is false: a human promotes; "
                               "the replay promotes as soon as allowed")  # fmt: skip
        if not self.promoted:
            if s.pre_promotion_analysis is not None:
                if self.pre is None:
                    self.pre = _start_run(self.given, s.pre_promotion_analysis, "prePromotion",
                                          "spec.strategy.blueGreen.prePromotionAnalysis", None,
                                          now, self.story)  # fmt: skip
                _advance(self.pre, now, self.sample, self.story)
                if not _finished(self.pre, now):
                    return
            wait = s.auto_promotion_seconds if s.auto_promotion_enabled else None
            if wait is not None and now < self.started + timedelta(seconds=wait):
                return
            self.promoted = True
            self.story.add(now, "step", "active service switched to the new revision")
        if s.post_promotion_analysis is None:
            raise _Stop("promoted", now, None, "promoted")
        if self.post is None:
            self.post = _start_run(self.given, s.post_promotion_analysis, "postPromotion",
                                   "spec.strategy.blueGreen.postPromotionAnalysis", None, now,
                                   self.story)  # fmt: skip
        _advance(self.post, now, self.sample, self.story)
        if _finished(self.post, now):
            raise _Stop("promoted", now, None, "promoted; postPromotionAnalysis Successful")


def replay(
    given: ReplayInput, sample: Sampler, *, start: datetime, end: datetime, step: timedelta
) -> Replay:
    """What the Rollout's strategy would have decided between `start` and `end`."""
    if step <= timedelta(0):
        raise ValueError("step must be positive")
    if end < start:
        raise ValueError("the window ends before it starts")
    story = _Story()
    walker: _Canary | _BlueGreen
    if given.spec.strategy.canary is not None:
        walker = _Canary(given, sample, story)
    elif given.spec.strategy.blue_green is not None:
        walker = _BlueGreen(given, sample, story)
    else:
        raise ValueError("the Rollout has neither a canary nor a blueGreen strategy")
    try:
        for now in _ticks(start, end, step):
            walker.tick(now)
    except _Stop as stop:
        story.add(stop.at, "decision", f"{stop.outcome}: {stop.message}", step=stop.step)
        return Replay(stop.outcome, stop.at, stop.step, stop.message, tuple(story.events))
    message = f"no decision by {end.isoformat()}: the window ended while analysis was running"
    story.add(end, "decision", f"undecided: {message}")
    return Replay("undecided", None, None, message, tuple(story.events))
