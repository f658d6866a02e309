"""A tiny in-memory cluster for driving the pure planner: ReplicaSets, Services, a clock.

It applies a Plan's actions the way the kube executor would, and lets a test decide when
pods become available. Nothing here talks to a server.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

from rollouts.models.rollout import (
    POD_TEMPLATE_HASH_LABEL,
    ObjectMeta,
    Rollout,
    RolloutStatus,
    ValidRollout,
    parse_rollout,
)
from rollouts.planner.analysis import analysis_references, run_slot
from rollouts.planner.plan import plan
from rollouts.planner.types import (
    AnalysisRunView,
    ApplyRouteWrite,
    CreateAnalysisRun,
    CreateReplicaSet,
    DeleteAnalysisRun,
    DeleteReplicaSet,
    Observed,
    PinService,
    Plan,
    PreparedRun,
    ReplicaSetView,
    ScaleReplicaSet,
    ServiceView,
    TerminateAnalysisRun,
)
from tests.unit.fake_router import route

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def canary_spec(steps: list[dict[str, Any]] | None = None, *, replicas: int = 4,
                image: str = "app:1", **canary: Any) -> dict[str, Any]:
    return {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "demo"}},
        "template": {"metadata": {"labels": {"app": "demo"}},
                     "spec": {"containers": [{"name": "app", "image": image}]}},
        "strategy": {"canary": {"steps": steps if steps is not None else [], **canary}},
    }


def blue_green_spec(*, replicas: int = 3, image: str = "app:1", **bg: Any) -> dict[str, Any]:
    return {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "demo"}},
        "template": {"metadata": {"labels": {"app": "demo"}},
                     "spec": {"containers": [{"name": "app", "image": image}]}},
        "strategy": {"blueGreen": {"activeService": "active", "previewService": "preview", **bg}},
    }


@dataclass
class World:
    spec: dict[str, Any]
    now: dt.datetime = T0
    status: RolloutStatus = field(default_factory=RolloutStatus)
    replica_sets: dict[str, ReplicaSetView] = field(default_factory=dict)
    services: dict[str, ServiceView] = field(default_factory=dict)
    generation: int = 1
    history: list[Plan] = field(default_factory=list)
    runs: dict[str, AnalysisRunView] = field(default_factory=dict)
    analysis_problems: dict[str, str] = field(default_factory=dict)
    auto_ready: bool = True  # pods become available as soon as the ReplicaSet asks for them
    # A traffic router (tests.unit.fake_router.FakeRouter) and the weight its route holds
    # (None: the route object is missing).
    router: Any = None
    route_weight: int | None = 0
    route_version: int = 1
    route_headers: tuple[str, ...] = ()  # the header routes the route holds, by name
    releases: int = 1  # images released by `operate("image")`: app:1, app:2, ...

    def __post_init__(self) -> None:
        for name in ("canary", "stable", "active", "preview"):
            self.services.setdefault(name, ServiceView(name, {"app": "demo"}))

    # --- inputs -----------------------------------------------------------------------
    def rollout(self) -> Rollout:
        return Rollout(metadata=ObjectMeta(name="demo", uid="uid-1", generation=self.generation),
                       spec=copy.deepcopy(self.spec), status=self.status)

    def observed(self) -> Observed:
        return Observed(replica_sets=tuple(self.replica_sets.values()),
                        services=dict(self.services),
                        analysis_runs=tuple(self.runs.values()),
                        analysis_problems=dict(self.analysis_problems),
                        prepared_runs=self.prepared_runs(),
                        router=self.router,
                        routes=route(self.route_weight, str(self.route_version),
                                     self.route_headers)
                        if self.router is not None else {})

    def prepared_runs(self) -> dict[str, PreparedRun]:
        """What the observer would prepare: one run per reference, for this revision and
        attempt (named so a test can tell them apart; the templates are not modelled)."""
        parsed = parse_rollout(self.rollout())
        if not isinstance(parsed, ValidRollout):
            return {}
        pod_hash, attempt = run_slot(parsed)
        return {
            path: PreparedRun(path, kind, step, pod_hash, attempt, {
                "metadata": {"name": f"run-{pod_hash}-{kind}-{step}-{attempt}"}})
            for kind, path, _, step in analysis_references(parsed.spec)
            if path not in self.analysis_problems
        }

    def set_image(self, image: str) -> None:
        self.spec = copy.deepcopy(self.spec)
        self.spec["template"]["spec"]["containers"][0]["image"] = image
        self.generation += 1

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)

    def move(self, move: str, data: Any, *, clock: list[int] | None = None) -> bool:
        """The moves random histories share (`data`: hypothesis's draw): pods become
        available ("pods"), some of them ("pods_partial"), time passes ("clock").
        False for any other move."""
        from hypothesis import strategies as st

        if move == "pods":
            self.settle()
        elif move == "pods_partial":
            self.settle(available={h: data.draw(st.integers(0, r.spec_replicas))
                                   for h, r in self.replica_sets.items()})
        elif move == "clock":
            self.advance(data.draw(st.sampled_from(clock or [1, 10, 30])))
        else:
            return False
        return True

    def operate(self, move: str) -> bool:
        """The operations random histories share: "promote" (past the current step),
        "abort" (when a revision is in flight), "image" (a new release). False for any other
        move."""
        if move == "promote":
            self.edit_status(current_step_index=(self.status.current_step_index or 0) + 1,
                             pause_conditions=None)
        elif move == "abort":
            if self.status.stable_rs and self.status.current_pod_hash != self.status.stable_rs:
                self.edit_status(abort=True, abort_message="aborted by test")
        elif move == "image":
            self.releases += 1
            self.set_image(f"app:{self.releases}")
        else:
            return False
        return True

    def edit_status(self, **updates: Any) -> None:
        self.status = self.status.model_copy(update=updates)

    # --- the loop ---------------------------------------------------------------------
    def plan(self) -> Plan:
        return plan(parse_rollout(self.rollout()), self.observed(), self.now)

    def step(self) -> Plan:
        """One reconcile pass: plan, apply actions, write status, let pods settle."""
        result = self.plan()
        self.apply(result)
        self.history.append(result)
        if self.auto_ready:
            self.settle()
        return result

    def apply(self, result: Plan) -> None:
        for action in result.actions:
            if isinstance(action, CreateReplicaSet):
                self.replica_sets[action.pod_hash] = ReplicaSetView(
                    name=action.name, pod_hash=action.pod_hash, revision=action.revision,
                    spec_replicas=action.replicas)
            elif isinstance(action, ScaleReplicaSet):
                rs = self._by_name(action.name)
                self.replica_sets[rs.pod_hash] = replace(
                    rs, spec_replicas=action.replicas, scale_down_at=action.scale_down_at)
            elif isinstance(action, DeleteReplicaSet):
                rs = self._by_name(action.name)
                del self.replica_sets[rs.pod_hash]
            elif isinstance(action, CreateAnalysisRun):
                name = action.name
                self.runs[name] = AnalysisRunView(
                    name=name, phase="Running", pod_hash=action.pod_hash, kind=action.kind,
                    step_index=action.step_index, attempt=action.attempt,
                    created=f"{len(self.runs):06d}")
            elif isinstance(action, TerminateAnalysisRun):
                run = self.runs[action.name]
                self.runs[action.name] = replace(run, phase="Successful", message="terminated")
            elif isinstance(action, DeleteAnalysisRun):
                del self.runs[action.name]
            elif isinstance(action, ApplyRouteWrite):
                ops = {op["path"]: op["value"] for op in action.write.patch}
                assert ops["/metadata/resourceVersion"] == str(self.route_version), "stale"
                self.route_weight = ops["/spec/canaryWeight"]
                self.route_headers = tuple(ops["/spec/headerRoutes"])
                self.route_version += 1
            elif isinstance(action, PinService):
                svc = self.services[action.service]
                self.services[action.service] = ServiceView(
                    svc.name, {**svc.selector, POD_TEMPLATE_HASH_LABEL: action.pod_hash})
        self.status = result.status

    def plan_until_pinned(self, service: str, passes: int = 30) -> Plan:
        """Run passes (pods settling after each) until one plans to re-point `service`;
        that plan is returned unapplied, for a test to apply or lose as it likes."""
        for _ in range(passes):
            result = self.plan()
            if any(isinstance(a, PinService) and a.service == service for a in result.actions):
                return result
            self.apply(result)
            self.settle()
        raise AssertionError(f"no pass re-pointed Service {service}")

    def settle(self, *, available: dict[str, int] | None = None) -> None:
        """Pods match spec; all available unless `available` caps some revisions."""
        for pod_hash, rs in list(self.replica_sets.items()):
            cap = rs.spec_replicas if available is None else min(
                rs.spec_replicas, available.get(pod_hash, rs.spec_replicas))
            self.replica_sets[pod_hash] = replace(
                rs, replicas=rs.spec_replicas, ready=cap, available=cap)

    def run(self, passes: int = 30) -> Plan:
        """Reconcile until nothing changes (or `passes` run out)."""
        result = self.step()
        for _ in range(passes):
            if not result.actions and result.status == self.history[-2].status \
                    if len(self.history) > 1 else False:
                break
            result = self.step()
        return result

    def _by_name(self, name: str) -> ReplicaSetView:
        return next(r for r in self.replica_sets.values() if r.name == name)

    def finish_runs(self, phase: str, *, kind: str | None = None,
                    message: str = "") -> list[str]:
        """Every running run (of `kind`) ends with `phase`; returns their names."""
        done = []
        for name, run in self.runs.items():
            if run.phase == "Running" and (kind is None or run.kind == kind):
                self.runs[name] = replace(run, phase=phase, message=message)
                done.append(name)
        return done

    # --- reading ------------------------------------------------------------------------
    def rs(self, pod_hash: str | None) -> ReplicaSetView | None:
        return self.replica_sets.get(pod_hash or "")

    def sizes(self) -> dict[str, int]:
        return {h: r.spec_replicas for h, r in self.replica_sets.items()}

    def selector(self, service: str) -> str | None:
        return self.services[service].selector.get(POD_TEMPLATE_HASH_LABEL)
