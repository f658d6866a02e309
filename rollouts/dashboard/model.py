"""What each page shows, computed from the store's objects and the clock (no I/O).

The CLI's `rollouts.cli.render` decides steps, weights, roles and pause countdowns; this
module only arranges the same facts for HTML, adding what a browser can show and a
terminal cannot (pods, events, charts).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rollouts.cli import render
from rollouts.dashboard.charts import Chart, metric_chart
from rollouts.dashboard.state import ANALYSIS_RUNS, REPLICA_SETS, Key, Store

PHASES = ("Healthy", "Progressing", "Paused", "Degraded")
OPERATIONS = (
    # (operation, full, button label, what it does: shown in the confirmation)
    ("promote", False, "Promote", "Skip the current step (blue-green: switch to the preview)."),
    ("promote", True, "Promote full", "Skip every remaining step, pause and analysis."),
    ("abort", False, "Abort", "Send all traffic back to the stable revision."),
    ("retry", False, "Retry", "Start an aborted Rollout over from its first step."),
    ("pause", False, "Pause", "Hold the update where it is until resumed."),
    ("resume", False, "Resume", "Lift a pause set with Pause."),
)


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def dom_id(key: Key) -> str:
    """An HTML id for a Rollout (names and namespaces are DNS labels: no escaping needed)."""
    return f"r--{key[0]}--{key[1]}"


@dataclass(frozen=True)
class Row:
    key: Key
    id: str
    name: str
    namespace: str
    strategy: str
    phase: str
    step: str
    weight: str
    age: str
    message: str


def row(store: Store, body: Mapping[str, Any], now: dt.datetime) -> Row:
    rollout = render.parse_rollout(body)
    data = render.list_row(rollout, now)
    key = (rollout.metadata.namespace or "", rollout.metadata.name)
    view = render.RolloutView(rollout)
    if rollout.status.abort:  # its runs tell at which step it stopped
        view = render.build_view(body, (), store.owned(ANALYSIS_RUNS, key))
    return Row(key, dom_id(key), data["name"], data["namespace"] or "", data["strategy"],
               data["phase"] or "Unknown", render.step_label(view) or "-",
               "-" if data["weight"] is None else f"{data['weight']}%", data["age"],
               render.status_message(view, now))


def rows(store: Store, now: dt.datetime, *, namespace: str | None = None,
         phase: str | None = None) -> list[Row]:
    found = [row(store, b, now) for b in store.rollouts()]
    return [r for r in found if (not namespace or r.namespace == namespace)
            and (not phase or r.phase == phase)]


@dataclass(frozen=True)
class Pause:
    why: str
    seconds_left: int | None
    deadline: str | None  # ISO time the countdown reaches zero (the page ticks to it)


@dataclass(frozen=True)
class PodLine:
    name: str
    phase: str
    ready: bool


@dataclass(frozen=True)
class Revision:
    number: int
    name: str
    pod_hash: str
    roles: tuple[str, ...]
    images: tuple[str, ...]
    desired: int
    ready: int
    available: int
    created: str
    pods: tuple[PodLine, ...]
    analysis: tuple[str, ...]  # "name Phase" of the runs of this revision
    scale_down: Pause | None = None  # the countdown to its scale-down (scaleDownDelaySeconds)


@dataclass(frozen=True)
class MetricView:
    name: str
    phase: str
    counts: str
    message: str
    success: str
    failure: str
    chart: Chart


@dataclass(frozen=True)
class RunView:
    name: str
    phase: str
    what: str
    message: str
    metrics: tuple[MetricView, ...]


@dataclass(frozen=True)
class EventLine:
    time: str
    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class Detail:
    key: Key
    name: str
    namespace: str
    phase: str
    message: str
    strategy: str
    generation_note: str
    invalid: str | None
    aborted: str | None
    step: str | None
    steps: tuple[render.StepState, ...]
    weights: Mapping[str, str] | None
    verified: str
    services: str | None
    pause: Pause | None
    revisions: tuple[Revision, ...]
    runs: tuple[RunView, ...]
    events: tuple[EventLine, ...]


def _pct(value: int | None) -> str:
    return "-" if value is None else f"{value}%"


def _images(body: Mapping[str, Any]) -> tuple[str, ...]:
    containers = _dict(_dict(_dict(body.get("spec")).get("template")).get("spec")).get(
        "containers") or ()
    return tuple(str(_dict(c).get("image") or "?") for c in containers)


def _pod_line(body: Mapping[str, Any]) -> PodLine:
    status = _dict(body.get("status"))
    conditions = status.get("conditions") or ()
    ready = any(_dict(c).get("type") == "Ready" and _dict(c).get("status") == "True"
                for c in conditions)
    return PodLine(str(_dict(body.get("metadata")).get("name") or ""),
                   str(status.get("phase") or "Pending"), ready)


def _conditions(run_body: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """metric name -> (successCondition, failureCondition) from the run's spec."""
    found = {}
    for metric in _dict(run_body.get("spec")).get("metrics") or ():
        metric = _dict(metric)
        found[str(metric.get("name"))] = (str(metric.get("successCondition") or ""),
                                          str(metric.get("failureCondition") or ""))
    return found


def _run_view(info: render.RunInfo, body: Mapping[str, Any]) -> RunView:
    conditions = _conditions(body)
    what = info.kind or "analysis"
    if info.step_index is not None:
        what = f"{what}, step {info.step_index + 1}"
    metrics = []
    for result in info.status.metric_results:
        success, failure = conditions.get(result.name, ("", ""))
        counts = (f"{result.successful} ok, {result.failed} failed, "
                  f"{result.inconclusive} inconclusive, {result.error} errors")
        metrics.append(MetricView(
            result.name, result.phase, counts, result.message or "", success, failure,
            metric_chart(result.name, result.measurements, success=success or None,
                         failure=failure or None)))
    return RunView(info.name, info.status.phase, what, info.status.message or "",
                   tuple(metrics))


def _event_line(body: Mapping[str, Any]) -> EventLine:
    when = str(body.get("lastTimestamp") or body.get("eventTime")
               or _dict(body.get("metadata")).get("creationTimestamp") or "")
    count = body.get("count")
    message = str(body.get("message") or "")
    if isinstance(count, int) and count > 1:
        message += f" (x{count})"
    return EventLine(when, str(body.get("type") or ""), str(body.get("reason") or ""), message)


def _pause(rollout: Any, now: dt.datetime) -> Pause | None:
    paused = render.pause_left(rollout, now)
    if paused is None:
        return None
    why, left = paused
    deadline = None if left is None else (now + dt.timedelta(seconds=left)).isoformat()
    return Pause(why, left, deadline)


def _scale_down(rs: render.ReplicaSetInfo, now: dt.datetime) -> Pause | None:
    left = render.scale_down_left(rs, now)
    if left is None:
        return None
    return Pause("scaled down in", left, (now + dt.timedelta(seconds=left)).isoformat())


def detail(store: Store, key: Key, now: dt.datetime) -> Detail | None:
    body = store.rollout(key)
    if body is None:
        return None
    rs_bodies = store.owned(REPLICA_SETS, key)
    run_bodies = store.owned(ANALYSIS_RUNS, key)
    view = render.build_view(body, rs_bodies, run_bodies)
    rollout = view.rollout
    status = rollout.status
    meta = rollout.metadata
    by_name = {str(_dict(b.get("metadata")).get("name")): b for b in rs_bodies}
    runs_by_name = {str(_dict(b.get("metadata")).get("name")): b for b in run_bodies}

    revisions = []
    for rs in view.replica_sets:
        rs_body = by_name.get(rs.name, {})
        created = str(_dict(rs_body.get("metadata")).get("creationTimestamp") or "")
        revisions.append(Revision(
            rs.revision, rs.name, rs.pod_hash, tuple(render.roles(rollout, rs.pod_hash)),
            _images(rs_body), rs.desired, rs.ready, rs.available,
            render.age(created, now) if created else "?",
            tuple(_pod_line(p) for p in store.pods_of(key[0], rs.name)),
            tuple(f"{r.name} {r.status.phase}" for r in view.analysis_runs
                  if r.pod_hash == rs.pod_hash),
            _scale_down(rs, now)))

    weight = render.weights(rollout)
    verified = ""
    if status.canary is not None and status.canary.weights is not None:
        if status.canary.weights.verified:
            verified = "verified"
        elif render.in_flight(status) and not status.abort:
            verified = "not yet verified"
    services = None
    if status.blue_green is not None:
        services = (f"active → {status.blue_green.active_selector or '-'}, "
                    f"preview → {status.blue_green.preview_selector or '-'}")
    note = ""
    if status.observed_generation is not None and status.observed_generation < meta.generation:
        note = (f"Generation {meta.generation} not yet observed by the controller "
                f"(observed {status.observed_generation})")
    runs = tuple(_run_view(r, runs_by_name.get(r.name, {}))
                 for r in reversed(view.analysis_runs))
    return Detail(
        key=key, name=meta.name, namespace=meta.namespace or "",
        phase=status.phase or "Unknown", message=render.status_message(view, now),
        strategy=render.strategy_name(rollout.spec), generation_note=note,
        invalid=render.invalid_spec(rollout),
        aborted=render.abort_reason(status) if status.abort else None,
        step=render.step_label(view), steps=tuple(render.step_states(view)),
        weights=None if weight is None else {k: _pct(v) for k, v in weight.items()},
        verified=verified, services=services, pause=_pause(rollout, now),
        revisions=tuple(revisions), runs=runs,
        events=tuple(_event_line(e) for e in reversed(store.events_of(key))),
    )


def when_synced(store: Store) -> Sequence[str]:
    """Problems to show at the top of every page (kinds that could not be followed)."""
    names = {"replicasets": "ReplicaSets", "analysisruns": "AnalysisRuns", "pods": "Pods",
             "events": "Events"}
    return [f"{names.get(p, p)} are not shown: {why}" for p, why in sorted(store.problems.items())]
