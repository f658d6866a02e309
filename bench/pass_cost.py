"""CPU of the pure part of one reconcile pass, on the canary bench's Rollout.

`bench/run_canaries.py` measures the controller as a whole, HTTP and kopf included, in
10 ms ticks of process CPU on a shared machine. This script times only what a pass
computes, in-process and many times over: the Rollout of `run_canaries.manifests` is
driven through its canary against an in-memory cluster (ReplicaSets that become ready at
once, Services), and at each distinct state the pass's pure steps are timed:

    parse    controller.parsed.parse_once: a new resourceVersion of the same spec (the echo
             of a status write, most versions in a canary)
    observe  kube.observe.observe: the watch-fed bodies into the planner's view
    plan     planner.plan.plan
    compare  kube.execute.status_unchanged: the planned status against the server's

    PYTHONPATH=$PWD python3 bench/pass_cost.py             # microseconds per pass, by part
    PYTHONPATH=$PWD python3 bench/pass_cost.py --profile   # + cProfile's top entries

The figures are per pass, the best of `--repeat` short rounds (the least disturbed by
other work on the machine: a round of a few milliseconds is seldom preempted, one of tens
is nearly always on a loaded machine), averaged over the canary's states, with the garbage
collector tuned as the controller tunes it (`controller.allocator.tune_collector`).
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import datetime as dt
import pathlib
import pstats
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from run_canaries import manifests  # the bench's Rollout, next to this file

from rollouts.controller.allocator import tune_collector
from rollouts.controller.parsed import Parsed, parse_once
from rollouts.kube.analysis import Templates
from rollouts.kube.execute import status_unchanged
from rollouts.kube.observe import observe
from rollouts.models.rollout import ValidRollout
from rollouts.planner.plan import plan
from rollouts.planner.types import CreateReplicaSet, Observed, PinService, ScaleReplicaSet

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
UID = "0b5e3f6a-0000-4000-8000-000000000001"


class Cluster:
    """The Rollout's body, its ReplicaSets and Services, as the watches would show them."""

    def __init__(self) -> None:
        docs = manifests(0, replicas=2, pause=2, services=True)
        self.services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
        self.rollout = docs[-1]
        self.rollout["metadata"].update(namespace="default", uid=UID, generation=1)
        self.replica_sets: dict[str, dict[str, Any]] = {}
        self.version = 1

    def body(self) -> dict[str, Any]:
        self.rollout["metadata"]["resourceVersion"] = str(self.version)
        return self.rollout

    def apply(self, actions: Any, status: dict[str, Any]) -> None:
        self.version += 1
        self.rollout["status"] = status
        for action in actions:
            if isinstance(action, CreateReplicaSet):
                body = copy.deepcopy(dict(action.manifest))
                body["metadata"]["resourceVersion"] = str(self.version)
                self.replica_sets[action.name] = body
                self._ready(body)
            elif isinstance(action, ScaleReplicaSet):
                body = self.replica_sets[action.name]
                body["spec"]["replicas"] = action.replicas
                self._ready(body)
            elif isinstance(action, PinService):
                self.services[action.service]["spec"]["selector"] = dict(action.selector)

    @staticmethod
    def _ready(body: dict[str, Any]) -> None:
        n = body["spec"]["replicas"]
        body["status"] = {"replicas": n, "readyReplicas": n, "availableReplicas": n}


State = tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any], dt.datetime]


def canary_states() -> list[State]:
    """(Rollout body, ReplicaSets, Services, now) at every pass of a first rollout and of
    the image change, until the Rollout rests Healthy on the new revision."""
    cluster = Cluster()
    states: list[State] = []
    now = T0
    for revision in ("example/app:1.0", "example/app:2.0"):
        cluster.rollout["spec"]["template"]["spec"]["containers"][0]["image"] = revision
        cluster.rollout["metadata"]["generation"] = cluster.version
        for _ in range(40):
            body = copy.deepcopy(cluster.body())
            replica_sets = copy.deepcopy(list(cluster.replica_sets.values()))
            services = copy.deepcopy(cluster.services)
            states.append((body, replica_sets, services, now))
            result = plan(parse_once(None, body).rollout, _observe(parse_once(None, body),
                          replica_sets, services), now)
            if not result.actions and result.status.to_wire() == body.get("status"):
                break
            cluster.apply(result.actions, result.status.to_wire())
            now += dt.timedelta(seconds=result.requeue_after or 1.0)
    return states


def _observe(parsed: Parsed, replica_sets: list[dict[str, Any]],
             services: dict[str, Any]) -> Observed:
    rollout = parsed.rollout
    assert isinstance(rollout, ValidRollout)
    return observe(rollout, replica_sets=replica_sets, services=services, analysis_runs=[],
                   templates=Templates())


def timed(parts: dict[str, Callable[[], Any]], repeat: int, number: int) -> dict[str, float]:
    """Microseconds per call of each part: the best of `repeat` rounds of `number` calls."""
    best: dict[str, float] = {}
    for name, call in parts.items():
        rounds = []
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(number):
                call()
            rounds.append((time.perf_counter() - start) / number * 1e6)
        best[name] = min(rounds)
    return best


def pass_parts(state: State) -> dict[str, Callable[[], Any]]:
    body, replica_sets, services, now = state
    # The version before: the same spec at another resourceVersion (as a status echo).
    earlier = copy.deepcopy(body)
    earlier["metadata"]["resourceVersion"] = "earlier"
    previous = parse_once(None, earlier)
    parsed = parse_once(previous, body)
    observed = _observe(parsed, replica_sets, services)
    planned = plan(parsed.rollout, observed, now).status
    return {
        "parse": lambda: parse_once(previous, body),
        "observe": lambda: _observe(parsed, replica_sets, services),
        "plan": lambda: plan(parsed.rollout, observed, now),
        "compare": lambda: status_unchanged(parsed.status, planned),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=25, help="rounds per part (25)")
    parser.add_argument("--number", type=int, default=20, help="calls per round (20)")
    parser.add_argument("--profile", action="store_true", help="cProfile the passes too")
    args = parser.parse_args(argv)
    states = canary_states()
    tune_collector()  # the controller's collector settings (what is alive now is frozen)
    totals: dict[str, float] = {}
    for state in states:
        for name, micros in timed(pass_parts(state), args.repeat, args.number).items():
            totals[name] = totals.get(name, 0.0) + micros / len(states)
    print(f"{len(states)} states of the canary bench's Rollout; microseconds per pass:")
    for name, micros in totals.items():
        print(f"  {name:<8} {micros:8.1f}")
    print(f"  {'total':<8} {sum(totals.values()):8.1f}")
    if args.profile:
        profiler = cProfile.Profile()
        every = [pass_parts(state) for state in states]
        profiler.enable()
        for _ in range(args.number):
            for parts in every:
                for call in parts.values():
                    call()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    return 0


if __name__ == "__main__":
    sys.exit(main())
