"""How `rollouts demo` shows what it sees: the Rollout at a glance (`render_view`), one log
line per change (`transition_line`, `analysis_line`), and the marks for terminals with and
without UTF-8."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from rollouts.sandbox.demo_snapshot import AnalysisRow, Snapshot, as_dict

PHASE_STYLE = {"Healthy": "green", "Progressing": "yellow", "Paused": "cyan",
               "Degraded": "red",
               # AnalysisRuns and their measurements
               "Successful": "green", "Running": "yellow", "Failed": "red", "Error": "red",
               "Inconclusive": "cyan"}


def describe_step(step: dict[str, Any]) -> str:
    if "setWeight" in step:
        return f"setWeight {step['setWeight']}"
    if "pause" in step:
        duration = as_dict(step.get("pause")).get("duration")
        return f"pause {duration}" if duration is not None else "pause (until promoted)"
    if "analysis" in step:
        names = [str(as_dict(t).get("templateName")) for t in
                 as_dict(step.get("analysis")).get("templates") or []]
        return f"analysis {', '.join(names)}"
    return ", ".join(step) or "(empty step)"


def phase_text(phase: str) -> Text:
    return Text(phase, style=f"bold {PHASE_STYLE.get(phase.strip(), '')}".strip())


def _pct(value: int | None) -> str:
    return "-" if value is None else f"{value}%"


@dataclass(frozen=True)
class Marks:
    done: str
    current: str
    todo: str
    failed: str
    ok: str
    bad: str
    arrow: str

    @classmethod
    def for_console(cls, console: Console) -> Marks:
        if console.encoding.lower().replace("-", "").startswith("utf"):
            return cls("✔", "▶", "○", "✘", "✔", "✘", "→")
        return cls("+", ">", "-", "x", "ok", "FAIL", "->")


def step_marks(snap: Snapshot, marks: Marks) -> list[tuple[str, str]]:
    """(mark, style) per step: done, current, where an abort stopped, or still to come.

    The first revision of a Rollout runs no steps (nothing to compare it with), so they stay
    marked as not run rather than done.
    """
    index = snap.step if snap.step is not None else (0 if snap.in_flight else len(snap.steps))
    result = []
    for i in range(len(snap.steps)):
        if snap.aborted:
            # The controller resets the step index on abort; mark where it stopped if known.
            stopped = snap.stopped_at
            result.append((marks.done, "green") if stopped is not None and i < stopped else
                          (marks.failed, "bold red") if i == stopped else (marks.todo, "dim"))
        elif not snap.in_flight and snap.first_revision:
            result.append((marks.todo, "dim"))
        elif not snap.in_flight or i < index:
            result.append((marks.done, "green"))
        elif i == index:
            result.append((marks.current, "bold yellow"))
        else:
            result.append((marks.todo, "dim"))
    return result


def measurement_mark(phase: str, marks: Marks) -> tuple[str, str]:
    """(mark, style) of a measurement: passed, failed, or neither (no data, error)."""
    if phase == "Successful":
        return marks.ok, "green"
    if phase in ("Failed", "Error"):
        return marks.bad, "red"
    return "?", "cyan"


def measurements_text(run: AnalysisRow, marks: Marks) -> Text:
    """"success-rate 1.000 ✔ 0.996 ✔" per metric, one line each."""
    text = Text()
    metrics = list(dict.fromkeys(m.metric for m in run.measurements))
    for i, metric in enumerate(metrics):
        if i:
            text.append("\n")
        text.append(metric)
        for taken in (m for m in run.measurements if m.metric == metric):
            mark, style = measurement_mark(taken.phase, marks)
            text.append(f"  {taken.short_value} ")
            text.append(mark, style=style)
    return text


def render_view(snap: Snapshot, marks: Marks, width: int = 80) -> RenderableType:
    """The Rollout at a glance, in 80 columns: phase, steps, weights, ReplicaSets, Services
    and, when its revision has one, its AnalysisRun with the measurements so far."""
    head = Text.assemble(" ", ("Rollout ", "bold"), (snap.name, "bold"), "  ",
                         phase_text(snap.phase), " ")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("Message", snap.message or "-")
    steps = Text()
    for i, (step, (mark, style)) in enumerate(zip(snap.steps, step_marks(snap, marks),
                                                  strict=True)):
        if i:
            steps.append("\n")
        steps.append(f"{mark} {i + 1}. {describe_step(step)}", style=style)
    grid.add_row("Steps", steps)
    if snap.in_flight:
        weights = (f"canary {_pct(snap.canary_weight)}, stable {_pct(snap.stable_weight)}"
                   f"  (desired canary {_pct(snap.desired_weight)}"
                   + (", verified)" if snap.verified else ")"))
    else:
        weights = "stable 100%"
    grid.add_row("Weights", weights)
    table = Table(box=None, pad_edge=False, show_header=True, header_style="dim",
                  padding=(0, 2, 0, 0))
    for column in ("REVISION", "IMAGE", "ROLE", "PODS"):
        table.add_column(column, no_wrap=True)
    for row in snap.replica_sets:
        role = snap.role(row)
        style = {"stable": "green", "canary": "yellow", "aborted": "red"}.get(role, "dim")
        pods = "scaled down" if not (row.desired or row.available) else \
            f"{row.available}/{row.desired} available"
        table.add_row(f"#{row.revision} {row.pod_hash}", row.image, Text(role, style=style),
                      pods)
    grid.add_row("ReplicaSets", table if snap.replica_sets else Text("(none yet)", style="dim"))
    grid.add_row("Services", ", ".join(f"{svc} {marks.arrow} {pinned}"
                                       for svc, pinned in snap.services) or "-")
    if snap.run is not None:
        analysis = Text.assemble(f"{snap.run.name}  ", phase_text(snap.run.phase))
        if snap.run.measurements:
            analysis.append("\n")
            analysis.append_text(measurements_text(snap.run, marks))
        grid.add_row("Analysis", analysis)
    return Panel(grid, title=head, title_align="left", width=min(width, 80), padding=(0, 1))


def print_view(out: Console, view: RenderableType) -> None:
    """Print a view; piped, without the padding rich leaves at the end of grid lines."""
    if out.is_terminal:
        out.print(view)
        return
    with out.capture() as captured:
        out.print(view)
    out.print("\n".join(line.rstrip() for line in captured.get().splitlines()),
              markup=False, highlight=False, soft_wrap=True)


def transition_line(snap: Snapshot, console: Console) -> Text:
    """One line per change: time, phase, step, weights, and each ReplicaSet's pods."""
    total = len(snap.steps)
    if snap.aborted:
        step = "aborted"
    elif snap.in_flight and snap.step is not None:
        step = f"step {min(snap.step + 1, total)}/{total}"
    else:
        step = "steady"
    line = Text(f"{snap.elapsed:6.1f}s  ", style="dim")
    line.append_text(phase_text(f"{snap.phase:<11}"))
    line.append(f" {step:<9}")
    if snap.in_flight:
        weight = f"canary {_pct(snap.canary_weight)}"
        if snap.desired_weight is not None and snap.desired_weight != snap.canary_weight:
            weight += f" {Marks.for_console(console).arrow} {_pct(snap.desired_weight)}"
    else:
        weight = "stable 100%"
    line.append(f" {weight:<20}")
    pods = [f"{r.tag} {r.available}/{r.desired}" for r in snap.replica_sets
            if r.desired or r.available]
    line.append("  pods " + ", ".join(pods or ["-"]))
    return line


def analysis_line(run: AnalysisRow, elapsed: float, marks: Marks) -> Text:
    """One line per change of an AnalysisRun: its phase, then each measurement so far."""
    line = Text(f"{elapsed:6.1f}s  ", style="dim")
    line.append(f"{'analysis':<11} ")
    line.append_text(phase_text(f"{run.phase:<10}" if run.measurements else run.phase))
    for taken in run.measurements:
        mark, style = measurement_mark(taken.phase, marks)
        line.append(f"  {taken.short_value} ")
        line.append(mark, style=style)
    return line
