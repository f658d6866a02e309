"""Trigger derivation: a table of status transitions and the triggers each fires."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollouts.models.rollout import RolloutStatus
from rollouts.notifications import triggers as t
from rollouts.notifications.triggers import fired


def status(**fields: Any) -> RolloutStatus:
    return RolloutStatus.model_validate(fields)


HEALTHY_A = dict(phase="Healthy", observedPodHash="a", currentPodHash="a", stableRS="a")
RUN_FAILED = {"canary": {"currentStepAnalysisRunStatus": {"name": "r1", "status": "Failed"}}}
RUN_RUNNING = {"canary": {"currentStepAnalysisRunStatus": {"name": "r1", "status": "Running"}}}

CASES = [
    ("first reconcile fires nothing", {}, HEALTHY_A, []),
    ("nothing changed", HEALTHY_A, HEALTHY_A, []),
    ("new revision starts progressing",
     HEALTHY_A, dict(phase="Progressing", observedPodHash="b", currentStepIndex=0), [t.STARTED]),
    ("new revision reaches a pause after its first step",
     HEALTHY_A, dict(phase="Paused", observedPodHash="b", currentStepIndex=1),
     [t.STARTED, t.STEP_COMPLETED, t.PAUSED]),
    ("a step completes", dict(phase="Progressing", observedPodHash="b", currentStepIndex=1),
     dict(phase="Progressing", observedPodHash="b", currentStepIndex=2), [t.STEP_COMPLETED]),
    ("promoted out of a pause",
     dict(phase="Paused", observedPodHash="b", currentStepIndex=1),
     dict(phase="Progressing", observedPodHash="b", currentStepIndex=2), [t.STEP_COMPLETED]),
    ("analysis fails and the rollout aborts",
     dict(phase="Progressing", observedPodHash="b", currentStepIndex=2, **RUN_RUNNING),
     dict(phase="Degraded", observedPodHash="b", currentStepIndex=2, abort=True, **RUN_FAILED),
     [t.ANALYSIS_FAILED, t.ABORTED, t.DEGRADED]),
    ("a failed run already announced is not announced again",
     dict(phase="Degraded", observedPodHash="b", abort=True, **RUN_FAILED),
     dict(phase="Degraded", observedPodHash="b", abort=True, message="x", **RUN_FAILED), []),
    ("operator abort", dict(phase="Paused", observedPodHash="b", currentStepIndex=1),
     dict(phase="Degraded", observedPodHash="b", currentStepIndex=1, abort=True),
     [t.ABORTED, t.DEGRADED]),
    ("retry after abort (the controller's own view)",
     dict(phase="Degraded", observedPodHash="b", abort=True),
     dict(phase="Progressing", observedPodHash="b", currentStepIndex=0), [t.STARTED]),
    ("retry after abort (`rollouts retry` cleared abort in status first)",
     dict(phase="Degraded", observedPodHash="b", currentStepIndex=0),
     dict(phase="Progressing", observedPodHash="b", currentStepIndex=0), [t.STARTED]),
    ("`rollouts abort` wrote abort into status; the controller degrades",
     dict(phase="Paused", observedPodHash="b", currentStepIndex=1, abort=True),
     dict(phase="Degraded", observedPodHash="b", currentStepIndex=1, abort=True),
     [t.ABORTED, t.DEGRADED]),
    ("completion", dict(phase="Progressing", observedPodHash="b", currentStepIndex=2),
     dict(phase="Healthy", observedPodHash="b", currentStepIndex=3),
     [t.STEP_COMPLETED, t.COMPLETED]),
    ("git revert to stable completes in one pass",
     dict(phase="Healthy", observedPodHash="b"), dict(phase="Healthy", observedPodHash="a"),
     [t.STARTED, t.COMPLETED]),
    ("progress deadline: degraded without abort",
     dict(phase="Progressing", observedPodHash="b"),
     dict(phase="Degraded", observedPodHash="b"), [t.DEGRADED]),
    ("blue-green pre-promotion analysis fails",
     dict(phase="Paused", observedPodHash="b"),
     dict(phase="Degraded", observedPodHash="b", abort=True, blueGreen={
         "prePromotionAnalysisRunStatus": {"name": "pre", "status": "Error"}}),
     [t.ANALYSIS_FAILED, t.ABORTED, t.DEGRADED]),
]


@pytest.mark.parametrize(("old", "new", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_transitions(old: dict[str, Any], new: dict[str, Any], expected: list[str]) -> None:
    assert [f.trigger for f in fired(status(**old), status(**new))] == expected


def test_an_event_carries_the_facts_of_the_new_status() -> None:
    started, event = fired(status(**HEALTHY_A),
                           status(phase="Degraded", observedPodHash="b", message="went wrong"))
    assert started.trigger == t.STARTED
    assert (event.trigger, event.revision, event.phase, event.message) == (
        t.DEGRADED, "b", "Degraded", "went wrong")


PHASES = st.sampled_from([None, "Healthy", "Progressing", "Paused", "Degraded"])
STATUSES = st.builds(
    lambda phase, pod_hash, step, abort: status(
        phase=phase, observedPodHash=pod_hash, currentStepIndex=step, abort=abort),
    PHASES, st.sampled_from(["a", "b"]), st.none() | st.integers(0, 4),
    st.none() | st.booleans())


@given(STATUSES)
def test_a_status_compared_with_itself_fires_nothing(s: RolloutStatus) -> None:
    # The restart property: a fresh controller's first pass starts from the written status.
    assert fired(s, s) == []


@given(STATUSES, STATUSES)
def test_every_trigger_fires_at_most_once_per_transition(a: RolloutStatus,
                                                          b: RolloutStatus) -> None:
    names = [f.trigger for f in fired(a, b)]
    assert len(names) == len(set(names))
    assert set(names) <= set(t.TRIGGERS)
