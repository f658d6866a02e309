"""A tiny Experiment controller for driving the planner with experiment steps (tests only).

It keeps the Experiments a plan creates, terminates and lets go of (the traffic hold), as
`ExperimentView`s the planner observes, and moves them on when a test says so: pods
become available (Pending -> Running), the duration passes or a template fails, a
terminated one ends, and an ended one that is not held scales its templates to 0, as
rollouts/experiments/plan.py does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from rollouts.experiments.manifests import replica_set_name
from rollouts.models.experiment import COMPLETED_EXPERIMENT_PHASES, TRAFFIC_HOLD_ANNOTATION
from rollouts.models.wire import (
    ANALYSIS_ATTEMPT_LABEL,
    ANALYSIS_STEP_LABEL,
    POD_TEMPLATE_HASH_LABEL,
)
from rollouts.planner.types import (
    Action,
    ApplyRouteWrite,
    CreateExperiment,
    ExperimentTemplateView,
    ExperimentView,
    TerminateExperiment,
)


@dataclass
class FakeExperiment:
    view: ExperimentView
    pods_up: bool = True  # its templates' ReplicaSets are scaled up
    available: bool = False  # ... and their pods are available


@dataclass
class FakeExperiments:
    by_name: dict[str, FakeExperiment] = field(default_factory=dict)
    versions: int = 1

    def views(self) -> tuple[ExperimentView, ...]:
        return tuple(e.view for e in self.by_name.values())

    def services(self) -> tuple[str, ...]:
        """Every template Service of every Experiment (what the reconciler's finalize
        reads from the Experiments of a deleted Rollout)."""
        return tuple(t.service_name for e in self.by_name.values()
                     for t in e.view.templates if t.service_name)

    def owner_of(self, service: str) -> FakeExperiment | None:
        return next((e for e in self.by_name.values()
                     if any(t.service_name == service for t in e.view.templates)), None)

    def apply(self, actions: Iterable[Action]) -> list[Action]:
        """Apply the actions on Experiments; the others are returned."""
        rest: list[Action] = []
        for action in actions:
            if isinstance(action, CreateExperiment):
                self._create(action.manifest)
            elif isinstance(action, TerminateExperiment):
                self._update(action.name, terminating=True)
            elif isinstance(action, ApplyRouteWrite) and action.write.key.kind == "Experiment":
                guard, remove = action.write.patch
                found = self.by_name[action.write.key.name]
                assert guard["value"] == found.view.resource_version, "stale let-go"
                assert remove["op"] == "remove" and "traffic-hold" in remove["path"]
                self._update(found.view.name, traffic_held=False)
            else:
                rest.append(action)
        return rest

    def _create(self, manifest: Any) -> None:
        meta = manifest["metadata"]
        name = meta["name"]
        assert name not in self.by_name, f"Experiment {name} created twice"
        labels = meta["labels"]
        templates = tuple(
            ExperimentTemplateView(
                t["name"], None if t.get("service") is None else (
                    t["service"].get("name") or replica_set_name(name, t["name"])),
                f"h-{name}-{t['name']}")
            for t in manifest["spec"]["templates"])
        self.versions += 1
        self.by_name[name] = FakeExperiment(ExperimentView(
            name=name, phase="Pending", pod_hash=labels[POD_TEMPLATE_HASH_LABEL],
            step_index=int(labels[ANALYSIS_STEP_LABEL]),
            attempt=int(labels[ANALYSIS_ATTEMPT_LABEL]), templates=templates,
            traffic_held=TRAFFIC_HOLD_ANNOTATION in (meta.get("annotations") or {}),
            resource_version=str(self.versions)))

    def _update(self, name: str, **fields: Any) -> None:
        self.versions += 1
        found = self.by_name[name]
        found.view = replace(found.view, resource_version=str(self.versions), **fields)

    # --- the Experiment controller's moves --------------------------------------------

    def ready(self) -> None:
        """Every Pending Experiment's pods become available: it runs."""
        for e in self.by_name.values():
            if e.view.phase == "Pending" and not e.view.terminating and e.pods_up:
                e.available = True
                self._update(e.view.name, phase="Running")

    def end(self, phase: str) -> None:
        """The oldest Running Experiment ends (its duration passed, or a template failed)."""
        running = [e for e in self.by_name.values() if e.view.phase == "Running"]
        if running:
            self._update(running[0].view.name, phase=phase)

    def reconcile(self, extra_weight: Any) -> None:
        """A terminated Experiment ends; an ended one that is not held scales its templates
        to 0. `extra_weight(service)`: what the routes send a Service now; it must be 0 for
        the Services of templates whose pods go (the traffic hold)."""
        for e in list(self.by_name.values()):
            if e.view.terminating and e.view.phase not in COMPLETED_EXPERIMENT_PHASES:
                self._update(e.view.name, phase="Successful", message="terminated")
            if e.view.phase in COMPLETED_EXPERIMENT_PHASES and not e.view.traffic_held \
                    and e.pods_up:
                for t in e.view.templates:
                    if t.service_name:
                        assert not extra_weight(t.service_name), (
                            f"{e.view.name}'s pods go while the routes send "
                            f"{t.service_name} {extra_weight(t.service_name)}")
                e.pods_up = e.available = False
