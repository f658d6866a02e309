"""The Experiment planner (rollouts.experiments.plan) as tables: (what exists, the clock) ->
phase, actions, requeue; and the canary `experiment` step handler."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from rollouts.experiments.manifests import (
    analysis_run_name,
    replica_set_name,
    service_manifest,
    template_hash,
)
from rollouts.experiments.plan import ExperimentObserved, plan_experiment
from rollouts.models.experiment import (
    ExperimentTemplate,
    InvalidExperiment,
    ValidExperiment,
    experiment_manifest_errors,
    parse_experiment,
)
from rollouts.models.rollout import (
    ObjectMeta,
    Rollout,
    RolloutStatus,
    ValidRollout,
    parse_rollout,
    parse_spec,
    rollout_manifest_errors,
)
from rollouts.models.wire import POD_TEMPLATE_HASH_LABEL
from rollouts.planner.context import Context, Draft
from rollouts.planner.manifests import pod_template_hash
from rollouts.planner.plan import plan
from rollouts.planner.steps import Abort, Advance, Pause, Wait, Walk
from rollouts.planner.steps import experiment as experiment_step
from rollouts.planner.types import (
    AnalysisRunView,
    ApplyRouteWrite,
    CreateExperiment,
    CreateReplicaSet,
    ExperimentView,
    Observed,
    ReplicaSetView,
)
from tests.unit.test_steps import FakeTraffic
from tests.unit.world import T0, canary_spec

Obj = dict[str, Any]


def pod(app: str, image: str = "app:1") -> Obj:
    return {"metadata": {"labels": {"app": app}},
            "spec": {"containers": [{"name": "app", "image": image,
                                     "ports": [{"name": "http", "containerPort": 8080}]}]}}


def experiment(*, status: Obj | None = None, **spec: Any) -> ValidExperiment:
    body = {
        "metadata": {"name": "exp", "namespace": "ns", "uid": "u1", "generation": 1},
        "spec": {"templates": [
            {"name": "baseline", "replicas": 2, "selector": {"matchLabels": {"app": "b"}},
             "template": pod("b")},
            {"name": "canary", "replicas": 1, "selector": {"matchLabels": {"app": "c"}},
             "template": pod("c", "app:2")}],
            # The tables below scale down at the end; the delay has its own tests.
            "scaleDownDelaySeconds": 0, **spec},
        "status": status or {},
    }
    parsed = parse_experiment(body)
    assert isinstance(parsed, ValidExperiment), parsed
    return parsed


def rs(template: str, spec: int, available: int) -> ReplicaSetView:
    return ReplicaSetView(name=replica_set_name("exp", template), pod_hash="h", revision=0,
                          spec_replicas=spec, replicas=available, ready=available,
                          available=available, resource_version="7")


def run(analysis: str, phase: str, message: str = "") -> AnalysisRunView:
    return AnalysisRunView(name=analysis_run_name("exp", analysis), phase=phase,
                           message=message)


READY = (rs("baseline", 2, 2), rs("canary", 1, 1))
LATER = T0 + dt.timedelta(seconds=30)
RUNNING: Obj = {"phase": "Running", "startedAt": "2026-01-01T00:00:00Z",
                "availableAt": "2026-01-01T00:00:00Z"}
ANALYSES = [{"name": "judge", "templateName": "compare", "requiredForCompletion": True},
            {"name": "smoke", "templateName": "smoke"}]
PREPARED = {"judge": {"metadata": {"name": analysis_run_name("exp", "judge")}},
            "smoke": {"metadata": {"name": analysis_run_name("exp", "smoke")}}}


def kinds(actions: tuple[Any, ...]) -> list[str]:
    return [type(a).__name__ for a in actions]


@pytest.mark.parametrize(("spec", "status", "replica_sets", "runs", "now", "phase", "actions",
                          "requeue"), [
    # nothing yet: both ReplicaSets created, Pending, woken at the progress deadline
    ({}, None, (), (), T0, "Pending", ["CreateReplicaSet", "CreateReplicaSet"], 600.0),
    # pods on their way: nothing to write, still Pending
    ({}, None, (rs("baseline", 2, 1), rs("canary", 1, 1)), (), T0, "Pending", [], 600.0),
    # a ReplicaSet not at its template's size (resized by hand): scaled back
    ({}, None, (rs("baseline", 1, 1), rs("canary", 1, 1)), (), T0, "Pending",
     ["ScaleReplicaSet"], 600.0),
    # all available, with a duration: Running until it passes
    ({"duration": "1m"}, None, READY, (), T0, "Running", [], 60.0),
    # the duration passed: Successful, ReplicaSets to zero
    ({"duration": "30s"}, RUNNING, READY, (), LATER, "Successful",
     ["ScaleReplicaSet", "ScaleReplicaSet"], None),
    # no duration and no required analysis: runs until terminated
    ({}, RUNNING, READY, (), LATER + dt.timedelta(days=1), "Running", [], None),
    # terminate: ends at once, Successful
    ({"terminate": True}, RUNNING, READY, (), LATER, "Successful",
     ["ScaleReplicaSet", "ScaleReplicaSet"], None),
    # Running with analyses: both runs started
    ({"analyses": ANALYSES}, RUNNING, READY, (), LATER, "Running",
     ["CreateAnalysisRun", "CreateAnalysisRun"], None),
    # the required run succeeded, the other still runs: Successful, the other terminated
    ({"analyses": ANALYSES}, RUNNING, READY, (run("judge", "Successful"), run("smoke", "Running")),
     LATER, "Successful", ["ScaleReplicaSet", "ScaleReplicaSet", "TerminateAnalysisRun"], None),
    # the duration passed but a required run is still measuring: keep running
    ({"analyses": ANALYSES, "duration": "10s"}, RUNNING, READY,
     (run("judge", "Running"), run("smoke", "Successful")), LATER, "Running", [], None),
    # any run failing ends the Experiment Failed at once, even a non-required one
    ({"analyses": ANALYSES, "duration": "1h"}, RUNNING, READY,
     (run("judge", "Running"), run("smoke", "Failed", "too slow")), LATER, "Failed",
     ["ScaleReplicaSet", "ScaleReplicaSet", "TerminateAnalysisRun"], None),
    # the worst phase wins: Failed over Error over Inconclusive
    ({"analyses": ANALYSES}, RUNNING, READY,
     (run("judge", "Error"), run("smoke", "Inconclusive")), LATER, "Error",
     ["ScaleReplicaSet", "ScaleReplicaSet"], None),
    ({"analyses": ANALYSES}, RUNNING, READY,
     (run("judge", "Inconclusive"), run("smoke", "Successful")), LATER, "Inconclusive",
     ["ScaleReplicaSet", "ScaleReplicaSet"], None),
    # not available by the progress deadline: Failed
    ({"progressDeadlineSeconds": 20}, {"phase": "Pending", "startedAt": "2026-01-01T00:00:00Z"},
     (rs("baseline", 2, 1), rs("canary", 1, 1)), (), LATER, "Failed",
     ["ScaleReplicaSet", "ScaleReplicaSet"], None),
    # ended before: only what is left to stop (a ReplicaSet still up); the phase is kept
    ({}, {"phase": "Failed", "message": "x"}, (rs("baseline", 2, 2), rs("canary", 0, 0)),
     (), LATER, "Failed", ["ScaleReplicaSet"], None),
    ({}, {"phase": "Successful"}, (rs("baseline", 0, 0), rs("canary", 0, 0)), (), LATER,
     "Successful", [], None),
])
def test_plan_experiment(spec: Obj, status: Obj | None, replica_sets: tuple[ReplicaSetView, ...],
                         runs: tuple[AnalysisRunView, ...], now: dt.datetime, phase: str,
                         actions: list[str], requeue: float | None) -> None:
    exp = experiment(status=status, **spec)
    observed = ExperimentObserved(replica_sets, runs, PREPARED if spec.get("analyses") else {})
    plan = plan_experiment(exp, observed, now)
    assert plan.status.phase == phase, plan.status.message
    assert kinds(plan.actions) == actions
    assert plan.requeue_after == requeue


def test_replica_sets_are_owned_labelled_and_apart_from_the_rollouts() -> None:
    exp = experiment()
    plan = plan_experiment(exp, ExperimentObserved(), T0)
    created = [a for a in plan.actions if isinstance(a, CreateReplicaSet)]
    baseline = created[0].manifest
    assert baseline["metadata"]["name"] == "exp-baseline"
    assert baseline["metadata"]["ownerReferences"][0]["kind"] == "Experiment"
    assert baseline["spec"]["replicas"] == 2
    labels = baseline["spec"]["template"]["metadata"]["labels"]
    # Its own hash: not the one a Rollout would give the same pod template, so a Service
    # pinned to the stable revision never selects the baseline's pods.
    assert labels[POD_TEMPLATE_HASH_LABEL] == template_hash("exp", exp.spec.templates[0])
    assert labels[POD_TEMPLATE_HASH_LABEL] != pod_template_hash(pod("b"))
    assert baseline["spec"]["selector"]["matchLabels"][POD_TEMPLATE_HASH_LABEL] == labels[
        POD_TEMPLATE_HASH_LABEL]
    assert labels["app"] == "b"


def test_planning_twice_writes_nothing_new() -> None:
    exp = experiment(duration="1m", analyses=ANALYSES)
    observed = ExperimentObserved(READY, (), PREPARED)
    first = plan_experiment(exp, observed, T0)
    assert first.status.phase == "Running"
    again = plan_experiment(dataclasses.replace(exp, status=first.status), ExperimentObserved(
        READY, (run("judge", "Running"), run("smoke", "Running")), PREPARED), T0)
    assert again.actions == ()
    assert again.status.available_at == first.status.available_at


def test_template_services_are_created_once_and_deleted_at_the_end() -> None:
    exp = experiment(duration="10s")
    with_service = ExperimentTemplate.model_validate(
        {**exp.spec.templates[0].to_wire(), "service": {}})
    exp = dataclasses.replace(exp, spec=exp.spec.model_copy(update={"templates": [with_service]}))
    plan = plan_experiment(exp, ExperimentObserved(READY[:1]), T0)
    writes = [a.write for a in plan.actions if isinstance(a, ApplyRouteWrite)]
    assert [(w.op, w.key.name) for w in writes] == [("create", "exp-baseline")]
    assert writes[0].manifest is not None
    assert writes[0].manifest["spec"]["ports"] == [
        {"port": 8080, "targetPort": 8080, "protocol": "TCP", "name": "http"}]
    assert plan.status.template_statuses is not None
    assert plan.status.template_statuses[0].service_name == "exp-baseline"
    running = dataclasses.replace(exp, status=plan.status)
    assert not [a for a in plan_experiment(running, ExperimentObserved(READY[:1]), T0).actions
                if isinstance(a, ApplyRouteWrite)]
    ended = plan_experiment(running, ExperimentObserved(READY[:1]), LATER)
    assert ended.status.phase == "Successful"
    assert [(a.write.op, a.write.key.name) for a in ended.actions
            if isinstance(a, ApplyRouteWrite)] == [("delete", "exp-baseline")]


def test_a_service_without_ports_is_headless() -> None:
    exp = experiment()
    template = exp.spec.templates[0].model_copy(update={"template": exp.spec.templates[
        0].template.model_copy(update={"spec": {"containers": [{"name": "a", "image": "x"}]}})})
    assert service_manifest(exp, template)["spec"]["clusterIP"] == "None"


def test_invalid_spec_and_unresolvable_analyses_end_in_error() -> None:
    parsed = parse_experiment({"metadata": {"name": "exp"}, "spec": {"templates": []}})
    assert isinstance(parsed, InvalidExperiment)
    plan = plan_experiment(parsed, ExperimentObserved(), T0)
    assert plan.status.phase == "Error" and plan.actions == ()
    assert "spec.templates" in plan.status.message
    exp = experiment(analyses=ANALYSES)
    plan = plan_experiment(exp, ExperimentObserved(problems={
        "spec.analyses[0].templates[0]": "AnalysisTemplate 'compare' not found"}), T0)
    assert plan.status.phase == "Error"
    assert "spec.analyses[0].templates[0]: AnalysisTemplate 'compare' not found" in (
        plan.status.message)


@pytest.mark.parametrize(("spec", "field"), [
    ({"templates": [{"name": "a", "selector": {"matchLabels": {"app": "a"}},
                     "template": pod("b")}]}, "spec.templates[0]"),
    ({"templates": [{"name": "a", "selector": {"matchLabels": {"app": "a"}},
                     "template": pod("a")}], "scaleDownDelaySeconds": -1},
     "spec.scaleDownDelaySeconds"),
    ({"templates": [{"name": "a", "selector": {"matchLabels": {"app": "a"}},
                     "template": pod("a"), "service": {"ports": [{"port": 80}]}}]},
     "spec.templates[0].service.ports[0].targetPort"),
    ({"templates": [{"name": "a", "selector": {"matchLabels": {"app": "a"}},
                     "template": pod("a"), "service": {"ports": [
                         {"port": 80, "targetPort": 9090}]}}]}, "spec.templates[0]"),
    ({"templates": [{"name": "a", "selector": {"matchLabels": {"app": "a"}},
                     "template": pod("a")}], "duration": "soon"}, "spec.duration"),
])
def test_manifest_errors_name_the_field(spec: Obj, field: str) -> None:
    errors = experiment_manifest_errors(spec)
    assert any(path == field for path, _ in errors), errors


def test_unmatched_service_port_is_refused_naming_it() -> None:
    errors = experiment_manifest_errors({"templates": [
        {"name": "a", "selector": {"matchLabels": {"app": "a"}}, "template": pod("a"),
         "service": {"ports": [{"port": 80, "targetPort": "http"},
                               {"port": 81, "targetPort": 9090}]}}]})
    assert errors == [("spec.templates[0]", "service.ports[1].targetPort 9090 names no port "
                       "of the template's containers")]


# --- scaleDownDelaySeconds and service ports ------------------------------------------------

def with_service(exp: ValidExperiment, service: Obj) -> ValidExperiment:
    templates = [ExperimentTemplate.model_validate({**t.to_wire(), "service": service})
                 for t in exp.spec.templates[:1]]
    return dataclasses.replace(exp, spec=exp.spec.model_copy(update={"templates": templates}))


def test_the_pods_and_service_stay_scale_down_delay_seconds_after_the_end() -> None:
    """Argo's default: 30 s after the end the ReplicaSets go to zero, the Service with
    them; until then the template status still names the Service."""
    exp = with_service(experiment(duration="10s", scaleDownDelaySeconds=30), {})
    assert experiment(duration="10s").spec.scale_down_delay_seconds == 0  # the tables' value
    default = parse_experiment({"metadata": {"name": "e"}, "spec": {
        "templates": [t.to_wire() for t in exp.spec.templates]}})
    assert isinstance(default, ValidExperiment) and default.spec.scale_down_delay_seconds == 30
    running = dataclasses.replace(exp, status=plan_experiment(
        exp, ExperimentObserved(READY[:1]), T0).status)
    end = T0 + dt.timedelta(seconds=10)
    ended = plan_experiment(running, ExperimentObserved(READY[:1]), end)
    assert ended.status.phase == "Successful" and ended.actions == ()
    assert ended.requeue_after == 30.0
    assert ended.status.template_statuses is not None
    assert ended.status.template_statuses[0].service_name == "exp-baseline"
    later = dataclasses.replace(running, status=ended.status)
    waiting = plan_experiment(later, ExperimentObserved(READY[:1]), end + dt.timedelta(
        seconds=29))
    assert waiting.actions == () and waiting.requeue_after == 1.0
    due = plan_experiment(later, ExperimentObserved(READY[:1]), end + dt.timedelta(seconds=30))
    assert [(type(a).__name__, getattr(a, "replicas", None)) for a in due.actions] == [
        ("ScaleReplicaSet", 0), ("ApplyRouteWrite", None)]
    assert due.status.finished_at == ended.status.finished_at and due.requeue_after is None
    gone = plan_experiment(dataclasses.replace(later, status=due.status), ExperimentObserved(
        (rs("baseline", 0, 0),)), end + dt.timedelta(seconds=31))
    assert gone.actions == ()


def test_a_zero_delay_scales_down_in_the_ending_pass() -> None:
    exp = with_service(experiment(duration="10s"), {})
    running = dataclasses.replace(exp, status=plan_experiment(
        exp, ExperimentObserved(READY[:1]), T0).status)
    ended = plan_experiment(running, ExperimentObserved(READY[:1]), LATER)
    assert kinds(ended.actions) == ["ScaleReplicaSet", "ApplyRouteWrite"]


@pytest.mark.parametrize(("ports", "expected"), [
    (None, [{"port": 8080, "targetPort": 8080, "protocol": "TCP", "name": "http"}]),
    ([{"port": 80, "targetPort": 8080}],
     [{"port": 80, "targetPort": 8080, "protocol": "TCP", "name": "http"}]),
    ([{"port": 80, "targetPort": "http", "name": "web"}],
     [{"port": 80, "targetPort": "http", "protocol": "TCP", "name": "web"}]),
])
def test_service_ports_map_container_ports(ports: list[Obj] | None,
                                           expected: list[Obj]) -> None:
    service = {"name": "probe"} | ({"ports": ports} if ports is not None else {})
    exp = with_service(experiment(), service)
    manifest = service_manifest(exp, exp.spec.templates[0])
    assert manifest["metadata"]["name"] == "probe"
    assert manifest["spec"]["ports"] == expected


# --- the canary step ------------------------------------------------------------------------

STABLE_TEMPLATE = {"metadata": {"labels": {"app": "demo", POD_TEMPLATE_HASH_LABEL: "s"}},
                   "spec": {"containers": [{"name": "app", "image": "app:0"}]}}
STABLE = ReplicaSetView(name="demo-s", pod_hash="s", revision=1, spec_replicas=4, replicas=4,
                        ready=4, available=4, template=STABLE_TEMPLATE)
STEP = {"experiment": {"duration": "5m", "templates": [
    {"name": "baseline", "specRef": "stable", "replicas": 2,
     "metadata": {"labels": {"role": "baseline"}}},
    {"name": "canary", "specRef": "canary", "replicas": 2, "service": {}}],
    "analyses": [{"name": "judge", "templateName": "compare", "args": [
        {"name": "baseline-hash", "value": "{{templates.baseline.podTemplateHash}}"},
        {"name": "stable-hash", "valueFrom": {"podTemplateHashValue": "Stable"}},
        {"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}}]}],
    "dryRun": [{"metricName": "*"}]}}


def step_situation(step: Obj, experiments: tuple[ExperimentView, ...] = (), attempt: int = 0
                   ) -> tuple[Context, Draft, Walk]:
    spec = canary_spec([{"setWeight": 10}, step])
    parsed = ValidRollout(ObjectMeta(name="demo", namespace="ns", uid="u"), parse_spec(spec),
                          spec["template"], RolloutStatus())
    desired = pod_template_hash(parsed.template)
    status = RolloutStatus(stable_rs="s", observed_pod_hash=desired, current_pod_hash=desired,
                           analysis_attempt=attempt or None)
    ctx = Context(parsed, parsed.spec, Observed(replica_sets=(STABLE,), experiments=experiments),
                  T0, desired, status)
    walk = Walk(steps=parsed.spec.strategy.canary.steps or [],  # type: ignore[union-attr]
                index=1, canary=None, stable=STABLE, traffic=FakeTraffic(10),
                pause_conditions=[])
    return ctx, Draft(), walk


def test_the_step_creates_its_experiment_from_both_templates() -> None:
    ctx, draft, walk = step_situation(STEP)
    outcome = experiment_step.handle(ctx, draft, walk, walk.steps[1])
    name = f"demo-{ctx.desired_hash}-1"
    assert outcome == Wait(f"Step 2/2: starting Experiment {name}")
    [action] = draft.actions
    assert isinstance(action, CreateExperiment) and action.name == name
    manifest = action.manifest
    assert manifest["metadata"]["ownerReferences"][0]["kind"] == "Rollout"
    spec = manifest["spec"]
    baseline, canary = spec["templates"]
    # the stable's template without the revision's hash label, plus the step's metadata
    assert baseline["template"]["metadata"]["labels"] == {"app": "demo", "role": "baseline"}
    assert baseline["template"]["spec"]["containers"][0]["image"] == "app:0"
    assert canary["template"]["spec"]["containers"][0]["image"] == "app:1"
    assert canary["service"] == {} and baseline["replicas"] == 2
    assert baseline["selector"] == {"matchLabels": {"app": "demo"}}
    assert spec["duration"] == "5m" and spec["dryRun"] == [{"metricName": "*"}]
    args = spec["analyses"][0]["args"]
    assert args == [
        {"name": "baseline-hash", "value": "{{templates.baseline.podTemplateHash}}"},
        {"name": "stable-hash", "value": "s"},
        {"name": "canary-hash", "value": ctx.desired_hash}]
    # the made manifest is a valid Experiment
    assert experiment_manifest_errors(spec) == []


def view(ctx: Context, phase: str, message: str = "", attempt: int = 0) -> ExperimentView:
    return ExperimentView(name=f"demo-{ctx.desired_hash}-1", phase=phase, message=message,
                          pod_hash=ctx.desired_hash, step_index=1, attempt=attempt)


@pytest.mark.parametrize(("step", "phase", "expected"), [
    (STEP, "Pending", Wait), (STEP, "Running", Wait), (STEP, "Successful", Advance),
    (STEP, "Failed", Abort), (STEP, "Error", Abort), (STEP, "Inconclusive", Pause),
    # open-ended (no duration, nothing required): the step is done once it is Running
    ({"experiment": {"templates": [{"name": "b", "specRef": "stable"}]}}, "Running", Advance),
    ({"experiment": {"templates": [{"name": "b", "specRef": "stable"}]}}, "Pending", Wait),
])
def test_the_step_follows_the_experiment(step: Obj, phase: str, expected: type) -> None:
    ctx, draft, walk = step_situation(step)
    ctx, draft, walk = step_situation(step, (view(ctx, phase, "analysis judge Failed"),))
    outcome = experiment_step.handle(ctx, draft, walk, walk.steps[1])
    assert isinstance(outcome, expected), outcome
    assert draft.actions == []
    # waiting on an Experiment stops the Rollout's progress deadline (it has its own)
    assert draft.hold_deadline == (expected is Wait)
    if isinstance(outcome, Abort):
        assert outcome.message == (f"Aborted: step 2 Experiment demo-{ctx.desired_hash}-1 "
                                   f"{phase}: analysis judge Failed")


def test_a_long_experiment_does_not_exceed_the_rollouts_progress_deadline() -> None:
    spec = canary_spec([{"setWeight": 10}, STEP])
    desired = pod_template_hash(spec["template"])
    body = Rollout.model_validate({
        "metadata": {"name": "demo", "namespace": "ns", "uid": "u"}, "spec": spec,
        "status": {"stableRS": "s", "observedPodHash": desired, "currentPodHash": desired,
                   "currentStepIndex": 1, "phase": "Progressing",
                   "replicas": 4, "updatedReplicas": 1, "readyReplicas": 4,
                   "availableReplicas": 4, "progressAt": "2026-01-01T00:00:00Z"}})
    rollout = parse_rollout(body)
    canary = ReplicaSetView(name=f"demo-{desired}", pod_hash=desired, revision=2,
                            spec_replicas=1, replicas=1, ready=1, available=1)
    stable = dataclasses.replace(STABLE, spec_replicas=3, replicas=3, ready=3, available=3)
    running = ExperimentView(name=f"demo-{desired}-1", phase="Running", pod_hash=desired,
                             step_index=1)
    later = T0 + dt.timedelta(hours=2)
    made = plan(rollout, Observed(replica_sets=(stable, canary), experiments=(running,)),
                later)
    assert made.status.phase == "Progressing", made.status.message
    assert "Experiment" in made.status.message


def test_a_retry_makes_a_new_experiment() -> None:
    ctx, draft, walk = step_situation(STEP)
    ctx, draft, walk = step_situation(STEP, (view(ctx, "Failed"),), attempt=1)
    experiment_step.handle(ctx, draft, walk, walk.steps[1])
    [action] = draft.actions
    assert isinstance(action, CreateExperiment)
    assert action.name == f"demo-{ctx.desired_hash}-1-r1"


def test_weight_without_a_router_is_refused_naming_the_field() -> None:
    spec = canary_spec([{"experiment": {"templates": [
        {"name": "b", "specRef": "stable", "weight": 5}]}}])
    errors = rollout_manifest_errors(spec)
    assert [path for path, _ in errors] == [
        "spec.strategy.canary.steps[0].experiment.templates[0].weight"]
    assert "trafficRouting" in errors[0][1]


def test_a_step_needs_exactly_one_kind() -> None:
    spec = canary_spec([{"experiment": {"templates": [{"name": "b", "specRef": "stable"}]},
                         "pause": {}}])
    errors = rollout_manifest_errors(spec)
    assert errors and "experiment" in errors[0][1]
