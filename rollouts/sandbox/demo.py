"""`rollouts demo`: the real controller walking a canary through its steps in the sandbox.

The scenario is fixed and needs no input: install `examples/canary.yaml`, release a new image
and watch it go 25% -> timed pause -> 50% -> paused, promote it, then release another and
abort it at its first pause. Then the analysis acts, with a real Prometheus scraping the
sandbox's simulated app: install `examples/demo-analysis.yaml` (a canary whose second step is
an analysis of the canary Service's success rate), release a good image that the analysis
promotes with no human action, and a bad one (30% errors) whose failed analysis makes the
controller roll it back by itself. Every outcome is checked; the exit code says whether all
were as expected, so the demo doubles as a smoke test of a fresh install.

This module drives the run (`Demo`: watch, log, check); each act is a module of its own
(`demo_canary`, `demo_analysis`, `demo_gateway`, `demo_judge`), what is read of the cluster is
`demo_snapshot` and how it is shown `demo_view`.

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

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from rollouts.errors import OperationError
from rollouts.models.rollout import Rollout
from rollouts.planner.operations import decide
from rollouts.sandbox.apiserver import ApiError
from rollouts.sandbox.cluster import GROUP, VERSION, Sandbox, SandboxError
from rollouts.sandbox.demo_analysis import BAD_IMAGE, analysis_act
from rollouts.sandbox.demo_analysis import NAME as ANALYSIS_NAME
from rollouts.sandbox.demo_canary import ABORTED_IMAGE, NAME, canary_act
from rollouts.sandbox.demo_gateway import NAME as GATEWAY_NAME
from rollouts.sandbox.demo_gateway import gateway_act
from rollouts.sandbox.demo_judge import NAME as JUDGE_NAME
from rollouts.sandbox.demo_judge import judge_act
from rollouts.sandbox.demo_snapshot import Snapshot, take_snapshot
from rollouts.sandbox.demo_view import (
    Marks,
    analysis_line,
    print_view,
    render_view,
    transition_line,
)
from rollouts.sandbox.prometheus import PrometheusServerError

PROMETHEUS_BINARY = "prometheus"
WRITE_ATTEMPTS = 3


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

    def wait_first_revision(self, what: str) -> Snapshot:
        """Wait for a new Rollout's first revision: Healthy, 4/4 pods of the stable revision."""
        return self.wait(f"{what} to be Healthy",
                         lambda s: s.up_to_date and s.phase == "Healthy"
                         and s.sizes(s.stable_hash) == (4, 4))

    def first_revision_healthy(self, what: str, image: str) -> Snapshot:
        """`wait_first_revision`, then check that its 4 pods are of `image`."""
        first = self.wait_first_revision(what)
        self.expect(f"Healthy: 4/4 pods of {image} are the stable revision",
                    (image, 4, 4), self._rs_summary(first, first.stable_hash))
        return first

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
                canary_act(demo, 1)
                if analysis:
                    analysis_act(demo, 4)
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
