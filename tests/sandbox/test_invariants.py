"""The write-history invariants: a clean history passes, and each rule catches its fault."""

from __future__ import annotations

import copy
from typing import Any

from rollouts.sandbox.history import Write
from rollouts.sandbox.invariants import check_rollout, problems

Obj = dict[str, Any]
NAME = "web"
STEPS = [{"setWeight": 50}, {"pause": {"duration": "2s"}}, {"analysis": {"templates": []}},
         {"pause": {}}]


class History:
    """Builds writes in commit order; `at` is the wall time each was seen."""

    def __init__(self) -> None:
        self.writes: list[Write] = []
        self.rv = 100
        self.objects: dict[tuple[str, str], Obj] = {}
        self.steps: list[Obj] = STEPS

    def put(self, resource: str, name: str, obj: Obj, at: float = 0.0) -> int:
        self.rv += 1
        old = self.objects.get((resource, name))
        kind = "ADDED" if old is None else "MODIFIED"
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {})["name"] = name
        self.writes.append(Write(self.rv, at, resource, kind, name, obj, old))
        self.objects[(resource, name)] = obj
        return self.rv

    def status(self, at: float = 0.0, **status: Any) -> int:
        body = {"spec": {"replicas": 2, "strategy": {"canary": {
            "stableService": "web-stable", "canaryService": "web-canary",
            "steps": self.steps}}},
            "status": {"stableRS": "old", "currentPodHash": "new", **status}}
        return self.put("rollout", NAME, body, at)

    def rs(self, pod_hash: str, replicas: int, available: int) -> int:
        return self.put("replicaset", f"web-{pod_hash}", {
            "metadata": {"labels": {"rollouts-pod-template-hash": pod_hash},
                         "ownerReferences": [{"name": NAME, "controller": True}]},
            "spec": {"replicas": replicas}, "status": {"availableReplicas": available}})

    def service(self, name: str, pod_hash: str) -> int:
        return self.put("service", name, {"spec": {"selector": {
            "rollouts-pod-template-hash": pod_hash}}})

    def run(self, name: str, phase: str, started: list[str], step: int = 2) -> int:
        return self.put("analysisrun", name, {
            "metadata": {"labels": {"rollouts.dev/rollout": NAME,
                                    "rollouts-pod-template-hash": "new",
                                    "rollouts.dev/analysis-kind": "step",
                                    "rollouts.dev/step-index": str(step)}},
            "spec": {"metrics": [{"name": "m", "count": 2}]},
            "status": {"phase": phase, "metricResults": [{
                "name": "m", "count": len(started),
                "measurements": [{"startedAt": s} for s in started]}]}})

    def rules(self, operations: dict[int, str] | None = None) -> list[str]:
        return [v.rule for v in check_rollout(self.writes, NAME, operations)]


def clean_canary() -> tuple[History, dict[int, str]]:
    h = History()
    h.rs("old", 2, 2)
    h.service("web-stable", "old")
    h.status(currentStepIndex=0)
    h.rs("new", 1, 1)
    h.status(at=10.0, currentStepIndex=1, pauseConditions=[
        {"reason": "CanaryPauseStep", "startTime": "1970-01-01T00:00:10Z"}])
    h.status(at=12.5, currentStepIndex=2)
    h.run("web-new-step-2", "Running", ["t1"])
    h.run("web-new-step-2", "Successful", ["t1", "t2"])
    h.status(at=13.0, currentStepIndex=3, pauseConditions=[
        {"reason": "CanaryPauseStep", "startTime": "1970-01-01T00:00:13Z"}])
    promote = h.status(at=14.0, currentStepIndex=4)
    h.rs("new", 2, 2)
    h.service("web-stable", "new")
    h.status(at=15.0, currentStepIndex=4, stableRS="new")
    h.rs("old", 0, 0)
    return h, {promote: "promote"}


def test_a_clean_canary_breaks_nothing() -> None:
    h, ops = clean_canary()
    assert h.rules(ops) == []


def test_an_indefinite_pause_left_without_promote_is_a_skipped_step() -> None:
    h, _ = clean_canary()
    assert h.rules({}) == ["step-skipped"]


def test_a_timed_pause_left_early_is_a_skipped_step() -> None:
    h = History()
    h.rs("old", 2, 2)
    h.status(currentStepIndex=0)
    h.rs("new", 1, 1)
    h.status(at=10.0, currentStepIndex=1, pauseConditions=[
        {"reason": "CanaryPauseStep", "startTime": "1970-01-01T00:00:10Z"}])
    h.status(at=11.0, currentStepIndex=2)
    assert h.rules() == ["step-skipped"]


def test_set_weight_left_before_the_canary_pods_are_available_is_skipped() -> None:
    h = History()
    h.rs("old", 2, 2)
    h.status(currentStepIndex=0)
    h.rs("new", 1, 0)
    h.status(currentStepIndex=1)
    assert h.rules() == ["step-skipped"]


def test_set_weight_under_a_canary_scale_counts_the_scales_pods() -> None:
    """With setCanaryScale in force (a router), the canary's pods are the scale's, not the
    weight's share: 1 pod serves setWeight 100 of 2 replicas; 1 of 2 scaled pods does not."""
    for scale, rules in ((1, []), (2, ["step-skipped"])):
        h = History()
        h.steps = [{"setCanaryScale": {"replicas": scale}, "setWeight": 100}, {"pause": {}}]
        h.rs("old", 2, 2)
        h.status(currentStepIndex=0)
        h.rs("new", scale, 1)
        h.status(currentStepIndex=1)
        assert h.rules() == rules


def test_analysis_step_left_before_its_run_succeeded_is_skipped() -> None:
    h = History()
    h.rs("old", 2, 2)
    h.rs("new", 1, 1)
    h.status(currentStepIndex=2)
    h.run("web-new-step-2", "Running", ["t1"])
    h.status(currentStepIndex=3)
    assert h.rules() == ["step-skipped"]


def test_an_index_going_back_is_a_repeated_step() -> None:
    h = History()
    h.rs("old", 2, 2)
    h.status(currentStepIndex=2)
    h.status(currentStepIndex=1)
    assert h.rules() == ["step-repeated"]


def test_an_abort_resets_the_index_without_repeating() -> None:
    h = History()
    h.rs("old", 2, 2)
    h.status(currentStepIndex=2)
    abort = h.status(currentStepIndex=2, abort=True)
    h.status(currentStepIndex=0, abort=True)
    assert h.rules({abort: "abort"}) == []


def test_a_dropped_abort_flag_and_an_aborted_revision_made_stable_are_lost_aborts() -> None:
    h = History()
    h.rs("old", 2, 2)
    h.rs("new", 2, 2)
    h.status(currentStepIndex=1, abort=True)
    h.status(currentStepIndex=1)
    h.status(currentStepIndex=1, stableRS="new")
    assert h.rules() == ["abort-lost", "abort-lost"]


def test_canary_scaled_down_before_stable_is_full_breaks_stable_first() -> None:
    h = History()
    h.rs("old", 1, 1)
    h.service("web-stable", "old")
    h.rs("new", 1, 1)
    h.status(currentStepIndex=1, abort=True)
    h.rs("new", 0, 0)
    assert h.rules() == ["scaled-down-before-stable"]


def test_canary_scaled_down_while_the_stable_service_selects_it_breaks_stable_first() -> None:
    h = History()
    h.rs("old", 2, 2)
    h.rs("new", 2, 2)
    h.status(currentStepIndex=1, abort=True)
    h.service("web-stable", "new")
    h.rs("new", 0, 0)
    assert "scaled-down-before-stable" in h.rules()


def test_the_old_stable_emptied_before_the_stable_service_left_it_is_caught() -> None:
    """Issue 11: on promotion the stable Service is re-pointed first, then the old stable's
    last pods go; the other order is a violation."""
    bad = History()
    bad.status(currentStepIndex=0)
    bad.rs("old", 2, 2)
    bad.service("web-stable", "old")
    bad.rs("new", 2, 2)
    bad.status(currentStepIndex=0)
    bad.rs("old", 0, 0)
    bad.service("web-stable", "new")
    bad.status(currentStepIndex=0, stableRS="new")
    assert bad.rules() == ["emptied-while-selected"]


def test_switching_the_stable_service_to_an_unavailable_revision_is_caught() -> None:
    h = History()
    h.rs("old", 2, 2)
    h.rs("new", 2, 1)
    h.status(currentStepIndex=0)
    h.service("web-stable", "old")
    h.service("web-stable", "new")
    assert h.rules() == ["promoted-unavailable"]


def test_a_violation_comes_with_the_writes_that_led_to_it() -> None:
    """The fault campaign's finding as its CI log showed it, now with the history: the
    stable Service sent back to an old revision emptied after the promotion."""
    h = History()
    h.rs("old", 2, 2)
    h.rs("new", 2, 2)
    h.status(currentStepIndex=0)
    h.service("web-stable", "old")
    h.service("web-stable", "new")
    h.rs("old", 0, 0)
    bad = h.service("web-stable", "old")
    h.rs("old", 1, 0)  # after the violation: not shown
    text = problems(h.writes, NAME)
    assert text[0] == (f"promoted-unavailable at rv {bad}: Service web-stable switched "
                       "new -> old with 0/2 available")
    lines = text[1].split("\n  ")
    assert lines[0] == "writes up to the first violation:"
    assert lines[-1] == f"rv {bad} service web-stable MODIFIED selects old"
    assert lines[-2] == f"rv {bad - 1} replicaset web-old MODIFIED replicas=0 available=0"
    assert lines[3].startswith("rv 103 rollout web ADDED stableRS=old current=new step=0")
    assert len(lines) == 1 + 7
    assert problems(clean_canary()[0].writes, NAME, clean_canary()[1]) == []


def test_stable_going_back_to_a_revision_it_left_is_caught() -> None:
    h = History()
    h.rs("old", 2, 2)
    h.rs("new", 2, 2)
    h.status(currentStepIndex=0)
    h.status(currentStepIndex=0, stableRS="new")
    h.status(currentStepIndex=0, stableRS="old")
    assert h.rules() == ["stable-went-back"]


def test_measurements_duplicated_lost_or_beyond_count_are_caught() -> None:
    h = History()
    h.status(currentStepIndex=0)
    h.run("r", "Running", ["t1", "t1"])
    h.run("r", "Running", ["t2"])
    h.run("r", "Running", ["t2", "t3", "t4"])
    assert h.rules() == ["duplicate-measurement", "lost-measurement", "extra-measurement"]


def test_a_second_run_for_the_same_step_is_a_duplicate() -> None:
    h = History()
    h.status(currentStepIndex=0)
    h.run("r1", "Running", [])
    h.run("r2", "Running", [])
    assert h.rules() == ["duplicate-analysisrun"]
