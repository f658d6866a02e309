"""What the read commands show, computed from model objects (no I/O).

`build_view` filters raw API objects down to what one Rollout owns; `rollout_tree`,
`rollouts_table` and `summary` turn that into a rich renderable or a plain dict. Rendering
works on the raw spec as well as on a valid one, so a Rollout with an invalid spec still
shows what it can (and says why it is invalid).
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from rollouts.analysis.comparison import evidence_suffix
from rollouts.cli.step_text import describe_step
from rollouts.kube.observe import owned_by
from rollouts.kube.observe import replica_set_view as _rs_view
from rollouts.models.analysis import AnalysisRunStatus, MetricResult
from rollouts.models.base import parse_duration
from rollouts.models.rollout import Rollout, RolloutStatus
from rollouts.models.wire import (
    ANALYSIS_KIND_LABEL,
    ANALYSIS_STEP_LABEL,
    BLUE_GREEN_PAUSE,
    CANARY_PAUSE,
    POD_TEMPLATE_HASH_LABEL,
    USER_PAUSE,
    format_time,
    parse_time,
)

PHASE_STYLE = {
    "Healthy": "green",
    "Progressing": "yellow",
    "Paused": "cyan",
    "Degraded": "red",
}
RUN_STYLE = {
    "Successful": "green",
    "Running": "yellow",
    "Pending": "dim",
    "Failed": "red",
    "Error": "red",
    "Inconclusive": "magenta",
}


# --- the data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaSetInfo:
    name: str
    pod_hash: str
    revision: int
    desired: int
    ready: int
    available: int
    # When the controller scales it down (blue-green scaleDownDelaySeconds, and the like).
    scale_down_at: dt.datetime | None = None


@dataclass(frozen=True)
class RunInfo:
    """One AnalysisRun owned by the Rollout."""

    name: str
    kind: str
    step_index: int | None
    pod_hash: str
    created: str | None
    status: AnalysisRunStatus


@dataclass(frozen=True)
class RolloutView:
    rollout: Rollout
    replica_sets: tuple[ReplicaSetInfo, ...] = ()
    analysis_runs: tuple[RunInfo, ...] = ()


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def parse_rollout(body: Mapping[str, Any]) -> Rollout:
    """A Rollout object as read; status fields the model cannot read are left out."""
    try:
        return Rollout.model_validate(dict(body))
    except ValidationError:
        data = dict(body)
        data["status"] = {}
        return Rollout.model_validate(data)


def run_info(body: Mapping[str, Any]) -> RunInfo:
    metadata = _dict(body.get("metadata"))
    labels = _dict(metadata.get("labels"))
    step = labels.get(ANALYSIS_STEP_LABEL)
    try:
        status = AnalysisRunStatus.model_validate(_dict(body.get("status")))
    except ValidationError:
        status = AnalysisRunStatus()
    return RunInfo(
        name=str(metadata.get("name") or ""),
        kind=str(labels.get(ANALYSIS_KIND_LABEL) or ""),
        step_index=int(step) if isinstance(step, str) and step.isdigit() else None,
        pod_hash=str(labels.get(POD_TEMPLATE_HASH_LABEL) or ""),
        created=metadata.get("creationTimestamp"),
        status=status,
    )


def build_view(rollout: Mapping[str, Any], replica_sets: Iterable[Mapping[str, Any]] = (),
               analysis_runs: Iterable[Mapping[str, Any]] = ()) -> RolloutView:
    """The Rollout with the ReplicaSets and AnalysisRuns it controls (others are ignored)."""
    model = parse_rollout(rollout)
    uid = model.metadata.uid
    sets = []
    for body in replica_sets:
        if not owned_by(body, uid):
            continue
        view = _rs_view(body)
        sets.append(ReplicaSetInfo(view.name, view.pod_hash, view.revision, view.spec_replicas,
                                   view.ready, view.available, view.scale_down_at))
    sets.sort(key=lambda r: (-r.revision, r.name))
    runs = sorted((run_info(b) for b in analysis_runs if owned_by(b, uid)),
                  key=lambda r: (r.created or "", r.name))
    return RolloutView(model, tuple(sets), tuple(runs))


# --- reading the raw spec (valid or not) ---------------------------------------------------


def strategy_name(spec: Mapping[str, Any]) -> str:
    strategy = _dict(spec.get("strategy"))
    if "canary" in strategy:
        return "Canary"
    if "blueGreen" in strategy:
        return "BlueGreen"
    return "?"


def canary_steps(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    steps = _dict(_dict(spec.get("strategy")).get("canary")).get("steps")
    return [_dict(s) for s in steps] if isinstance(steps, list) else []


def step_position(rollout: Rollout) -> tuple[int, int] | None:
    """(current index, number of steps) for a canary; None for blue-green."""
    if strategy_name(rollout.spec) != "Canary":
        return None
    total = len(canary_steps(rollout.spec))
    index = rollout.status.current_step_index
    if index is None:
        index = total if rollout.status.current_pod_hash == rollout.status.stable_rs else 0
    return min(max(index, 0), total), total


def in_flight(status: RolloutStatus) -> bool:
    return status.current_pod_hash is not None and status.current_pod_hash != status.stable_rs


def invalid_spec(rollout: Rollout) -> str | None:
    """Why the controller refused the spec (condition InvalidSpec), or None."""
    condition = rollout.status.condition("InvalidSpec")
    if condition is not None and condition.status == "True":
        return condition.message or "invalid spec"
    if rollout.status.message.startswith("InvalidSpec"):  # as `assess` reads it
        return rollout.status.message.removeprefix("InvalidSpec:").strip()
    return None


def abort_reason(status: RolloutStatus) -> str:
    """The abort message without the "Aborted:" the controller may have put in front."""
    reason = (status.abort_message or "").strip()
    return reason.removeprefix("Aborted:").strip() or "aborted"


def aborted_step(view: RolloutView) -> int | None:
    """Index of the step an aborted canary stopped at, when it can be known.

    The controller resets currentStepIndex to 0 on abort (as Argo Rollouts does) and keeps
    where the abort found the Rollout in `status.step` ("aborted at 2/4"); a status written
    before that field existed falls back to the step of the failed step AnalysisRun.
    """
    status = view.rollout.status
    if not status.abort:
        return None
    where = re.fullmatch(r"aborted at (\d+)/\d+", status.step or "")
    if where:
        return int(where.group(1)) - 1
    if status.current_step_index:
        return status.current_step_index
    failed = [r for r in view.analysis_runs
              if r.step_index is not None and r.pod_hash == status.current_pod_hash
              and r.status.phase in ("Failed", "Error", "Inconclusive")]
    return failed[-1].step_index if failed else None


@dataclass(frozen=True)
class StepState:
    """One canary step as shown: its text and where the Rollout is relative to it."""

    text: str
    state: str  # "done", "current", "aborted", "pending", "skipped"

    @property
    def mark(self) -> str:
        return {"done": "✔", "current": "▶", "aborted": "✖", "skipped": "-"}.get(self.state,
                                                                                 "○")


def step_states(view: RolloutView) -> list[StepState]:
    """The canary steps marked done / current / aborted here / pending.

    Nothing is "done" for a spec the controller refused, and an aborted Rollout marks the
    step it stopped at (when known) instead of pretending it never started.
    """
    rollout = view.rollout
    steps = canary_steps(rollout.spec)
    position = step_position(rollout)
    if position is None or invalid_spec(rollout) is not None:
        return [StepState(describe_step(s), "pending") for s in steps]
    status = rollout.status
    if status.abort:
        stopped = aborted_step(view)
        return [StepState(describe_step(s),
                          "pending" if stopped is None or i > stopped else
                          "aborted" if i == stopped else "done")
                for i, s in enumerate(steps)]
    if first_revision(view):
        return [StepState(describe_step(s), "skipped") for s in steps]
    index, _ = position
    return [StepState(describe_step(s),
                      "done" if i < index else
                      "current" if i == index and in_flight(status) else "pending")
            for i, s in enumerate(steps)]


def first_revision(view: RolloutView) -> bool:
    """The Rollout's only revision is stable: it was installed, not rolled out, so no step
    ran (a first revision skips its steps, as in Argo Rollouts). Needs the ReplicaSets."""
    status = view.rollout.status
    if in_flight(status) or not view.replica_sets or status.stable_rs is None:
        return False
    stable = next((r for r in view.replica_sets if r.pod_hash == status.stable_rs), None)
    return stable is not None and all(r.revision >= stable.revision for r in view.replica_sets)


def step_label(view: RolloutView) -> str | None:
    """ "2/4", "4/4 done", "2/4 aborted", "-/4 (invalid spec)" for a canary; None for
    blue-green."""
    rollout = view.rollout
    position = step_position(rollout)
    if position is None:
        return None
    index, total = position
    if invalid_spec(rollout) is not None:
        return f"-/{total} (invalid spec)"
    if rollout.status.abort:
        stopped = aborted_step(view)
        return "aborted" if stopped is None else f"{min(stopped + 1, total)}/{total} aborted"
    if first_revision(view):
        return f"-/{total} (first revision: steps skipped)"
    if index >= total:
        return f"{total}/{total} done" if total else "0/0"
    return f"{index + 1}/{total}"


def pause_left(rollout: Rollout, now: dt.datetime) -> tuple[str, int | None] | None:
    """(why it is paused, seconds left or None for "until someone acts"); None if not paused."""
    status = rollout.status
    user = status.paused_for(USER_PAUSE)
    if user is not None or rollout.spec.get("paused") is True:
        return "paused by user (resume to continue)", None
    step = status.paused_for(CANARY_PAUSE)
    position = step_position(rollout)
    if step is not None and position is not None:
        index, total = position
        steps = canary_steps(rollout.spec)
        if index >= total or "pause" not in steps[index]:
            return None  # a leftover condition the controller has yet to clear
        duration = _dict(steps[index].get("pause")).get("duration")
        if duration is None:
            return "paused until promoted", None
        started = parse_time(step.start_time)
        try:
            seconds = parse_duration(duration)
        except ValueError:
            return "paused", None
        if started is None:
            return "paused", seconds
        left = math.ceil((started + dt.timedelta(seconds=seconds) - now).total_seconds())
        return "paused", max(left, 0)
    if status.paused_for(BLUE_GREEN_PAUSE) is not None:
        return "preview ready, waiting for promote", None
    blue_green = _dict(_dict(rollout.spec.get("strategy")).get("blueGreen"))
    auto = blue_green.get("autoPromotionSeconds")
    ready = parse_time(status.preview_ready_at)
    if status.phase == "Paused" and isinstance(auto, int) and ready is not None:
        left = math.ceil((ready + dt.timedelta(seconds=auto) - now).total_seconds())
        return "auto-promotion", max(left, 0)
    return None


def scale_down_left(rs: ReplicaSetInfo, now: dt.datetime) -> int | None:
    """Seconds until the controller scales this ReplicaSet down (0: due now); None when no
    scale-down is scheduled or it has no pods left."""
    if rs.scale_down_at is None or rs.desired == 0:
        return None
    return max(math.ceil((rs.scale_down_at - now).total_seconds()), 0)


def roles(rollout: Rollout, pod_hash: str) -> list[str]:
    status = rollout.status
    found: list[str] = []
    if pod_hash == status.stable_rs:
        found.append("stable")
    if strategy_name(rollout.spec) == "BlueGreen":
        blue_green = status.blue_green
        if blue_green is not None and pod_hash == blue_green.active_selector:
            found.append("active")
        if (blue_green is not None and pod_hash == blue_green.preview_selector
                and pod_hash != status.stable_rs):
            found.append("preview")
    elif pod_hash == status.current_pod_hash and pod_hash != status.stable_rs:
        found.append("aborted" if status.abort else "canary")
    return found


def weights(rollout: Rollout) -> dict[str, int | None] | None:
    """{canary, stable, desired} percent for a canary; None for blue-green."""
    if strategy_name(rollout.spec) != "Canary":
        return None
    canary = rollout.status.canary
    actual = canary.weights if canary is not None else None
    if actual is None:
        return {"canary": 0 if not in_flight(rollout.status) else None,
                "stable": 100 if not in_flight(rollout.status) else None,
                "desired": canary.desired_weight if canary is not None else None}
    return {"canary": actual.canary.weight, "stable": actual.stable.weight,
            "desired": canary.desired_weight if canary is not None else None}


def age(created: str | None, now: dt.datetime) -> str:
    """kubectl-style age: 45s, 12m, 5h, 3d."""
    moment = parse_time(created)
    if moment is None:
        return "?"
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 2 * 3600:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def short_duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def current_runs(view: RolloutView) -> list[RunInfo]:
    """The runs of the revision in flight (or of the stable one when nothing is)."""
    wanted = view.rollout.status.current_pod_hash
    return [r for r in view.analysis_runs if not r.pod_hash or not wanted or r.pod_hash == wanted]


# --- the status object for CI ----------------------------------------------------------------


def summary(view: RolloutView) -> dict[str, Any]:
    """The documented `status -o json` object (docs/cli.md); keys never disappear."""
    rollout = view.rollout
    status = rollout.status
    position = step_position(rollout)
    return {
        "name": rollout.metadata.name,
        "namespace": rollout.metadata.namespace,
        "phase": status.phase,
        "message": status.message,
        "revision": status.current_pod_hash,
        "stableRevision": status.stable_rs,
        "step": None if position is None else {"index": position[0], "total": position[1]},
        "weights": weights(rollout),
        "aborted": bool(status.abort),
        "analysis": [
            {"name": r.name, "phase": r.status.phase, "message": r.status.message or ""}
            for r in current_runs(view)
        ],
        "observedGeneration": status.observed_generation,
        "generation": rollout.metadata.generation,
    }


def list_row(rollout: Rollout, now: dt.datetime) -> dict[str, Any]:
    """One row of `list` (also its -o json/yaml item)."""
    step_position(rollout)
    weight = weights(rollout)
    return {
        "name": rollout.metadata.name,
        "namespace": rollout.metadata.namespace,
        "strategy": strategy_name(rollout.spec),
        "phase": rollout.status.phase,
        "step": step_label(RolloutView(rollout)),
        "weight": None if weight is None else weight["canary"],
        "age": age(rollout.metadata.creation_timestamp, now),
    }


# --- rich renderables ------------------------------------------------------------------------


def _phase_text(phase: str | None) -> Text:
    name = phase or "Unknown"
    return Text(name, style=f"bold {PHASE_STYLE.get(name, '')}".strip())


def status_message(view: RolloutView, now: dt.datetime) -> str:
    """status.message, with a timed pause's countdown computed now rather than the
    seconds left when the controller last wrote (so it matches the Pause line)."""
    rollout = view.rollout
    paused = pause_left(rollout, now)
    position = step_position(rollout)
    if paused is not None and paused[1] is not None and position is not None \
            and paused[0] == "paused":
        index, total = position
        return f"Step {index + 1}/{total}: paused, {short_duration(paused[1])} left"
    return rollout.status.message


def rollout_tree(view: RolloutView, now: dt.datetime) -> Tree:
    rollout = view.rollout
    status = rollout.status
    meta = rollout.metadata
    tree = Tree(Text.assemble(("Rollout ", "bold"), (meta.name, "bold"),
                              f"  (namespace {meta.namespace})"))

    message = status_message(view, now)
    head = Text.assemble("Status:   ", _phase_text(status.phase))
    if message:
        head.append(f"  {message}")
    tree.add(head)
    if status.observed_generation is not None and status.observed_generation < meta.generation:
        tree.add(Text(f"Generation {meta.generation} not yet observed by the controller "
                      f"(observed {status.observed_generation})", style="yellow"))
    shown = [message]  # each explanation is printed once, where it is first met
    if status.abort:
        reason = abort_reason(status)
        said = reason in message
        shown.append(reason)
        when = f" at {format_time(status.aborted_at)}" if status.aborted_at else ""
        tree.add(Text("Aborted:  " + ("yes" if said else reason) + when, style="red"))
    tree.add(f"Strategy: {strategy_name(rollout.spec)}")

    label = step_label(view)
    if label is not None:
        steps_node = tree.add(f"Step:     {label}")
        style = {"done": "green", "current": "bold yellow", "aborted": "bold red"}
        for step in step_states(view):
            steps_node.add(Text(f"{step.mark} {step.text}", style=style.get(step.state, "dim")))
        weight = weights(rollout)
        if weight is not None:
            verified = status.canary.weights.verified if status.canary and \
                status.canary.weights else None
            line = (f"Weights:  canary {_pct(weight['canary'])}, stable {_pct(weight['stable'])}"
                    f", desired {_pct(weight['desired'])}")
            if verified:
                line += " (verified)"
            elif verified is not None and in_flight(status) and not status.abort:
                line += " (not yet verified)"
            tree.add(line)
    else:
        blue_green = status.blue_green
        if blue_green is not None:
            tree.add(f"Services: active -> {blue_green.active_selector or '-'}, "
                     f"preview -> {blue_green.preview_selector or '-'}")

    paused = pause_left(rollout, now)
    if paused is not None:
        why, left = paused
        tree.add(Text(f"Pause:    {why}" + (f", {short_duration(left)} left"
                                                 if left is not None else ""), style="cyan"))

    revisions = tree.add("Revisions")
    if not view.replica_sets:
        revisions.add(Text("(no ReplicaSets)", style="dim"))
    for rs in view.replica_sets:
        role = roles(rollout, rs.pod_hash)
        text = Text(f"#{rs.revision} {rs.name}")
        if role:
            text.append(f" ({', '.join(role)})", style="bold")
        text.append(f"  pods {rs.desired} desired, {rs.ready} ready, {rs.available} available")
        left = scale_down_left(rs, now)
        if left is not None:
            text.append(f"; scaled down in {short_duration(left)}" if left else
                        "; scaling down", style="cyan")
        revisions.add(text)

    runs = view.analysis_runs
    if runs:
        analysis = tree.add("Analysis")
        for run in runs:
            what = run.kind
            if run.step_index is not None:
                what = f"step {run.step_index + 1}" if run.kind in ("", "step") else \
                    f"{run.kind}, step {run.step_index + 1}"
            heading = Text(f"{run.name} ")
            heading.append(run.status.phase, style=RUN_STYLE.get(run.status.phase, ""))
            if what:
                heading.append(f" ({what})", style="dim")
            node = analysis.add(heading)
            if run.status.message and not _said(run.status.message, shown):
                node.add(Text(escape(run.status.message), style="dim"))
                shown.append(run.status.message)
            for result in run.status.metric_results:
                node.add(_metric_line(result, shown))
    return tree


def _said(text: str, shown: Sequence[str]) -> bool:
    return any(text in earlier for earlier in shown if earlier)


def _pct(value: int | None) -> str:
    return "-" if value is None else f"{value}%"


def _metric_line(result: MetricResult, shown: Sequence[str] = ()) -> Text:
    latest = result.measurements[-1] if result.measurements else None
    value = latest.value if latest is not None and latest.value is not None else "-"
    text = Text(f"{result.name}: {value} ")
    text.append(result.phase, style=RUN_STYLE.get(result.phase, ""))
    text.append(f" ({result.successful} ok, {result.failed} failed, "
                f"{result.inconclusive} inconclusive, {result.error} errors)", style="dim")
    if result.message and not _said(result.message, shown):
        text.append(f" {result.message}", style="dim")
    text.append(evidence_suffix(result), style="dim")
    return text


def rollouts_table(rollouts: Sequence[Rollout], now: dt.datetime, *,
                   all_namespaces: bool) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    if all_namespaces:
        table.add_column("NAMESPACE", overflow="fold")
    for column in ("NAME", "STRATEGY", "PHASE", "STEP", "WEIGHT", "AGE"):
        table.add_column(column, overflow="fold", no_wrap=column != "NAME")
    for rollout in rollouts:
        row = list_row(rollout, now)
        cells: list[RenderableType] = []
        if all_namespaces:
            cells.append(row["namespace"])
        cells += [
            row["name"],
            row["strategy"],
            _phase_text(row["phase"]),
            row["step"] or "-",
            "-" if row["weight"] is None else f"{row['weight']}%",
            row["age"],
        ]
        table.add_row(*cells)
    return table


def to_text(renderable: RenderableType, *, width: int = 80, color: bool = False) -> str:
    """Render to a string (the tests compare lines of this)."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system="standard" if color else None,
                      force_terminal=color, highlight=False, emoji=False)
    console.print(renderable)
    return buffer.getvalue()
