"""`rollouts demo`: the real controller walking a canary through its steps in the sandbox.

The scenario is fixed and needs no input: install `examples/canary.yaml`, release a new image
and watch it go 25% -> timed pause -> 50% -> paused, promote it, then release another and
abort it at its first pause. Every outcome is checked; the exit code says whether all were as
expected, so the demo doubles as a smoke test of a fresh install.

Promote and abort are decided by `rollouts.planner.operations` (what `rollouts promote/abort`
decide with) and written to the status subresource with the resourceVersion they were decided
on. The CLI passes its own writer (`operate=`) so the demo goes through exactly the code of
`rollouts promote`; this module may not import `rollouts.cli`, hence the small stand-in
`write_operation` below for callers that do not.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
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

from rollouts.errors import OperationError
from rollouts.models.rollout import POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, Rollout
from rollouts.planner.operations import decide
from rollouts.sandbox.apiserver import ApiError
from rollouts.sandbox.cluster import EXAMPLES_DIR, GROUP, VERSION, Sandbox, SandboxError

NAME = "web"
MANIFEST = EXAMPLES_DIR / "canary.yaml"
FIRST_IMAGE = "example/web:1.0"
PROMOTED_IMAGE = "example/web:2.0"
ABORTED_IMAGE = "example/web:3.0"
WRITE_ATTEMPTS = 3

PHASE_STYLE = {"Healthy": "green", "Progressing": "yellow", "Paused": "cyan",
               "Degraded": "red"}


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
class Snapshot:
    """The Rollout, its ReplicaSets and its Services' selectors at one moment."""

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
    return Text(phase, style=f"bold {PHASE_STYLE.get(phase, '')}".strip())


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
    """(mark, style) per step: done, current, or still to come (all of them after an abort)."""
    index = snap.step if snap.step is not None else (0 if snap.in_flight else len(snap.steps))
    result = []
    for i in range(len(snap.steps)):
        if snap.aborted:
            # The controller resets the step index on abort: no step is current any more.
            result.append((marks.todo, "dim"))
        elif not snap.in_flight or i < index:
            result.append((marks.done, "green"))
        elif i == index:
            result.append((marks.current, "bold yellow"))
        else:
            result.append((marks.todo, "dim"))
    return result


def render_view(snap: Snapshot, marks: Marks, width: int = 80) -> RenderableType:
    """The Rollout at a glance, in 80 columns: phase, steps, weights, ReplicaSets, Services."""
    head = Text.assemble(" ", ("Rollout ", "bold"), (NAME, "bold"), "  ", _phase(snap.phase),
                         " ")
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
    checks: int = 0
    legend_shown: bool = False
    live: Live | None = None
    _last_key: tuple[Any, ...] | None = None
    last: Snapshot | None = None

    @property
    def marks(self) -> Marks:
        return Marks.for_console(self.out)

    # --- watching ------------------------------------------------------------------------
    def poll(self) -> Snapshot:
        snap = take_snapshot(self.sandbox, NAME, self.started)
        key = snap.transition_key()
        if key != self._last_key:
            if snap.observed_generation is not None:  # before that: nothing to say yet
                self.out.print(transition_line(snap, self.out), soft_wrap=True)
            self._last_key = key
        if self.live is not None:
            self.live.update(render_view(snap, self.marks, self.out.width), refresh=True)
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
        if expected != seen:
            raise DemoFailure(what, str(expected), str(seen))
        self.checks += 1
        self.out.print(Text(f"  {self.marks.ok} {what}", style="green"), soft_wrap=True)

    def run_operation(self, operation: str) -> OperationResult:
        self.command(f"rollouts {operation} {NAME}")
        try:
            result = self.operate(self.sandbox, operation, NAME)
        except OperationError as exc:
            raise DemoFailure(f"rollouts {operation} {NAME}", "the operation to be accepted",
                              f"it refused: {exc}") from exc
        done = {"promote": "promoted", "abort": "aborted"}.get(operation, operation)
        self.out.print(Text(f"rollout {NAME} {done}"), soft_wrap=True)
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
            and s.sizes(bad) == (0, 0) and s.service(canary_service) == stable,
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

    def _snap(self) -> Snapshot:
        return self.last if self.last is not None else self.poll()

    def _hashes(self) -> tuple[str, str]:
        snap = self._snap()
        return str(snap.current_hash), str(snap.stable_hash)

    @staticmethod
    def _rs_summary(snap: Snapshot, pod_hash: str | None) -> tuple[str, int, int]:
        row = snap.rs(pod_hash)
        return (row.image, row.desired, row.available) if row else ("(no ReplicaSet)", 0, 0)


def run_demo(keep: bool, fast: bool, out: Console, *, operate: Operate | None = None) -> int:
    """Run the scenario; 0 when every expectation held, 1 otherwise (printed)."""
    pace = FAST if fast else NORMAL
    marks = Marks.for_console(out)
    started = time.monotonic()
    out.print(Text("rollouts demo", style="bold")
              + Text(": the real controller and a sandbox API server, no cluster needed."))
    with quiet_controller_logs(out), Sandbox(ready_delay=pace.ready_delay) as sandbox:
        sandbox.start_controller()
        out.print(Text(f"Sandbox API server on {sandbox.url}; controller running.",
                       style="dim"), soft_wrap=True)
        demo = Demo(sandbox, out, pace, operate or write_operation, started=started)
        code = 0
        live = Live(console=out, auto_refresh=False, transient=True) if out.is_terminal \
            else None
        try:
            with live if live is not None else contextlib.nullcontext():
                demo.live = live
                demo.scenario()
        except (DemoFailure, SandboxError) as exc:
            code = 1
            _report_failure(out, marks, exc, demo)
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
            _keep_running(demo)
        return code


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


def _keep_running(demo: Demo) -> None:
    out = demo.out
    out.print()
    out.print("The sandbox keeps running. In another shell:", soft_wrap=True)
    out.print(f"  export KUBECONFIG={demo.sandbox.kubeconfig}", soft_wrap=True, highlight=False)
    out.print(f"  rollouts get {NAME}", soft_wrap=True, highlight=False)
    out.print("  rollouts list", soft_wrap=True, highlight=False)
    out.print(f"  rollouts retry {NAME}     # start example/web:3.0 over", soft_wrap=True,
              highlight=False)
    out.print("Changes are logged here. Press Ctrl-C to stop.", soft_wrap=True)
    with _terminate_as_interrupt():
        try:
            while True:
                time.sleep(0.2)
                with contextlib.suppress(SandboxError):  # deleted from another shell
                    demo.poll()
        except KeyboardInterrupt:
            out.print("Stopping the sandbox.", soft_wrap=True)


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
