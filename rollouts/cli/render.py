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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

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
                                   view.ready, view.available))
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


def describe_step(step: Mapping[str, Any]) -> str:
    if "setWeight" in step:
        return f"setWeight: {step['setWeight']}"
    if "pause" in step:
        duration = _dict(step.get("pause")).get("duration")
        return f"pause: {duration}" if duration is not None else "pause (until promoted)"
    if "analysis" in step:
        names = [str(_dict(t).get("templateName")) for t in
                 _dict(step.get("analysis")).get("templates") or []]
        return f"analysis: {', '.join(names)}"
    if "setCanaryScale" in step:
        scale = _dict(step.get("setCanaryScale"))
        return "setCanaryScale: " + ", ".join(f"{k}={v}" for k, v in scale.items())
    return ", ".join(step) or "(empty step)"


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
        found.append("canary")
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
    position = step_position(rollout)
    weight = weights(rollout)
    return {
        "name": rollout.metadata.name,
        "namespace": rollout.metadata.namespace,
        "strategy": strategy_name(rollout.spec),
        "phase": rollout.status.phase,
        "step": None if position is None else f"{min(position[0] + 1, position[1])}/{position[1]}",
        "weight": None if weight is None else weight["canary"],
        "age": age(rollout.metadata.creation_timestamp, now),
    }


# --- rich renderables ------------------------------------------------------------------------


def _phase_text(phase: str | None) -> Text:
    name = phase or "Unknown"
    return Text(name, style=f"bold {PHASE_STYLE.get(name, '')}".strip())


def rollout_tree(view: RolloutView, now: dt.datetime) -> Tree:
    rollout = view.rollout
    status = rollout.status
    meta = rollout.metadata
    tree = Tree(Text.assemble(("Rollout ", "bold"), (meta.name, "bold"),
                              f"  (namespace {meta.namespace})"))

    head = Text.assemble("Status:   ", _phase_text(status.phase))
    if status.message:
        head.append(f"  {status.message}")
    tree.add(head)
    if status.observed_generation is not None and status.observed_generation < meta.generation:
        tree.add(Text(f"Generation {meta.generation} not yet observed by the controller "
                      f"(observed {status.observed_generation})", style="yellow"))
    if status.abort:
        when = f" at {format_time(status.aborted_at)}" if status.aborted_at else ""
        tree.add(Text(f"Aborted:  {status.abort_message or 'yes'}{when}", style="red"))
    tree.add(f"Strategy: {strategy_name(rollout.spec)}")

    position = step_position(rollout)
    if position is not None:
        index, total = position
        label = f"Step:     {min(index + 1, total)}/{total}" if index < total else \
            f"Step:     {total}/{total} (all steps done)"
        steps_node = tree.add(label)
        for i, step in enumerate(canary_steps(rollout.spec)):
            if i < index:
                steps_node.add(Text(f"✔ {describe_step(step)}", style="green"))
            elif i == index and in_flight(status) and not status.abort:
                steps_node.add(Text(f"▶ {describe_step(step)}", style="bold yellow"))
            else:
                steps_node.add(Text(f"○ {describe_step(step)}", style="dim"))
        weight = weights(rollout)
        if weight is not None:
            verified = status.canary.weights.verified if status.canary and \
                status.canary.weights else None
            line = (f"Weights:  canary {_pct(weight['canary'])}, stable {_pct(weight['stable'])}"
                    f", desired {_pct(weight['desired'])}")
            if verified is not None:
                line += " (verified)" if verified else " (not yet verified)"
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
            if run.status.message:
                node.add(Text(escape(run.status.message), style="dim"))
            for result in run.status.metric_results:
                node.add(_metric_line(result))
    return tree


def _pct(value: int | None) -> str:
    return "-" if value is None else f"{value}%"


def _metric_line(result: MetricResult) -> Text:
    latest = result.measurements[-1] if result.measurements else None
    value = latest.value if latest is not None and latest.value is not None else "-"
    text = Text(f"{result.name}: {value} ")
    text.append(result.phase, style=RUN_STYLE.get(result.phase, ""))
    text.append(f" ({result.successful} ok, {result.failed} failed, "
                f"{result.inconclusive} inconclusive, {result.error} errors)", style="dim")
    if result.message:
        text.append(f" {result.message}", style="dim")
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


# --- what `status` concludes -----------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """Whether CI can stop waiting, the exit code if so, and why."""

    done: bool
    code: int
    reason: str


def assess(rollout: Rollout, *, until_paused: bool = False) -> Verdict:
    """0 Healthy (or paused for a human with `until_paused`), 1 failed, else not done.

    Nothing is trusted until the controller has observed the current generation: before
    that the phase describes the previous spec.
    """
    status = rollout.status
    meta = rollout.metadata
    if status.observed_generation is None or status.observed_generation < meta.generation:
        return Verdict(False, 2, f"waiting for the controller to observe generation "
                                 f"{meta.generation} (observed {status.observed_generation})")
    invalid = status.condition("InvalidSpec")
    if (invalid is not None and invalid.status == "True") or status.message.startswith(
            "InvalidSpec"):
        detail = invalid.message if invalid is not None and invalid.message else status.message
        return Verdict(True, 1, f"invalid spec: {detail.removeprefix('InvalidSpec: ')}")
    if status.abort:
        return Verdict(True, 1, f"aborted: {status.abort_message or status.message}")
    if status.phase == "Degraded":
        return Verdict(True, 1, f"degraded: {status.message}")
    if status.phase == "Healthy":
        return Verdict(True, 0, status.message or "healthy")
    if status.phase == "Paused" and until_paused:
        return Verdict(True, 0, f"paused: {status.message}")
    return Verdict(False, 2, f"{status.phase or 'Unknown'}: {status.message}")
