"""DESIGN.md's invariants checked against a recorded write history (`rollouts.sandbox.history`).

`check_rollout(writes, name, operations)` replays, in commit order, every write to one
Rollout, its ReplicaSets, its AnalysisRuns and the Services its strategy names, and returns
each broken rule as a `Violation` with the resourceVersion of the offending write:

* `step-repeated`: currentStepIndex went back for the same revision (no abort in between);
* `step-skipped`: the index moved past a step that was not done: a setWeight whose share of
  available canary pods (or the setCanaryScale in force) was not reached, an indefinite pause
  nobody promoted, a timed pause left before its duration (from its recorded startTime), an
  analysis step whose run had not succeeded (a `promote` skips any step: that is what it
  is for);
* `stable-went-back`: status.stableRS returned to a revision it had left;
* `promoted-unavailable`: stableRS, or the stable/active Service, moved to a revision that
  did not have all its replicas available;
* `abort-lost`: an aborted revision lost its abort flag (no retry) or became stable;
* `scaled-down-before-stable`: a ReplicaSet other than the stable one was scaled down while
  the stable one could not carry all the traffic (not all replicas available, or the stable
  / active Service not on it) — "abort means stable first" (invariant 2);
* `emptied-while-selected`: a ReplicaSet was scaled to 0 while the stable / active Service
  selected it — "re-point first, then scale down" (issue 11);
* `duplicate-measurement` / `lost-measurement` / `extra-measurement`: an AnalysisRun's
  measurement slots (startedAt) repeated, disappeared or outnumbered `count`;
* `duplicate-analysisrun`: two AnalysisRuns created for one revision, kind, step and attempt.

`operations` maps the resourceVersion of each operation the driver wrote (promote, abort,
retry) to its name: only a promote may move the index past an unfinished step.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rollouts.models.base import parse_duration
from rollouts.models.wire import (
    ANALYSIS_ATTEMPT_LABEL,
    ANALYSIS_KIND_LABEL,
    ANALYSIS_STEP_LABEL,
    CANARY_PAUSE,
    POD_TEMPLATE_HASH_LABEL,
    ROLLOUT_LABEL,
)
from rollouts.sandbox.history import Write

__all__ = ["Violation", "check_rollout", "problems", "writes_leading_to"]

Obj = dict[str, Any]
MEASUREMENT_RETENTION = 10  # Argo's default: older measurements may be trimmed


@dataclass(frozen=True)
class Violation:
    rule: str
    rv: int
    detail: str

    def __str__(self) -> str:
        return f"{self.rule} at rv {self.rv}: {self.detail}"


def _stamp(text: str | None) -> float | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _owner(obj: Obj) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return str(ref.get("name"))
    return None


def _labels(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


@dataclass
class _State:
    """The world as the replay has seen it so far."""

    rollout: Obj | None = None
    replica_sets: dict[str, Obj] = field(default_factory=dict)  # by pod-template hash
    selectors: dict[str, str | None] = field(default_factory=dict)  # Service -> hash
    runs: dict[str, Obj] = field(default_factory=dict)
    pause_started: dict[tuple[str | None, int], float] = field(default_factory=dict)
    stables_left: set[str] = field(default_factory=set)
    aborted: set[str] = field(default_factory=set)
    run_keys: dict[tuple[str, ...], str] = field(default_factory=dict)

    @property
    def spec(self) -> Obj:
        return dict((self.rollout or {}).get("spec") or {})

    @property
    def status(self) -> Obj:
        return dict((self.rollout or {}).get("status") or {})

    @property
    def replicas(self) -> int:
        value = self.spec.get("replicas")
        return 1 if value is None else int(value)

    def available(self, pod_hash: str | None) -> int:
        rs = self.replica_sets.get(pod_hash or "")
        return int(((rs or {}).get("status") or {}).get("availableReplicas") or 0)

    def traffic_services(self) -> set[str]:
        """The Services that carry production traffic: stableService / activeService, and
        with pingPong the one of ping and pong that status.canary.stablePingPong names."""
        strategy = self.spec.get("strategy") or {}
        pair = (strategy.get("canary") or {}).get("pingPong") or {}
        side = (self.status.get("canary") or {}).get("stablePingPong") or "ping"
        names = {(strategy.get("canary") or {}).get("stableService"),
                 (strategy.get("blueGreen") or {}).get("activeService"),
                 pair.get(f"{side}Service")}
        return {n for n in names if n}

    def all_services(self) -> set[str]:
        strategy = self.spec.get("strategy") or {}
        canary, blue_green = strategy.get("canary") or {}, strategy.get("blueGreen") or {}
        pair = canary.get("pingPong") or {}
        names = {canary.get("stableService"), canary.get("canaryService"),
                 blue_green.get("activeService"), blue_green.get("previewService"),
                 pair.get("pingService"), pair.get("pongService")}
        return {n for n in names if n}


def _canary_scale(state: _State, index: int) -> Obj | None:
    """The setCanaryScale in force at step `index` (the last at or before it; None when
    there is none or it says matchTrafficWeight)."""
    steps = ((state.spec.get("strategy") or {}).get("canary") or {}).get("steps") or []
    for step in reversed(steps[: index + 1]):
        scale = step.get("setCanaryScale") if isinstance(step, dict) else None
        if isinstance(scale, dict):
            return None if scale.get("matchTrafficWeight") else scale
    return None


def _step_done(state: _State, step: Obj, index: int, write: Write) -> str | None:
    """Why step `index` was not finished when `write` moved past it (None: it was)."""
    status = state.status
    pod_hash = status.get("currentPodHash")
    if "setWeight" in step:
        weight = int(step["setWeight"])
        available = state.available(pod_hash)
        wanted = weight * state.replicas  # the canary's pods, times 100
        scale = _canary_scale(state, index)
        if scale is not None:  # with a router the canary is sized by setCanaryScale
            wanted = 100 * int(scale["replicas"]) if "replicas" in scale else (
                int(scale["weight"]) * state.replicas)
        if available * 100 < wanted:
            return (f"setWeight {weight} left with {available}/{state.replicas} canary pods "
                    f"available")
        return None
    if "pause" in step:
        duration = (step.get("pause") or {}).get("duration")
        if duration is None:
            return "indefinite pause left without a promote"
        started = state.pause_started.get((pod_hash, index))
        if started is None:
            return "timed pause left without ever being entered"
        if write.at < started + parse_duration(duration):
            return (f"timed pause of {duration} left {write.at - started:.2f}s after its "
                    f"startTime")
        return None
    if "analysis" in step:
        for run in state.runs.values():
            labels = _labels(run)
            if (labels.get(POD_TEMPLATE_HASH_LABEL) == pod_hash
                    and labels.get(ANALYSIS_STEP_LABEL) == str(index)
                    and (run.get("status") or {}).get("phase") == "Successful"):
                return None
        return "analysis step left before its AnalysisRun succeeded"
    return None


def _on_rollout(state: _State, write: Write, operation: str | None) -> list[Violation]:
    out: list[Violation] = []
    before = state.status
    state.rollout = write.obj
    after = state.status
    pod_hash, stable = after.get("currentPodHash"), after.get("stableRS")
    for pause in after.get("pauseConditions") or ():
        started = _stamp(pause.get("startTime"))
        index = after.get("currentStepIndex")
        if pause.get("reason") == CANARY_PAUSE and started is not None and index is not None:
            state.pause_started.setdefault((pod_hash, int(index)), started)
    # Steps: only while a canary of a revision that is not the stable one is under way.
    same = (before.get("currentPodHash") == pod_hash
            and bool(before.get("abort")) == bool(after.get("abort")))
    old_index, new_index = before.get("currentStepIndex"), after.get("currentStepIndex")
    in_canary = (stable is not None and stable != pod_hash and not after.get("abort")
                 and not after.get("promoteFull") and operation != "retry")
    if same and in_canary and old_index is not None and new_index is not None:
        if new_index < old_index:
            out.append(Violation("step-repeated", write.rv,
                                 f"currentStepIndex {old_index} -> {new_index} for {pod_hash}"))
        elif new_index > old_index and operation != "promote":
            steps = ((state.spec.get("strategy") or {}).get("canary") or {}).get("steps") or []
            for index in range(int(old_index), min(int(new_index), len(steps))):
                why = _step_done(state, steps[index], index, write)
                if why is not None:
                    out.append(Violation("step-skipped", write.rv, f"step {index}: {why}"))
    # Promotion and abort.
    old_stable = before.get("stableRS")
    if stable != old_stable and stable is not None:
        if stable in state.stables_left:
            out.append(Violation("stable-went-back", write.rv,
                                 f"stableRS back to {stable} from {old_stable}"))
        if old_stable is not None:
            state.stables_left.add(old_stable)
            if state.available(stable) < state.replicas:
                out.append(Violation("promoted-unavailable", write.rv,
                                     f"stableRS -> {stable} with {state.available(stable)}/"
                                     f"{state.replicas} available"))
        if stable in state.aborted:
            out.append(Violation("abort-lost", write.rv, f"aborted {stable} became stable"))
    if after.get("abort") and pod_hash:
        state.aborted.add(pod_hash)
    elif (pod_hash in state.aborted and before.get("currentPodHash") == pod_hash
          and before.get("abort") and operation != "retry"):
        out.append(Violation("abort-lost", write.rv, f"abort flag of {pod_hash} dropped"))
    if operation == "retry" and pod_hash:
        state.aborted.discard(pod_hash)
    return out


def _on_replica_set(state: _State, write: Write) -> list[Violation]:
    pod_hash = _labels(write.obj).get(POD_TEMPLATE_HASH_LABEL)
    if pod_hash is None:
        return []
    previous = state.replica_sets.get(pod_hash)
    if write.type == "DELETED":
        state.replica_sets.pop(pod_hash, None)
    else:
        state.replica_sets[pod_hash] = write.obj
    if previous is None or write.type == "DELETED":
        return []
    old_size = int((previous.get("spec") or {}).get("replicas") or 0)
    new_size = int((write.obj.get("spec") or {}).get("replicas") or 0)
    out = [Violation("emptied-while-selected", write.rv,
                     f"{pod_hash} scaled {old_size} -> 0 while Service {service} selects it")
           for service in sorted(state.traffic_services())
           if new_size == 0 < old_size and state.selectors.get(service) == pod_hash]
    stable = state.status.get("stableRS")
    if new_size >= old_size or stable is None or pod_hash == stable:
        return out
    problems = []
    if state.available(stable) < state.replicas:
        problems.append(f"stable {stable} has {state.available(stable)}/{state.replicas} "
                        f"available")
    for service in sorted(state.traffic_services()):
        selected = state.selectors.get(service)
        if selected is not None and selected != stable:
            problems.append(f"Service {service} selects {selected}")
    if not problems:
        return out
    return [*out, Violation("scaled-down-before-stable", write.rv,
                            f"{pod_hash} scaled {old_size} -> {new_size} while "
                            + "; ".join(problems))]


def _on_service(state: _State, write: Write) -> list[Violation]:
    if write.name not in state.all_services():
        return []
    old = state.selectors.get(write.name)
    new = ((write.obj.get("spec") or {}).get("selector") or {}).get(POD_TEMPLATE_HASH_LABEL)
    state.selectors[write.name] = new
    if (write.name in state.traffic_services() and old is not None and new is not None
            and new != old and state.available(new) < state.replicas):
        return [Violation("promoted-unavailable", write.rv,
                          f"Service {write.name} switched {old} -> {new} with "
                          f"{state.available(new)}/{state.replicas} available")]
    return []


def _on_run(state: _State, write: Write) -> list[Violation]:
    out: list[Violation] = []
    previous = state.runs.get(write.name)
    if write.type == "DELETED":
        state.runs.pop(write.name, None)
        return out
    state.runs[write.name] = write.obj
    labels = _labels(write.obj)
    if write.type == "ADDED":
        key = tuple(labels.get(k, "") for k in (POD_TEMPLATE_HASH_LABEL, ANALYSIS_KIND_LABEL,
                                                 ANALYSIS_STEP_LABEL, ANALYSIS_ATTEMPT_LABEL))
        if key in state.run_keys:
            out.append(Violation("duplicate-analysisrun", write.rv,
                                 f"{write.name} created for {key}, as {state.run_keys[key]} "
                                 f"was"))
        state.run_keys[key] = write.name
    counts = {m.get("name"): m.get("count") for m in (write.obj.get("spec") or {}).get(
        "metrics") or ()}
    old_results = {r.get("name"): r for r in ((previous or {}).get("status") or {}).get(
        "metricResults") or ()}
    for result in (write.obj.get("status") or {}).get("metricResults") or ():
        metric = result.get("name")
        started = [m.get("startedAt") for m in result.get("measurements") or ()]
        if len(started) != len(set(started)):
            out.append(Violation("duplicate-measurement", write.rv,
                                 f"{write.name} {metric}: {started}"))
        count = counts.get(metric)
        taken = int(result.get("count") or 0)
        if isinstance(count, int) and taken > count:
            out.append(Violation("extra-measurement", write.rv,
                                 f"{write.name} {metric}: {taken} taken, count {count}"))
        before = [m.get("startedAt") for m in
                  (old_results.get(metric) or {}).get("measurements") or ()]
        if len(before) < MEASUREMENT_RETENTION and not set(before) <= set(started):
            out.append(Violation("lost-measurement", write.rv,
                                 f"{write.name} {metric}: {before} -> {started}"))
    return out


def check_rollout(writes: Iterable[Write], name: str,
                  operations: Mapping[int, str] | None = None) -> list[Violation]:
    """Every invariant broken by the writes concerning Rollout `name` (see module doc)."""
    ops = operations or {}
    state = _State()
    out: list[Violation] = []
    for write in sorted(writes, key=lambda w: w.rv):
        if write.resource == "rollout" and write.name == name:
            if write.type != "DELETED":
                out += _on_rollout(state, write, ops.get(write.rv))
        elif write.resource == "replicaset" and _owner(write.obj) == name:
            out += _on_replica_set(state, write)
        elif write.resource == "service" and state.rollout is not None:
            out += _on_service(state, write)
        elif write.resource == "analysisrun" and _labels(write.obj).get(ROLLOUT_LABEL) == name:
            out += _on_run(state, write)
    return out


def writes_leading_to(writes: Iterable[Write], name: str, rv: int,
                      limit: int = 24) -> list[str]:
    """The last `limit` writes to Rollout `name`, its ReplicaSets and its Services up to
    resourceVersion `rv`, one line each: what a violation needs to be understood from a CI
    log alone (timing-dependent runs cannot be replayed).

    E.g. `rv 479 service canary-0-stable MODIFIED selects ln9fd9nqkw`.
    """
    lines = []
    for write in sorted(writes, key=lambda w: w.rv):
        if write.rv > rv:
            break
        obj, status = write.obj, dict(write.obj.get("status") or {})
        spec = dict(obj.get("spec") or {})
        head = f"rv {write.rv} {write.resource} {write.name} {write.type}"
        if write.resource == "rollout" and write.name == name:
            lines.append(f"{head} stableRS={status.get('stableRS')} "
                         f"current={status.get('currentPodHash')} "
                         f"step={status.get('currentStepIndex')} abort={status.get('abort')} "
                         f"phase={status.get('phase')} message={status.get('message')!r}")
        elif write.resource == "replicaset" and _owner(obj) == name:
            lines.append(f"{head} replicas={spec.get('replicas')} "
                         f"available={status.get('availableReplicas')}")
        elif write.resource == "service" and write.name.startswith(f"{name}-"):
            selected = (spec.get("selector") or {}).get(POD_TEMPLATE_HASH_LABEL)
            lines.append(f"{head} selects {selected}")
    return lines[-limit:]


def problems(writes: Iterable[Write], name: str,
             operations: Mapping[int, str] | None = None) -> list[str]:
    """`check_rollout`'s violations as text, followed (when there is any) by the writes
    that led to the first one."""
    ordered = sorted(writes, key=lambda w: w.rv)
    violations = check_rollout(ordered, name, operations)
    if not violations:
        return []
    return [*map(str, violations),
            "\n  ".join(["writes up to the first violation:",
                         *writes_leading_to(ordered, name, violations[0].rv)])]
