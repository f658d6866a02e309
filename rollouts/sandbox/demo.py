"""`rollouts demo`: the real controller walking a canary through its steps in the sandbox.

The scenario is fixed and needs no input: install `examples/canary.yaml`, release a new image
and watch it go 25% -> timed pause -> 50% -> paused, promote it, then release another and
abort it at its first pause. Then the analysis acts, with a real Prometheus scraping the
sandbox's simulated app: install `examples/demo-analysis.yaml` (a canary whose second step is
an analysis of the canary Service's success rate), release a good image that the analysis
promotes with no human action, and a bad one (30% errors) whose failed analysis makes the
controller roll it back by itself. Every outcome is checked; the exit code says whether all
were as expected, so the demo doubles as a smoke test of a fresh install.

Promote and abort are decided by `rollouts.planner.operations` (what `rollouts promote/abort`
decide with) and written to the status subresource with the resourceVersion they were decided
on. The CLI passes its own writer (`operate=`) so the demo goes through exactly the code of
`rollouts promote`; this module may not import `rollouts.cli`, hence the small stand-in
`write_operation` below for callers that do not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from rollouts.analysis.templates import ANALYSIS_KIND_LABEL, ANALYSIS_STEP_LABEL
from rollouts.errors import OperationError
from rollouts.models.rollout import POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, Rollout
from rollouts.planner.operations import decide
from rollouts.sandbox.apiserver import ApiError
from rollouts.sandbox.cluster import EXAMPLES_DIR, GROUP, VERSION, Sandbox, SandboxError
from rollouts.sandbox.demo_gateway import NAME as GATEWAY_NAME
from rollouts.sandbox.demo_gateway import gateway_act
from rollouts.sandbox.demo_judge import NAME as JUDGE_NAME
from rollouts.sandbox.demo_judge import judge_act
from rollouts.sandbox.prometheus import PrometheusServerError

NAME = "web"
MANIFEST = EXAMPLES_DIR / "canary.yaml"
FIRST_IMAGE = "example/web:1.0"
PROMOTED_IMAGE = "example/web:2.0"
ABORTED_IMAGE = "example/web:3.0"
# The analysis acts: their own Rollout, judged by Prometheus (see the manifest's comments).
ANALYSIS_NAME = "api"
ANALYSIS_MANIFEST = EXAMPLES_DIR / "demo-analysis.yaml"
ANALYSIS_FIRST_IMAGE = "example/api:1.0"
GOOD_IMAGE = "example/api:2.0"
BAD_IMAGE = "example/api:3.0-bad"  # "bad": the simulated app answers 30% of requests with 5xx
SUCCESS_RATE = 0.95  # the manifest's success-rate arg
MEASUREMENTS = 3  # ...and its count
PROMETHEUS_BINARY = "prometheus"
WRITE_ATTEMPTS = 3

PHASE_STYLE = {"Healthy": "green", "Progressing": "yellow", "Paused": "cyan",
               "Degraded": "red",
               # AnalysisRuns and their measurements
               "Successful": "green", "Running": "yellow", "Failed": "red", "Error": "red",
               "Inconclusive": "cyan"}


@dataclass(frozen=True)
class Pace:
    """How long things take: pods becoming ready, and breathers for a human reader."""

    ready_delay: float
    breather: float
    timeout: float


FAST = Pace(ready_delay=0.1, breather=0.0, timeout=30.0)
NORMAL = Pace(ready_delay=0.8, breather=1.5, timeout=60.0)


# --- operations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperationResult:
    before: dict[str, Any]  # the status the operation was decided on (camelCase)
    updates: dict[str, Any]  # the status fields written (None: deleted)


Operate = Callable[[Sandbox, str, str], OperationResult]
"""(sandbox, operation, rollout name) -> what was written; raises OperationError if refused."""


def write_operation(sandbox: Sandbox, operation: str, name: str) -> OperationResult:
    """Decide with the planner's operations and write to `status` only, guarded by the
    resourceVersion read; a conflict (the controller wrote in between) decides again."""
    for _ in range(WRITE_ATTEMPTS):
        body = sandbox.rollout(name)
        rollout = Rollout.model_validate(body)
        updates = decide(operation, rollout, dt.datetime.now(dt.UTC))
        patch = {"metadata": {"resourceVersion": body["metadata"]["resourceVersion"]},
                 "status": updates}
        try:
            sandbox.emulator.patch_object(GROUP, VERSION, "rollouts", sandbox.namespace, name,
                                          patch, subresource="status")
        except ApiError as exc:
            if exc.code == 409:
                continue
            raise
        return OperationResult(dict(body.get("status") or {}), updates)
    raise OperationError(f"rollout {name} kept changing while {operation} was being written")


def describe_changes(before: dict[str, Any], updates: dict[str, Any]) -> list[str]:
    """"field: old -> new" for what an operation changed (as `rollouts promote` prints)."""

    def show(value: Any) -> str:
        if value is None:
            return "<unset>"
        if isinstance(value, list):
            return "[" + ", ".join(str(v.get("reason")) if isinstance(v, dict) else str(v)
                                   for v in value) + "]"
        return json.dumps(value)

    return [f"{key}: {show(before.get(key))} -> {show(new)}"
            for key, new in updates.items()
            if before.get(key) != new and not (new is None and key not in before)]


# --- what the demo looks at ------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaSetRow:
    name: str
    pod_hash: str
    revision: int
    image: str
    desired: int
    available: int

    @property
    def tag(self) -> str:
        return self.image.rsplit(":", 1)[-1] if ":" in self.image else self.pod_hash


@dataclass(frozen=True)
class MeasurementRow:
    metric: str
    number: int  # 1-based, per metric
    phase: str
    value: str  # as the provider recorded it: a Prometheus vector, e.g. "[0.9957]"
    condition: str  # the run's (resolved) condition this phase came from, "" when none

    @property
    def number_value(self) -> float | None:
        """The value as one number, when it is one (a one-element vector)."""
        with contextlib.suppress(ValueError, TypeError):
            parsed = json.loads(self.value)
            if isinstance(parsed, list) and len(parsed) == 1:
                return float(parsed[0])
            return float(parsed)
        return None

    @property
    def short_value(self) -> str:
        number = self.number_value
        if number is not None:
            return f"{number:.3f}"
        return "no data" if self.value in ("", "[]") else self.value


@dataclass(frozen=True)
class AnalysisRow:
    """The newest AnalysisRun of the Rollout's current revision."""

    name: str
    kind: str  # step, background, ...
    phase: str
    message: str
    measurements: tuple[MeasurementRow, ...]
    step: int | None = None  # the index of the step it judges (step runs)

    @property
    def done(self) -> bool:
        return self.phase not in ("", "Pending", "Running")

    def first(self, phase: str) -> MeasurementRow | None:
        return next((m for m in self.measurements if m.phase == phase), None)


@dataclass(frozen=True)
class Snapshot:
    """The Rollout, its ReplicaSets and its Services' selectors at one moment."""

    name: str
    elapsed: float
    generation: int
    observed_generation: int | None
    phase: str
    message: str
    step: int | None
    steps: tuple[dict[str, Any], ...]
    desired_weight: int | None
    canary_weight: int | None
    stable_weight: int | None
    verified: bool | None
    current_hash: str | None
    stable_hash: str | None
    aborted: bool
    replica_sets: tuple[ReplicaSetRow, ...]
    services: tuple[tuple[str, str], ...]  # (service, pinned hash or "-")
    run: AnalysisRow | None = None
    # After an abort: the step it stopped at, when known (the controller resets the index).
    stopped_at: int | None = None

    @property
    def first_revision(self) -> bool:
        """Nothing was rolled out yet: the first revision skips its steps."""
        stable = self.rs(self.stable_hash)
        return stable is not None and all(r.revision >= stable.revision
                                          for r in self.replica_sets)

    @property
    def in_flight(self) -> bool:
        return self.current_hash is not None and self.current_hash != self.stable_hash

    @property
    def up_to_date(self) -> bool:
        return self.observed_generation == self.generation

    def rs(self, pod_hash: str | None) -> ReplicaSetRow | None:
        return next((r for r in self.replica_sets if r.pod_hash == pod_hash), None)

    def sizes(self, pod_hash: str | None) -> tuple[int, int]:
        row = self.rs(pod_hash)
        return (row.desired, row.available) if row else (0, 0)

    def service(self, name: str) -> str:
        return dict(self.services).get(name, "-")

    def role(self, row: ReplicaSetRow) -> str:
        if row.pod_hash == self.stable_hash:
            return "stable"
        if row.pod_hash == self.current_hash:
            return "aborted" if self.aborted else "canary"
        return "old"

    def transition_key(self) -> tuple[Any, ...]:
        return (self.phase, self.step, self.aborted, self.canary_weight, self.desired_weight,
                self.stable_hash, self.current_hash,
                tuple((r.pod_hash, r.desired, r.available) for r in self.replica_sets),
                self.services)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _condition(metric: dict[str, Any], phase: str) -> str:
    key = {"Successful": "successCondition", "Failed": "failureCondition"}.get(phase)
    return str(metric.get(key) or "") if key else ""


def take_analysis(sandbox: Sandbox, name: str, pod_hash: str | None) -> AnalysisRow | None:
    """The newest AnalysisRun the Rollout owns for `pod_hash`, if any."""
    runs = [run for run in sandbox.analysis_runs(name).values()
            if _dict(_dict(run.get("metadata")).get("labels")).get(POD_TEMPLATE_HASH_LABEL)
            == pod_hash]
    if pod_hash is None or not runs:
        return None
    run = max(runs, key=lambda r: (str(_dict(r.get("metadata")).get("creationTimestamp")),
                                   str(_dict(r.get("metadata")).get("name"))))
    meta, status = _dict(run.get("metadata")), _dict(run.get("status"))
    specs = {str(_dict(m).get("name")): _dict(m)
             for m in _dict(run.get("spec")).get("metrics") or ()}
    rows = []
    for result in status.get("metricResults") or ():
        metric = str(_dict(result).get("name"))
        for number, taken in enumerate(_dict(result).get("measurements") or (), start=1):
            phase = str(_dict(taken).get("phase") or "")
            rows.append(MeasurementRow(metric, number, phase,
                                       str(_dict(taken).get("value") or ""),
                                       _condition(specs.get(metric, {}), phase)))
    step = str(_dict(meta.get("labels")).get(ANALYSIS_STEP_LABEL) or "")
    return AnalysisRow(
        name=str(meta.get("name")),
        kind=str(_dict(meta.get("labels")).get(ANALYSIS_KIND_LABEL) or "?"),
        phase=str(status.get("phase") or "Pending"),
        message=str(status.get("message") or ""),
        measurements=tuple(rows),
        step=int(step) if step.isdigit() else None,
    )


def take_snapshot(sandbox: Sandbox, name: str, started: float) -> Snapshot:
    body = sandbox.rollout(name)
    spec, status = _dict(body.get("spec")), _dict(body.get("status"))
    canary_spec = _dict(_dict(spec.get("strategy")).get("canary"))
    canary = _dict(status.get("canary"))
    weights = canary.get("weights")
    rows = []
    for pod_hash, rs in sandbox.replica_sets(name).items():
        meta = _dict(rs.get("metadata"))
        containers = _dict(_dict(_dict(rs.get("spec")).get("template")).get("spec")).get(
            "containers") or [{}]
        revision = str(_dict(meta.get("annotations")).get(REVISION_ANNOTATION) or "0")
        rows.append(ReplicaSetRow(
            name=str(meta.get("name")),
            pod_hash=pod_hash,
            revision=int(revision) if revision.isdigit() else 0,
            image=str(_dict(containers[0]).get("image") or "?"),
            desired=int(_dict(rs.get("spec")).get("replicas") or 0),
            available=int(_dict(rs.get("status")).get("availableReplicas") or 0),
        ))
    run = take_analysis(sandbox, name, status.get("currentPodHash"))
    services = []
    for key in ("canaryService", "stableService"):
        service = canary_spec.get(key)
        if isinstance(service, str):
            try:
                pinned = sandbox.service_selector(service).get(POD_TEMPLATE_HASH_LABEL, "-")
            except SandboxError:
                pinned = "(missing)"
            services.append((service, pinned))
    return Snapshot(
        name=name,
        elapsed=time.monotonic() - started,
        generation=int(_dict(body.get("metadata")).get("generation") or 0),
        observed_generation=status.get("observedGeneration"),
        phase=str(status.get("phase") or "Unknown"),
        message=str(status.get("message") or ""),
        step=status.get("currentStepIndex"),
        steps=tuple(_dict(s) for s in canary_spec.get("steps") or ()),
        desired_weight=canary.get("desiredWeight"),
        canary_weight=_dict(_dict(weights).get("canary")).get("weight") if weights else None,
        stable_weight=_dict(_dict(weights).get("stable")).get("weight") if weights else None,
        verified=_dict(weights).get("verified") if weights else None,
        current_hash=status.get("currentPodHash"),
        stable_hash=status.get("stableRS"),
        aborted=bool(status.get("abort")),
        replica_sets=tuple(sorted(rows, key=lambda r: -r.revision)),
        services=tuple(services),
        run=run,
        stopped_at=run.step if status.get("abort") and run is not None
        and run.step is not None and run.phase in ("Failed", "Error", "Inconclusive") else None,
    )


# --- rendering -------------------------------------------------------------------------------


def describe_step(step: dict[str, Any]) -> str:
    if "setWeight" in step:
        return f"setWeight {step['setWeight']}"
    if "pause" in step:
        duration = _dict(step.get("pause")).get("duration")
        return f"pause {duration}" if duration is not None else "pause (until promoted)"
    if "analysis" in step:
        names = [str(_dict(t).get("templateName")) for t in
                 _dict(step.get("analysis")).get("templates") or []]
        return f"analysis {', '.join(names)}"
    return ", ".join(step) or "(empty step)"


def _phase(phase: str) -> Text:
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
                         _phase(snap.phase), " ")
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
        analysis = Text.assemble(f"{snap.run.name}  ", _phase(snap.run.phase))
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
    line.append_text(_phase(f"{snap.phase:<11}"))
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
    line.append_text(_phase(f"{run.phase:<10}" if run.measurements else run.phase))
    for taken in run.measurements:
        mark, style = measurement_mark(taken.phase, marks)
        line.append(f"  {taken.short_value} ")
        line.append(mark, style=style)
    return line


# --- the run ---------------------------------------------------------------------------------


class DemoFailure(Exception):
    def __init__(self, what: str, expected: str, seen: str) -> None:
        super().__init__(f"{what}: expected {expected}, saw {seen}")
        self.what, self.expected, self.seen = what, expected, seen


class _ControllerLogs(logging.Handler):
    """The in-thread controller's warnings as dim lines of the demo (not stray stderr)."""

    NOISE = ("OS signals are ignored",)

    def __init__(self, out: Console) -> None:
        super().__init__(logging.WARNING)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(noise in message for noise in self.NOISE):
            return
        self.out.print(Text(f"  controller {record.levelname.lower()}: {message}",
                            style="dim"), soft_wrap=True)


@contextlib.contextmanager
def quiet_controller_logs(out: Console) -> Iterator[None]:
    """Route kopf's and the controller's own log records through `out`, warnings and up."""
    handler = _ControllerLogs(out)
    saved = []
    for name in ("kopf", "rollouts"):
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.setLevel(logging.WARNING)
        logger.propagate = False
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger, level, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


@dataclass
class Demo:
    sandbox: Sandbox
    out: Console
    pace: Pace
    operate: Operate
    started: float = field(default_factory=time.monotonic)
    name: str = NAME  # the Rollout the current act is about
    checks: int = 0
    legend_shown: bool = False
    live: Live | None = None
    _last_keys: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    _last_runs: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    # Rollout -> the step index a user's abort was decided at (the status forgets it).
    _aborted_at: dict[str, int] = field(default_factory=dict)
    last: Snapshot | None = None

    @property
    def marks(self) -> Marks:
        return Marks.for_console(self.out)

    # --- watching ------------------------------------------------------------------------
    def poll(self, name: str | None = None) -> Snapshot:
        """Look at a Rollout (the current act's by default); log what changed."""
        name = name or self.name
        snap = take_snapshot(self.sandbox, name, self.started)
        if snap.aborted and snap.stopped_at is None and name in self._aborted_at:
            snap = dataclasses.replace(snap, stopped_at=self._aborted_at[name])
        key = snap.transition_key()
        if key != self._last_keys.get(name):
            if snap.observed_generation is not None:  # before that: nothing to say yet
                self.out.print(transition_line(snap, self.out), soft_wrap=True)
            self._last_keys[name] = key
        run = snap.run
        run_key = () if run is None else (run.name, run.phase, run.measurements)
        if run is not None and run_key != self._last_runs.get(name):
            self.out.print(analysis_line(run, snap.elapsed, self.marks), soft_wrap=True)
        self._last_runs[name] = run_key
        if self.live is not None and name == self.name:
            self.live.update(render_view(snap, self.marks, self.out.width), refresh=True)
        if name == self.name:
            self.last = snap
        return snap

    def wait(self, what: str, done: Callable[[Snapshot], bool],
             seen: Callable[[Snapshot], str] | None = None) -> Snapshot:
        deadline = time.monotonic() + self.pace.timeout
        while True:
            snap = self.poll()
            if done(snap):
                return snap
            if time.monotonic() > deadline:
                describe = seen or (lambda s: f"{s.phase} ({s.message or 'no message'})")
                raise DemoFailure(f"waiting for {what}", what,
                                  f"after {self.pace.timeout:.0f}s: {describe(snap)}")
            time.sleep(0.05)

    def breathe(self, seconds: float | None = None) -> None:
        """Let a reader catch up, still watching (and logging) the cluster."""
        until = time.monotonic() + (self.pace.breather if seconds is None else seconds)
        while time.monotonic() < until:
            self.poll()
            time.sleep(0.05)

    # --- telling -------------------------------------------------------------------------
    def act(self, title: str) -> None:
        self.out.print()
        self.out.rule(Text(title, style="bold"), align="left")

    def say(self, text: str) -> None:
        self.out.print(Text(text))

    def command(self, text: str) -> None:
        self.out.print(Text(f"$ {text}", style="bold"), soft_wrap=True)

    def show(self, snap: Snapshot) -> None:
        """A milestone view (the live view already shows it on a terminal)."""
        if self.live is None:
            print_view(self.out, render_view(snap, self.marks, self.out.width))

    def expect(self, what: str, expected: Any, seen: Any) -> None:
        self.expect_that(what, expected == seen, str(expected), str(seen))

    def expect_that(self, what: str, held: bool, expected: str, seen: str) -> None:
        if not held:
            raise DemoFailure(what, expected, seen)
        self.checks += 1
        self.out.print(Text(f"  {self.marks.ok} {what}", style="green"), soft_wrap=True)

    def run_operation(self, operation: str) -> OperationResult:
        self.command(f"rollouts {operation} {self.name}")
        try:
            result = self.operate(self.sandbox, operation, self.name)
        except OperationError as exc:
            raise DemoFailure(f"rollouts {operation} {self.name}",
                              "the operation to be accepted", f"it refused: {exc}") from exc
        index = result.before.get("currentStepIndex")
        if operation == "abort" and isinstance(index, int):
            self._aborted_at[self.name] = index
        done = {"promote": "promoted", "abort": "aborted"}.get(operation, operation)
        self.out.print(Text(f"rollout {self.name} {done}"), soft_wrap=True)
        for line in describe_changes(result.before, result.updates):
            self.out.print(Text(f"  {line}", style="dim"), soft_wrap=True)
        return result

    # --- the scenario --------------------------------------------------------------------
    def scenario(self) -> None:
        self.act(f"1. Install {MANIFEST.parent.name}/{MANIFEST.name}")
        self.say("A Rollout of 4 example/web:1.0 pods; Services web-canary and web-stable.")
        self.say("Steps: setWeight 25, pause 2s, setWeight 50, pause until promoted.")
        self.sandbox.apply(MANIFEST)
        first = self.wait("the first revision to be Healthy",
                          lambda s: s.up_to_date and s.phase == "Healthy"
                          and s.sizes(s.stable_hash) == (4, 4))
        self.expect("Healthy: 4/4 pods of example/web:1.0 are the stable revision",
                    (FIRST_IMAGE, 4, 4), self._rs_summary(first, first.stable_hash))
        self.show(first)
        self.breathe()

        self.release(PROMOTED_IMAGE, "2. Release example/web:2.0 and promote it")
        new, old = self._hashes()
        self.say("The timed pause ends by itself; the next step takes the canary to 50%.")
        half = self.wait("step 4/4 (paused until promoted)",
                         lambda s: s.phase == "Paused" and s.step == 3)
        self.expect("50%: canary 50 / stable 50, 2 pods each",
                    (50, 50, (2, 2), (2, 2)),
                    (half.canary_weight, half.stable_weight, half.sizes(new), half.sizes(old)))
        self.show(half)
        self.breathe()
        result = self.run_operation("promote")
        self.expect("promote decided at the last step (step 4/4)", 3,
                    result.before.get("currentStepIndex"))
        done = self.wait("example/web:2.0 to be Healthy and stable",
                         lambda s: s.phase == "Healthy" and s.stable_hash == new
                         and s.sizes(new) == (4, 4) and s.sizes(old) == (0, 0))
        self.expect("Healthy on example/web:2.0: 4/4 pods, example/web:1.0 at 0",
                    ((4, 4), (0, 0)), (done.sizes(new), done.sizes(old)))
        self.expect("both Services select the new revision", [new, new],
                    [pinned for _, pinned in done.services])
        self.show(done)
        self.breathe()

        self.release(ABORTED_IMAGE, "3. Release example/web:3.0 and abort it")
        bad, stable = self._hashes()
        result = self.run_operation("abort")
        self.expect("abort decided at the first pause (step 2/4)", 1,
                    result.before.get("currentStepIndex"))
        canary_service, stable_service = (svc for svc, _ in self._snap().services)
        aborted = self.wait(
            "Degraded with stable at full size",
            lambda s: s.phase == "Degraded" and s.sizes(stable) == (4, 4)
            and s.sizes(bad) == (0, 0) and s.service(canary_service) == stable
            and s.canary_weight in (0, None),  # the status caught up: one state in the box
            seen=lambda s: f"{s.phase}, stable {s.sizes(stable)}, canary {s.sizes(bad)}, "
                           f"{canary_service} -> {s.service(canary_service)}")
        self.expect("Degraded and marked aborted", ("Degraded", True),
                    (aborted.phase, aborted.aborted))
        self.expect("stable example/web:2.0 back at 4/4 pods", (4, 4), aborted.sizes(stable))
        self.expect("canary example/web:3.0 scaled to 0", (0, 0), aborted.sizes(bad))
        self.expect(f"{canary_service} and {stable_service} pinned to stable {stable}",
                    (stable, stable),
                    (aborted.service(canary_service), aborted.service(stable_service)))
        self.show(aborted)

    def release(self, image: str, title: str) -> None:
        """Set the image and check the canary at 25% and in its timed pause."""
        self.act(title)
        self.say(f"The pod template's image changes to {image}: a new revision.")
        if not self.legend_shown:
            self.say(f"Log lines: time, phase, step, canary weight ({self.marks.arrow} desired), "
                     "pods up/wanted.")
            self.legend_shown = True
        self.sandbox.set_image(NAME, image)
        paused = self.wait("step 2/4 (the timed pause)",
                           lambda s: s.up_to_date and s.phase == "Paused" and s.step == 1)
        new, old = paused.current_hash, paused.stable_hash
        self.expect(f"25%: 1 pod of {image}, 3 of the stable revision, weights 25/75",
                    (image, (1, 1), (3, 3), 25, 75),
                    (self._rs_summary(paused, new)[0], paused.sizes(new), paused.sizes(old),
                     paused.canary_weight, paused.stable_weight))
        self.show(paused)

    # --- the analysis acts: Prometheus decides, nobody runs promote or abort ---------------
    def analysis_scenario(self) -> None:
        self.name = ANALYSIS_NAME
        self.act(f"4. Install {ANALYSIS_MANIFEST.parent.name}/{ANALYSIS_MANIFEST.name}: "
                 "Prometheus decides")
        self.say(f"A Rollout {ANALYSIS_NAME} of 4 {ANALYSIS_FIRST_IMAGE} pods. "
                 "Steps: setWeight 50, then analysis.")
        self.say(f"Its AnalysisTemplate asks Prometheus {MEASUREMENTS} times, 2s apart, for "
                 "the share of non-5xx")
        self.say(f"responses through Service {ANALYSIS_NAME}-canary; one value below "
                 f"{SUCCESS_RATE:.0%} fails the run.")
        self.say("No pause for a human: Successful completes the rollout, Failed aborts it.")
        self.sandbox.apply(ANALYSIS_MANIFEST)
        first = self.wait(f"{ANALYSIS_NAME}'s first revision to be Healthy",
                          lambda s: s.up_to_date and s.phase == "Healthy"
                          and s.sizes(s.stable_hash) == (4, 4))
        self.expect(f"Healthy: 4/4 pods of {ANALYSIS_FIRST_IMAGE} are the stable revision",
                    (ANALYSIS_FIRST_IMAGE, 4, 4), self._rs_summary(first, first.stable_hash))
        self.show(first)
        self.breathe()

        self.act(f"5. Release {GOOD_IMAGE}: the analysis promotes it")
        self.say("No `rollouts promote` here: a Successful AnalysisRun is the go-ahead.")
        new, old = self.release_analysed(GOOD_IMAGE)
        done = self.wait(
            f"{GOOD_IMAGE} to be Healthy and stable",
            lambda s: s.phase == "Healthy" and s.stable_hash == new
            and s.sizes(new) == (4, 4) and s.sizes(old) == (0, 0),
            seen=lambda s: f"{s.phase}, {self._run_summary(s.run)}, stable "
                           f"{s.sizes(new)}, old {s.sizes(old)}")
        run = done.run
        self.print_run(run)
        self.expect(f"AnalysisRun Successful: {MEASUREMENTS} measurements, all Successful",
                    ("Successful", ["Successful"] * MEASUREMENTS),
                    (run.phase, [m.phase for m in run.measurements]) if run else "no run")
        self.expect(f"Healthy on {GOOD_IMAGE} with no promote: 4/4 pods, "
                    f"{ANALYSIS_FIRST_IMAGE} at 0",
                    ((4, 4), (0, 0)), (done.sizes(new), done.sizes(old)))
        self.show(done)
        self.breathe()

        self.act(f"6. Release {BAD_IMAGE}: the analysis rolls it back")
        self.say("Its pods answer 30% of requests with a 5xx. No `rollouts abort` here:")
        self.say("a Failed AnalysisRun is enough.")
        bad, stable = self.release_analysed(BAD_IMAGE)
        canary_service, stable_service = (svc for svc, _ in self._snap().services)
        aborted = self.wait(
            "Degraded with stable at full size",
            lambda s: s.phase == "Degraded" and s.aborted and s.sizes(stable) == (4, 4)
            and s.sizes(bad) == (0, 0) and s.service(canary_service) == stable
            and s.canary_weight in (0, None),
            seen=lambda s: f"{s.phase}, {self._run_summary(s.run)}, stable "
                           f"{s.sizes(stable)}, canary {s.sizes(bad)}, "
                           f"{canary_service} -> {s.service(canary_service)}")
        run = aborted.run
        failing = run.first("Failed") if run else None
        self.print_failure(run, failing, aborted.message)
        value = failing.number_value if failing else None
        self.expect_that(
            f"AnalysisRun Failed: a measurement below {SUCCESS_RATE}",
            run is not None and run.phase == "Failed" and value is not None
            and value < SUCCESS_RATE,
            f"a Failed run with a success-rate below {SUCCESS_RATE}",
            self._run_summary(run))
        self.expect("Degraded and aborted by the controller, no abort command",
                    ("Degraded", True), (aborted.phase, aborted.aborted))
        self.expect(f"stable {GOOD_IMAGE} back at 4/4 pods", (4, 4), aborted.sizes(stable))
        self.expect(f"canary {BAD_IMAGE} scaled to 0", (0, 0), aborted.sizes(bad))
        self.expect(f"{canary_service} and {stable_service} pinned to stable {stable}",
                    (stable, stable),
                    (aborted.service(canary_service), aborted.service(stable_service)))
        names = [str(run.name) if run else "(no run)", '"success-rate"']
        self.expect_that("status.message names the failed AnalysisRun and metric",
                         all(n in aborted.message for n in names),
                         f"a message naming {' and '.join(names)}",
                         repr(aborted.message))
        self.show(aborted)

    def release_analysed(self, image: str) -> tuple[str, str]:
        """Set the image and check the canary at 50% with its AnalysisRun under way."""
        self.say(f"The pod template's image changes to {image}: a new revision.")
        self.sandbox.set_image(self.name, image)
        running = self.wait(
            "step 2/2 (the analysis) under way",
            lambda s: s.up_to_date and s.in_flight and s.step == 1 and s.run is not None
            and not s.run.done and s.sizes(s.current_hash) == (2, 2),
            seen=lambda s: f"{s.phase} at step {s.step}, {self._run_summary(s.run)}")
        new, old = running.current_hash, running.stable_hash
        self.expect(f"50%: 2 pods of {image}, 2 stable; step 2's AnalysisRun started",
                    (image, (2, 2), (2, 2), "step"),
                    (self._rs_summary(running, new)[0], running.sizes(new),
                     running.sizes(old), running.run.kind if running.run else "no run"))
        self.show(running)
        return str(new), str(old)

    def print_run(self, run: AnalysisRow | None) -> None:
        """The run's measurements as the controller recorded them: value and phase each."""
        if run is None:
            return
        self.out.print(Text.assemble(("AnalysisRun ", "bold"), (run.name, "bold"), "  ",
                                     _phase(run.phase)), soft_wrap=True)
        table = Table(box=None, pad_edge=False, show_header=True, header_style="dim",
                      padding=(0, 2, 0, 0))
        for column in ("  METRIC", "#", "VALUE", "PHASE"):
            table.add_column(column, no_wrap=True)
        for taken in run.measurements:
            mark, style = measurement_mark(taken.phase, self.marks)
            table.add_row(f"  {taken.metric}", str(taken.number), taken.value,
                          Text.assemble((mark, style), " ", _phase(taken.phase)))
        print_view(self.out, table)

    def print_failure(self, run: AnalysisRow | None, failing: MeasurementRow | None,
                      message: str) -> None:
        """The measurement that failed the run, and what the Rollout says about it."""
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        if failing is not None:
            self.out.print(Text("The failing measurement, and the Rollout's status.message:",
                                style="bold"))
            grid.add_row("", "metric", f"{failing.metric} (#{failing.number} of AnalysisRun "
                                       f"{run.name if run else '?'})")
            grid.add_row("", "value", failing.value)
            grid.add_row("", "failureCondition",
                         Text.assemble(failing.condition, "  (true: ", _phase(failing.phase),
                                       ")"))
        else:
            self.out.print(Text("No failed measurement; the Rollout's status.message:",
                                style="bold"))
        grid.add_row("", "status.message", Text(message or "-"))
        print_view(self.out, grid)

    @staticmethod
    def _run_summary(run: AnalysisRow | None) -> str:
        if run is None:
            return "no AnalysisRun"
        values = ", ".join(f"{m.short_value} {m.phase}" for m in run.measurements)
        return f"AnalysisRun {run.phase}" + (f" ({values})" if values else "") + (
            f": {run.message}" if run.message else "")

    def _snap(self) -> Snapshot:
        return self.last if self.last is not None else self.poll()

    def _hashes(self) -> tuple[str, str]:
        snap = self._snap()
        return str(snap.current_hash), str(snap.stable_hash)

    @staticmethod
    def _rs_summary(snap: Snapshot, pod_hash: str | None) -> tuple[str, int, int]:
        row = snap.rs(pod_hash)
        return (row.image, row.desired, row.available) if row else ("(no ReplicaSet)", 0, 0)


# Serves a web view of the kept sandbox while it runs; gives the URL to open.
ServeDashboard = Callable[[Sandbox], contextlib.AbstractContextManager[str]]


def run_demo(keep: bool, fast: bool, out: Console, *, operate: Operate | None = None,
             analysis: bool = True, dashboard: ServeDashboard | None = None) -> int:
    """Run the scenario; 0 when every expectation held, 1 otherwise (printed).

    `analysis=False` leaves out the acts judged by Prometheus (and Prometheus): the first
    three acts alone, for tests of them on machines without the binary. With `keep`, a
    `dashboard` (the CLI passes `rollouts dashboard`) serves the sandbox until Ctrl-C.
    """
    pace = FAST if fast else NORMAL
    marks = Marks.for_console(out)
    started = time.monotonic()
    out.print(Text("rollouts demo", style="bold")
              + Text(": the real controller and a sandbox API server, no cluster needed."))
    if analysis and shutil.which(PROMETHEUS_BINARY) is None:
        _report_no_prometheus(out, marks,
                              f"The {PROMETHEUS_BINARY!r} binary is not on PATH.")
        return 1
    if analysis:
        out.print(Text("Starting the sandbox with a real Prometheus (a few seconds)...",
                       style="dim"), soft_wrap=True)
    with contextlib.ExitStack() as stack:
        stack.enter_context(quiet_controller_logs(out))
        restore = _sigint_handler()
        try:
            sandbox = stack.enter_context(Sandbox(ready_delay=pace.ready_delay,
                                                  prometheus=analysis))
        except PrometheusServerError as exc:
            _report_no_prometheus(out, marks, f"It did not start: {exc}")
            return 1
        # Exits run last-in first-out: Ctrl-C is ignored while the sandbox stops (so its
        # temporary kubeconfig and data always go), then the handler comes back.
        stack.callback(restore)
        stack.callback(_ignore_sigint)
        sandbox.start_controller()
        out.print(Text(f"Sandbox API server on {sandbox.url}; controller running.",
                       style="dim"), soft_wrap=True)
        if analysis:
            out.print(Text(f"Prometheus on {sandbox.prometheus_url}, scraping the "
                           "simulated app.", style="dim"), soft_wrap=True)
        demo = Demo(sandbox, out, pace, operate or write_operation, started=started)
        code = 0
        live = Live(console=out, auto_refresh=False, transient=True) if out.is_terminal \
            else None
        try:
            with live if live is not None else contextlib.nullcontext():
                demo.live = live
                demo.scenario()
                if analysis:
                    demo.analysis_scenario()
                    gateway_act(demo, 7)
                    judge_act(demo, 10)
        except (DemoFailure, SandboxError) as exc:
            code = 1
            _report_failure(out, marks, exc, demo)
        except KeyboardInterrupt:
            demo.live = None
            out.print()
            out.print(Text("Interrupted: stopping the sandbox and removing its files.",
                           style="yellow"), soft_wrap=True)
            return 130
        finally:
            demo.live = None
        if code == 0:
            if live is not None and demo.last is not None:
                print_view(out, render_view(demo.last, marks, out.width))
            out.print()
            out.print(Text(f"{marks.ok} All {demo.checks} expectations met in "
                           f"{time.monotonic() - started:.1f}s.", style="bold green"),
                      soft_wrap=True)
        if keep:
            names = [NAME, ANALYSIS_NAME, GATEWAY_NAME, JUDGE_NAME] if analysis else [NAME]
            with dashboard(sandbox) if dashboard is not None else \
                    contextlib.nullcontext("") as url:
                _keep_running(demo, names, url)
        else:
            _next_steps(out)
        return code


def _report_no_prometheus(out: Console, marks: Marks, why: str) -> None:
    """Why Prometheus is missing or did not start, and how to install it."""
    out.print()
    out.print(Text(f"{marks.bad} The demo needs Prometheus for its analysis acts.",
                   style="bold red"))
    out.print(Text(why))
    out.print(Text("scripts/setup.sh installs it (Debian's prometheus package), as root:"))
    out.print(Text("  bash scripts/setup.sh && rollouts demo", style="bold"))


def _report_failure(out: Console, marks: Marks, exc: Exception, demo: Demo) -> None:
    out.print()
    if isinstance(exc, DemoFailure):
        out.print(Text(f"{marks.bad} {exc.what}", style="bold red"), soft_wrap=True)
        out.print(f"    expected: {escape(exc.expected)}", soft_wrap=True, highlight=False)
        out.print(f"    seen:     {escape(exc.seen)}", soft_wrap=True, highlight=False)
    else:
        out.print(Text(f"{marks.bad} {exc}", style="bold red"), soft_wrap=True)
    if demo.last is not None:
        print_view(out, render_view(demo.last, marks, out.width))
    out.print(Text(f"The demo failed ({demo.checks} expectation(s) met before this one).",
                   style="red"), soft_wrap=True)


def _next_steps(out: Console) -> None:
    out.print("Next: keep the sandbox running and try the commands yourself:",
              highlight=False, markup=False)
    out.print("  rollouts demo --keep               # prints the KUBECONFIG to use",
              highlight=False, markup=False)
    out.print("  rollouts demo --keep --dashboard   # ...and serves it in a browser",
              highlight=False, markup=False)


def _keep_running(demo: Demo, names: list[str], dashboard_url: str = "") -> None:
    out = demo.out
    out.print()
    if dashboard_url:
        out.print(f"Dashboard: {dashboard_url}  (open it in a browser)", soft_wrap=True,
                  highlight=False, markup=False)
    out.print("The sandbox keeps running. In another shell:", soft_wrap=True)
    out.print(f"  export KUBECONFIG={demo.sandbox.kubeconfig}", soft_wrap=True,
              highlight=False, markup=False)
    hints = [(f"rollouts get {NAME}", ""), ("rollouts list", ""),
             (f"rollouts retry {NAME}", f"start {ABORTED_IMAGE} over")]
    if ANALYSIS_NAME in names:
        hints += [(f"rollouts get {ANALYSIS_NAME}", "its AnalysisRuns too"),
                  (f"rollouts retry {ANALYSIS_NAME}", f"analyse {BAD_IMAGE} again")]
    width = max(len(command) for command, _ in hints)
    for command, comment in hints:
        line = f"  {command:<{width}}   # {comment}" if comment else f"  {command}"
        out.print(line, soft_wrap=True, highlight=False, markup=False)
    out.print("Changes are logged here. Press Ctrl-C to stop.", soft_wrap=True)
    with _terminate_as_interrupt():
        try:
            while True:
                time.sleep(0.2)
                for name in names:
                    with contextlib.suppress(SandboxError):  # deleted from another shell
                        demo.poll(name)
        except KeyboardInterrupt:
            out.print("Stopping the sandbox.", soft_wrap=True)


def _sigint_handler() -> Callable[[], None]:
    """A function that puts back the SIGINT handler of now (a no-op off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGINT)

    def restore() -> None:
        signal.signal(signal.SIGINT, previous)

    return restore


def _ignore_sigint() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a kept sandbox like Ctrl-C does, so its temporary files go too."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
