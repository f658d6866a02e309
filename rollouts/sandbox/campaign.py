"""Fault campaigns: many Rollouts driven to an outcome while the controller is hurt.

Used by `bench/faults.py` (the full campaign) and `tests/e2e/test_faults.py` (a fixed-seed
slice of it). A *batch* is one sandbox (API emulator + kubelet simulator + a `MetricStub`
standing in for Prometheus + a `WriteHistory`), the real controller as a `rollouts
controller` subprocess, and `size` Rollouts, one per *run*, cycling through the scenarios:

* `canary`: setWeight 25, a 1 s pause, setWeight 50, a step analysis (2 measurements), an
  indefinite pause the driver promotes, setWeight 100; a background analysis throughout;
  expected Healthy on the new revision;
* `bluegreen`: pre- and post-promotion analysis, auto-promotion; expected Healthy on the new
  revision with the active Service on it;
* `abort`: setWeight 50, an indefinite pause the driver aborts; expected Degraded, stable
  revision full and selected, canary at 0;
* `revert`: setWeight 50, an indefinite pause during which the image goes back to the stable
  one (a `git revert`); expected Healthy on the stable revision at once, the new one at 0.

Faults: `kills` SIGKILLs the controller at random instants (every `kill_every` seconds,
uniformly drawn) and restarts it; `proxy` puts a `FaultProxy` between the controller and
the emulator. Every run is judged on its end state and on `check_rollout` over the write
history. Each batch draws everything from `random.Random(seed)`: a wrong outcome is reported
with the batch's seed, and `run_batch(seed=...)` with the same arguments replays it (as
closely as process scheduling allows).
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rollouts.models.rollout import POD_TEMPLATE_HASH_LABEL, Rollout
from rollouts.models.wire import CANARY_PAUSE
from rollouts.planner.operations import decide
from rollouts.sandbox.apiserver import ApiError
from rollouts.sandbox.cluster import GROUP, VERSION, Sandbox, SandboxError
from rollouts.sandbox.faultproxy import FaultProxy
from rollouts.sandbox.history import WriteHistory
from rollouts.sandbox.invariants import problems
from rollouts.sandbox.metricstub import MetricStub

__all__ = ["SCENARIOS", "BatchResult", "RunResult", "run_batch"]

Obj = dict[str, Any]
SCENARIOS = ("canary", "bluegreen", "abort", "revert")
OLD_IMAGE, NEW_IMAGE = "example/app:1.0", "example/app:2.0"
TEMPLATE = "faults-ok"


# --- manifests ---------------------------------------------------------------------------------


def query_of(name: str) -> str:
    """The query the campaign's templates send for Rollout `name`."""
    return f'ok{{rollout="{name}"}}'


def analysis_template(namespace: str, address: str, *, timeout: int = 5,
                      consecutive_error_limit: int = 4, count: int | None = 2) -> Obj:
    """One metric asking the stub about the Rollout named in the args (`rollout`)."""
    metric: Obj = {
        "name": "ok", "interval": "1s",
        "successCondition": "result[0] >= 0.9",
        "consecutiveErrorLimit": consecutive_error_limit,
        "provider": {"prometheus": {"address": address, "timeout": timeout,
                                    "query": query_of("{{args.rollout}}")}},
    }
    if count is not None:
        metric["count"] = count
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AnalysisTemplate",
            "metadata": {"name": TEMPLATE if count is not None else f"{TEMPLATE}-background",
                         "namespace": namespace},
            "spec": {"args": [{"name": "rollout"}], "metrics": [metric]}}


def _analysis(name: str, template: str = TEMPLATE) -> Obj:
    return {"templates": [{"templateName": template}],
            "args": [{"name": "rollout", "value": name}]}


def _services(name: str, namespace: str, *suffixes: str) -> list[Obj]:
    return [{"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": f"{name}-{suffix}", "namespace": namespace},
             "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}
            for suffix in suffixes]


def scenario_manifests(scenario: str, name: str, namespace: str) -> list[Obj]:
    """The Services and the Rollout of one run."""
    if scenario == "bluegreen":
        replicas = 2
        strategy: Obj = {"blueGreen": {
            "activeService": f"{name}-active", "previewService": f"{name}-preview",
            "autoPromotionEnabled": True, "scaleDownDelaySeconds": 1,
            "prePromotionAnalysis": _analysis(name), "postPromotionAnalysis": _analysis(name)}}
        services = _services(name, namespace, "active", "preview")
    else:
        replicas = 4
        if scenario == "canary":
            steps: list[Obj] = [{"setWeight": 25}, {"pause": {"duration": "1s"}},
                                {"setWeight": 50}, {"analysis": _analysis(name)},
                                {"pause": {}}, {"setWeight": 100}]
        else:
            steps = [{"setWeight": 50}, {"pause": {}}]
        canary: Obj = {"canaryService": f"{name}-canary", "stableService": f"{name}-stable",
                       "scaleDownDelaySeconds": 0, "abortScaleDownDelaySeconds": 0,
                       "steps": steps}
        if scenario == "canary":
            canary["analysis"] = {**_analysis(name, f"{TEMPLATE}-background"), "startingStep": 1}
        strategy = {"canary": canary}
        services = _services(name, namespace, "stable", "canary")
    rollout = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": OLD_IMAGE}]}},
                 "strategy": strategy},
    }
    return [*services, rollout]


# --- one run: a small state machine polled by the batch -----------------------------------------


@dataclass
class RunResult:
    name: str
    scenario: str
    seed: int
    outcome: str = "pending"  # "ok" | "wrong" | "stuck" | "pending"
    problems: list[str] = field(default_factory=list)
    converge_seconds: float | None = None  # image change -> expected end state
    kills: int = 0  # controller kills while the run was under way
    operations: dict[int, str] = field(default_factory=dict)  # rv -> promote/abort
    # Queries the metric source answered beyond the measurements recorded: measurements
    # taken again because their write was lost (a kill, a failed or conflicting write).
    # Harmless for a query; it would matter for a provider with side effects.
    extra_queries: int = 0


@dataclass
class _Run:
    result: RunResult
    stage: str = "setup"  # setup -> released -> operated -> done
    old_hash: str | None = None
    new_hash: str | None = None
    released_at: float | None = None
    started_at: float = field(default_factory=time.monotonic)


def _fresh(obj: Obj) -> Obj | None:
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"].get("generation"):
        return None
    return dict(status)


def write_operation(sb: Sandbox, name: str, operation: str) -> int | None:
    """`rollouts promote/abort` as the CLI decides it, written to status guarded by the
    resourceVersion it was decided on. The resourceVersion of the write, or None when the
    Rollout changed meanwhile (the caller tries again on its next poll)."""
    body = sb.rollout(name)
    patch = {"metadata": {"resourceVersion": body["metadata"]["resourceVersion"]},
             "status": decide(operation, Rollout.model_validate(body), dt.datetime.now(dt.UTC))}
    try:
        written = sb.emulator.patch_object(GROUP, VERSION, "rollouts", sb.namespace, name, patch,
                                           subresource="status")
    except ApiError as exc:
        if exc.code == 409:
            return None
        raise
    return int(written["metadata"]["resourceVersion"])


def _rs_sizes(sb: Sandbox, name: str) -> dict[str, tuple[int, int]]:
    try:
        return sb.sizes(name)
    except SandboxError:  # the Rollout is not there yet
        return {}


def _step(sb: Sandbox, run: _Run) -> None:
    """Advance one run by what its Rollout shows now (called every poll)."""
    name, scenario = run.result.name, run.result.scenario
    obj = sb.rollout(name)
    status = _fresh(obj)
    if status is None:
        return
    if run.stage == "setup":
        if status.get("phase") == "Healthy" and status.get("stableRS"):
            run.old_hash = str(status["stableRS"])
            sb.set_image(name, NEW_IMAGE)
            run.stage, run.released_at = "released", time.monotonic()
        return
    current = status.get("currentPodHash")
    if run.new_hash is None and current and current != run.old_hash:
        run.new_hash = str(current)
    if run.stage == "released" and scenario in ("canary", "abort", "revert"):
        wanted = 4 if scenario == "canary" else 1
        paused = any(p.get("reason") == CANARY_PAUSE for p in status.get("pauseConditions") or ())
        if paused and status.get("currentStepIndex") == wanted and current == run.new_hash:
            if scenario == "revert":
                sb.set_image(name, OLD_IMAGE)
                run.stage = "operated"
            else:
                rv = write_operation(sb, name, "promote" if scenario == "canary" else "abort")
                if rv is not None:
                    run.result.operations[rv] = "promote" if scenario == "canary" else "abort"
                    run.stage = "operated"
        return
    if _finished(sb, run, status):
        run.stage = "done"
        assert run.released_at is not None
        run.result.converge_seconds = time.monotonic() - run.released_at


def _finished(sb: Sandbox, run: _Run, status: Obj) -> bool:
    name, scenario = run.result.name, run.result.scenario
    sizes = _rs_sizes(sb, name)
    full = sb.rollout(name)["spec"]["replicas"]
    if scenario in ("abort", "revert"):
        keep = run.old_hash
        if scenario == "abort" and not (status.get("phase") == "Degraded" and status.get("abort")):
            return False
        if scenario == "revert" and status.get("phase") != "Healthy":
            return False
    else:
        keep = run.new_hash
        if status.get("phase") != "Healthy" or keep is None:
            return False
    return (status.get("stableRS") == keep and sizes.get(keep or "") == (full, full)
            and all(size[0] == 0 for h, size in sizes.items() if h != keep))


def _recorded_measurements(sb: Sandbox, name: str) -> int:
    return sum(int(result.get("count") or 0) + int(result.get("error") or 0)
               for run in sb.analysis_runs(name).values()
               for result in (run.get("status") or {}).get("metricResults") or ())


def _judge(sb: Sandbox, run: _Run, history: WriteHistory, stub: MetricStub) -> None:
    result = run.result
    result.extra_queries = (stub.queries[query_of(result.name)]
                            - _recorded_measurements(sb, result.name))
    writes = history.writes()
    result.problems += problems(writes, result.name, result.operations)
    if run.stage != "done":
        status = sb.status(result.name)
        result.outcome = "stuck"
        result.problems.append(
            f"not finished at stage {run.stage}: phase={status.get('phase')} "
            f"step={status.get('currentStepIndex')} message={status.get('message')!r} "
            f"sizes={_rs_sizes(sb, result.name)}")
        return
    traffic = [f"{result.name}-stable"] if result.scenario != "bluegreen" else [
        f"{result.name}-active"]
    keep = run.old_hash if result.scenario in ("abort", "revert") else run.new_hash
    for service in traffic:
        selected = sb.service_selector(service).get(POD_TEMPLATE_HASH_LABEL)
        if selected != keep:
            result.problems.append(f"Service {service} selects {selected}, not {keep}")
    result.outcome = "wrong" if result.problems else "ok"


# --- a batch ----------------------------------------------------------------------------------


@dataclass
class BatchResult:
    seed: int
    mode: str
    runs: list[RunResult]
    kills: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    wall_seconds: float = 0.0

    @property
    def wrong(self) -> list[RunResult]:
        return [r for r in self.runs if r.outcome != "ok"]


class _Killer:
    """SIGKILLs the controller at random instants and starts a fresh one each time.

    Half the kills come after a random time, half right after a random number (1-25) of
    writes to the recorded kinds: the controller spends most of its time waiting, so kills
    timed by the clock alone rarely land between two writes of one pass, where a lost
    update or a repeated step would show."""

    def __init__(self, sb: Sandbox, rng: random.Random, every: tuple[float, float],
                 writes: Callable[[], int], on_kill: Callable[[], None]) -> None:
        self.sb, self.rng, self.every, self.on_kill = sb, rng, every, on_kill
        self.writes = writes
        self.kills = 0
        self.after_writes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="controller-killer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _wait(self) -> bool:
        """Until the next kill is due; False when stopped meanwhile."""
        if self.rng.random() < 0.5:
            return not self._stop.wait(self.rng.uniform(*self.every))
        target = self.writes() + self.rng.randint(1, 25)
        deadline = time.monotonic() + self.every[1] * 2
        while self.writes() < target and time.monotonic() < deadline:
            if self._stop.wait(0.002):
                return False
        self.after_writes += 1
        return True

    def _main(self) -> None:
        while self._wait():
            self.sb.kill_controller()
            self.kills += 1
            self.on_kill()
            if self._stop.wait(self.rng.uniform(0.0, 0.5)):  # sometimes nobody runs a while
                break
            self.sb.start_controller(process=True)


def run_batch(*, seed: int, size: int = 4, mode: str = "kills",
              scenarios: tuple[str, ...] = SCENARIOS, kill_every: tuple[float, float] = (1.0, 5.0),
              fault_rate: float = 0.1, cut_rate: float = 0.1, run_timeout: float = 120.0,
              ready_delay: float = 0.1) -> BatchResult:
    """One sandbox, `size` runs at once, under `mode` "kills", "proxy" or "none"."""
    if mode not in ("kills", "proxy", "none"):
        raise ValueError(f"unknown mode {mode!r}: kills, proxy or none")
    rng = random.Random(seed)
    names = [(f"{scenarios[i % len(scenarios)]}-{i}", scenarios[i % len(scenarios)])
             for i in range(size)]
    rng.shuffle(names)
    started = time.monotonic()
    with Sandbox(ready_delay=ready_delay) as sb, MetricStub() as stub:
        history = WriteHistory(sb.emulator, sb.namespace).start()
        proxy = None
        try:
            if mode == "proxy":
                proxy = FaultProxy(sb.url, rate=fault_rate, cut_rate=cut_rate,
                                   seed=rng.randrange(2**32)).start()
                sb.kubeconfig = proxy.write_kubeconfig(sb.kubeconfig,
                                                       sb.workdir / "kubeconfig-faults")
            sb.apply([analysis_template(sb.namespace, stub.url),
                      analysis_template(sb.namespace, stub.url, count=None)])
            runs = [_Run(RunResult(name, scenario, seed)) for name, scenario in names]
            sb.start_controller(process=True)

            def count_kill() -> None:
                for run in runs:
                    if run.stage != "done":
                        run.result.kills += 1

            killer = (_Killer(sb, random.Random(rng.randrange(2**32)), kill_every,
                              history.count, count_kill) if mode == "kills" else None)
            for name, scenario in names:
                sb.apply(scenario_manifests(scenario, name, sb.namespace))
            if killer is not None:
                killer.start()
            try:
                _drive(sb, runs, run_timeout)
            finally:
                if killer is not None:
                    killer.stop()
            if proxy is not None:
                proxy.enabled = False  # let the controller finish its last writes cleanly
            time.sleep(1.0)  # a second of calm: nothing more should change
            history.settle()
            for run in runs:
                _judge(sb, run, history, stub)
            faults = dict(proxy.injected) if proxy is not None else {}
            if sb.controller_process is not None:
                sb.kill_controller()  # judged already: no need to wait for a clean shutdown
            return BatchResult(seed=seed, mode=mode, runs=[r.result for r in runs],
                               kills=killer.kills if killer is not None else 0, faults=faults,
                               requests=proxy.requests if proxy is not None else 0,
                               wall_seconds=time.monotonic() - started)
        finally:
            history.stop()
            if proxy is not None:
                proxy.stop()


def _drive(sb: Sandbox, runs: list[_Run], run_timeout: float) -> None:
    while True:
        pending = [r for r in runs if r.stage != "done"
                   and time.monotonic() - r.started_at < run_timeout]
        if not pending:
            return
        for run in pending:
            _step(sb, run)
        time.sleep(0.1)
